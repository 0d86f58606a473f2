package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/memory"
)

// TestFeedUpdatesEntriesInPlace: another process changes a key that this
// Validator has cached; once the change feed has been read, the key's next
// requests are answered from the updated entry, with no Key read and no
// argon2: a revoked, expired or rescoped key is refused from memory, and a
// new owner is in the identity at once.
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
			store := &readCountingStore{Store: f.store.Store}
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
			reads, hashes := store.reads.Load(), f.hasher.verifies.Load()

			// Another process (a Manager that does not tell this Validator).
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
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
			assert.Equal(t, reads, store.reads.Load(), "Key reads: answered from the updated entry")
			assert.Equal(t, hashes, f.hasher.verifies.Load(), "argon2 runs")
		})
	}
}

// hookFeedStore runs afterRead once, right after the inner store answered
// Changes (its records are read) and before the Validator applies them.
type hookFeedStore struct {
	*memory.Store
	afterRead atomic.Pointer[func()]
}

func (s *hookFeedStore) Changes(ctx context.Context, since int64, limit int) ([]storage.Changed, int64, error) {
	out, next, err := s.Store.Changes(ctx, since, limit)
	if h := s.afterRead.Swap(nil); h != nil {
		(*h)()
	}
	return out, next, err
}

// TestFeedNeverAppliesAnOlderRecord: another process revokes a key after
// this Validator's feed read the key's record and before the page is
// applied; a request in that window loads the revoked record and is
// refused. Applying the page must not make the key valid again.
func TestFeedNeverAppliesAnOlderRecord(t *testing.T) {
	f := newFixture(t, nil)
	store := &hookFeedStore{Store: f.store.Store}
	wake := make(chan struct{}, 1)
	other, err := middleware.New(middleware.Options{Store: store, Hasher: f.hasher, Now: f.clock.Now,
		FeedInterval: time.Hour, FeedWake: wake})
	require.NoError(t, err)
	defer other.Close()
	h := other.Handler(okHandler)
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
	require.NoError(t, err)
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	_, err = m.SetOwner(context.Background(), owner, key.ID(), "user_1")
	require.NoError(t, err)
	pageRev, err := f.store.Revision(context.Background())
	require.NoError(t, err)

	var inWindow int
	hook := func() {
		_, err := m.Revoke(context.Background(), owner, key.ID())
		require.NoError(t, err)
		inWindow = serve(h, request(key.Reveal())).Code
	}
	store.afterRead.Store(&hook)
	wake <- struct{}{}
	require.Eventually(t, func() bool { return other.Stats().FeedRevision >= pageRev }, 5*time.Second, time.Millisecond)
	require.Equal(t, http.StatusUnauthorized, inWindow, "refused once the revocation was read")
	require.Equal(t, http.StatusUnauthorized, serve(h, request(key.Reveal())).Code,
		"a key this process has seen revoked is served again from the feed page's older record")
}

// gatedKeyStore's first Key call reads the record, then waits for gate.
type gatedKeyStore struct {
	*memory.Store
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
	reads   atomic.Int64
}

func (s *gatedKeyStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	s.reads.Add(1)
	rec, err := s.Store.Key(ctx, id)
	s.once.Do(func() { close(s.entered); <-s.gate })
	return rec, err
}

// TestFeedRevocationEndsVerificationsWithoutCache: caching off. A verification
// that read the key before another process revoked it is still running when
// the feed reports the revocation; a request that arrives after that must
// not receive its result.
func TestFeedRevocationEndsVerificationsWithoutCache(t *testing.T) {
	f := newFixture(t, nil)
	store := &gatedKeyStore{Store: f.store.Store, entered: make(chan struct{}), gate: make(chan struct{})}
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
	<-store.entered

	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
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
	close(store.gate)
	require.Equal(t, http.StatusUnauthorized, <-codeB,
		"B arrived after the feed reported the revocation (Key reads: %d)", store.reads.Load())
}

// TestCachedKeysStayFreshWhileTheFeedIsRead: with a change feed, cached
// keys are served past CacheTTL while the feed is read, with no store read;
// without a feed, each key is read again once per CacheTTL, with no argon2.
func TestCachedKeysStayFreshWhileTheFeedIsRead(t *testing.T) {
	const ttl = time.Minute
	for _, feed := range []bool{true, false} {
		t.Run(fmt.Sprintf("feed=%v", feed), func(t *testing.T) {
			f := newFixture(t, nil)
			counting := &readCountingStore{Store: f.store.Store}
			var store apikey.Store = counting
			if !feed {
				store = noFeedStore{counting}
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
				before := counting.reads.Load()
				for _, k := range keys {
					require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
				}
				return counting.reads.Load() - before
			}
			require.EqualValues(t, len(keys), reread(), "first requests")
			verifies := f.hasher.verifies.Load()
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
			assert.Equal(t, verifies, f.hasher.verifies.Load(), "argon2 ran again")
		})
	}
}
