package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
)

// TestWrongSecretsAreThrottled: wrong secrets for one key id cost at most
// ThrottleFailures verifications per window; then 429 without hashing, and
// a cached valid key keeps working.
func TestWrongSecretsAreThrottled(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) {
		o.ThrottleFailures = 3
		o.ThrottleWindow = time.Minute
	})
	real := f.keys["production/server"]
	attacked := f.keys["staging/server"] // never verified: its wrong secrets run argon2
	h := f.v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code) // cached now
	for i := range 10 {
		w := serve(h, request(forge(apikey.Server, attacked.ID(), "abcdefghij"[i])))
		if i < 3 {
			require.Equal(t, http.StatusUnauthorized, w.Code)
			continue
		}
		require.Equal(t, http.StatusTooManyRequests, w.Code)
		assert.Equal(t, "too_many_failures", decodeProblem(t, w).Code)
		assert.Equal(t, "60", w.Header().Get("Retry-After"))
	}
	assert.EqualValues(t, 4, f.verifies(), "the valid key and three wrong secrets")
	require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code, "a cached valid key is not throttled")

	f.clock.Advance(time.Minute)
	require.Equal(t, http.StatusUnauthorized, serve(h, request(forge(apikey.Server, attacked.ID(), 'q'))).Code, "a new window")
}

// TestThrottleNotFlushedByRealKeys: a tenant that holds more real keys than
// the cache (extra keys have no limit, publishable keys are public) cannot
// push the victim's key out of the set of verified keys, and then spend the
// victim's public key id budget to get it refused.
func TestThrottleNotFlushedByRealKeys(t *testing.T) {
	const size = 4
	f := newFixture(t, func(o *middleware.Options) {
		o.CacheSize = size
		o.ThrottleWindow = time.Hour
	})
	h := f.v.Require(anyType)(okHandler)
	victim := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(h, request(victim.Reveal())).Code)

	// The attacker's own account/environment: staging here.
	for range size + 1 {
		k := f.create(apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
		require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
	}
	for i := range middleware.DefaultThrottleFailures + 1 {
		serve(h, request(forge(apikey.Server, victim.ID(), byte('a'+i))))
	}
	w := serve(h, request(victim.Reveal()))
	assert.Equal(t, http.StatusOK, w.Code, "verified key refused: %s", w.Body.String())
}

// TestThrottleNeverLocksOutVerifiedKey: key ids are public, so anyone can
// spend an id's failure budget. Flushing the throttle's table with junk key
// ids and then spending the real key id's budget must not get the real
// key, which verified in this process, refused once its cache entry
// expires, in this window or any later one. Each window the key's stored
// hash is replaced by a new hash of the same key (as another process's
// upgrade does), so that the key that verified refutes no wrong secret
// and the budget is spent with argon2; the real key then verifies once
// against the new hash. A key that never verified here waits for the
// window (the documented residual risk).
func TestThrottleNeverLocksOutVerifiedKey(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) {
		o.CacheTTL = 10 * time.Second
		o.ThrottleWindow = time.Minute
		o.FeedInterval = time.Hour // entries expire CacheTTL after their read
	})
	h := f.v.Require(anyType)(okHandler)
	real := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code)
	verifies := f.verifies()

	// 10,001 well-formed junk ids (checksums are public): more than any
	// table of ids the throttle could keep.
	for i := range 10_001 {
		junk := forge(apikey.Server, fmt.Sprintf("junk%08d", i), 'j')
		require.Equal(t, http.StatusUnauthorized, serve(h, request(junk)).Code)
	}
	for window := range 3 {
		f.rehash(real)
		for i := range middleware.DefaultThrottleFailures + 2 {
			wrong, err := apikey.AssembleKey(apikey.Server, real.ID(), fmt.Sprintf("%043d", 100*window+i))
			require.NoError(t, err)
			code := serve(h, request(wrong.Reveal())).Code
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, code)
		}
		assert.Equal(t, http.StatusTooManyRequests, serve(h, request(forge(apikey.Server, real.ID(), 'z'))).Code,
			"window %d: the budget is spent", window)
		verifies += middleware.DefaultThrottleFailures
		f.clock.Advance(11 * time.Second) // the real key's cache entry expired
		assert.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code, "window %d", window)
		verifies++ // against the new hash
		assert.Equal(t, verifies, f.verifies(), "window %d", window)
		f.clock.Advance(time.Minute)
	}

	staging := f.keys["staging/client"] // never verified by this validator
	for i := range middleware.DefaultThrottleFailures {
		serve(h, request(forge(apikey.Client, staging.ID(), byte('a'+i))))
	}
	assert.Equal(t, http.StatusTooManyRequests, serve(h, request(staging.Reveal())).Code, "documented: a first verification waits for the window")
	f.clock.Advance(time.Minute)
	assert.Equal(t, http.StatusOK, serve(h, request(staging.Reveal())).Code)
}

// newServerKey creates an extra server key in production with every scope.
func (f *fixture) newServerKey() apikey.Key {
	return f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
}

// TestSuspectLaneLeavesSlotsForNewKeys: wrong secrets for key ids that
// failed recently (suspect ids) hold at most half of the argon2 slots, so
// that with every suspect slot held and more suspect verifications
// waiting, a key never seen before gets a slot and verifies, and a key
// that verified earlier is served without a hash.
func TestSuspectLaneLeavesSlotsForNewKeys(t *testing.T) {
	hasher := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	f := newFixture(t, func(o *middleware.Options) {
		o.Hasher = hasher
		o.MaxConcurrentHashes = 2 // one slot for the suspect lane
		o.FeedInterval = time.Hour
	})
	h := f.v.Require(anyType)(okHandler)
	verified := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(h, request(verified.Reveal())).Code)
	attacked := []apikey.Key{f.newServerKey(), f.newServerKey()}
	for _, k := range attacked { // one failure each: suspect from now on
		require.Equal(t, http.StatusUnauthorized, serve(h, request(forge(apikey.Server, k.ID(), 'a'))).Code)
	}

	held := map[string]bool{}
	for _, k := range attacked {
		held[forge(apikey.Server, k.ID(), 'b')] = true
	}
	entered, release := make(chan struct{}, len(held)), make(chan struct{})
	hasher.Before(func(_ context.Context, c *faultstore.Call) error {
		if held[string(c.Secret)] {
			entered <- struct{}{}
			<-release
		}
		return nil
	}, faultstore.OpVerify)
	var wg sync.WaitGroup
	codes := make(chan int, len(held))
	for key := range held { // as many as there are slots
		wg.Go(func() { codes <- serve(h, request(key)).Code })
	}
	// One runs (held by the hook), the other waits for the suspect slot.
	running := func() int { return len(entered) + int(f.v.Stats().HashesWaiting) }
	require.Eventually(t, func() bool { return running() == len(held) }, 10*time.Second, time.Millisecond)
	assert.Len(t, entered, 1, "suspect verifications running at once")

	// The deadline only keeps a failing run from hanging: a key that found
	// no slot would wait for it and get 503.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fresh := f.newServerKey()
	w := serve(h, request(fresh.Reveal()).WithContext(ctx))
	assert.Equal(t, http.StatusOK, w.Code, "a key never seen before: %s", w.Body.String())

	calls := hasher.Calls(faultstore.OpVerify)
	f.v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, KeyID: verified.ID()})
	assert.Equal(t, http.StatusOK, serve(h, request(verified.Reveal())).Code, "a verified key")
	assert.Equal(t, calls, hasher.Calls(faultstore.OpVerify), "a verified key needs no argon2")

	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		assert.Equal(t, http.StatusUnauthorized, c)
	}
}

// TestGlobalFailureBudget: once the failed verifications of all key ids
// reach 10 x ThrottleFailures x MaxConcurrentHashes in a window, a key id
// that failed recently is refused with 429 without a hash, though its own
// budget is not spent; a key never seen before still verifies, a key that
// verified is still served, and the next window renews the budget.
func TestGlobalFailureBudget(t *testing.T) {
	const perID, slots = 2, 1
	const global = 10 * perID * slots
	hasher := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	f := newFixture(t, func(o *middleware.Options) {
		o.Hasher = hasher
		o.ThrottleFailures = perID
		o.MaxConcurrentHashes = slots
		o.ThrottleWindow = time.Minute
		o.FeedInterval = time.Hour
	})
	h := f.v.Require(anyType)(okHandler)
	verified := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(h, request(verified.Reveal())).Code)
	victim := f.newServerKey()
	var ids []apikey.Key
	for range global / perID {
		ids = append(ids, f.newServerKey())
	}
	verifies := func() int64 { return hasher.Calls(faultstore.OpVerify) }
	wrong := func(k apikey.Key, c byte) *http.Request { return request(forge(apikey.Server, k.ID(), c)) }

	require.Equal(t, http.StatusUnauthorized, serve(h, wrong(victim, 'a')).Code) // 1 of its 2
	before := verifies()
	for _, k := range ids {
		for c := range byte(perID) {
			serve(h, wrong(k, 'a'+c))
		}
	}
	assert.Equal(t, before+global-1, verifies(), "failures up to the global budget are verified")

	calls := verifies()
	for c := range byte(5) {
		w := serve(h, wrong(victim, 'b'+c))
		require.Equal(t, http.StatusTooManyRequests, w.Code, "a suspect key id beyond the global budget")
		assert.Equal(t, "too_many_failures", decodeProblem(t, w).Code)
		assert.Equal(t, "60", w.Header().Get("Retry-After"))
	}
	assert.Equal(t, calls, verifies(), "refused without a hash")

	// The verified key's id, attacked too: its wrong secrets are refuted
	// by the key that verified against its hash, without a hash; the key
	// itself is served without a hash.
	assert.Equal(t, http.StatusUnauthorized, serve(h, wrong(verified, 'a')).Code)
	assert.Equal(t, http.StatusUnauthorized, serve(h, wrong(verified, 'b')).Code)
	assert.Equal(t, calls, verifies())
	f.v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, KeyID: verified.ID()})
	calls = verifies()
	assert.Equal(t, http.StatusOK, serve(h, request(verified.Reveal())).Code, "a verified key is never refused")
	assert.Equal(t, calls, verifies())

	fresh := f.newServerKey()
	assert.Equal(t, http.StatusOK, serve(h, request(fresh.Reveal())).Code, "a key never seen before")

	f.clock.Advance(time.Minute)
	calls = verifies()
	assert.Equal(t, http.StatusUnauthorized, serve(h, wrong(victim, 'z')).Code, "a new window")
	assert.Equal(t, calls+1, verifies())
}

// TestSuspectOutlivesItsWindow: a key id stays suspect for 10 throttle
// windows after its last wrong secret, so that a flood that pauses gets no
// new first run for it: once the global budget is spent again, it is
// refused without a hash.
func TestSuspectOutlivesItsWindow(t *testing.T) {
	const global = 10 // 10 x ThrottleFailures x MaxConcurrentHashes
	hasher := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	f := newFixture(t, func(o *middleware.Options) {
		o.Hasher = hasher
		o.ThrottleFailures = 1
		o.MaxConcurrentHashes = 1
		o.ThrottleWindow = time.Minute
		o.FeedInterval = time.Hour
	})
	h := f.v.Require(anyType)(okHandler)
	wrong := func(k apikey.Key, c byte) *http.Request { return request(forge(apikey.Server, k.ID(), c)) }
	paused := f.newServerKey()
	require.Equal(t, http.StatusUnauthorized, serve(h, wrong(paused, 'a')).Code)

	f.clock.Advance(9 * time.Minute) // nine windows later
	for range global {               // a first failure each spends the budget
		require.Equal(t, http.StatusUnauthorized, serve(h, wrong(f.newServerKey(), 'a')).Code)
	}
	calls := hasher.Calls(faultstore.OpVerify)
	assert.Equal(t, http.StatusTooManyRequests, serve(h, wrong(paused, 'b')).Code, "still suspect")
	assert.Equal(t, calls, hasher.Calls(faultstore.OpVerify), "refused without a hash")
}

// TestThrottleNotFlushedByUnknownIDs: unknown key ids take no count in the
// throttle, so that 10,001 of them (each one store read, no argon2) cannot
// push out the count of a key id under attack and give it a new budget:
// within one window, rounds of wrong secrets for the victim's id, each
// followed by a flush of unknown ids, cost at most ThrottleFailures argon2
// runs.
func TestThrottleNotFlushedByUnknownIDs(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) {
		o.ThrottleWindow = time.Hour
		o.FeedInterval = time.Hour
	})
	h := f.v.Require(anyType)(okHandler)
	victim := f.newServerKey() // never verified by this validator
	sent := 0
	for round := range 3 {
		for range middleware.DefaultThrottleFailures + 5 {
			wrong, err := apikey.AssembleKey(apikey.Server, victim.ID(), fmt.Sprintf("%043d", sent))
			require.NoError(t, err)
			sent++
			code := serve(h, request(wrong.Reveal())).Code
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, code)
		}
		for i := range 10_001 {
			junk := forge(apikey.Server, fmt.Sprintf("r%djunk%06d", round, i), 'j')
			require.Equal(t, http.StatusUnauthorized, serve(h, request(junk)).Code)
		}
	}
	assert.LessOrEqual(t, f.verifies(), int64(middleware.DefaultThrottleFailures),
		"argon2 runs for the victim's id in one window")

	f.clock.Advance(time.Hour)
	assert.Equal(t, http.StatusOK, serve(h, request(victim.Reveal())).Code, "the next window")
}

// rehash stores a new hash of key (a new salt), as a validator with other
// parameters upgrading it would, and tells the Validator.
func (f *fixture) rehash(key apikey.Key) {
	f.t.Helper()
	ctx := context.Background()
	rec, err := f.store.Key(ctx, key.ID())
	require.NoError(f.t, err)
	hash, err := apikey.Argon2id{Params: apikey.TestParams}.Hash([]byte(key.Reveal()))
	require.NoError(f.t, err)
	rec.Hash = apikey.NewOpaque(hash)
	require.NoError(f.t, f.store.Apply(ctx, apikey.Change{Update: []apikey.Record{rec}}))
	f.v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, KeyID: key.ID()})
}
