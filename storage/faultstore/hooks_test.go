package faultstore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

var owner = apikey.Actor{ID: "test", Role: apikey.Owner}

// bootstrapped returns a wrapper of a memory store that holds the
// production environment and its two default keys.
func bootstrapped(t *testing.T) (*faultstore.Store, []apikey.Issued) {
	t.Helper()
	s := faultstore.New(memory.New())
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	issued, err := m.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	return s, issued
}

// TestBeforeAimsAtOneOp: a Before hook that fails one operation fails its
// calls only, sees their arguments, and keeps them from the inner store;
// the After hooks of every operation still run and see the error.
func TestBeforeAimsAtOneOp(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	for _, op := range faultstore.Ops {
		t.Run(string(op), func(t *testing.T) {
			s, _ := bootstrapped(t)
			calledBefore := s.Calls(op)
			var before, after []faultstore.Op
			var mu sync.Mutex
			s.Before(func(_ context.Context, c *faultstore.Call) error {
				mu.Lock()
				defer mu.Unlock()
				before = append(before, c.Op)
				return boom
			}, op)
			s.After(func(_ context.Context, c *faultstore.Call) {
				mu.Lock()
				defer mu.Unlock()
				after = append(after, c.Op)
				if c.Op == op {
					assert.ErrorIs(t, c.Err, boom, "an After hook sees the error")
				}
			})
			for other, call := range calls(s) {
				err := call(ctx)
				if other == op {
					assert.ErrorIs(t, err, boom)
				} else {
					assert.NoError(t, ignoreNotFound(err), "%s goes through", other)
				}
			}
			assert.Equal(t, []faultstore.Op{op}, before)
			assert.ElementsMatch(t, faultstore.Ops, after, "After hooks run on every operation")
			assert.Equal(t, calledBefore+1, s.Calls(op), "the failed call is counted")
		})
	}
}

// TestHookArguments: each operation's Call carries its arguments, which a
// Before hook may change before the inner store receives them.
func TestHookArguments(t *testing.T) {
	ctx := context.Background()
	s, issued := bootstrapped(t)
	server, client := issued[0].Key.ID(), issued[1].Key.ID()
	leaseAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	issuedExtra, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"orders:read"}, Owner: "user-1", ExpiresAt: time.Now().Add(24 * time.Hour)})
	require.NoError(t, err)
	extra := issuedExtra.View.ID
	tests := []struct {
		op    faultstore.Op
		call  func() error
		check func(t *testing.T, c *faultstore.Call)
	}{
		{faultstore.OpKey, func() error { _, err := s.Key(ctx, server); return err },
			func(t *testing.T, c *faultstore.Call) { assert.Equal(t, server, c.ID) }},
		{faultstore.OpDefaultKey, func() error {
			_, err := s.DefaultKey(ctx, apikey.DefaultAccount, apikey.Production, apikey.Client)
			return err
		}, func(t *testing.T, c *faultstore.Call) {
			assert.Equal(t, []string{apikey.DefaultAccount, apikey.Production, "client"}, []string{c.Account, c.Environment, string(c.Type)})
		}},
		{faultstore.OpKeys, func() error {
			_, err := s.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: 7})
			return err
		}, func(t *testing.T, c *faultstore.Call) { assert.Equal(t, 7, c.KeyQuery.Limit) }},
		{faultstore.OpSettings, func() error { _, err := s.Settings(ctx, "acme", apikey.Staging); return err },
			func(t *testing.T, c *faultstore.Call) {
				assert.Equal(t, []string{"acme", apikey.Staging}, []string{c.Account, c.Environment})
			}},
		{faultstore.OpEnvironments, func() error {
			_, err := s.Environments(ctx, apikey.EnvironmentQuery{Limit: 3})
			return err
		}, func(t *testing.T, c *faultstore.Call) { assert.Equal(t, 3, c.EnvQuery.Limit) }},
		{faultstore.OpAccounts, func() error { _, err := s.Accounts(ctx, "acme", 5); return err },
			func(t *testing.T, c *faultstore.Call) { assert.Equal(t, "acme", c.Cursor); assert.Equal(t, 5, c.Limit) }},
		{faultstore.OpApply, func() error {
			return s.Apply(ctx, apikey.Change{Events: []apikey.Event{{Action: apikey.ActionRevoke}}})
		}, func(t *testing.T, c *faultstore.Call) { assert.Len(t, c.Change.Events, 1) }},
		{faultstore.OpChanges, func() error { _, _, err := s.Changes(ctx, 1, 9); return err },
			func(t *testing.T, c *faultstore.Call) {
				assert.Equal(t, []int64{1, 9}, []int64{c.Since, int64(c.Limit)})
			}},
		{faultstore.OpRevision, func() error { _, err := s.Revision(ctx); return err },
			func(t *testing.T, c *faultstore.Call) { assert.Positive(t, c.Revision, "After sees the result") }},
		{faultstore.OpRecordLastUsed, func() error {
			return s.RecordLastUsed(ctx, map[string]time.Time{server: time.Now()})
		}, func(t *testing.T, c *faultstore.Call) { assert.Contains(t, c.Used, server) }},
		{faultstore.OpEvents, func() error {
			_, err := s.Events(ctx, storage.EventQuery{Account: apikey.DefaultAccount, Limit: 4})
			return err
		}, func(t *testing.T, c *faultstore.Call) { assert.Equal(t, 4, c.EventQuery.Limit) }},
		{faultstore.OpLeaseQuota, func() error { _, err := s.LeaseQuota(ctx, server, 3, leaseAt); return err },
			func(t *testing.T, c *faultstore.Call) {
				assert.Equal(t, server, c.ID)
				assert.Equal(t, int64(3), c.Uses)
				assert.True(t, leaseAt.Equal(c.Now))
				assert.True(t, c.Lease.Unlimited, "After sees the result: the default key has no quota")
			}},
		{faultstore.OpReturnQuota, func() error {
			return s.ReturnQuota(ctx, client, 2, storage.QuotaLease{LeasedAt: leaseAt.Add(-time.Hour)}, leaseAt)
		},
			func(t *testing.T, c *faultstore.Call) {
				assert.Equal(t, client, c.ID)
				assert.Equal(t, int64(2), c.Uses)
				assert.True(t, leaseAt.Add(-time.Hour).Equal(c.Lease.LeasedAt))
				assert.True(t, leaseAt.Equal(c.Now))
			}},
		{faultstore.OpRecordUsage, func() error {
			return s.RecordUsage(ctx, []apikey.UsageCount{{Account: apikey.DefaultAccount, KeyID: server, Hour: leaseAt, Outcome: "admitted", Count: 2}})
		}, func(t *testing.T, c *faultstore.Call) {
			require.Len(t, c.Counts, 1)
			assert.Equal(t, server, c.Counts[0].KeyID)
		}},
		{faultstore.OpUsage, func() error {
			_, err := s.Usage(ctx, apikey.UsageQuery{Account: apikey.DefaultAccount, KeyID: server, From: leaseAt, To: leaseAt.Add(time.Hour)})
			return err
		}, func(t *testing.T, c *faultstore.Call) {
			assert.Equal(t, server, c.UsageQuery.KeyID)
			require.Len(t, c.UsageCounts, 1, "After sees the result")
			assert.Equal(t, int64(2), c.UsageCounts[0].Count)
		}},
		{faultstore.OpPruneUsage, func() error { _, err := s.PruneUsage(ctx, leaseAt.Add(time.Hour)); return err },
			func(t *testing.T, c *faultstore.Call) {
				assert.True(t, leaseAt.Add(time.Hour).Equal(c.PruneBefore))
				assert.Equal(t, int64(1), c.Pruned, "After sees the result")
			}},
		{faultstore.OpOwnerKeys, func() error {
			_, err := s.OwnerKeys(ctx, apikey.OwnerQuery{Account: apikey.DefaultAccount, Owner: "user-1", Limit: 6})
			return err
		}, func(t *testing.T, c *faultstore.Call) {
			assert.Equal(t, "user-1", c.OwnerQuery.Owner)
			assert.Equal(t, 6, c.OwnerQuery.Limit)
			require.Len(t, c.Records, 1, "After sees the result")
			assert.Equal(t, extra, c.Records[0].ID)
		}},
		{faultstore.OpExpiringKeys, func() error {
			_, err := s.ExpiringKeys(ctx, apikey.ExpiryQuery{Account: apikey.DefaultAccount, Environment: apikey.Production,
				After: apikey.ExpiryPosition{ExpiresAt: time.Now()}, Until: time.Now().Add(48 * time.Hour), Limit: 5})
			return err
		}, func(t *testing.T, c *faultstore.Call) {
			assert.Equal(t, apikey.Production, c.ExpiryQuery.Environment)
			assert.Equal(t, 5, c.ExpiryQuery.Limit)
			require.Len(t, c.Records, 1, "After sees the result")
			assert.Equal(t, extra, c.Records[0].ID)
		}},
		{faultstore.OpPurgeKeys, func() error { _, err := s.PurgeKeys(ctx, leaseAt, 8); return err },
			func(t *testing.T, c *faultstore.Call) {
				assert.True(t, leaseAt.Equal(c.PurgeBefore))
				assert.Equal(t, 8, c.Limit)
				assert.Empty(t, c.Purged, "After sees the result: nothing died before then")
			}},
	}
	require.Len(t, tests, len(faultstore.Ops), "every operation")
	for _, tt := range tests {
		t.Run(string(tt.op), func(t *testing.T) {
			var seen *faultstore.Call
			s.After(func(_ context.Context, c *faultstore.Call) { seen = c }, tt.op)
			defer s.Clear()
			require.NoError(t, ignoreNotFound(tt.call()))
			require.NotNil(t, seen)
			assert.Equal(t, tt.op, seen.Op)
			tt.check(t, seen)
		})
	}

	t.Run("a Before hook changes the arguments", func(t *testing.T) {
		s.Before(func(_ context.Context, c *faultstore.Call) error { c.ID = client; return nil }, faultstore.OpKey)
		defer s.Clear(faultstore.OpKey)
		r, err := s.Key(ctx, server)
		require.NoError(t, err)
		assert.Equal(t, client, r.ID, "the inner store read the key the hook named")
	})
}

// TestAfterRewritesResults: what an After hook leaves in the Call is what
// the caller receives, errors included.
func TestAfterRewritesResults(t *testing.T) {
	ctx := context.Background()
	s, issued := bootstrapped(t)
	hidden := issued[0].Key.ID()
	q := apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: 10}

	s.After(func(_ context.Context, c *faultstore.Call) {
		c.Records = slices.DeleteFunc(c.Records, func(r apikey.Record) bool { return r.ID == hidden })
	}, faultstore.OpKeys)
	keys, err := s.Keys(ctx, q)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.NotEqual(t, hidden, keys[0].ID)

	s.After(func(_ context.Context, c *faultstore.Call) { c.Err = apikey.ErrConflict }, faultstore.OpApply)
	require.ErrorIs(t, s.Apply(ctx, apikey.Change{}), apikey.ErrConflict)

	s.Clear()
	keys, err = s.Keys(ctx, q)
	require.NoError(t, err)
	assert.Len(t, keys, 2, "Clear removes the hooks")
	require.NoError(t, s.Apply(ctx, apikey.Change{}))
}

// TestHookOrder: a fault runs before the Before hooks and ends the call
// without them; hooks run in the order added; After hooks run after a
// failed call too.
func TestHookOrder(t *testing.T) {
	ctx := context.Background()
	s := faultstore.New(memory.New())
	var order []string
	s.Before(func(context.Context, *faultstore.Call) error { order = append(order, "before 1"); return nil }, faultstore.OpKey)
	s.Before(func(context.Context, *faultstore.Call) error { order = append(order, "before 2"); return nil }, faultstore.OpKey)
	s.After(func(_ context.Context, c *faultstore.Call) {
		order = append(order, "after: "+errName(c.Err))
	}, faultstore.OpKey)

	_, err := s.Key(ctx, "id")
	require.ErrorIs(t, err, apikey.ErrNotFound)
	assert.Equal(t, []string{"before 1", "before 2", "after: not found"}, order)

	order = nil
	s.Down(faultstore.OpKey)
	_, err = s.Key(ctx, "id")
	require.ErrorIs(t, err, faultstore.ErrDown)
	assert.Equal(t, []string{"after: down"}, order, "a fault ends the call before the hooks")

	order = nil
	s.Up()
	s.Before(func(context.Context, *faultstore.Call) error { return faultstore.ErrDown }, faultstore.OpKey)
	s.Before(func(context.Context, *faultstore.Call) error { order = append(order, "never"); return nil }, faultstore.OpKey)
	_, err = s.Key(ctx, "id")
	require.ErrorIs(t, err, faultstore.ErrDown)
	assert.Equal(t, []string{"before 1", "before 2", "after: down"}, order, "a failing hook ends the Before hooks")
	assert.EqualValues(t, 3, s.Calls(faultstore.OpKey))
}

func errName(err error) string {
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		return "not found"
	case errors.Is(err, faultstore.ErrDown):
		return "down"
	}
	return "other"
}

// TestBeforeBlocks: a Before hook can hold calls until the test releases
// them, or until their context ends.
func TestBeforeBlocks(t *testing.T) {
	s := faultstore.New(memory.New())
	entered, release := make(chan struct{}, 2), make(chan struct{})
	s.Before(func(ctx context.Context, _ *faultstore.Call) error {
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, faultstore.OpKey)

	done := make(chan error, 1)
	go func() { _, err := s.Key(context.Background(), "id"); done <- err }()
	<-entered
	select {
	case <-done:
		t.Fatal("the call did not wait")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	require.ErrorIs(t, <-done, apikey.ErrNotFound, "released, the call reaches the inner store")

	release = make(chan struct{})
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := s.Key(short, "id")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestHookPanics: a hook's panic reaches the caller, as a store's would,
// and leaves the wrapper usable.
func TestHookPanics(t *testing.T) {
	s := faultstore.New(memory.New())
	var panics atomic.Bool
	panics.Store(true)
	s.Before(func(context.Context, *faultstore.Call) error {
		if panics.Load() {
			panic("driver bug")
		}
		return nil
	}, faultstore.OpKey)
	require.PanicsWithValue(t, "driver bug", func() { _, _ = s.Key(context.Background(), "id") })
	panics.Store(false)
	_, err := s.Key(context.Background(), "id")
	require.ErrorIs(t, err, apikey.ErrNotFound)
}

func TestUnknownOpPanics(t *testing.T) {
	s := faultstore.New(memory.New())
	h := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	for name, f := range map[string]func(){
		"store Before":   func() { s.Before(nil, "Nope") },
		"store After":    func() { s.After(nil, faultstore.OpVerify) },
		"store Calls":    func() { s.Calls(faultstore.OpHash) },
		"store Fail":     func() { s.Fail(nil, "Nope") },
		"hasher Before":  func() { h.Before(nil, faultstore.OpKey) },
		"hasher Calls":   func() { h.Calls(faultstore.OpKey) },
		"Hide a method":  func() { s.Hide(faultstore.OpKey) },
		"Hide a nothing": func() { s.Hide("Nope") },
	} {
		t.Run(name, func(t *testing.T) { assert.Panics(t, f) })
	}
}

// TestHide: a hidden capability is missing from Exact and its calls fail
// as unsupported; the others stay.
func TestHide(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		hide                                []faultstore.Op
		feed, recorder, logs, ledger, usage bool
		owners, expiry, purger              bool
	}{
		{nil, true, true, true, true, true, true, true, true},
		{[]faultstore.Op{faultstore.OpOwnerKeys}, true, true, true, true, true, false, true, true},
		{[]faultstore.Op{faultstore.OpExpiringKeys}, true, true, true, true, true, true, false, true},
		{[]faultstore.Op{faultstore.OpPurgeKeys, faultstore.OpUsage}, true, true, true, true, false, true, true, false},
		{[]faultstore.Op{faultstore.OpChanges}, false, true, true, true, true, true, true, true},
		{[]faultstore.Op{faultstore.OpRevision}, false, true, true, true, true, true, true, true},
		{[]faultstore.Op{faultstore.OpRecordLastUsed}, true, false, true, true, true, true, true, true},
		{[]faultstore.Op{faultstore.OpEvents}, true, true, false, true, true, true, true, true},
		{[]faultstore.Op{faultstore.OpLeaseQuota}, true, true, true, false, true, true, true, true},
		{[]faultstore.Op{faultstore.OpReturnQuota, faultstore.OpChanges}, false, true, true, false, true, true, true, true},
		{[]faultstore.Op{faultstore.OpUsage}, true, true, true, true, false, true, true, true},
		{[]faultstore.Op{faultstore.OpRecordUsage, faultstore.OpEvents}, true, true, false, true, false, true, true, true},
		{[]faultstore.Op{faultstore.OpChanges, faultstore.OpRecordLastUsed, faultstore.OpEvents}, false, false, false, true, true, true, true, true},
		{[]faultstore.Op{faultstore.OpChanges, faultstore.OpRecordLastUsed, faultstore.OpEvents, faultstore.OpLeaseQuota, faultstore.OpPruneUsage,
			faultstore.OpOwnerKeys, faultstore.OpExpiringKeys, faultstore.OpPurgeKeys},
			false, false, false, false, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(joinOps(tt.hide)), func(t *testing.T) {
			s := faultstore.New(memory.New())
			s.Hide(tt.hide...)
			exact := s.Exact()
			_, feed := exact.(storage.ChangeFeed)
			_, recorder := exact.(storage.LastUsedRecorder)
			_, logs := exact.(storage.AuditLog)
			_, ledger := exact.(storage.QuotaLedger)
			_, usage := exact.(storage.UsageRecorder)
			_, owners := exact.(storage.OwnerIndex)
			_, expiry := exact.(storage.ExpiryIndex)
			_, purger := exact.(storage.KeyPurger)
			assert.Equal(t, []bool{tt.feed, tt.recorder, tt.logs, tt.ledger, tt.usage, tt.owners, tt.expiry, tt.purger},
				[]bool{feed, recorder, logs, ledger, usage, owners, expiry, purger})

			_, err := s.Revision(ctx)
			assert.Equal(t, !tt.feed, errors.Is(err, errors.ErrUnsupported), "Revision: %v", err)
			err = s.RecordLastUsed(ctx, map[string]time.Time{})
			assert.Equal(t, !tt.recorder, errors.Is(err, errors.ErrUnsupported), "RecordLastUsed: %v", err)
			_, err = s.Events(ctx, storage.EventQuery{Limit: 1})
			assert.Equal(t, !tt.logs, errors.Is(err, errors.ErrUnsupported), "Events: %v", err)
			err = s.ReturnQuota(ctx, "id", 1, storage.QuotaLease{LeasedAt: time.Now()}, time.Now())
			assert.Equal(t, !tt.ledger, errors.Is(err, errors.ErrUnsupported), "ReturnQuota: %v", err)
			err = s.RecordUsage(ctx, nil)
			assert.Equal(t, !tt.usage, errors.Is(err, errors.ErrUnsupported), "RecordUsage: %v", err)
			_, err = s.OwnerKeys(ctx, apikey.OwnerQuery{Account: apikey.DefaultAccount, Owner: "u", Limit: 1})
			assert.Equal(t, !tt.owners, errors.Is(err, errors.ErrUnsupported), "OwnerKeys: %v", err)
			_, err = s.ExpiringKeys(ctx, apikey.ExpiryQuery{Account: apikey.DefaultAccount, Until: time.Now(), Limit: 1})
			assert.Equal(t, !tt.expiry, errors.Is(err, errors.ErrUnsupported), "ExpiringKeys: %v", err)
			_, err = s.PurgeKeys(ctx, time.Now(), 1)
			assert.Equal(t, !tt.purger, errors.Is(err, errors.ErrUnsupported), "PurgeKeys: %v", err)
		})
	}
}

func joinOps(ops []faultstore.Op) faultstore.Op {
	out := faultstore.Op("none")
	for i, op := range ops {
		if i == 0 {
			out = op
		} else {
			out += "+" + op
		}
	}
	return out
}

// TestGap: the next Changes after Gap, and only it, reports a feed gap
// with the current revision.
func TestGap(t *testing.T) {
	ctx := context.Background()
	s, _ := bootstrapped(t)
	rev, err := s.Revision(ctx)
	require.NoError(t, err)
	require.Positive(t, rev)

	changes, next, err := s.Changes(ctx, 0, 0)
	require.NoError(t, err)
	require.NotEmpty(t, changes)
	assert.Equal(t, rev, next)

	reported := s.Gap()
	select {
	case <-reported:
		t.Fatal("reported before a call")
	default:
	}
	changes, next, err = s.Changes(ctx, 1, 0)
	require.ErrorIs(t, err, storage.ErrFeedGap)
	<-reported
	assert.Empty(t, changes)
	assert.Equal(t, rev, next, "the consumer continues from the current revision")

	_, next, err = s.Changes(ctx, 1, 0)
	require.NoError(t, err, "one gap only")
	assert.Equal(t, rev, next)

	s.Down(faultstore.OpChanges)
	_, next, err = s.Changes(ctx, 1, 0)
	require.ErrorIs(t, err, faultstore.ErrDown)
	assert.EqualValues(t, 1, next, "a failed call hands back since")
}

// TestHasher: the hasher wrapper counts its calls, and its hooks see the
// secret and the result and may change them, fail or panic.
func TestHasher(t *testing.T) {
	h := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	secret := []byte("correct horse battery staple")
	encoded, err := h.Hash(secret)
	require.NoError(t, err)
	match, _, err := h.Verify(secret, encoded)
	require.NoError(t, err)
	require.True(t, match)

	var outdated atomic.Int64
	h.After(func(_ context.Context, c *faultstore.Call) {
		assert.Equal(t, secret, c.Secret)
		if c.Match {
			c.Outdated = true
			outdated.Add(1)
		}
	}, faultstore.OpVerify)
	_, isOutdated, err := h.Verify(secret, encoded)
	require.NoError(t, err)
	assert.True(t, isOutdated, "the result as the hook left it")
	assert.EqualValues(t, 1, outdated.Load())

	boom := errors.New("boom")
	h.Before(func(context.Context, *faultstore.Call) error { return boom }, faultstore.OpHash)
	_, err = h.Hash(secret)
	require.ErrorIs(t, err, boom)

	h.Clear()
	h.Before(func(context.Context, *faultstore.Call) error { panic("hasher bug") })
	assert.Panics(t, func() { _, _, _ = h.Verify(secret, encoded) })
	assert.Panics(t, func() { _, _ = h.Hash(secret) })

	assert.EqualValues(t, 3, h.Calls(faultstore.OpHash))
	assert.EqualValues(t, 3, h.Calls(faultstore.OpVerify))
}

// plainHasher has no Outdated method, whatever apikey.Argon2id has.
type plainHasher struct{ a apikey.Argon2id }

func (h plainHasher) Hash(secret []byte) (string, error) { return h.a.Hash(secret) }
func (h plainHasher) Verify(secret []byte, encoded string) (bool, bool, error) {
	return h.a.Verify(secret, encoded)
}

// checkingHasher has an Outdated method that calls every hash outdated.
type checkingHasher struct{ plainHasher }

func (checkingHasher) Outdated(string) (bool, error) { return true, nil }

// TestHasherExact: the wrapper's Outdated passes to the inner hasher's,
// through hooks; Exact has one exactly when the inner hasher has.
func TestHasherExact(t *testing.T) {
	type checker interface {
		Outdated(string) (bool, error)
	}
	a := apikey.Argon2id{Params: apikey.TestParams}

	h := faultstore.NewHasher(checkingHasher{plainHasher{a}})
	_, ok := h.Exact().(checker)
	require.True(t, ok)
	h.After(func(_ context.Context, c *faultstore.Call) { c.Outdated = !c.Outdated }, faultstore.OpOutdated)
	outdated, err := h.Outdated("$argon2id$...")
	require.NoError(t, err)
	assert.False(t, outdated, "as the hook left it")
	assert.EqualValues(t, 1, h.Calls(faultstore.OpOutdated))

	h = faultstore.NewHasher(plainHasher{a})
	_, ok = h.Exact().(checker)
	assert.False(t, ok)
	_, err = h.Outdated("$argon2id$...")
	require.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Zero(t, h.Calls(faultstore.OpOutdated))
}

// TestExactEverySubset: whatever capabilities Hide leaves, Exact has
// exactly those, and is the same wrapper.
func TestExactEverySubset(t *testing.T) {
	hideOp := []faultstore.Op{faultstore.OpChanges, faultstore.OpRecordLastUsed, faultstore.OpEvents, faultstore.OpLeaseQuota, faultstore.OpUsage,
		faultstore.OpOwnerKeys, faultstore.OpExpiringKeys, faultstore.OpPurgeKeys}
	for set := range 1 << len(hideOp) {
		s := faultstore.New(memory.New())
		var want []bool
		for i, op := range hideOp {
			kept := set&(1<<i) != 0
			if !kept {
				s.Hide(op)
			}
			want = append(want, kept)
		}
		exact := s.Exact()
		_, feed := exact.(storage.ChangeFeed)
		_, recorder := exact.(storage.LastUsedRecorder)
		_, logs := exact.(storage.AuditLog)
		_, ledger := exact.(storage.QuotaLedger)
		_, usage := exact.(storage.UsageRecorder)
		_, owners := exact.(storage.OwnerIndex)
		_, expiry := exact.(storage.ExpiryIndex)
		_, purger := exact.(storage.KeyPurger)
		require.Equal(t, want, []bool{feed, recorder, logs, ledger, usage, owners, expiry, purger}, "set %08b", set)
		s.Down()
		_, err := exact.Key(context.Background(), "id")
		require.ErrorIs(t, err, faultstore.ErrDown, "set %08b: the same wrapper", set)
	}
}
