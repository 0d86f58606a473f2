package middleware_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
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
	h := f.v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code) // cached now
	for i := range 10 {
		w := serve(h, request(forge(apikey.Server, real.ID(), "abcdefghij"[i])))
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
	require.Equal(t, http.StatusUnauthorized, serve(h, request(forge(apikey.Server, real.ID(), 'q'))).Code, "a new window")
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
// expires, in this window or any later one, nor cost it a second argon2
// run. A key that never verified here waits for the window (the
// documented residual risk).
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
		for i := range middleware.DefaultThrottleFailures + 2 {
			wrong := forge(apikey.Server, real.ID(), byte('a'+i))
			code := serve(h, request(wrong)).Code
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, code)
		}
		assert.Equal(t, http.StatusTooManyRequests, serve(h, request(forge(apikey.Server, real.ID(), 'z'))).Code,
			"window %d: the budget is spent", window)
		verifies += middleware.DefaultThrottleFailures
		f.clock.Advance(11 * time.Second) // the real key's cache entry expired
		assert.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code, "window %d", window)
		assert.Equal(t, verifies, f.verifies(), "window %d: read again, no second argon2 run", window)
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
