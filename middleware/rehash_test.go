package middleware_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/memory"
)

// rewriteStore is a memory store that counts, per key id, the stored
// updates that change a key's hash.
type rewriteStore struct {
	*memory.Store
	mu       sync.Mutex
	rewrites map[string]int
	attempts atomic.Int64 // finished Apply calls that tried to change a hash
}

func (s *rewriteStore) Apply(ctx context.Context, c apikey.Change) error {
	var changed []string
	for _, r := range c.Update {
		if old, err := s.Store.Key(ctx, r.ID); err == nil && !old.Hash.Equal(r.Hash) {
			changed = append(changed, r.ID)
		}
	}
	err := s.Store.Apply(ctx, c)
	if len(changed) > 0 {
		s.mu.Lock()
		if err == nil {
			for _, id := range changed {
				s.rewrites[id]++
			}
		}
		s.mu.Unlock()
		s.attempts.Add(1)
	}
	return err
}

func (s *rewriteStore) rewritesOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rewrites[id]
}

// outdatedHasher counts the verifications that report a hash outdated: each
// one starts one background upgrade.
type outdatedHasher struct {
	apikey.Argon2id
	outdated *atomic.Int64
}

func (h outdatedHasher) Verify(secret []byte, encoded string) (bool, bool, error) {
	match, outdated, err := h.Argon2id.Verify(secret, encoded)
	if match && outdated {
		h.outdated.Add(1)
	}
	return match, outdated, err
}

// TestNoRehashPingPong runs two validators with different argon2 parameters
// on one store, as in the middle of a rollout of new parameters, and sends
// every key to each of them in turn with the cache off. A hash is rewritten
// only towards stronger parameters: once per key when the keys were hashed
// with the weaker of two dominated parameter sets, never when they were
// hashed with the stronger one or the two sets are incomparable.
func TestNoRehashPingPong(t *testing.T) {
	weak := apikey.TestParams
	strong := apikey.TestParams
	strong.Memory, strong.Iterations = 16, 2
	moreMemory := apikey.TestParams
	moreMemory.Memory = 16
	morePasses := apikey.TestParams
	morePasses.Iterations = 2
	tests := []struct {
		name         string
		manager      apikey.Params // hashes the keys at creation
		first, other apikey.Params // the two validators, first served first
		rewrites     int           // per key
	}{
		{"weak keys, weak validator first", weak, weak, strong, 1},
		{"weak keys, strong validator first", weak, strong, weak, 1},
		{"strong keys", strong, weak, strong, 0},
		{"incomparable", moreMemory, moreMemory, morePasses, 0},
		{"incomparable, other validator first", moreMemory, morePasses, moreMemory, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store := &rewriteStore{Store: memory.New(), rewrites: map[string]int{}}
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: tt.manager}})
			require.NoError(t, err)
			issued, err := m.Bootstrap(ctx, owner, apikey.Production)
			require.NoError(t, err)
			var outdated atomic.Int64
			var handlers []http.Handler
			for _, p := range []apikey.Params{tt.first, tt.other} {
				v, err := middleware.New(middleware.Options{
					Store:     store,
					Hasher:    outdatedHasher{Argon2id: apikey.Argon2id{Params: p}, outdated: &outdated},
					CacheSize: -1,
				})
				require.NoError(t, err)
				t.Cleanup(func() { _ = v.Close() })
				handlers = append(handlers, v.Require(anyType)(okHandler))
			}
			for _, is := range issued {
				key := is.Key.Reveal()
				for i := range 20 {
					w := serve(handlers[i%2], request(key))
					require.Equal(t, http.StatusOK, w.Code, w.Body.String())
					// Every outdated report starts one background upgrade:
					// wait for it before the next request.
					require.Eventually(t, func() bool { return store.attempts.Load() == outdated.Load() },
						5*time.Second, time.Millisecond, "request %d", i)
				}
				assert.Equal(t, tt.rewrites, store.rewritesOf(is.Key.ID()), "hash rewrites of %s", is.Key)
			}
		})
	}
}
