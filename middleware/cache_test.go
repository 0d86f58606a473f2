package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
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
	assert.EqualValues(t, 1, f.hasher.verifies.Load(), "served from the cache throughout")
}

// TestCacheKeepsKeysInUse fills a cache of two keys: the key that a
// request used last stays when a third key comes in, even though it
// verified first. Hits read the LRU without reordering it, so this needs
// their once-a-second promotion.
func TestCacheKeepsKeysInUse(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.CacheSize = 2 })
	h := f.v.Handler(okHandler)
	first, second := f.keys["production/server"], f.keys["staging/server"]
	third := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	for _, k := range []apikey.Key{first, second} {
		require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
		f.clock.Advance(time.Second)
	}
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

func TestRevokedWhileCachedViaInvalidate(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour }) // the feed must not help
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	h := f.v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	_, err := f.manager.Revoke(context.Background(), owner, key.ID())
	require.NoError(t, err)
	w := serve(h, request(key.Reveal()))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "revoked_key", decodeProblem(t, w).Code)
}

func TestScopeChangeWhileCached(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour })
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:write"}})
	h := f.v.Require(middleware.Policy{Scope: "orders:write"})(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	_, err := f.manager.SetScopes(context.Background(), owner, key.ID(), []string{"orders:read"})
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, serve(h, request(key.Reveal())).Code)
}

// TestRevokedWhileCachedViaChangeFeed revokes a key through one process and
// checks that another process, which only follows the store's change feed,
// stops accepting it within the feed interval.
func TestRevokedWhileCachedViaChangeFeed(t *testing.T) {
	f := newFixture(t, nil)
	other, err := middleware.New(middleware.Options{Store: f.store.Store, Hasher: f.hasher, Now: f.clock.Now, FeedInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	defer other.Close()
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	h := other.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)

	_, err = f.manager.Revoke(context.Background(), owner, key.ID())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return serve(h, request(key.Reveal())).Code == http.StatusUnauthorized
	}, time.Second, 5*time.Millisecond)
}

// gapStore reports a change-feed gap on demand.
type gapStore struct {
	*readCountingStore
	mu  sync.Mutex
	gap bool
}

func (s *gapStore) Changes(ctx context.Context, since int64, limit int) ([]storageChanged, int64, error) {
	s.mu.Lock()
	gap := s.gap
	s.gap = false
	s.mu.Unlock()
	if gap {
		rev, _ := s.Store.Revision(ctx)
		return nil, rev, storageErrFeedGap
	}
	return s.Store.Changes(ctx, since, limit)
}

func TestFeedGapPurgesTheCache(t *testing.T) {
	f := newFixture(t, nil)
	store := &gapStore{readCountingStore: &readCountingStore{Store: f.store.Store}}
	hasher := newCountingHasher()
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher, Now: f.clock.Now, FeedInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)
	key := f.keys["production/server"].Reveal()
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	require.EqualValues(t, 1, hasher.verifies.Load())
	require.EqualValues(t, 1, store.reads.Load())

	store.mu.Lock()
	store.gap = true
	store.mu.Unlock()
	require.Eventually(t, func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return !store.gap
	}, time.Second, time.Millisecond)
	time.Sleep(10 * time.Millisecond) // let the poll that saw the gap finish
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	assert.EqualValues(t, 2, store.reads.Load(), "the gap dropped the cached key: it was read again")
	assert.EqualValues(t, 1, hasher.verifies.Load(), "its hash is unchanged: no second argon2 run")
}

// TestConcurrentFirstRequests: 100 concurrent first requests with one new
// key cause exactly one argon2 verification.
func TestConcurrentFirstRequests(t *testing.T) {
	// No change feed: its entry for the new key would evict it once more.
	f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour })
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	h := f.v.Handler(okHandler)
	var wg sync.WaitGroup
	start := make(chan struct{})
	codes := make([]int, 100)
	for i := range codes {
		wg.Go(func() {
			<-start
			codes[i] = serve(h, request(key.Reveal())).Code
		})
	}
	close(start)
	wg.Wait()
	for _, c := range codes {
		require.Equal(t, http.StatusOK, c)
	}
	assert.EqualValues(t, 1, f.hasher.verifies.Load())
}

// TestJunkCausesNoHashing: 10,000 malformed or unknown keys cause no argon2
// verification.
func TestJunkCausesNoHashing(t *testing.T) {
	f := newFixture(t, nil)
	known := f.keys["production/server"].Reveal()
	for i := range 10_000 {
		var junk string
		switch i % 4 {
		case 0: // unknown, well-formed
			k, err := apikey.GenerateKey(apikey.Server)
			require.NoError(t, err)
			junk = k.Reveal()
		case 1: // bad checksum of a real key
			junk = known[:len(known)-2] + fmt.Sprintf("%02d", i%100)
			if junk == known {
				continue
			}
		case 2: // wrong length
			junk = known[:i%len(known)]
		case 3: // junk characters
			junk = "server-" + fmt.Sprintf("%062d", i)
		}
		_, err := f.v.Check(request(junk), middleware.Policy{})
		require.Error(t, err)
	}
	assert.Zero(t, f.hasher.verifies.Load())
}

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
	assert.EqualValues(t, 4, f.hasher.verifies.Load(), "the valid key and three wrong secrets")
	require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code, "a cached valid key is not throttled")

	f.clock.Advance(time.Minute)
	require.Equal(t, http.StatusUnauthorized, serve(h, request(forge(apikey.Server, real.ID(), 'q'))).Code, "a new window")
}

func TestFailuresAreCachedBriefly(t *testing.T) {
	f := newFixture(t, nil)
	wrong := forge(apikey.Server, f.keys["production/server"].ID(), 'w')
	h := f.v.Handler(okHandler)
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, serve(h, request(wrong)).Code)
	}
	assert.EqualValues(t, 1, f.hasher.verifies.Load())
	f.clock.Advance(middleware.DefaultFailureTTL)
	require.Equal(t, http.StatusUnauthorized, serve(h, request(wrong)).Code)
	assert.EqualValues(t, 2, f.hasher.verifies.Load())
}

func TestCacheDisabled(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.CacheSize = -1 })
	h := f.v.Handler(okHandler)
	for range 3 {
		require.Equal(t, http.StatusOK, serve(h, request(f.keys["production/server"].Reveal())).Code)
	}
	assert.EqualValues(t, 3, f.hasher.verifies.Load())
}

// blockingHasher holds every verification until release is closed.
type blockingHasher struct {
	apikey.Argon2id
	entered chan struct{}
	release chan struct{}
}

func (h *blockingHasher) Verify(secret []byte, encoded string) (bool, bool, error) {
	h.entered <- struct{}{}
	<-h.release
	return h.Argon2id.Verify(secret, encoded)
}

func TestWaitingForHashGivesUpWithContext(t *testing.T) {
	f := newFixture(t, nil)
	hasher := &blockingHasher{Argon2id: apikey.Argon2id{Params: apikey.TestParams}, entered: make(chan struct{}, 10), release: make(chan struct{})}
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: hasher, Now: f.clock.Now, MaxConcurrentHashes: 1})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)

	first := make(chan int)
	go func() { first <- serve(h, request(f.keys["production/server"].Reveal())).Code }()
	<-hasher.entered // the only slot is taken

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	w := serve(h, request(f.keys["staging/server"].Reveal()).WithContext(ctx))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "busy", decodeProblem(t, w).Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))

	close(hasher.release)
	require.Equal(t, http.StatusOK, <-first)
}

func TestOutdatedHashIsUpgraded(t *testing.T) {
	f := newFixture(t, nil)
	stronger := apikey.TestParams
	stronger.Iterations = 2
	hasher := &countingHasher{Argon2id: apikey.Argon2id{Params: stronger}}
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: hasher, Now: f.clock.Now})
	require.NoError(t, err)
	defer v.Close()
	key := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(v.Handler(okHandler), request(key.Reveal())).Code)
	require.Eventually(t, func() bool {
		rec, err := f.store.Key(context.Background(), key.ID())
		require.NoError(t, err)
		p, _, _, err := apikey.DecodePHC(rec.Hash.Reveal())
		require.NoError(t, err)
		return p.Iterations == 2
	}, time.Second, 5*time.Millisecond)
	match, outdated, err := hasher.Argon2id.Verify([]byte(key.Reveal()), mustHash(t, f, key.ID()))
	require.NoError(t, err)
	assert.True(t, match)
	assert.False(t, outdated)
}

// TestUpgradedHashNeedsNoArgon2: the validator that upgraded a hash made
// it from the key, so the key's next verification, against the new hash,
// runs no argon2.
func TestUpgradedHashNeedsNoArgon2(t *testing.T) {
	f := newFixture(t, nil)
	stronger := apikey.TestParams
	stronger.Iterations = 2
	hasher := &countingHasher{Argon2id: apikey.Argon2id{Params: stronger}}
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: hasher, Now: f.clock.Now})
	require.NoError(t, err)
	defer v.Close()
	key := f.keys["production/server"]
	before := mustHash(t, f, key.ID())
	require.Equal(t, http.StatusOK, serve(v.Handler(okHandler), request(key.Reveal())).Code)
	require.Eventually(t, func() bool { return mustHash(t, f, key.ID()) != before }, 5*time.Second, time.Millisecond)
	f.clock.Advance(middleware.DefaultCacheTTL) // loaded again, with the new hash
	require.Equal(t, http.StatusOK, serve(v.Handler(okHandler), request(key.Reveal())).Code)
	assert.EqualValues(t, 1, hasher.verifies.Load(), "argon2 ran for the upgraded hash")
}

func mustHash(t *testing.T, f *fixture, id string) string {
	rec, err := f.store.Key(context.Background(), id)
	require.NoError(t, err)
	return rec.Hash.Reveal()
}

func TestLastUsedWrittenOnClose(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.LastUsedInterval = time.Hour })
	key := f.keys["production/server"]
	h := f.v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	f.clock.Advance(5 * time.Second)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	rec, err := f.store.Key(context.Background(), key.ID())
	require.NoError(t, err)
	require.True(t, rec.LastUsedAt.IsZero(), "not written per request")

	require.NoError(t, f.v.Close())
	rec, err = f.store.Key(context.Background(), key.ID())
	require.NoError(t, err)
	assert.True(t, rec.LastUsedAt.Equal(f.clock.Now()), "got %s", rec.LastUsedAt)
}

func TestLastUsedWrittenPeriodically(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.LastUsedInterval = 10 * time.Millisecond })
	key := f.keys["staging/client"]
	require.Equal(t, http.StatusOK, serve(f.v.Require(anyType)(okHandler), request(key.Reveal())).Code)
	require.Eventually(t, func() bool {
		rec, err := f.store.Key(context.Background(), key.ID())
		require.NoError(t, err)
		return rec.LastUsedAt.Equal(f.clock.Now())
	}, time.Second, 5*time.Millisecond)
}

func TestCloseLeaksNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFixture(t, func(o *middleware.Options) {
		o.LastUsedInterval = time.Millisecond
	})
	feedless, err := middleware.New(middleware.Options{Store: noFeedStore{f.store}, Hasher: f.hasher, CacheTTL: time.Millisecond}) // reloads settings every CacheTTL
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, feedless.Close())
	stronger := apikey.TestParams
	stronger.Iterations = 2
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: apikey.Argon2id{Params: stronger}}) // upgrades hashes in the background
	require.NoError(t, err)
	for _, k := range f.keys {
		serve(f.v.Handler(okHandler), request(k.Reveal()))
		serve(v.Handler(okHandler), request(k.Reveal()))
	}
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, f.v.Close())
	require.NoError(t, v.Close())
	// Poll by hand: testify's Eventually runs its condition in a goroutine.
	for deadline := time.Now().Add(time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: before %d, after %d\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
