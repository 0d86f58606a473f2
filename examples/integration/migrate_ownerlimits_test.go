package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestMigrateAddsOwnerLimits upgrades a database made before version 10,
// with keys of an owner (one with limits and a quota being spent), to
// version 10 on both engines: the keys read back as they were, with no
// owner limits, and the key's quota balance is kept; owner limits can then
// be set, stored, read back and leased from; Migrate again changes nothing.
func TestMigrateAddsOwnerLimits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m := fixtureManager(t, s)
		_, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		own := apikey.Limits{Quota: apikey.Quota{Limit: 100}}
		var ids []string
		for _, l := range []apikey.Limits{own, {}} {
			k, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
				Scopes: []string{"orders:read"}, Owner: "user_1", Limits: l})
			require.NoError(t, err)
			ids = append(ids, k.View.ID)
		}
		lease, err := s.LeaseQuota(ctx, ids[0], 30, fixtureNow)
		require.NoError(t, err)
		require.Equal(t, int64(30), lease.Granted)

		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 10)
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Equal(t, 9, version, "a version-9 database")
		revision, err := s.Revision(ctx)
		require.NoError(t, err)

		require.NoError(t, s.Migrate(ctx))
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		assert.Equal(t, sqlstore.SchemaVersion, version)
		for i, id := range ids {
			key, err := s.Key(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, "user_1", key.Owner)
			assert.True(t, key.OwnerLimits.IsZero(), "keys of earlier versions have no owner limits")
			assert.Equal(t, i == 0, key.Limits.Equal(own))
		}
		again, err := s.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, revision, again, "the migration writes no change")
		rest, err := s.LeaseQuota(ctx, ids[0], 100, fixtureNow)
		require.NoError(t, err)
		assert.Equal(t, int64(70), rest.Granted, "the key's balance is kept")

		shared := apikey.Limits{Rate: apikey.RateLimit{Requests: 10, Window: time.Second},
			Quota: apikey.Quota{Limit: 50, Refill: 50, Period: apikey.Daily}}
		n, err := m.SetOwnerLimits(ctx, owner, "user_1", shared)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		for _, id := range ids {
			key, err := s.Key(ctx, id)
			require.NoError(t, err)
			assert.True(t, key.OwnerLimits.Equal(shared), "stored and read back")
		}
		var ledger storage.QuotaLedger = s
		got, err := ledger.LeaseQuota(ctx, apikey.OwnerBalanceID(apikey.DefaultAccount, "user_1"), 60, fixtureNow)
		require.NoError(t, err)
		assert.Equal(t, int64(50), got.Granted, "the owner's balance starts full")
		require.NoError(t, s.Migrate(ctx), "Migrate again")
	})
}
