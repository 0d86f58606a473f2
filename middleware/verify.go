package middleware

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/middleware/problem"
)

// entry is a cache entry of the Validator: the Identity of a valid key.
type entry = keycache.Entry[*Identity]

// verifier loads and verifies the keys that are not cached: one shared
// verification per presented key, argon2 under a concurrency cap, failures
// throttled per key id and in all (but never for a key that verified in
// this process), key ids with recent failures confined to a share of the
// cap, outdated hashes upgraded in the background. A key checked before
// against the stored hash it is presented for needs no argon2: the key
// that verified against it is valid, any other key of its id is wrong
// (keycache.Verified).
type verifier struct {
	issuer     *Validator // names the Identities it makes
	store      apikey.Store
	hasher     apikey.Hasher
	now        func() time.Time
	ttl        time.Duration // of valid entries, without a change feed
	failureTTL time.Duration
	cache      *keycache.Cache[*Identity]
	verified   *keycache.Verified
	throttle   *throttle
	stats      *stats
	report     func(error)                 // Options.OnBackgroundError
	background func(func(context.Context)) // runs an upgrade until Close

	group singleflight.Group
	slots *slots // the argon2 concurrency cap
}

// maxVerifyRounds bounds the verifications one request starts because its
// key id was evicted (revoked, rotated, changed) while the previous one ran.
const maxVerifyRounds = 3

// outcome is what a shared verification hands every request that waits for
// it: the entry, and the cache's token when it started reading.
type outcome struct {
	e     *entry
	token uint64
}

// verify loads and verifies a key that is not cached, whose Key is k.
// Concurrent calls for the same presented key share one verification, but
// never one that began before the last eviction of the key id; a result
// read before an eviction that happened while it ran is thrown away and
// the key verified again. Every caller waits only as long as its own
// context allows; if the request running the shared verification gives up,
// the others start a new one.
func (vf *verifier) verify(ctx context.Context, key apikey.Key, k keycache.Key) (*entry, error) {
	id := key.ID()
	for round := 0; round < maxVerifyRounds; {
		flight := k.String() + strconv.FormatUint(vf.cache.Generation(id), 36)
		ch := vf.group.DoChan(flight, func() (any, error) { return vf.load(ctx, key, k) })
		select {
		case res := <-ch:
			if res.Err != nil {
				if errors.Is(res.Err, ErrBusy) && ctx.Err() == nil {
					continue // the leader's request ended; try again under ours
				}
				return nil, res.Err
			}
			out := res.Val.(outcome)
			if !vf.cache.Stale(id, out.token) {
				return out.e, nil
			}
			round++ // read before an eviction of its key id: verify again
		case <-ctx.Done():
			return nil, &problem.Refusal{Reason: ErrBusy, Cause: ctx.Err()}
		}
	}
	return nil, problem.Refuse(ErrBusy, "the key changed during every verification")
}

// load reads a key by id, verifies its hash and caches the outcome. Storage
// errors are returned, never cached. A panic is recovered here too, since
// singleflight would re-raise it in a goroutine of its own.
func (vf *verifier) load(ctx context.Context, key apikey.Key, k keycache.Key) (out outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			cause := fmt.Errorf("middleware: verifying %s panicked: %s", key.Prefix(), redactKeys(fmt.Sprint(p)))
			vf.report(cause)
			out, err = outcome{}, &problem.Refusal{Reason: ErrUnavailable, Detail: "checking the key failed", Cause: cause}
		}
	}()
	token := vf.cache.Token()
	now := vf.now()
	if e := vf.cache.Get(k, now); e != nil {
		return outcome{e, token}, nil // cached by a verification that ended after our lookup
	}
	id := key.ID()
	// A key that verified in this process bypasses the throttle: key ids
	// are public, so anyone may spend its id's budget.
	bypass := vf.verified.Contains(k)
	if !bypass {
		if ok, wait := vf.throttle.admits(id, now); !ok {
			vf.stats.throttled.Add(1)
			return outcome{}, &problem.Refusal{Reason: ErrThrottled, RetryAfter: wait}
		}
	}

	rec, err := vf.store.Key(ctx, id)
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		return outcome{vf.failure(k, id, token, now), token}, nil
	case ctx.Err() != nil:
		return outcome{}, &problem.Refusal{Reason: ErrBusy, Cause: ctx.Err()}
	case err != nil:
		if errors.Is(err, errPanicked) {
			vf.report(err)
		}
		return outcome{}, &problem.Refusal{Reason: ErrUnavailable, Detail: "loading the key failed", Cause: err}
	}
	if rec.ID != id || rec.Type != key.Type() {
		return outcome{vf.failure(k, id, token, now), token}, nil
	}
	hash := keycache.Fingerprint(rec.Hash.Reveal())
	match, outdated := false, false
	if vf.cache.Enabled() {
		// This exact key verified against this exact hash before.
		match, outdated = vf.verified.Matches(k, hash)
	}
	if !match && vf.cache.Enabled() && vf.verified.Refutes(k, hash) {
		// Another key of this id verified against this very hash, which
		// admits one key (apikey.Hasher): k is a wrong secret, refused
		// without argon2 and, like an unknown id, without a count in the
		// throttle.
		return outcome{vf.failure(k, id, token, now), token}, nil
	}
	if !match {
		// Only a key id with a stored record takes a count in the
		// throttle: unknown ids cannot push real ones out of it.
		var tk *ticket
		if !bypass {
			t, ok, wait := vf.throttle.acquire(id, now)
			if !ok {
				vf.stats.throttled.Add(1)
				return outcome{}, &problem.Refusal{Reason: ErrThrottled, RetryAfter: wait}
			}
			tk = &t
		}
		result := passed
		defer func() {
			if tk != nil {
				vf.throttle.release(*tk, result, vf.now())
			}
		}()
		suspect := tk != nil && tk.suspect
		if match, outdated, err = vf.verifyHash(ctx, key, rec.Hash.Reveal(), suspect); err != nil {
			return outcome{}, err
		}
		if !match {
			result = wrongSecret
			return outcome{vf.failure(k, id, token, now), token}, nil
		}
		vf.verified.Add(k, hash, outdated)
	}
	e := vf.newEntry(k, rec, now)
	vf.cache.AddValid(e, token)
	if outdated { // after AddValid, so that the upgrade's entry replaces e
		vf.upgrade(rec, key, k)
	}
	return outcome{e, token}, nil
}

// newEntry returns the entry of the key k that verified against rec, read
// at now.
func (vf *verifier) newEntry(k keycache.Key, rec apikey.Record, now time.Time) *entry {
	id := &Identity{
		issuer:      vf.issuer,
		presented:   k,
		KeyID:       rec.ID,
		Prefix:      rec.Prefix(),
		Type:        rec.Type,
		Account:     rec.Account,
		Environment: rec.Environment,
		Name:        rec.Name,
		Owner:       rec.Owner,
		Metadata:    maps.Clone(rec.Metadata),
		Scopes:      append([]string(nil), rec.Scopes...),
		ExpiresAt:   rec.ExpiresAt,
		Expiring:    !rec.RotatedAt.IsZero(),
	}
	if !rec.ExpiresAt.IsZero() {
		id.expiresHeader = rec.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return &entry{Key: k, KeyID: rec.ID, Value: id, RevokedAt: rec.RevokedAt, Revision: rec.Revision, Until: now.Add(vf.ttl)}
}

// failure caches and returns the entry of an unknown key or wrong secret.
func (vf *verifier) failure(k keycache.Key, id string, token uint64, now time.Time) *entry {
	e := &entry{Key: k, KeyID: id, Fail: ErrInvalidKey, Until: now.Add(vf.failureTTL)}
	vf.cache.AddFailed(e, token)
	return e
}

// verifyHash runs the argon2 check under the concurrency cap (slots: the
// newest waiter first), giving up when ctx ends; a suspect verification (see throttle) first takes a slot of the
// suspect lane, so that it never holds more of the cap than that lane's
// share. A stored hash that cannot be checked is a server fault: the
// request fails closed with ErrUnavailable.
func (vf *verifier) verifyHash(ctx context.Context, key apikey.Key, hash string, suspect bool) (match, outdated bool, err error) {
	s := vf.stats
	s.hashesWaiting.Add(1)
	if suspect {
		select {
		case vf.throttle.suspectSlots <- struct{}{}:
			defer func() { <-vf.throttle.suspectSlots }()
		case <-ctx.Done():
			s.hashesWaiting.Add(-1)
			return false, false, &problem.Refusal{Reason: ErrBusy, Cause: ctx.Err()}
		}
	}
	err = vf.slots.acquire(ctx)
	s.hashesWaiting.Add(-1)
	if err != nil {
		return false, false, &problem.Refusal{Reason: ErrBusy, Cause: err}
	}
	s.hashesRunning.Add(1)
	start := time.Now()
	defer func() {
		s.hashNanos.Add(int64(time.Since(start)))
		s.hashes.Add(1)
		s.hashesRunning.Add(-1)
		vf.slots.release()
	}()
	match, outdated, err = vf.hasher.Verify([]byte(key.Reveal()), hash)
	if err != nil {
		if errors.Is(err, errPanicked) {
			vf.report(err)
		}
		return false, false, &problem.Refusal{Reason: ErrUnavailable, Detail: "the stored hash of " + key.Prefix() + " cannot be checked", Cause: err}
	}
	return match, outdated, nil
}

// upgrade stores, in the background, a fresh hash of a key that verified
// against a hash weaker than the hasher's parameters (apikey.UpgradeHash:
// only when weaker, and only if the record is still at the revision read;
// otherwise a later verification tries again). The key is remembered as
// verified against its new hash, so that its next verification needs no
// argon2.
func (vf *verifier) upgrade(rec apikey.Record, key apikey.Key, k keycache.Key) {
	vf.background(func(ctx context.Context) {
		if vf.slots.acquire(ctx) != nil { // the hash runs under the argon2 cap
			return // closing: a later verification upgrades it
		}
		token := vf.cache.Token()
		upgraded, stored, err := apikey.UpgradeHash(ctx, vf.store, vf.hasher, rec, key)
		vf.slots.release()
		switch {
		case err != nil && ctx.Err() == nil:
			vf.report(fmt.Errorf("middleware: %w", err))
		case stored:
			vf.verified.Add(k, keycache.Fingerprint(upgraded.Hash.Reveal()), false)
			vf.cache.AddValid(vf.newEntry(k, upgraded, vf.now()), token)
		}
	})
}
