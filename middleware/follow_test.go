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
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// TestSettingsChangeReachesAnotherProcess shows what a settings change in
// one account costs another process that shares the store: it learns of
// it from the change feed and reads exactly that environment's settings,
// one Store.Settings call (one row) per changed environment, and never the
// list of environments.
func TestSettingsChangeReachesAnotherProcess(t *testing.T) {
	a := newAccounts(t)
	counted := faultstore.New(a.store)
	b := a.validator(counted.Exact(), false) // process B: no Invalidate
	h := b.Require(anyType)(okHandler)
	require.Equal(t, 4, b.Stats().Environments)
	settings, envs := counted.Calls(faultstore.OpSettings), counted.Calls(faultstore.OpEnvironments)
	require.Positive(t, envs, "B loaded every environment at start")

	ctx := context.Background()
	admitted := func(key, origin string) bool {
		return serve(h, request(a.keys[key].Reveal(), "Origin", origin)).Code == http.StatusOK
	}
	start := time.Now()
	_, err := a.m.SetAllowedOrigins(ctx, actorIn("acme"), apikey.Production, []string{"https://new.acme.example"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return admitted("acme/production/client", "https://new.acme.example") }, 2*time.Second, time.Millisecond)
	took := time.Since(start)
	assert.False(t, admitted("acme/production/client", "https://acme.example"), "the old origin is gone")
	assert.True(t, admitted("globex/production/client", "https://globex.example"), "the other account is untouched")
	assert.Equal(t, int64(1), counted.Calls(faultstore.OpSettings)-settings, "one Settings read for the changed environment")
	assert.Zero(t, counted.Calls(faultstore.OpEnvironments)-envs, "no full reload")

	// Two environments of two accounts change: two reads.
	settings = counted.Calls(faultstore.OpSettings)
	_, err = a.m.SetAllowedOrigins(ctx, actorIn("globex"), apikey.Staging, []string{"https://staging.globex.example"})
	require.NoError(t, err)
	_, err = a.m.SetAllowedOrigins(ctx, actorIn("acme"), apikey.Staging, []string{"https://staging.acme.example"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return admitted("globex/staging/client", "https://staging.globex.example") && admitted("acme/staging/client", "https://staging.acme.example")
	}, 2*time.Second, time.Millisecond)
	assert.Equal(t, int64(2), counted.Calls(faultstore.OpSettings)-settings, "one Settings read per changed environment")
	assert.Zero(t, counted.Calls(faultstore.OpEnvironments)-envs, "no full reload")
	t.Logf("a settings change reached process B in %s (feed interval 5ms): 1 Store.Settings read (one row) per changed environment, 0 Store.Environments calls", took.Round(time.Millisecond))
}

// TestSettingsReloads: with a change feed, no periodic full reload runs,
// even with a short CacheTTL; without a feed, settings are reloaded every
// CacheTTL, which is how changes made elsewhere arrive.
func TestSettingsReloads(t *testing.T) {
	a := newAccounts(t)
	counted := faultstore.New(a.store)
	withFeed, err := middleware.New(middleware.Options{Store: counted.Exact(), CacheTTL: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = withFeed.Close() })
	start := counted.Calls(faultstore.OpEnvironments)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, start, counted.Calls(faultstore.OpEnvironments), "no full reload with a feed")

	// A store without a change feed: only the periodic reload brings
	// another process's change.
	feedless := withoutFeed(a.store)
	v, err := middleware.New(middleware.Options{Store: feedless, Hasher: apikey.Argon2id{Params: apikey.TestParams}, CacheTTL: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	h := v.Require(anyType)(okHandler)
	_, err = a.m.SetAllowedOrigins(context.Background(), actorIn("globex"), apikey.Production, []string{"https://later.globex.example"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return serve(h, request(a.keys["globex/production/client"].Reveal(), "Origin", "https://later.globex.example")).Code == http.StatusOK
	}, 2*time.Second, time.Millisecond)
}

// TestRevokedWhileCachedViaChangeFeed revokes a key through one process and
// checks that another process, which only follows the store's change feed,
// stops accepting it: within the feed interval, or, with an interval of an
// hour, right after a signal on FeedWake makes it read the feed.
func TestRevokedWhileCachedViaChangeFeed(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		wake     bool
	}{
		{"polled", 10 * time.Millisecond, false},
		{"woken", time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			opts := middleware.Options{Store: f.store.Inner(), Hasher: f.hasher, Now: f.clock.Now, FeedInterval: tt.interval}
			wake := make(chan struct{}, 1)
			if tt.wake {
				opts.FeedWake = wake
			}
			other, err := middleware.New(opts)
			require.NoError(t, err)
			defer other.Close()
			key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Hour)})
			h := other.Handler(okHandler)
			require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
			require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code) // cached

			_, err = f.manager.Revoke(context.Background(), owner, key.ID()) // tells f.v, not other
			require.NoError(t, err)
			if tt.wake {
				require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code, "no poll for an hour: still cached")
				wake <- struct{}{}
			}
			require.Eventually(t, func() bool {
				return serve(h, request(key.Reveal())).Code == http.StatusUnauthorized
			}, 5*time.Second, time.Millisecond)
		})
	}
}

func TestFeedGapPurgesTheCache(t *testing.T) {
	f := newFixture(t, nil)
	store := faultstore.New(f.store.Inner())
	hasher := newHasher(apikey.TestParams)
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher, Now: f.clock.Now, FeedInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)
	key := f.keys["production/server"].Reveal()
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	require.EqualValues(t, 1, hasher.Calls(faultstore.OpVerify))
	require.EqualValues(t, 1, store.Calls(faultstore.OpKey))

	select {
	case <-store.Gap():
	case <-time.After(time.Second):
		t.Fatal("the feed was not read")
	}
	time.Sleep(10 * time.Millisecond) // let the poll that saw the gap finish
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	assert.EqualValues(t, 2, store.Calls(faultstore.OpKey), "the gap dropped the cached key: it was read again")
	assert.EqualValues(t, 1, hasher.Calls(faultstore.OpVerify), "its hash is unchanged: no second argon2 run")
}

func mustHash(t *testing.T, f *fixture, id string) string {
	rec, err := f.store.Key(context.Background(), id)
	require.NoError(t, err)
	return rec.Hash.Reveal()
}

func TestLastUsedWrittenOnClose(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.LastUsedInterval = middleware.MaxWriteDelay })
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
	feedless, err := middleware.New(middleware.Options{Store: withoutFeed(f.store), Hasher: f.hasher, CacheTTL: time.Millisecond}) // reloads settings every CacheTTL
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

// TestFeedUpdatesEntriesInPlace: another process changes a key that this
// Validator has cached; once the change feed has been read, the key's next
// requests are answered from the updated entry, with no Key read and no
// argon2: a revoked, disabled, expired or rescoped key is refused from
// memory, and a new owner or an enabled key is in the identity at once.
func TestFeedUpdatesEntriesInPlace(t *testing.T) {
	scoped := apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:write"}}
	tests := []struct {
		name   string
		create apikey.CreateRequest
		change func(t *testing.T, m *apikey.Manager, c *clock, key apikey.Key)
		status int
		code   string
		owner  string
	}{
		{
			name:   "revoked",
			create: scoped,
			change: func(t *testing.T, m *apikey.Manager, _ *clock, key apikey.Key) {
				_, err := m.Revoke(context.Background(), owner, key.ID())
				require.NoError(t, err)
			},
			status: http.StatusUnauthorized, code: "revoked_key",
		},
		{
			name:   "disabled",
			create: scoped,
			change: func(t *testing.T, m *apikey.Manager, _ *clock, key apikey.Key) {
				_, err := m.Disable(context.Background(), owner, key.ID())
				require.NoError(t, err)
			},
			status: http.StatusUnauthorized, code: "key_disabled",
		},
		{
			name:   "disabled and enabled again",
			create: scoped,
			change: func(t *testing.T, m *apikey.Manager, _ *clock, key apikey.Key) {
				_, err := m.Disable(context.Background(), owner, key.ID())
				require.NoError(t, err)
				_, err = m.Enable(context.Background(), owner, key.ID())
				require.NoError(t, err)
			},
			status: http.StatusOK,
		},
		{
			name:   "disabled in its grace, then expired",
			create: scoped,
			change: func(t *testing.T, m *apikey.Manager, c *clock, key apikey.Key) {
				_, err := m.Rotate(context.Background(), owner, apikey.RotateRequest{KeyID: key.ID(), Grace: time.Hour})
				require.NoError(t, err)
				_, err = m.Disable(context.Background(), owner, key.ID())
				require.NoError(t, err)
				c.Advance(time.Hour + time.Second)
			},
			status: http.StatusUnauthorized, code: "expired_key",
		},
		{
			name:   "rescoped",
			create: scoped,
			change: func(t *testing.T, m *apikey.Manager, _ *clock, key apikey.Key) {
				_, err := m.SetScopes(context.Background(), owner, key.ID(), []string{"orders:read"})
				require.NoError(t, err)
			},
			status: http.StatusForbidden, code: "insufficient_scope",
		},
		{
			name:   "expired after a rotation",
			create: scoped,
			change: func(t *testing.T, m *apikey.Manager, c *clock, key apikey.Key) {
				_, err := m.Rotate(context.Background(), owner, apikey.RotateRequest{KeyID: key.ID(), Grace: time.Hour})
				require.NoError(t, err)
				c.Advance(time.Hour + time.Second) // within the cache lifetime of the updated entry
			},
			status: http.StatusUnauthorized, code: "expired_key",
		},
		{
			name:   "new owner",
			create: scoped,
			change: func(t *testing.T, m *apikey.Manager, _ *clock, key apikey.Key) {
				_, err := m.SetOwner(context.Background(), owner, key.ID(), "user_42")
				require.NoError(t, err)
			},
			status: http.StatusOK, owner: "user_42",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			store := faultstore.New(f.store.Inner())
			wake := make(chan struct{}, 1)
			other, err := middleware.New(middleware.Options{Store: store, Hasher: f.hasher, Now: f.clock.Now,
				CacheTTL: 2 * time.Hour, FeedInterval: time.Hour, FeedWake: wake})
			require.NoError(t, err)
			defer other.Close()
			var seenOwner string
			h := other.Require(middleware.Policy{Scope: "orders:write"})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, _ := middleware.FromContext(r.Context())
				seenOwner = id.Owner
			}))
			key := f.create(tt.create)
			require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
			reads, hashes := store.Calls(faultstore.OpKey), f.verifies()

			// Another process (a Manager that does not tell this Validator).
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Inner(), Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
			require.NoError(t, err)
			tt.change(t, m, f.clock, key)
			rev, err := f.store.Revision(context.Background())
			require.NoError(t, err)
			wake <- struct{}{}
			require.Eventually(t, func() bool { return other.Stats().FeedRevision >= rev }, 5*time.Second, time.Millisecond)

			for range 3 {
				rec := serve(h, request(key.Reveal()))
				require.Equal(t, tt.status, rec.Code)
				if tt.code != "" {
					assert.Equal(t, tt.code, problemCode(rec.Body.Bytes()))
				}
			}
			assert.Equal(t, tt.owner, seenOwner)
			assert.Equal(t, reads, store.Calls(faultstore.OpKey), "Key reads: answered from the updated entry")
			assert.Equal(t, hashes, f.verifies(), "argon2 runs")
		})
	}
}

// TestFeedNeverAppliesAnOlderRecord: another process revokes a key after
// this Validator's feed read the key's record and before the page is
// applied; a request in that window loads the revoked record and is
// refused. Applying the page must not make the key valid again.
func TestFeedNeverAppliesAnOlderRecord(t *testing.T) {
	f := newFixture(t, nil)
	store := faultstore.New(f.store.Inner())
	wake := make(chan struct{}, 1)
	other, err := middleware.New(middleware.Options{Store: store, Hasher: f.hasher, Now: f.clock.Now,
		FeedInterval: time.Hour, FeedWake: wake})
	require.NoError(t, err)
	defer other.Close()
	h := other.Handler(okHandler)
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Inner(), Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
	require.NoError(t, err)
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	_, err = m.SetOwner(context.Background(), owner, key.ID(), "user_1")
	require.NoError(t, err)
	pageRev, err := f.store.Revision(context.Background())
	require.NoError(t, err)

	// Once, right after the store answered Changes (its records are read)
	// and before the Validator applies them.
	var inWindow int
	var once sync.Once
	store.After(func(context.Context, *faultstore.Call) {
		once.Do(func() {
			_, err := m.Revoke(context.Background(), owner, key.ID())
			require.NoError(t, err)
			inWindow = serve(h, request(key.Reveal())).Code
		})
	}, faultstore.OpChanges)
	wake <- struct{}{}
	require.Eventually(t, func() bool { return other.Stats().FeedRevision >= pageRev }, 5*time.Second, time.Millisecond)
	require.Equal(t, http.StatusUnauthorized, inWindow, "refused once the revocation was read")
	require.Equal(t, http.StatusUnauthorized, serve(h, request(key.Reveal())).Code,
		"a key this process has seen revoked is served again from the feed page's older record")
}

// TestFeedRevocationEndsVerificationsWithoutCache: caching off. A verification
// that read the key before another process revoked it is still running when
// the feed reports the revocation; a request that arrives after that must
// not receive its result.
func TestFeedRevocationEndsVerificationsWithoutCache(t *testing.T) {
	f := newFixture(t, nil)
	// The first Key call reads the record, then waits for gate.
	store := faultstore.New(f.store.Inner())
	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	store.After(func(context.Context, *faultstore.Call) { once.Do(func() { close(entered); <-gate }) }, faultstore.OpKey)
	wake := make(chan struct{}, 1)
	other, err := middleware.New(middleware.Options{Store: store, Hasher: f.hasher, Now: f.clock.Now,
		CacheSize: -1, FeedInterval: time.Hour, FeedWake: wake})
	require.NoError(t, err)
	defer other.Close()
	h := other.Handler(okHandler)
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	rev0, _ := f.store.Revision(context.Background())
	wake <- struct{}{}
	require.Eventually(t, func() bool { return other.Stats().FeedRevision >= rev0 }, 5*time.Second, time.Millisecond)

	go serve(h, request(key.Reveal())) // A: reads the record, then waits
	<-entered

	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Inner(), Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
	require.NoError(t, err)
	_, err = m.Revoke(context.Background(), owner, key.ID())
	require.NoError(t, err)
	rev, _ := f.store.Revision(context.Background())
	wake <- struct{}{}
	require.Eventually(t, func() bool { return other.Stats().FeedRevision >= rev }, 5*time.Second, time.Millisecond)

	// B arrives after this process learned of the revocation.
	codeB := make(chan int, 1)
	go func() { codeB <- serve(h, request(key.Reveal())).Code }()
	time.Sleep(100 * time.Millisecond) // let B join A's verification, or start its own
	close(gate)
	require.Equal(t, http.StatusUnauthorized, <-codeB,
		"B arrived after the feed reported the revocation (Key reads: %d)", store.Calls(faultstore.OpKey))
}

// TestCachedKeysStayFreshWhileTheFeedIsRead: with a change feed, cached
// keys are served past CacheTTL while the feed is read, with no store read;
// without a feed, each key is read again once per CacheTTL, with no argon2.
func TestCachedKeysStayFreshWhileTheFeedIsRead(t *testing.T) {
	const ttl = time.Minute
	for _, feed := range []bool{true, false} {
		t.Run(fmt.Sprintf("feed=%v", feed), func(t *testing.T) {
			f := newFixture(t, nil)
			counting := faultstore.New(f.store.Inner())
			store := counting.Exact()
			if !feed {
				store = withoutFeed(counting)
			}
			keys := make([]apikey.Key, 10)
			for i := range keys {
				keys[i] = f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
			}
			v, err := middleware.New(middleware.Options{Store: store, Hasher: f.hasher, Now: f.clock.Now, CacheTTL: ttl, FeedInterval: 5 * time.Millisecond})
			require.NoError(t, err)
			defer v.Close()
			h := v.Handler(okHandler)
			reread := func() int64 { // requests every key, returns the Key reads it took
				before := counting.Calls(faultstore.OpKey)
				for _, k := range keys {
					require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
				}
				return counting.Calls(faultstore.OpKey) - before
			}
			require.EqualValues(t, len(keys), reread(), "first requests")
			verifies := f.verifies()
			f.clock.Advance(ttl - time.Second)
			assert.Zero(t, reread(), "entries are served for CacheTTL")
			f.clock.Advance(2 * time.Second)
			if feed {
				require.Eventually(t, func() bool { return v.Stats().FeedLag == 0 }, 5*time.Second, time.Millisecond)
				assert.Zero(t, reread(), "entries are served past CacheTTL while the feed is read")
			} else {
				assert.EqualValues(t, len(keys), reread(), "entries are read again after CacheTTL")
				assert.Zero(t, reread(), "once")
			}
			assert.Equal(t, verifies, f.verifies(), "argon2 ran again")
		})
	}
}

// TestFailedSettingsLoadsBackOff: while the store cannot load the settings,
// the follower retries the queued load at most once per retry delay (and at
// each feed poll), never in a loop.
func TestFailedSettingsLoadsBackOff(t *testing.T) {
	fs := faultstore.New(memory.New())
	fs.Down(faultstore.OpEnvironments)
	v, err := middleware.New(middleware.Options{Store: fs, FeedInterval: time.Hour})
	require.NoError(t, err)
	defer v.Close()
	time.Sleep(600 * time.Millisecond)
	calls := fs.Calls(faultstore.OpEnvironments)
	assert.Positive(t, calls-1, "the load is retried")
	assert.LessOrEqual(t, calls, int64(5), "retries of a failed load")
}
