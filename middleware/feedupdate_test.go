package middleware_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/memory"
)

// readCountingStore counts Key reads.
type readCountingStore struct {
	*memory.Store
	reads atomic.Int64
}

func (s *readCountingStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	s.reads.Add(1)
	return s.Store.Key(ctx, id)
}

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
