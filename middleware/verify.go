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
	"github.com/keystile/keystile/internal/callers"
	"github.com/keystile/keystile/internal/usage"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/middleware/limit"
	"github.com/keystile/keystile/middleware/problem"
)

// entry is a cache entry of the Validator: the Identity of a valid key.
type entry = keycache.Entry[*Identity]

// verifier loads and verifies the keys that are not cached, with argon2
// under the cap and the throttle unless keycache.Verified answers.
type verifier struct {
	issuer     *Validator // names the Identities it makes
	store      apikey.Store
	hasher     apikey.Hasher
	now        func() time.Time
	ttl        time.Duration // of valid entries, without a change feed
	instance   *instance     // bounds valid entries by its lease; nil without one
	failureTTL time.Duration
	cache      *keycache.Cache[*Identity]
	verified   *keycache.Verified
	throttle   *throttle
	stats      *stats
	report     func(error)                 // Options.OnBackgroundError
	background func(func(context.Context)) // runs an upgrade until Close
	group      singleflight.Group
	slots      *slots           // the argon2 concurrency cap
	usage      *usage.Tally     // hands each Identity its usage counter; nil if none
	buckets    *limit.Local     // hands each Identity with a rate limit its bucket; nil unless the Limiter is one
	callers    *callers.Tracker // hands each Identity of a key rotated out its recorder; nil if none
}

// presented is a key string that is not cached: a keystile key, or a
// string of a declared imported format, known by its SHA-256 digest.
type presented struct {
	key      apikey.Key // of a keystile key; zero for an imported one
	id       string     // the key id to load
	digest   [32]byte   // of an imported key
	imported bool
}

// name returns how errors name the key: its displayable prefix, or for an
// imported key its id.
func (p presented) name() string {
	if p.imported {
		return "imported key " + p.id
	}
	return p.key.Prefix()
}

// fits reports whether rec may be the record of p: a keystile key's of
// its type, or an imported key's. A keystile key never meets an imported
// record's digest, nor an imported key an argon2 hash.
func (p presented) fits(rec apikey.Record) bool {
	if rec.ID != p.id {
		return false
	}
	if p.imported {
		return rec.Imported()
	}
	return rec.Type == p.key.Type() && !rec.Imported()
}

// maxVerifyRounds bounds the verifications one request starts because its
// key id was evicted while the previous one ran.
const maxVerifyRounds = 3

// outcome is a shared verification's entry, the token it read after and
// what it did (also when it failed).
type outcome struct {
	e     *entry
	token uint64
	steps steps
}

// verify loads and verifies a key that is not cached, whose Key is k, in
// one verification shared by concurrent calls that began after the last
// eviction of the key id. Each caller waits only as long as its ctx allows.
// It adds what the verifications it used did to st.
func (vf *verifier) verify(ctx context.Context, key presented, k keycache.Key, st *steps) (*entry, error) {
	id := key.id
	for round := 0; round < maxVerifyRounds; {
		flight := k.String() + strconv.FormatUint(vf.cache.Generation(id), 36)
		ch := vf.group.DoChan(flight, func() (any, error) { return vf.load(ctx, key, k) })
		select {
		case res := <-ch:
			if o, ok := res.Val.(outcome); ok {
				o.steps.shared = res.Shared
				st.add(o.steps)
			}
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
			return nil, busy(ctx.Err())
		}
	}
	return nil, problem.Refuse(ErrBusy, "the key changed during every verification")
}

// load reads a key by id, verifies its hash and caches the outcome, but
// not a storage error. It recovers a panic (singleflight would re-raise it).
func (vf *verifier) load(ctx context.Context, key presented, k keycache.Key) (out outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			cause := fmt.Errorf("middleware: verifying %s %w: %s", key.name(), errPanicked, redactKeys(fmt.Sprint(p)))
			out, err = outcome{steps: out.steps}, vf.unavailable("checking the key failed", cause)
		}
	}()
	token := vf.cache.Token()
	now := vf.now()
	if e := vf.cache.Get(k, now); e != nil {
		return outcome{e: e, token: token}, nil // cached by a verification that ended after our lookup
	}
	id := key.id
	bypass := vf.verified.Contains(k) // verified here: key ids are public, anyone may spend their budget
	if !bypass {
		if _, ok, wait := vf.throttle.acquire(id, now, false); !ok {
			return outcome{}, vf.throttled(wait)
		}
	}
	out.steps.storeRead = true
	rec, err := vf.store.Key(ctx, id)
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		return vf.failure(k, id, token, now, out.steps), nil
	case ctx.Err() != nil:
		return out, busy(ctx.Err())
	case err != nil:
		return out, vf.unavailable("loading the key failed", err)
	}
	if !key.fits(rec) {
		return vf.failure(k, id, token, now, out.steps), nil
	}
	hash := keycache.Fingerprint(rec.Hash.Reveal())
	match, outdated, refuted := false, false, false
	if vf.cache.Enabled() {
		match, outdated, refuted = vf.verified.Lookup(k, hash)
	}
	if refuted { // a wrong secret: no argon2 and, like an unknown id, no throttle count
		return vf.failure(k, id, token, now, out.steps), nil
	}
	if !match {
		tk, ok, wait := ticket{}, true, time.Duration(0) // the zero ticket bypasses the throttle
		if !bypass {
			tk, ok, wait = vf.throttle.acquire(id, now, true)
		}
		if !ok {
			return out, vf.throttled(wait)
		}
		wrong := false
		defer func() { vf.throttle.release(tk, wrong, vf.now()) }()
		if key.imported { // a digest, compared in constant time: no argon2
			match = apikey.MatchImported(key.digest, rec.Hash.Reveal())
		} else {
			match, outdated, err = vf.verifyHash(ctx, key.key, rec.Hash.Reveal(), tk.suspect)
			out.steps.hashed = err == nil || !errors.Is(err, ErrBusy) // busy: it never got a slot
			if err != nil {
				return out, err
			}
		}
		if !match {
			wrong = true
			return vf.failure(k, id, token, now, out.steps), nil
		}
		vf.verified.Add(k, hash, outdated)
	}
	e := vf.newEntry(k, rec, now)
	vf.cache.AddValid(e, token)
	if outdated { // after AddValid, so that the upgrade's entry replaces e
		vf.upgrade(rec, key.key, k)
	}
	return outcome{e, token, out.steps}, nil
}

// newEntry returns the entry of key k that verified against rec at now.
func (vf *verifier) newEntry(k keycache.Key, rec apikey.Record, now time.Time) *entry {
	id := &Identity{
		issuer: vf.issuer, presented: k, KeyID: rec.ID, Prefix: rec.Prefix(), Type: sharedType(rec.Type),
		Account: rec.Account, Environment: rec.Environment, Name: rec.Name, Owner: rec.Owner,
		Metadata: maps.Clone(rec.Metadata), Scopes: append([]string(nil), rec.Scopes...),
		ExpiresAt: rec.ExpiresAt, Expiring: !rec.RotatedAt.IsZero(), Imported: rec.Imported(),
		Limits: rec.Limits.Clone(), limited: !rec.Limits.IsZero(),
		allowlisted: len(rec.Limits.AllowedIPs) > 0, expires: !rec.ExpiresAt.IsZero(),
		ended: !rec.RevokedAt.IsZero() || !rec.DisabledAt.IsZero(),
	}
	if rec.Owner != "" && !rec.OwnerLimits.IsZero() {
		id.OwnerLimits, id.limited = rec.OwnerLimits.Clone(), true
		id.ownerBudget = apikey.OwnerBalanceID(rec.Account, rec.Owner)
	}
	if vf.usage != nil {
		id.usage = vf.usage.Counter(rec.Account, rec.Environment, rec.ID)
	}
	if vf.buckets != nil && !rec.Limits.Rate.IsZero() {
		id.rateBucket = vf.buckets.Handle(rec.ID)
	}
	if id.Expiring && vf.callers != nil {
		id.callers, id.tracked = vf.callers.Key(rec.Account, rec.ID), true
	}
	if !rec.ExpiresAt.IsZero() {
		id.expiresHeader = rec.ExpiresAt.UTC().Format(time.RFC3339)
	}
	until := now.Add(vf.ttl)
	if left, ok := vf.instance.servingLeft(); ok && left < vf.ttl {
		until = now.Add(left) // never past the lease stored (see instance)
	}
	return &entry{Key: k, KeyID: rec.ID, Value: id, RevokedAt: rec.RevokedAt, DisabledAt: rec.DisabledAt,
		Revision: rec.Revision, Until: until}
}

// sharedType returns t, as the package constant when it is one: every
// cached request compares its key's type, and a constant's bytes stay in
// the CPU's caches where a string read from the store would not.
func sharedType(t apikey.KeyType) apikey.KeyType {
	switch t {
	case apikey.Server:
		return apikey.Server
	case apikey.Client:
		return apikey.Client
	}
	return t
}

// failure caches the entry of an unknown key or wrong secret, found
// after st.
func (vf *verifier) failure(k keycache.Key, id string, token uint64, now time.Time, st steps) outcome {
	e := &entry{Key: k, KeyID: id, Fail: ErrInvalidKey, Until: now.Add(vf.failureTTL)}
	vf.cache.AddFailed(e, token)
	return outcome{e, token, st}
}

// throttled counts and returns a refusal of the throttle.
func (vf *verifier) throttled(wait time.Duration) error {
	vf.stats.throttled.Add(1)
	return &problem.Refusal{Reason: ErrThrottled, RetryAfter: wait}
}

// unavailable returns the refusal of a check that failed with err.
func (vf *verifier) unavailable(detail string, err error) error {
	if errors.Is(err, errPanicked) {
		vf.report(err)
	}
	return &problem.Refusal{Reason: ErrUnavailable, Detail: detail, Cause: err}
}

// busy is the refusal of a request whose context ended with err.
func busy(err error) error { return &problem.Refusal{Reason: ErrBusy, Cause: err} }

// verifyHash runs the argon2 check under the concurrency cap (and the
// suspect lane's), giving up when ctx ends.
func (vf *verifier) verifyHash(ctx context.Context, key apikey.Key, hash string, suspect bool) (match, outdated bool, err error) {
	s := vf.stats
	s.hashesWaiting.Add(1)
	if suspect {
		select {
		case vf.throttle.suspectSlots <- struct{}{}:
			defer func() { <-vf.throttle.suspectSlots }()
		case <-ctx.Done():
			s.hashesWaiting.Add(-1)
			return false, false, busy(ctx.Err())
		}
	}
	err = vf.slots.acquire(ctx)
	s.hashesWaiting.Add(-1)
	if err != nil {
		return false, false, busy(err)
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
		return false, false, vf.unavailable("the stored hash of "+key.Prefix()+" cannot be checked", err)
	}
	return match, outdated, nil
}

// upgrade stores, in the background, a fresh hash of a key that verified
// against an outdated hash (apikey.UpgradeHash).
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
