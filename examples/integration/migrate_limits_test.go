package integration_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// undoVersions undoes the schema versions from version 4 (limits and
// quotas) on that the database recorded, newest first, to make a database
// of the version before from out of a new one: the tests of each upgrade
// start from there.
func undoVersions(t *testing.T, db *sql.DB, from int) {
	t.Helper()
	undo := map[int][]string{
		18: {`ALTER TABLE keystile_quotas DROP COLUMN returns_from`},
		17: {`DROP INDEX keystile_dead_letters_replaying`, `ALTER TABLE keystile_dead_letters DROP COLUMN event_type`},
		16: {`DROP INDEX keystile_dead_letters_event`, `DROP INDEX keystile_dead_letters_seq`,
			`ALTER TABLE keystile_dead_letters DROP COLUMN event_seq`},
		14: {`ALTER TABLE keystile_instances DROP COLUMN removed_at`},
		15: {`ALTER TABLE keystile_dead_letters DROP COLUMN state`, `DROP INDEX keystile_events_account_cursor`, `DROP INDEX keystile_endpoints_account`, `DROP TABLE keystile_endpoints`},
		13: {`DROP TABLE keystile_instances`},
		12: {`DROP TABLE keystile_caller_others`, `DROP TABLE keystile_callers`},
		11: {`DROP TABLE keystile_dead_letters`, `DROP TABLE keystile_deliveries`, `DROP TABLE keystile_event_marks`, `DROP INDEX keystile_keys_due`},
		10: {`ALTER TABLE keystile_keys DROP COLUMN owner_limits`},
		9: {`DROP INDEX keystile_keys_owner`, `DROP INDEX keystile_keys_expiring`, `DROP INDEX keystile_keys_environment_expiring`,
			`DROP INDEX keystile_keys_revoked`, `DROP INDEX keystile_keys_expires`, `DROP INDEX keystile_keys_lineage`},
		8: {`ALTER TABLE keystile_settings DROP COLUMN max_lifetime_seconds`,
			`ALTER TABLE keystile_settings DROP COLUMN default_expiry_seconds`},
		7: {`ALTER TABLE keystile_settings DROP COLUMN suspended_at`, `ALTER TABLE keystile_keys DROP COLUMN disabled_at`},
		6: {`ALTER TABLE keystile_quotas DROP COLUMN generation`, `ALTER TABLE keystile_keys DROP COLUMN lineage`},
		5: {`DROP TABLE keystile_usage`},
		4: {`DROP TABLE keystile_quotas`, `ALTER TABLE keystile_keys DROP COLUMN limits`},
	}
	rows, err := db.Query(`SELECT version FROM keystile_schema_migrations WHERE version >= 4 ORDER BY version DESC`)
	require.NoError(t, err)
	var applied []int
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		applied = append(applied, v)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Equal(t, sqlstore.SchemaVersion, applied[0], "a new database")
	for _, v := range applied {
		if v < from {
			break
		}
		stmts, ok := undo[v]
		require.True(t, ok, "undoVersions knows version %d", v)
		for _, stmt := range append(stmts, fmt.Sprintf(`DELETE FROM keystile_schema_migrations WHERE version = %d`, v)) {
			_, err := db.Exec(stmt)
			require.NoError(t, err, stmt)
		}
	}
}

// fixtureManager returns a Manager of s whose clock stands at fixtureNow.
func fixtureManager(t *testing.T, s apikey.Store) *apikey.Manager {
	t.Helper()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher, Now: func() time.Time { return fixtureNow }})
	require.NoError(t, err)
	return m
}

// migrateFrom makes db a database of the version before version (see
// undoVersions), then migrates it with s twice (the second time with
// nothing to do) and checks that it reached sqlstore.SchemaVersion.
func migrateFrom(t *testing.T, db *sql.DB, s *sqlstore.Store, version int) {
	t.Helper()
	ctx := context.Background()
	undoVersions(t, db, version)
	var got int
	require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&got))
	require.Equal(t, version-1, got, "a version-%d database", version-1)

	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.Migrate(ctx), "again: nothing to do")
	require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&got))
	assert.Equal(t, sqlstore.SchemaVersion, got)
}

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
		m := fixtureManager(t, s)
		issued, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		extra, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}, Owner: "user_1"})
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 4)
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Equal(t, 3, version, "a version-3 database")
		revision, err := s.Revision(ctx)
		require.NoError(t, err)

		require.NoError(t, s.Migrate(ctx))
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		assert.Equal(t, sqlstore.SchemaVersion, version)
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

// TestMigrateVersion4AddsUsage upgrades a version-4 database, with a key
// that has limits and a leased quota, to version 5 on both engines: the
// key and its balance are kept, and usage can be recorded and read.
func TestMigrateVersion4AddsUsage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m := fixtureManager(t, s)
		_, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		limits := apikey.Limits{Quota: apikey.Quota{Limit: 50}}
		key, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client, Limits: limits})
		require.NoError(t, err)
		lease, err := s.LeaseQuota(ctx, key.View.ID, 20, fixtureNow)
		require.NoError(t, err)
		require.Equal(t, int64(20), lease.Granted)

		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 5)
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Equal(t, 4, version, "a version-4 database")

		require.NoError(t, s.Migrate(ctx))
		got, err := s.Key(ctx, key.View.ID)
		require.NoError(t, err)
		assert.Equal(t, limits, got.Limits)
		lease, err = s.LeaseQuota(ctx, key.View.ID, 100, fixtureNow)
		require.NoError(t, err)
		assert.Equal(t, int64(30), lease.Granted, "the balance survives")

		hour := fixtureNow.Truncate(time.Hour)
		count := apikey.UsageCount{Account: apikey.DefaultAccount, Environment: apikey.Production, KeyID: key.View.ID,
			Hour: hour, Outcome: "admitted", Count: 7}
		require.NoError(t, s.RecordUsage(ctx, []apikey.UsageCount{count, count}))
		counts, err := s.Usage(ctx, apikey.UsageQuery{Account: apikey.DefaultAccount, KeyID: key.View.ID, From: hour, To: hour.Add(time.Hour)})
		require.NoError(t, err)
		count.Count = 14
		assert.Equal(t, []apikey.UsageCount{count}, counts)
		require.NoError(t, s.Migrate(ctx), "Migrate again")
	})
}

// TestMigrateVersion5AddsLineage upgrades a version-5 database, with a
// key whose quota was leased from, to version 6 on both engines: the key
// and its balance are kept, and a rotation then hands the balance to the
// replacement, both keys spending from it during the grace.
func TestMigrateVersion5AddsLineage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m := fixtureManager(t, s)
		_, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		limits := apikey.Limits{Quota: apikey.Quota{Limit: 50}}
		key, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}, Limits: limits})
		require.NoError(t, err)
		lease, err := s.LeaseQuota(ctx, key.View.ID, 20, fixtureNow)
		require.NoError(t, err)
		require.Equal(t, int64(20), lease.Granted)

		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 6)
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Equal(t, 5, version, "a version-5 database")

		require.NoError(t, s.Migrate(ctx))
		got, err := s.Key(ctx, key.View.ID)
		require.NoError(t, err)
		assert.Equal(t, limits, got.Limits)
		assert.Empty(t, got.Lineage, "a key of version 5 is the first of its lineage")
		lease, err = s.LeaseQuota(ctx, key.View.ID, 10, fixtureNow)
		require.NoError(t, err)
		assert.Equal(t, int64(10), lease.Granted)
		assert.Equal(t, int64(20), lease.Remaining, "the balance survives")

		rotated, err := m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: key.View.ID, Grace: time.Hour})
		require.NoError(t, err)
		lease, err = s.LeaseQuota(ctx, rotated.View.ID, 100, fixtureNow)
		require.NoError(t, err)
		assert.Equal(t, int64(20), lease.Granted, "the replacement continues the balance")
		lease, err = s.LeaseQuota(ctx, key.View.ID, 100, fixtureNow)
		require.NoError(t, err)
		assert.Zero(t, lease.Granted, "the rotated key spends the same balance")
		require.NoError(t, s.Migrate(ctx), "Migrate again")
	})
}

// TestMigrateVersion6AddsSwitches upgrades a version-6 database, with keys
// and a change feed, to version 7 on both engines: every key reads back
// enabled and every environment not suspended, the migration writes no
// change, and a key can then be disabled and an account suspended, each
// stored and carried by the change feed.
func TestMigrateVersion6AddsSwitches(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m := fixtureManager(t, s)
		issued, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		extra, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}})
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 7)
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Equal(t, 6, version, "a version-6 database")
		revision, err := s.Revision(ctx)
		require.NoError(t, err)

		require.NoError(t, s.Migrate(ctx))
		for _, id := range []string{issued[0].View.ID, issued[1].View.ID, extra.View.ID} {
			r, err := s.Key(ctx, id)
			require.NoError(t, err)
			assert.True(t, r.DisabledAt.IsZero(), "keys of version 6 are enabled")
			assert.Equal(t, apikey.Active, r.Status(fixtureNow))
		}
		st, err := s.Settings(ctx, apikey.DefaultAccount, apikey.Production)
		require.NoError(t, err)
		assert.True(t, st.SuspendedAt.IsZero(), "environments of version 6 are not suspended")
		again, err := s.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, revision, again, "the migration writes no change")

		_, err = m.Disable(ctx, owner, extra.View.ID)
		require.NoError(t, err)
		operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
		require.NoError(t, m.SuspendAccount(ctx, operator, apikey.DefaultAccount))
		got, err := s.Key(ctx, extra.View.ID)
		require.NoError(t, err)
		assert.True(t, fixtureNow.Equal(got.DisabledAt))
		st, err = s.Settings(ctx, apikey.DefaultAccount, apikey.Production)
		require.NoError(t, err)
		assert.True(t, fixtureNow.Equal(st.SuspendedAt))
		changes, _, err := s.Changes(ctx, revision, 10)
		require.NoError(t, err)
		require.Len(t, changes, 2, "the disabled key and the suspended environment")
		assert.Equal(t, extra.View.ID, changes[0].KeyID)
		assert.Empty(t, changes[1].KeyID)
		require.NoError(t, s.Migrate(ctx), "Migrate again")
	})
}
