package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// TestThrottleDoesNotLockOutAVerifiedKey: key ids are public, so anyone can
// spend an id's failure budget. A key that verified in this process before
// is still let through when its cache entry expires; a key that never
// verified here waits for the window (the documented residual risk).
func TestThrottleDoesNotLockOutAVerifiedKey(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) {
		o.ThrottleFailures = 3
		o.CacheTTL = 10 * time.Second
	})
	h := f.v.Require(anyType)(okHandler)
	client := f.keys["production/client"] // its id is in every web page that uses it
	require.Equal(t, http.StatusOK, serve(h, request(client.Reveal())).Code)

	f.clock.Advance(11 * time.Second) // the cache entry expires
	for i := range 5 {
		serve(h, request(forge(apikey.Client, client.ID(), "abcde"[i])))
	}
	require.Equal(t, http.StatusTooManyRequests, serve(h, request(forge(apikey.Client, client.ID(), 'z'))).Code, "the budget is spent")
	before := f.hasher.verifies.Load()
	assert.Equal(t, http.StatusOK, serve(h, request(client.Reveal())).Code, "the real key is not locked out")
	assert.Equal(t, before, f.hasher.verifies.Load(), "its hash is unchanged: read again, no second argon2 run")

	staging := f.keys["staging/client"] // never verified by this validator
	for i := range 3 {
		serve(h, request(forge(apikey.Client, staging.ID(), "abc"[i])))
	}
	assert.Equal(t, http.StatusTooManyRequests, serve(h, request(staging.Reveal())).Code, "documented: a first verification waits for the window")
	f.clock.Advance(time.Minute)
	assert.Equal(t, http.StatusOK, serve(h, request(staging.Reveal())).Code)
}

// TestCheckReturnsACopy: editing the Identity that Check or a hook returns
// must not change what later requests are allowed.
func TestCheckReturnsACopy(t *testing.T) {
	var hooked middleware.Identity
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(_ context.Context, _ middleware.Attempt, id middleware.Identity) {
			hooked = id
		}
	})
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:read"}})
	id, err := f.v.Check(request(key.Reveal()), middleware.Policy{})
	require.NoError(t, err)
	id.Scopes[0] = apikey.AllScopes
	hooked.Scopes[0] = apikey.AllScopes
	_, err = f.v.Check(request(key.Reveal()), middleware.Policy{Scope: "billing:write"})
	assert.ErrorIs(t, err, middleware.ErrScope)
}

// evictingHasher evicts an unrelated key id during every verification, as
// a busy change feed does.
type evictingHasher struct {
	apikey.Argon2id
	v        func() *middleware.Validator
	verifies int
}

func (h *evictingHasher) Verify(secret []byte, encoded string) (bool, bool, error) {
	h.verifies++
	h.v().Invalidate(apikey.Event{Action: apikey.ActionRevoke, Environment: apikey.Staging, KeyID: "unrelated000"})
	return h.Argon2id.Verify(secret, encoded)
}

// TestOutcomesStayCachedWhileOtherKeysChange: evicting one key while
// another is being verified must not stop the other's outcome, valid or
// failed, from being cached.
func TestOutcomesStayCachedWhileOtherKeysChange(t *testing.T) {
	var v *middleware.Validator
	hasher := &evictingHasher{Argon2id: apikey.Argon2id{Params: apikey.TestParams}, v: func() *middleware.Validator { return v }}
	f := newFixture(t, func(o *middleware.Options) { o.Hasher = hasher })
	v = f.v
	h := f.v.Handler(okHandler)
	wrong := forge(apikey.Server, f.keys["production/server"].ID(), 'w')
	real := f.keys["staging/server"]
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, serve(h, request(wrong)).Code)
		require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code)
	}
	assert.Equal(t, 2, hasher.verifies, "one verification each, then cached")
}

// TestHooksSeeNoKeyInThePath: a key put in the URL or the Origin header by
// mistake reaches the hooks cut down to its prefix.
func TestHooksSeeNoKeyInThePath(t *testing.T) {
	var seen []middleware.Attempt
	f := newFixture(t, func(o *middleware.Options) {
		o.OnRejected = func(_ context.Context, a middleware.Attempt, _ error) { seen = append(seen, a) }
	})
	key := f.keys["production/server"].Reveal()
	r := httptest.NewRequest(http.MethodGet, "/v1/things/"+key+"?x=1", nil)
	r.Header.Set("Origin", "https://"+key+".example.com")
	serve(f.v.Handler(okHandler), r)
	require.Len(t, seen, 1)
	secret := key[20:]
	assert.NotContains(t, seen[0].Path, secret[:20])
	assert.NotContains(t, seen[0].Origin, secret[:20])
	assert.Contains(t, seen[0].Path, f.keys["production/server"].Prefix()+"_[redacted]")
}
