package integration_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestMigrateAddsReturnsFrom upgrades a database of version 17, with a key
// whose quota was leased from, raised, and leased from again, and an
// owner's balance, to version 18 on both engines: every balance accepts
// returns from its generation, as version 17 did, so that the return of
// the lease of the quota before the raise is dropped and that of the lease
// after it is added; a raise after the upgrade then keeps the returns of
// the leases taken before it, and Migrate again changes nothing.
func TestMigrateAddsReturnsFrom(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m := fixtureManager(t, s)
		_, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		key, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}, Owner: "user_1", Limits: apikey.Limits{Quota: apikey.Quota{Limit: 100}}})
		require.NoError(t, err)
		_, err = m.SetOwnerLimits(ctx, owner, "user_1", apikey.Limits{Quota: apikey.Quota{Limit: 50}})
		require.NoError(t, err)
		id := key.View.ID
		before, err := s.LeaseQuota(ctx, id, 20, fixtureNow)
		require.NoError(t, err)
		_, err = m.SetLimits(ctx, owner, id, apikey.Limits{Quota: apikey.Quota{Limit: 200}})
		require.NoError(t, err)
		after, err := s.LeaseQuota(ctx, id, 10, fixtureNow) // 170 left
		require.NoError(t, err)
		require.Equal(t, int64(170), after.Remaining)
		require.Greater(t, after.Generation, before.Generation)

		db := b.open(t, dsn)
		defer db.Close()
		migrateFrom(t, db, s, 18)

		var rows, same int
		require.NoError(t, db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN returns_from = generation THEN 1 ELSE 0 END), 0)
			FROM keystile_quotas`).Scan(&rows, &same))
		assert.Equal(t, 2, rows, "the key's and the owner's")
		assert.Equal(t, rows, same, "every balance accepts returns from its generation")
		require.NoError(t, s.ReturnQuota(ctx, id, 15, before, fixtureNow))
		require.NoError(t, s.ReturnQuota(ctx, id, 5, after, fixtureNow))
		got, err := s.LeaseQuota(ctx, id, 1, fixtureNow)
		require.NoError(t, err)
		assert.Equal(t, int64(174), got.Remaining, "170 + 5 returned - 1; the lease of before the raise is dropped")

		_, err = m.SetLimits(ctx, owner, id, apikey.Limits{Quota: apikey.Quota{Limit: 300}})
		require.NoError(t, err)
		require.NoError(t, s.ReturnQuota(ctx, id, 1, got, fixtureNow))
		got, err = s.LeaseQuota(ctx, id, 1000, fixtureNow)
		require.NoError(t, err)
		assert.Equal(t, int64(275), got.Granted, "174 + 100 raised + 1 returned by a lease of before the raise")
		require.NoError(t, s.Migrate(ctx), "Migrate again")
	})
}
