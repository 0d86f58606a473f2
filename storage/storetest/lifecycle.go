package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// managers returns one Manager per store, built on the test goroutine
// (require may not be called from the goroutines that use them).
func managers(t *testing.T, stores []apikey.Store) []*apikey.Manager {
	out := make([]*apikey.Manager, len(stores))
	for i, s := range stores {
		out[i] = manager(t, s)
	}
	return out
}

func manager(t *testing.T, s apikey.Store) *apikey.Manager {
	t.Helper()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	return m
}

// testLifecycle walks the rules of DESIGN.md through a Manager on the store.
func testLifecycle(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m := manager(t, s)
	issued, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	require.Len(t, issued, 2)
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	assert.ErrorIs(t, err, apikey.ErrAlreadyBootstrapped)

	old := issued[0]
	_, err = m.Revoke(ctx, owner, old.View.ID)
	assert.ErrorIs(t, err, apikey.ErrDefaultKeyNotRevocable)

	fresh, err := m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	rotated, err := m.Get(ctx, owner, old.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Expiring, rotated.Status)
	assert.False(t, rotated.Default)
	assert.True(t, fresh.View.Default)

	_, err = m.Revoke(ctx, owner, fresh.View.ID)
	assert.ErrorIs(t, err, apikey.ErrDefaultKeyNotRevocable, "the new default must be rotated first")
	view, err := m.Revoke(ctx, owner, old.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Revoked, view.Status)

	keys, err := s.Keys(ctx, apikey.Production)
	require.NoError(t, err)
	assert.Len(t, keys, 3, "nothing lost: two defaults and the revoked key")
	assertOneActiveDefault(t, s, apikey.Production)
}

func testConcurrentBootstrap(t *testing.T, c Config) {
	s := c.New(t)
	stores := c.peers(t, s, 3)
	ms := managers(t, stores)
	var wins, already atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ms[i%len(ms)].Bootstrap(context.Background(), owner, apikey.Staging)
			switch {
			case err == nil:
				wins.Add(1)
			case assert.ErrorIs(t, err, apikey.ErrAlreadyBootstrapped):
				already.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load(), "exactly one bootstrap wins")
	assert.Equal(t, int32(9), already.Load())
	keys, err := s.Keys(context.Background(), apikey.Staging)
	require.NoError(t, err)
	assert.Len(t, keys, 2)
	assertOneActiveDefault(t, s, apikey.Staging)
}

// testConcurrentRotateRevoke runs 50 goroutines, spread over peers, that
// rotate an environment's default keys and revoke what they rotated out.
// Afterwards each type has exactly one active default key, every key a
// successful call returned is stored, and every revocation stuck.
func testConcurrentRotateRevoke(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	stores := c.peers(t, s, 3)
	ms := managers(t, stores)
	_, err := manager(t, s).Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)

	var (
		mu      sync.Mutex
		issued  []string // ids of keys returned by successful rotations
		revoked []string
		wg      sync.WaitGroup
	)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := ms[i%len(ms)]
			typ := []apikey.KeyType{apikey.Server, apikey.Client}[i%2]
			if i%5 == 4 { // every fifth goroutine tries to revoke the defaults it sees
				keys, err := stores[i%len(stores)].Keys(ctx, apikey.Production)
				if !assert.NoError(t, err) {
					return
				}
				for _, k := range keys {
					if !k.Default {
						continue
					}
					_, err := m.Revoke(ctx, owner, k.ID)
					switch {
					case err == nil: // rotated out meanwhile: revocable now
						mu.Lock()
						revoked = append(revoked, k.ID)
						mu.Unlock()
					case !errors.Is(err, apikey.ErrAlreadyRevoked):
						assert.ErrorIs(t, err, apikey.ErrDefaultKeyNotRevocable)
					}
				}
				return
			}
			got, err := m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: typ, Grace: time.Hour})
			if !assert.NoError(t, err, "rotating the default key is retried until it wins") {
				return
			}
			mu.Lock()
			issued = append(issued, got.View.ID)
			mu.Unlock()
			// Revoke some key that was rotated out, racing other revokers.
			keys, err := stores[i%len(stores)].Keys(ctx, apikey.Production)
			if !assert.NoError(t, err) {
				return
			}
			for _, k := range keys {
				if k.Type == typ && !k.RotatedAt.IsZero() {
					_, err := m.Revoke(ctx, owner, k.ID)
					if err == nil {
						mu.Lock()
						revoked = append(revoked, k.ID)
						mu.Unlock()
						break
					}
					assert.ErrorIs(t, err, apikey.ErrAlreadyRevoked)
				}
			}
		}()
	}
	wg.Wait()

	keys, err := s.Keys(ctx, apikey.Production)
	require.NoError(t, err)
	assert.Len(t, keys, 2+len(issued), "every rotation added exactly one key")
	byID := map[string]apikey.Record{}
	for _, k := range keys {
		byID[k.ID] = k
	}
	for _, id := range issued {
		assert.Contains(t, byID, id, "an issued key was lost")
	}
	seen := map[string]bool{}
	for _, id := range revoked {
		assert.False(t, seen[id], "a key was revoked twice")
		seen[id] = true
		assert.False(t, byID[id].RevokedAt.IsZero(), "a revocation was lost")
	}
	for _, k := range keys {
		if !k.Default {
			assert.False(t, k.RotatedAt.IsZero(), "every non-default key here was rotated out")
			assert.False(t, k.ExpiresAt.IsZero(), "rotated keys have an expiry")
		}
	}
	assertOneActiveDefault(t, s, apikey.Production)
}

func testConcurrentSettings(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	stores := c.peers(t, s, 3)
	ms := managers(t, stores)
	_, err := manager(t, s).Bootstrap(ctx, owner, apikey.Development)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var wins atomic.Int32
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			origins := []string{fmt.Sprintf("http://localhost:%d", 3000+i)}
			_, err := ms[i%len(ms)].SetAllowedOrigins(ctx, owner, apikey.Development, origins)
			if assert.NoError(t, err) {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(20), wins.Load())
	got, err := s.Settings(ctx, apikey.Development)
	require.NoError(t, err)
	assert.Len(t, got.AllowedOrigins, 1, "one writer's list, whole")
}

func assertOneActiveDefault(t *testing.T, s apikey.Store, env string) {
	t.Helper()
	keys, err := s.Keys(context.Background(), env)
	require.NoError(t, err)
	for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
		n := 0
		for _, k := range keys {
			if k.Default && k.Type == typ {
				n++
				assert.Equal(t, apikey.Active, k.Status(time.Now()), "the default key is active")
				assert.True(t, k.ExpiresAt.IsZero(), "the default key has no expiry")
			}
		}
		assert.Equal(t, 1, n, "exactly one default %s key in %s", typ, env)
	}
}
