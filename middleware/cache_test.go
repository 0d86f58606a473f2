package middleware_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/memory"
)

func TestExpiryWhileCached(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.CacheTTL = time.Hour })
	expires := f.clock.Now().Add(10 * time.Minute)
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: expires})
	h := f.v.Handler(okHandler)
	steps := []struct {
		at     time.Time
		status int
	}{
		{f.clock.Now(), 200},
		{expires.Add(-time.Second), 200},
		{expires.Add(-time.Nanosecond), 200},
		{expires, 401},
		{expires.Add(time.Second), 401},
	}
	for _, s := range steps {
		t.Run(s.at.Format(time.RFC3339Nano), func(t *testing.T) {
			f.clock.Advance(s.at.Sub(f.clock.Now()))
			w := serve(h, request(key.Reveal()))
			require.Equal(t, s.status, w.Code)
			if s.status == 401 {
				assert.Equal(t, "expired_key", decodeProblem(t, w).Code)
			}
		})
	}
	assert.EqualValues(t, 1, f.verifies(), "served from the cache throughout")
}

// TestCacheKeepsKeysInUse fills a cache of two keys: the key that a
// request used last stays when a third key comes in, even though it
// verified first. Hits read the LRU without reordering it, so this needs
// the promotion of a key at its first hit in each last-used period.
func TestCacheKeepsKeysInUse(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.CacheSize = 2; o.LastUsedInterval = 10 * time.Millisecond })
	h := f.v.Handler(okHandler)
	first, second := f.keys["production/server"], f.keys["staging/server"]
	third := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	for _, k := range []apikey.Key{first, second} {
		require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
		f.clock.Advance(time.Second)
	}
	require.Eventually(t, func() bool { // the last-used period of these uses ended
		rec, err := f.store.Key(context.Background(), second.ID())
		require.NoError(t, err)
		return !rec.LastUsedAt.IsZero()
	}, time.Second, 5*time.Millisecond)
	require.Equal(t, http.StatusOK, serve(h, request(first.Reveal())).Code) // a hit: first is the most recent now
	require.Equal(t, http.StatusOK, serve(h, request(third.Reveal())).Code) // pushes the least recent out
	misses := f.v.Stats().CacheMisses
	require.Equal(t, http.StatusOK, serve(h, request(first.Reveal())).Code)
	assert.Equal(t, misses, f.v.Stats().CacheMisses, "the key in use was pushed out of the cache")
	require.Equal(t, http.StatusOK, serve(h, request(second.Reveal())).Code)
	assert.Equal(t, misses+1, f.v.Stats().CacheMisses, "the idle key stayed in the cache")
}

// TestGrace: a key in its grace period works, adds HeaderKeyExpires, and
// reaches OnAuthenticated with Identity.Expiring; at its expiry it stops.
func TestGrace(t *testing.T) {
	var graced []middleware.Identity
	var mu sync.Mutex
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(_ context.Context, _ middleware.Attempt, id middleware.Identity) {
			mu.Lock()
			defer mu.Unlock()
			if id.Expiring {
				graced = append(graced, id)
			}
		}
	})
	old := f.keys["production/server"]
	h := f.v.Handler(okHandler)
	w := serve(h, request(old.Reveal()))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, w.Header().Get(middleware.HeaderKeyExpires), "an active key has no expiry header")

	is, err := f.manager.Rotate(context.Background(), owner, apikey.RotateRequest{KeyID: old.ID(), Grace: time.Hour})
	require.NoError(t, err)
	end := f.clock.Now().Add(time.Hour)

	w = serve(h, request(old.Reveal()))
	require.Equal(t, http.StatusOK, w.Code, "the old key works during its grace period")
	assert.Equal(t, end.Format(time.RFC3339), w.Header().Get(middleware.HeaderKeyExpires))
	require.Len(t, graced, 1)
	assert.True(t, graced[0].Expiring)
	assert.Equal(t, old.Prefix(), graced[0].Prefix)

	w = serve(h, request(is.Key.Reveal()))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, w.Header().Get(middleware.HeaderKeyExpires))

	f.clock.Advance(time.Hour)
	w = serve(h, request(old.Reveal()))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "expired_key", decodeProblem(t, w).Code)
}

// TestChangeWhileCachedViaInvalidate: a change made through the Manager
// that tells this Validator (Invalidate) reaches a cached key's next
// request, with no help from the change feed.
func TestChangeWhileCachedViaInvalidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(m *apikey.Manager, id string) error
		status int
		code   string
	}{
		{"revoked", func(m *apikey.Manager, id string) error {
			_, err := m.Revoke(context.Background(), owner, id)
			return err
		}, http.StatusUnauthorized, "revoked_key"},
		{"disabled", func(m *apikey.Manager, id string) error {
			_, err := m.Disable(context.Background(), owner, id)
			return err
		}, http.StatusUnauthorized, "key_disabled"},
		{"rescoped", func(m *apikey.Manager, id string) error {
			_, err := m.SetScopes(context.Background(), owner, id, []string{"orders:read"})
			return err
		}, http.StatusForbidden, "insufficient_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour }) // the feed must not help
			key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:write"}, ExpiresAt: f.clock.Now().Add(time.Hour)})
			h := f.v.Require(middleware.Policy{Scope: "orders:write"})(okHandler)
			require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
			require.NoError(t, tt.change(f.manager, key.ID()))
			w := serve(h, request(key.Reveal()))
			require.Equal(t, tt.status, w.Code)
			assert.Equal(t, tt.code, decodeProblem(t, w).Code)
		})
	}
}

func TestFailuresAreCachedBriefly(t *testing.T) {
	f := newFixture(t, nil)
	wrong := forge(apikey.Server, f.keys["production/server"].ID(), 'w')
	h := f.v.Handler(okHandler)
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, serve(h, request(wrong)).Code)
	}
	assert.EqualValues(t, 1, f.verifies())
	f.clock.Advance(middleware.DefaultFailureTTL)
	require.Equal(t, http.StatusUnauthorized, serve(h, request(wrong)).Code)
	assert.EqualValues(t, 2, f.verifies())
}

func TestCacheDisabled(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.CacheSize = -1 })
	h := f.v.Handler(okHandler)
	for range 3 {
		require.Equal(t, http.StatusOK, serve(h, request(f.keys["production/server"].Reveal())).Code)
	}
	assert.EqualValues(t, 3, f.verifies())
}

// TestStoreDownServesCachedUntilTTL checks that cached keys keep working
// during an outage (store and change feed down) until CacheTTL after the
// last successful read, and nothing is served past it.
func TestStoreDownServesCachedUntilTTL(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.CacheTTL = time.Minute })
	h := f.v.Handler(okHandler)
	key := f.keys["production/server"].Reveal()
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	f.down()
	f.clock.Advance(47 * time.Second)
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	f.clock.Advance(13 * time.Second)
	require.Equal(t, http.StatusServiceUnavailable, serve(h, request(key)).Code)
}

// TestRequestClockExpires: with the system clock (Options.Now nil), whose
// time requests read as of its latest tick, a key is refused as expired
// once its expiry has passed.
func TestRequestClockExpires(t *testing.T) {
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	_, err = m.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	expires := time.Now().Add(300 * time.Millisecond)
	issued, err := m.Create(context.Background(), owner, apikey.CreateRequest{Environment: apikey.Production,
		Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: expires})
	require.NoError(t, err)
	v, err := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	h := v.Handler(okHandler)

	require.Equal(t, http.StatusOK, serve(h, request(issued.Key.Reveal())).Code, "before its expiry")
	require.Eventually(t, func() bool {
		refused := problemCode(serve(h, request(issued.Key.Reveal())).Body.Bytes()) == "expired_key"
		if refused {
			assert.False(t, time.Now().Before(expires), "refused before its expiry")
		}
		return refused
	}, 5*time.Second, 5*time.Millisecond)
}

// TestRequestClockEndsKeysNow: a key that a change ends now (a rotation
// with ExpireNow) is refused right after the call returns, with the
// system clock (Options.Now nil), whose time requests read as of its
// latest reading.
func TestRequestClockEndsKeysNow(t *testing.T) {
	store := memory.New()
	hasher := apikey.Argon2id{Params: apikey.TestParams}
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: hasher, OnEvent: v.Invalidate})
	require.NoError(t, err)
	_, err = m.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	h := v.Handler(okHandler)
	for i := range 20 {
		issued, err := m.Create(context.Background(), owner, apikey.CreateRequest{Environment: apikey.Production,
			Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, serve(h, request(issued.Key.Reveal())).Code)
		_, err = m.Rotate(context.Background(), owner, apikey.RotateRequest{KeyID: issued.View.ID, ExpireNow: true})
		require.NoError(t, err)
		assert.Equal(t, "expired_key", problemCode(serve(h, request(issued.Key.Reveal())).Body.Bytes()), "round %d", i)
	}
}
