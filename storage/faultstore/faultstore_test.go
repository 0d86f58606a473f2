package faultstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
	"github.com/keystile/keystile/storage/storetest"
)

// TestConformance: with no fault switched on, the wrapper is the store it
// wraps, with every optional interface it passes on; seen through Exact, a
// store with no optional interface is one too (and the suite runs only the
// cases of apikey.Store).
func TestConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, storetest.Config{
			New: func(testing.TB) apikey.Store { return faultstore.New(memory.New()) },
			Require: storetest.ChangeFeed | storetest.LastUsedRecorder | storetest.AuditLog |
				storetest.QuotaLedger | storetest.UsageRecorder |
				storetest.OwnerIndex | storetest.ExpiryIndex | storetest.KeyPurger,
		})
	})
	t.Run("bare", func(t *testing.T) {
		storetest.Run(t, storetest.Config{
			New:     func(testing.TB) apikey.Store { return faultstore.New(bare{memory.New()}).Exact() },
			Require: 0, // Exact implements none
		})
	})
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	s := faultstore.New(memory.New())
	_, err := s.Key(ctx, "nope")
	require.ErrorIs(t, err, apikey.ErrNotFound, "no fault: calls go through")

	s.Down()
	for _, call := range calls(s) {
		require.ErrorIs(t, call(ctx), faultstore.ErrDown)
	}
	s.Up()
	for op, call := range calls(s) {
		require.NoError(t, ignoreNotFound(call(ctx)), "%s after Up", op)
	}

	boom := errors.New("boom")
	s.Fail(boom, faultstore.OpApply)
	require.ErrorIs(t, s.Apply(ctx, apikey.Change{}), boom)
	_, err = s.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: "production", Limit: 10})
	require.NoError(t, err, "only Apply fails")
	s.Fail(nil, faultstore.OpApply)
	require.NoError(t, s.Apply(ctx, apikey.Change{}))

	s.Delay(time.Hour, faultstore.OpKey)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Key(short, "id")
	require.ErrorIs(t, err, context.DeadlineExceeded, "a delay respects the context")
	assert.Less(t, time.Since(start), time.Second)

	s.Delay(10*time.Millisecond, faultstore.OpKey)
	start = time.Now()
	_, err = s.Key(ctx, "id")
	require.ErrorIs(t, err, apikey.ErrNotFound)
	assert.GreaterOrEqual(t, time.Since(start), 10*time.Millisecond)
	assert.EqualValues(t, 5, s.Calls(faultstore.OpKey), "faulty calls count too")
}

// TestEachOp aims a fault at one operation at a time: that operation's
// calls fail, every other goes through.
func TestEachOp(t *testing.T) {
	ctx := context.Background()
	s := faultstore.New(memory.New())
	all := calls(s)
	require.Len(t, all, len(faultstore.Ops), "calls covers every operation")
	boom := errors.New("boom")
	for _, op := range faultstore.Ops {
		t.Run(string(op), func(t *testing.T) {
			before := s.Calls(op)
			s.Fail(boom, op)
			defer s.Up()
			for other, call := range all {
				err := call(ctx)
				if other == op {
					assert.ErrorIs(t, err, boom, "the aimed operation fails")
				} else {
					assert.NoError(t, ignoreNotFound(err), "%s goes through", other)
				}
			}
			assert.Equal(t, before+1, s.Calls(op), "the failed call is counted")
		})
	}
}

// calls makes one call of each operation, by name.
func calls(s *faultstore.Store) map[faultstore.Op]func(context.Context) error {
	const acct, env = apikey.DefaultAccount, "production"
	return map[faultstore.Op]func(context.Context) error{
		faultstore.OpKey: func(ctx context.Context) error { _, err := s.Key(ctx, "id"); return err },
		faultstore.OpDefaultKey: func(ctx context.Context) error {
			_, err := s.DefaultKey(ctx, acct, env, apikey.Server)
			return err
		},
		faultstore.OpKeys: func(ctx context.Context) error {
			_, err := s.Keys(ctx, apikey.KeyQuery{Account: acct, Environment: env, Limit: 10})
			return err
		},
		faultstore.OpSettings: func(ctx context.Context) error { _, err := s.Settings(ctx, acct, env); return err },
		faultstore.OpEnvironments: func(ctx context.Context) error {
			_, err := s.Environments(ctx, apikey.EnvironmentQuery{Limit: 10})
			return err
		},
		faultstore.OpAccounts: func(ctx context.Context) error { _, err := s.Accounts(ctx, "", 10); return err },
		faultstore.OpApply:    func(ctx context.Context) error { return s.Apply(ctx, apikey.Change{}) },
		faultstore.OpChanges:  func(ctx context.Context) error { _, _, err := s.Changes(ctx, 0, 0); return err },
		faultstore.OpRevision: func(ctx context.Context) error { _, err := s.Revision(ctx); return err },
		faultstore.OpRecordLastUsed: func(ctx context.Context) error {
			return s.RecordLastUsed(ctx, map[string]time.Time{"id": time.Now()})
		},
		faultstore.OpEvents: func(ctx context.Context) error {
			_, err := s.Events(ctx, storage.EventQuery{Account: acct, Limit: 10})
			return err
		},
		faultstore.OpLeaseQuota: func(ctx context.Context) error {
			_, err := s.LeaseQuota(ctx, "id", 1, time.Now())
			return err
		},
		faultstore.OpReturnQuota: func(ctx context.Context) error {
			return s.ReturnQuota(ctx, "id", 1, storage.QuotaLease{LeasedAt: time.Now()}, time.Now())
		},
		faultstore.OpRecordUsage: func(ctx context.Context) error { return s.RecordUsage(ctx, nil) },
		faultstore.OpUsage: func(ctx context.Context) error {
			_, err := s.Usage(ctx, apikey.UsageQuery{Account: acct, From: time.Now(), To: time.Now().Add(time.Hour)})
			return err
		},
		faultstore.OpPruneUsage: func(ctx context.Context) error { _, err := s.PruneUsage(ctx, time.Now()); return err },
		faultstore.OpOwnerKeys: func(ctx context.Context) error {
			_, err := s.OwnerKeys(ctx, apikey.OwnerQuery{Account: acct, Owner: "u", Limit: 10})
			return err
		},
		faultstore.OpExpiringKeys: func(ctx context.Context) error {
			_, err := s.ExpiringKeys(ctx, apikey.ExpiryQuery{Account: acct, Until: time.Now().Add(time.Hour), Limit: 10})
			return err
		},
		faultstore.OpPurgeKeys: func(ctx context.Context) error { _, err := s.PurgeKeys(ctx, time.Now(), 10); return err },
	}
}

// ignoreNotFound drops the answer of an empty store to a lookup.
func ignoreNotFound(err error) error {
	if errors.Is(err, apikey.ErrNotFound) {
		return nil
	}
	return err
}

// bare is a store with no optional capability.
type bare struct{ apikey.Store }

// usageOnly is a store with a usage recorder and nothing else optional.
type usageOnly struct {
	apikey.Store
	storage.UsageRecorder
}

// ledgerOnly is a store with a quota ledger and nothing else optional.
type ledgerOnly struct {
	apikey.Store
	storage.QuotaLedger
}

// indexesOnly is a store with the owner and expiry indexes and nothing
// else optional.
type indexesOnly struct {
	apikey.Store
	storage.OwnerIndex
	storage.ExpiryIndex
}

// purgerOnly is a store with a key purger and nothing else optional.
type purgerOnly struct {
	apikey.Store
	storage.KeyPurger
}

// feedOnly is a store with a change feed and nothing else optional.
type feedOnly struct {
	apikey.Store
	storage.ChangeFeed
}

func TestExactAdvertisesOnlyTheInnerCapabilities(t *testing.T) {
	mem := memory.New()
	for _, tt := range []struct {
		name                   string
		inner                  apikey.Store
		feed, recorder, logs   bool
		ledger, usage          bool
		owners, expiry, purger bool
	}{
		{"memory", mem, true, true, true, true, true, true, true, true},
		{"bare", bare{mem}, false, false, false, false, false, false, false, false},
		{"feed only", feedOnly{mem, mem}, true, false, false, false, false, false, false, false},
		{"ledger only", ledgerOnly{mem, mem}, false, false, false, true, false, false, false, false},
		{"usage only", usageOnly{mem, mem}, false, false, false, false, true, false, false, false},
		{"indexes only", indexesOnly{mem, mem, mem}, false, false, false, false, false, true, true, false},
		{"purger only", purgerOnly{mem, mem}, false, false, false, false, false, false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := faultstore.New(tt.inner)
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

			s.Down()
			_, err := exact.Key(context.Background(), "id")
			require.ErrorIs(t, err, faultstore.ErrDown, "Exact is the same wrapper")
			s.Up()
			if !tt.feed {
				_, err := s.Revision(context.Background())
				require.ErrorIs(t, err, errors.ErrUnsupported)
			}
			if !tt.ledger {
				_, err := s.LeaseQuota(context.Background(), "id", 1, time.Now())
				require.ErrorIs(t, err, errors.ErrUnsupported)
			}
			if !tt.usage {
				_, err := s.PruneUsage(context.Background(), time.Now())
				require.ErrorIs(t, err, errors.ErrUnsupported)
			}
			if !tt.owners {
				_, err := s.OwnerKeys(context.Background(), apikey.OwnerQuery{Account: apikey.DefaultAccount, Owner: "u", Limit: 1})
				require.ErrorIs(t, err, errors.ErrUnsupported)
			}
			if !tt.purger {
				_, err := s.PurgeKeys(context.Background(), time.Now(), 1)
				require.ErrorIs(t, err, errors.ErrUnsupported)
			}
		})
	}
}

// TestManagerOwnerCalls: the Manager's owner, expiry and clean-up calls
// work through Exact, and a fault aimed at their store operation reaches
// them.
func TestManagerOwnerCalls(t *testing.T) {
	ctx := context.Background()
	owner := apikey.Actor{ID: "test", Role: apikey.Owner}
	operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
	for _, hide := range []faultstore.Op{"", faultstore.OpOwnerKeys, faultstore.OpExpiringKeys, faultstore.OpPurgeKeys} {
		t.Run("hide "+string(hide), func(t *testing.T) {
			fs := faultstore.New(memory.New())
			if hide != "" {
				fs.Hide(hide)
			}
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: fs.Exact(), Hasher: apikey.Argon2id{Params: apikey.TestParams}})
			require.NoError(t, err)
			_, err = m.Bootstrap(ctx, owner, apikey.Production)
			require.NoError(t, err)
			_, err = m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
				Scopes: []string{"orders:read"}, Owner: "user-1", ExpiresAt: time.Now().Add(time.Hour)})
			require.NoError(t, err)

			expiring := func() error {
				list, err := m.Expiring(ctx, owner, apikey.ExpiringRequest{Within: 2 * time.Hour}, apikey.Page{})
				if err == nil && len(list.Keys) != 1 {
					return fmt.Errorf("%d expiring keys, want 1", len(list.Keys))
				}
				return err
			}
			revokeOwner := func() error {
				res, err := m.RevokeOwner(ctx, owner, "user-1")
				if err == nil && res.Revoked != 1 {
					return fmt.Errorf("%d keys revoked, want 1", res.Revoked)
				}
				return err
			}
			purge := func() error { _, err := m.Purge(ctx, operator, time.Hour); return err }
			boom := errors.New("boom")
			for _, tt := range []struct {
				op   faultstore.Op
				call func() error
			}{{faultstore.OpExpiringKeys, expiring}, {faultstore.OpOwnerKeys, revokeOwner}, {faultstore.OpPurgeKeys, purge}} {
				op, call := tt.op, tt.call
				if op == hide {
					require.ErrorIs(t, call(), errors.ErrUnsupported, "%s hidden", op)
					continue
				}
				fs.Fail(boom, op)
				require.ErrorIs(t, call(), boom, "%s fails", op)
				fs.Up()
				require.NoError(t, call(), "%s after Up", op)
			}
		})
	}
}
