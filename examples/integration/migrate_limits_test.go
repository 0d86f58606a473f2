package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestMigrateVersion3AddsLimits upgrades a version-3 database, with keys
// and a change feed, to version 4 on both engines: the keys read back as
// they were, with no limits; limits can then be set, stored and read
// back, a quota leased from, and Migrate again changes nothing. The
// version-3 database is made from a new one by undoing version 4 (its
// column and table) after the keys were written.
func TestMigrateVersion3AddsLimits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher, Now: func() time.Time { return fixtureNow }})
		require.NoError(t, err)
		issued, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		extra, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}, Owner: "user_1"})
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		for _, stmt := range []string{
			`DROP TABLE keystile_quotas`,
			`ALTER TABLE keystile_keys DROP COLUMN limits`,
			`DELETE FROM keystile_schema_migrations WHERE version = 4`,
		} {
			_, err := db.Exec(stmt)
			require.NoError(t, err, stmt)
		}
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Equal(t, 3, version, "a version-3 database")
		revision, err := s.Revision(ctx)
		require.NoError(t, err)

		require.NoError(t, s.Migrate(ctx))
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		assert.Equal(t, sqlstore.SchemaVersion, version)
		assert.Equal(t, 4, version)
		for _, id := range []string{issued[0].View.ID, issued[1].View.ID, extra.View.ID} {
			r, err := s.Key(ctx, id)
			require.NoError(t, err)
			assert.True(t, r.Limits.IsZero(), "keys of version 3 have no limits")
			lease, err := s.LeaseQuota(ctx, id, 1, fixtureNow)
			require.NoError(t, err)
			assert.True(t, lease.Unlimited, "and no quota")
		}
		got, err := s.Key(ctx, extra.View.ID)
		require.NoError(t, err)
		assert.Equal(t, "user_1", got.Owner)
		assert.Equal(t, []string{"orders:read"}, got.Scopes)
		again, err := s.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, revision, again, "the migration writes no change")

		limits := apikey.Limits{Rate: apikey.RateLimit{Requests: 10, Window: time.Minute},
			Quota: apikey.Quota{Limit: 100, Refill: 100, Period: apikey.Daily}}
		view, err := m.SetLimits(ctx, owner, extra.View.ID, limits)
		require.NoError(t, err)
		assert.Equal(t, limits, view.Limits)
		got, err = s.Key(ctx, extra.View.ID)
		require.NoError(t, err)
		assert.Equal(t, limits, got.Limits)
		lease, err := s.LeaseQuota(ctx, extra.View.ID, 30, fixtureNow)
		require.NoError(t, err)
		assert.Equal(t, int64(30), lease.Granted)
		assert.Equal(t, int64(70), lease.Remaining)

		require.NoError(t, s.Migrate(ctx), "Migrate again")
		got, err = s.Key(ctx, extra.View.ID)
		require.NoError(t, err)
		assert.Equal(t, limits, got.Limits)
	})
}
