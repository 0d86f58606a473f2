package middleware

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
)

// resolve returns the cache entry of the presented key string raw, and the
// key's displayable prefix once raw is known to be well-formed: from the
// validation cache, or by parsing raw (apikey.ParseKey), then loading and
// verifying the key.
//
// A cache hit needs no parsing: the cache holds only keys that parsed,
// under a key that covers the whole string (see cacheKey), so a hit proves
// that this exact string passed apikey.ParseKey's format and checksum
// checks before. Skipping them saves a cached request a third of the
// validation (BenchmarkCachedKeyCheck). A malformed string of the right
// length costs one SHA-256 block and a cache miss more before it is refused,
// still with no storage call and no argon2 (BenchmarkMalformedKey).
func (v *Validator) resolve(ctx context.Context, raw string, now time.Time) (*entry, string, error) {
	var k cacheKey
	if len(raw) == apikey.KeyLength { // any other length is malformed: ParseKey says why
		k = cacheKeyOf(raw)
		if e := v.cache.get(k, now); e != nil {
			v.stats.hits.add(k)
			return e, raw[:apikey.PrefixLength], nil
		}
	}
	key, err := apikey.ParseKey(raw)
	if err != nil {
		return nil, "", &problem.Refusal{Reason: ErrMalformedKey, Cause: err}
	}
	v.stats.misses.add(k)
	e, err := v.verify(ctx, key, k)
	return e, key.Prefix(), err
}

// maxVerifyRounds bounds the verifications one request starts because its
// key id was evicted (revoked, rotated, changed) while the previous one ran.
const maxVerifyRounds = 3

// outcome is what a shared verification hands every request that waits for
// it: the entry, and the cache's eviction count when it started reading.
type outcome struct {
	e     *entry
	token uint64
}

// verify loads and verifies a key that is not cached. Concurrent calls for
// the same presented key share one verification, but never one that began
// before the last eviction of the key id: a request that arrives after a
// revocation starts its own. A result that was read before an eviction
// that happened while it ran is thrown away and the key verified again, so
// that no request receives a result older than an eviction of its key id.
// Every caller waits only as long as its own context allows; if the request
// running the shared verification gives up, the others start a new one.
func (v *Validator) verify(ctx context.Context, key apikey.Key, k cacheKey) (*entry, error) {
	id := key.ID()
	for round := 0; round < maxVerifyRounds; {
		flight := string(k.sum[:]) + string(k.head[:]) + strconv.FormatUint(v.cache.generation(id), 36)
		ch := v.group.DoChan(flight, func() (any, error) { return v.load(ctx, key, k) })
		select {
		case res := <-ch:
			if res.Err != nil {
				if errors.Is(res.Err, ErrBusy) && ctx.Err() == nil {
					continue // the leader's request ended; try again under ours
				}
				return nil, res.Err
			}
			out := res.Val.(outcome)
			if !v.cache.stale(id, out.token) {
				return out.e, nil
			}
			round++ // read before an eviction of its key id: verify again
		case <-ctx.Done():
			return nil, &problem.Refusal{Reason: ErrBusy, Cause: ctx.Err()}
		}
	}
	return nil, refuse(ErrBusy, "the key changed during every verification")
}

// load reads a key by id, verifies its hash and caches the outcome. Storage
// errors are returned, never cached; so is a panic of the store or the
// hasher, which would otherwise be re-raised by the shared verification in
// a goroutine of its own and end the process.
func (v *Validator) load(ctx context.Context, key apikey.Key, k cacheKey) (out outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			cause := panicError("verifying a key", p)
			v.cfg.OnBackgroundError(cause)
			out, err = outcome{}, &problem.Refusal{Reason: ErrUnavailable, Detail: "checking the key failed", Cause: cause}
		}
	}()
	token := v.cache.startToken()
	now := v.cfg.Now()
	if e := v.cache.get(k, now); e != nil {
		return outcome{e, token}, nil // cached by a verification that ended after our lookup
	}
	id := key.ID()
	// A key that verified in this process before bypasses the throttle
	// (see throttle): key ids are public, so its id's budget may be spent
	// by anyone.
	throttled := !v.cache.holds(k) && !v.verified.contains(k)
	if throttled {
		ok, wait := v.throttle.acquire(id, now)
		if !ok {
			v.stats.throttled.Add(1)
			return outcome{}, &problem.Refusal{Reason: ErrThrottled, RetryAfter: wait}
		}
	}
	failed := false
	defer func() {
		if throttled {
			v.throttle.release(id, failed)
		}
	}()

	rec, err := v.cfg.Store.Key(ctx, id)
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		failed = true
		return outcome{v.failure(k, id, token, now), token}, nil
	case ctx.Err() != nil:
		return outcome{}, &problem.Refusal{Reason: ErrBusy, Cause: ctx.Err()}
	case err != nil:
		return outcome{}, &problem.Refusal{Reason: ErrUnavailable, Detail: "loading the key failed", Cause: err}
	}
	if rec.ID != id || rec.Type != key.Type() {
		failed = true
		return outcome{v.failure(k, id, token, now), token}, nil
	}
	hashPrint := fingerprint(rec.Hash.Reveal())
	match, outdated := false, false
	if v.cfg.cacheEnabled {
		// This exact key verified against this exact hash before: the
		// outcome is known. The cache remembers it for every key it holds,
		// past their deadline too; the table of verified keys for keys the
		// cache has let go. An upgrade of an outdated hash that was
		// dropped (a conflict, an error, Close) is tried again below.
		if match, outdated = v.cache.verifiedBefore(k, hashPrint); !match {
			match, outdated = v.verified.matches(k, hashPrint)
		}
	}
	if !match {
		if match, outdated, err = v.verifyHash(ctx, key, rec.Hash.Reveal()); err != nil {
			return outcome{}, err
		}
		if !match {
			failed = true
			return outcome{v.failure(k, id, token, now), token}, nil
		}
		v.verified.add(k, hashPrint, outdated)
	}
	e := newValidEntry(v, k, rec, hashPrint, outdated, now)
	v.cache.addValid(k, e, token)
	if outdated { // after addValid, so that the upgrade's entry replaces e
		v.upgradeHash(rec, key, k)
	}
	return outcome{e, token}, nil
}

// panicError describes the panic value p of a store or hasher call, with
// anything that looks like a key cut to its displayable prefix.
func panicError(what string, p any) error {
	return fmt.Errorf("middleware: %s: the store or hasher panicked: %s", what, redactKeys(fmt.Sprint(p)))
}

// catchPanic, deferred by a background task that calls the store, turns a
// panic of the store into the task's error, so that a faulty custom store
// cannot end the process.
func catchPanic(what string, err *error) {
	if p := recover(); p != nil {
		*err = panicError(what, p)
	}
}

// failure caches and returns the entry of an unknown key or wrong secret.
func (v *Validator) failure(k cacheKey, id string, token uint64, now time.Time) *entry {
	e := &entry{keyID: id, fail: ErrInvalidKey, until: now.Add(v.cfg.FailureTTL)}
	v.cache.addFailed(k, e, token)
	return e
}

// verifyHash runs the argon2 check under the concurrency cap, giving up when
// ctx ends. A stored hash that cannot be checked is a server fault: the
// request fails closed with ErrUnavailable.
func (v *Validator) verifyHash(ctx context.Context, key apikey.Key, hash string) (match, outdated bool, err error) {
	v.stats.hashesWaiting.Add(1)
	select {
	case v.sem <- struct{}{}:
		v.stats.hashesWaiting.Add(-1)
	case <-ctx.Done():
		v.stats.hashesWaiting.Add(-1)
		return false, false, &problem.Refusal{Reason: ErrBusy, Cause: ctx.Err()}
	}
	v.stats.hashesRunning.Add(1)
	start := time.Now()
	defer func() {
		v.stats.hashNanos.Add(int64(time.Since(start)))
		v.stats.hashes.Add(1)
		v.stats.hashesRunning.Add(-1)
		<-v.sem
	}()
	match, outdated, err = v.callHasher(func() (bool, bool, error) { return v.cfg.Hasher.Verify([]byte(key.Reveal()), hash) })
	if err != nil {
		return false, false, &problem.Refusal{Reason: ErrUnavailable, Detail: "the stored hash of " + key.Prefix() + " cannot be checked", Cause: err}
	}
	return match, outdated, nil
}

// callHasher runs a call of the Hasher, which holds the presented secret.
// Its errors and panics are reported without their text, which a custom
// Hasher could have built from the secret in any form (bytes, hex): only
// apikey.ErrInvalidHash, or the panic value's type, is kept. A panic is
// reported to OnBackgroundError and becomes an error.
func (v *Validator) callHasher(call func() (bool, bool, error)) (match, outdated bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("middleware: the hasher panicked (a %T)", p)
			v.cfg.OnBackgroundError(err)
		}
	}()
	match, outdated, err = call()
	return match, outdated, hasherError(err)
}

// hasherError keeps the sentinel of a Hasher error and drops its text.
func hasherError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, apikey.ErrInvalidHash):
		return apikey.ErrInvalidHash
	case errors.Is(err, apikey.ErrInvalidParams):
		return apikey.ErrInvalidParams
	}
	return errors.New("middleware: the hasher failed")
}

// upgradeHash re-hashes a key verified against a hash with outdated
// parameters and stores the new hash, in the background. A concurrent
// change of the key (ErrConflict) wins: the upgrade is dropped and happens
// at a later verification. The key, whose cache key is k, is remembered as
// verified against its new hash, in the table of verified keys and in a
// new cache entry: this validator made that hash from it, so the next
// verification (once the change feed or CacheTTL ends the cache entry)
// needs no argon2.
func (v *Validator) upgradeHash(rec apikey.Record, key apikey.Key, k cacheKey) {
	v.background(func(ctx context.Context) {
		if err := v.storeUpgradedHash(ctx, rec, key, k); err != nil && ctx.Err() == nil {
			v.cfg.OnBackgroundError(err)
		}
	})
}

func (v *Validator) storeUpgradedHash(ctx context.Context, rec apikey.Record, key apikey.Key, k cacheKey) (err error) {
	defer catchPanic("upgrading the hash of "+rec.Prefix(), &err)
	hash, err := v.hashUnderCap(ctx, key)
	if err != nil || ctx.Err() != nil {
		return err // closing: the upgrade happens at a later verification
	}
	hashPrint := fingerprint(hash)
	v.verified.add(k, hashPrint, false) // true whether or not it is stored
	token := v.cache.startToken()
	rec.Hash = apikey.NewOpaque(hash)
	err = v.cfg.Store.Apply(ctx, apikey.Change{Update: []apikey.Record{rec}})
	switch {
	case err == nil:
		// The record is stored as it was read, with the new hash (Apply
		// checks its revision): its entry is as a verification would
		// make it, unless the key was evicted since token.
		v.cache.addValid(k, newValidEntry(v, k, rec, hashPrint, false, v.cfg.Now()), token)
	case !errors.Is(err, apikey.ErrConflict):
		return fmt.Errorf("middleware: storing the upgraded hash of %s: %w", rec.Prefix(), err)
	}
	return nil
}

// hashUnderCap hashes key under the argon2 concurrency cap. It returns ""
// and no error when ctx ends first.
func (v *Validator) hashUnderCap(ctx context.Context, key apikey.Key) (string, error) {
	select {
	case v.sem <- struct{}{}:
	case <-ctx.Done():
		return "", nil
	}
	defer func() { <-v.sem }()
	var hash string
	_, _, err := v.callHasher(func() (bool, bool, error) {
		var err error
		hash, err = v.cfg.Hasher.Hash([]byte(key.Reveal()))
		return false, false, err
	})
	if err != nil {
		return "", fmt.Errorf("middleware: upgrading the hash of %s: %w", key.Prefix(), err)
	}
	return hash, nil
}
