package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
)

// resolve returns the cache entry of a parsed key: from the validation
// cache, or by loading and verifying the key.
func (v *Validator) resolve(ctx context.Context, key apikey.Key, now time.Time) (*entry, error) {
	k := v.mac.sum(key.Reveal())
	if e := v.cache.get(k, now); e != nil {
		return e, nil
	}
	return v.verify(ctx, key, k)
}

// verify loads and verifies a key that is not cached. Concurrent calls for
// the same presented key share one verification. Every caller waits only as
// long as its own context allows; if the request running the shared
// verification gives up, the others start a new one.
func (v *Validator) verify(ctx context.Context, key apikey.Key, k cacheKey) (*entry, error) {
	for {
		ch := v.group.DoChan(string(k[:]), func() (any, error) { return v.load(ctx, key, k) })
		select {
		case res := <-ch:
			if res.Err == nil {
				return res.Val.(*entry), nil
			}
			if errors.Is(res.Err, ErrBusy) && ctx.Err() == nil {
				continue // the leader's request ended; try again under ours
			}
			return nil, res.Err
		case <-ctx.Done():
			return nil, &refusal{reason: ErrBusy, cause: ctx.Err()}
		}
	}
}

// load reads a key by id, verifies its hash and caches the outcome. Storage
// errors are returned, never cached.
func (v *Validator) load(ctx context.Context, key apikey.Key, k cacheKey) (*entry, error) {
	token := v.cache.startToken()
	now := v.cfg.Now()
	if e := v.cache.get(k, now); e != nil {
		return e, nil // cached by a verification that ended after our lookup
	}
	id := key.ID()
	ok, wait := v.throttle.acquire(id, k, now)
	if !ok {
		return nil, &refusal{reason: ErrThrottled, retryAfter: wait}
	}
	failed, verified := false, false
	defer func() { v.throttle.release(id, k, failed, verified) }()

	rec, err := v.cfg.Store.Key(ctx, id)
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		failed = true
		return v.failure(k, id, token, now), nil
	case ctx.Err() != nil:
		return nil, &refusal{reason: ErrBusy, cause: ctx.Err()}
	case err != nil:
		return nil, &refusal{reason: ErrUnavailable, detail: "loading the key failed", cause: err}
	}
	if rec.ID != id || rec.Type != key.Type() {
		failed = true
		return v.failure(k, id, token, now), nil
	}
	match, outdated, err := v.verifyHash(ctx, key, rec.Hash)
	if err != nil {
		return nil, err
	}
	if !match {
		failed = true
		return v.failure(k, id, token, now), nil
	}
	if outdated {
		v.upgradeHash(rec, key)
	}
	verified = true
	e := newValidEntry(rec, now.Add(v.cfg.CacheTTL))
	v.cache.addValid(k, e, token)
	return e, nil
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
	select {
	case v.sem <- struct{}{}:
	case <-ctx.Done():
		return false, false, &refusal{reason: ErrBusy, cause: ctx.Err()}
	}
	defer func() { <-v.sem }()
	match, outdated, err = v.cfg.Hasher.Verify([]byte(key.Reveal()), hash)
	if err != nil {
		return false, false, &refusal{reason: ErrUnavailable, detail: "the stored hash of " + key.Prefix() + " cannot be checked", cause: err}
	}
	return match, outdated, nil
}

// upgradeHash re-hashes a key verified against a hash with outdated
// parameters and stores the new hash, in the background. A concurrent
// change of the key (ErrConflict) wins: the upgrade is dropped and happens
// at a later verification.
func (v *Validator) upgradeHash(rec apikey.Record, key apikey.Key) {
	v.background(func(ctx context.Context) {
		select {
		case v.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		hash, err := v.cfg.Hasher.Hash([]byte(key.Reveal()))
		<-v.sem
		if ctx.Err() != nil {
			return // closing: the upgrade happens at a later verification
		}
		if err != nil {
			v.cfg.OnBackgroundError(fmt.Errorf("middleware: upgrading the hash of %s: %w", rec.Prefix(), err))
			return
		}
		rec.Hash = hash
		err = v.cfg.Store.Apply(ctx, apikey.Change{Update: []apikey.Record{rec}})
		if err != nil && !errors.Is(err, apikey.ErrConflict) && ctx.Err() == nil {
			v.cfg.OnBackgroundError(fmt.Errorf("middleware: storing the upgraded hash of %s: %w", rec.Prefix(), err))
		}
	})
}
