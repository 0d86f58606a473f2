package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// testLifecycle walks the rules of DESIGN.md through a Manager on the store.
func testLifecycle(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m := manager(t, s)
	issued, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	require.Len(t, issued, 2)
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	assert.ErrorIs(t, err, apikey.ErrAlreadyBootstrapped)
	for _, is := range issued {
		assert.Equal(t, apikey.DefaultAccount, is.View.Account, "an actor with no account acts in the default account")
	}

	old := issued[0]
	assert.Equal(t, old.View.ID, mustDefault(t, s, apikey.DefaultAccount, apikey.Production, apikey.Server).ID)
	_, err = m.Revoke(ctx, owner, old.View.ID)
	assert.ErrorIs(t, err, apikey.ErrDefaultKeyNotRevocable)

	fresh, err := m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	rotated, err := m.Get(ctx, owner, old.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Expiring, rotated.Status)
	assert.False(t, rotated.Default)
	assert.True(t, fresh.View.Default)
	assert.Equal(t, fresh.View.ID, mustDefault(t, s, apikey.DefaultAccount, apikey.Production, apikey.Server).ID,
		"the default moves to the new key")

	_, err = m.Revoke(ctx, owner, fresh.View.ID)
	assert.ErrorIs(t, err, apikey.ErrDefaultKeyNotRevocable, "the new default must be rotated first")
	view, err := m.Revoke(ctx, owner, old.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Revoked, view.Status)

	// Rotating the default by environment and type finds it by index.
	again, err := m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, ExpireNow: true})
	require.NoError(t, err)
	assert.Equal(t, again.View.ID, mustDefault(t, s, apikey.DefaultAccount, apikey.Production, apikey.Server).ID)

	list, err := m.List(ctx, owner, apikey.Production, apikey.Page{Limit: 3})
	require.NoError(t, err)
	require.Len(t, list.Keys, 3)
	require.NotEmpty(t, list.Next)
	rest, err := m.List(ctx, owner, apikey.Production, apikey.Page{After: list.Next, Limit: 3})
	require.NoError(t, err)
	require.Len(t, rest.Keys, 1)
	assert.Empty(t, rest.Next)

	keys := allKeys(t, s, apikey.DefaultAccount, apikey.Production)
	assert.Len(t, keys, 4, "nothing lost: two defaults, the revoked key, the key rotated out")
	var listed []string
	for _, v := range append(list.Keys, rest.Keys...) {
		listed = append(listed, v.ID)
	}
	assert.Equal(t, ids(keys), listed, "the Manager's pages are the store's")
	assertOneActiveDefault(t, s, apikey.DefaultAccount, apikey.Production)
}

// testConcurrentBootstrap races ten bootstraps of one environment in each
// of two accounts: one wins per account.
func testConcurrentBootstrap(t *testing.T, c Config) {
	s := c.New(t)
	stores := c.peers(t, s, 3)
	ms := managers(t, stores)
	var wins, already [2]atomic.Int32
	actors := [2]apikey.Actor{acmeOwner, globexOwner}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := ms[i%len(ms)].Bootstrap(context.Background(), actors[i%2], apikey.Staging)
			switch {
			case err == nil:
				wins[i%2].Add(1)
			case assert.ErrorIs(t, err, apikey.ErrAlreadyBootstrapped):
				already[i%2].Add(1)
			}
		})
	}
	wg.Wait()
	for i, account := range []string{acme, globex} {
		assert.Equal(t, int32(1), wins[i].Load(), "exactly one bootstrap wins in %s", account)
		assert.Equal(t, int32(9), already[i].Load())
		assert.Len(t, allKeys(t, s, account, apikey.Staging), 2)
		assertOneActiveDefault(t, s, account, apikey.Staging)
	}
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
	keysOf := func(s apikey.Store) ([]apikey.Record, error) {
		return s.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: 1000})
	}
	for i := range 50 {
		wg.Go(func() {
			m := ms[i%len(ms)]
			typ := []apikey.KeyType{apikey.Server, apikey.Client}[i%2]
			if i%5 == 4 { // every fifth goroutine tries to revoke the defaults it sees
				keys, err := keysOf(stores[i%len(stores)])
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
			keys, err := keysOf(stores[i%len(stores)])
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
		})
	}
	wg.Wait()

	keys := allKeys(t, s, apikey.DefaultAccount, apikey.Production)
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
	assertOneActiveDefault(t, s, apikey.DefaultAccount, apikey.Production)
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
		wg.Go(func() {
			origins := []string{fmt.Sprintf("http://localhost:%d", 3000+i)}
			_, err := ms[i%len(ms)].SetAllowedOrigins(ctx, owner, apikey.Development, origins)
			if assert.NoError(t, err) {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(20), wins.Load())
	got := mustSettings(t, s, apikey.DefaultAccount, apikey.Development)
	assert.Len(t, got.AllowedOrigins, 1, "one writer's list, whole")
}

// testConcurrentRotateAccounts races 40 rotations of default keys, spread
// over four handles, in two accounts with two environments of the same
// names each: eight slots of (account, environment, type). Afterwards each
// slot has exactly one default key, which DefaultKey finds; every other key
// was rotated out exactly once, by exactly one rotation; and every key a
// rotation returned is stored, in its slot.
func testConcurrentRotateAccounts(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	stores := c.peers(t, s, 4)
	ms := managers(t, stores)
	twoAccounts(t, s)

	type slot struct {
		account, env string
		typ          apikey.KeyType
	}
	var slots []slot
	for _, account := range []string{acme, globex} {
		for _, env := range []string{apikey.Production, apikey.Staging} {
			for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
				slots = append(slots, slot{account, env, typ})
			}
		}
	}
	actors := map[string]apikey.Actor{acme: acmeOwner, globex: globexOwner}

	const rotations = 40
	var (
		mu     sync.Mutex
		issued = map[slot][]string{}
		wg     sync.WaitGroup
	)
	for i := range rotations {
		wg.Go(func() {
			sl := slots[i%len(slots)]
			got, err := ms[(i/len(slots))%len(ms)].Rotate(ctx, actors[sl.account],
				apikey.RotateRequest{Environment: sl.env, Type: sl.typ, Grace: time.Hour})
			if !assert.NoError(t, err, "rotating the default key is retried until it wins") {
				return
			}
			mu.Lock()
			issued[sl] = append(issued[sl], got.View.ID)
			mu.Unlock()
		})
	}
	wg.Wait()

	total := 0
	for _, sl := range slots {
		total += len(issued[sl])
		var keys []apikey.Record
		for _, k := range allKeys(t, s, sl.account, sl.env) {
			if k.Type == sl.typ {
				keys = append(keys, k)
			}
		}
		assert.Len(t, keys, 1+len(issued[sl]), "%v: the bootstrap key and one per rotation", sl)
		stored := map[string]apikey.Record{}
		var defaults []string
		for _, k := range keys {
			stored[k.ID] = k
			if k.Default {
				defaults = append(defaults, k.ID)
				continue
			}
			assert.False(t, k.RotatedAt.IsZero(), "%v: %s is not the default, so it was rotated out", sl, k.Prefix())
			assert.False(t, k.ExpiresAt.IsZero(), "%v: %s has its grace", sl, k.Prefix())
		}
		for _, id := range issued[sl] {
			assert.Contains(t, stored, id, "%v: an issued key was lost", sl)
		}
		if assert.Len(t, defaults, 1, "%v: exactly one default", sl) {
			assert.Equal(t, defaults[0], mustDefault(t, s, sl.account, sl.env, sl.typ).ID, "%v: DefaultKey finds it", sl)
		}
	}
	assert.Equal(t, rotations, total, "every rotation succeeded")

	// The audit log tells one chain per slot: each key replaced once.
	if _, ok := s.(storage.AuditLog); ok {
		replaced := map[string]int{}
		for _, e := range events(t, s, storage.EventQuery{}) {
			if e.Action == apikey.ActionRotate {
				replaced[e.KeyID]++
				assert.True(t, strings.HasPrefix(e.Detail, "replaced by "), e.Detail)
			}
		}
		assert.Len(t, replaced, rotations, "one rotated-out key per rotation")
		for id, n := range replaced {
			assert.Equal(t, 1, n, "%s rotated out once", id)
		}
	}
}
