package integration_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestMigrateVersion9AddsOwnerIndexes upgrades a version-6 database with
// owned, expiring and revoked keys to version 9 on both engines: the
// indexes of keys by owner, expiry, death and lineage are created, and
// the keys written before are listed by owner and expiry and purged.
func TestMigrateVersion9AddsOwnerIndexes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
		require.NoError(t, err)
		_, err = m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		var ids []string
		for i := range 3 {
			k, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
				Scopes: []string{"orders:read"}, Owner: "user_1", ExpiresAt: m.Now().Add(time.Duration(i+1) * time.Hour)})
			require.NoError(t, err)
			ids = append(ids, k.View.ID)
		}
		_, err = m.Revoke(ctx, owner, ids[2])
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 7)
		indexes := func() int {
			query := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN (?, ?, ?, ?, ?, ?)`
			if b.dialect == sqlstore.Postgres {
				query = `SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN (?, ?, ?, ?, ?, ?)`
			}
			var n int
			require.NoError(t, db.QueryRow(placeholders(b.dialect, query), "keystile_keys_owner", "keystile_keys_expiring",
				"keystile_keys_environment_expiring", "keystile_keys_revoked", "keystile_keys_expires", "keystile_keys_lineage").Scan(&n))
			return n
		}
		require.Zero(t, indexes(), "a version-6 database")

		require.NoError(t, s.Migrate(ctx))
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		assert.Equal(t, sqlstore.SchemaVersion, version)
		assert.Equal(t, 6, indexes(), "version 9's indexes")

		list, err := m.OwnerKeys(ctx, owner, "user_1", apikey.Page{})
		require.NoError(t, err)
		assert.Len(t, list.Keys, 3)
		soon, err := m.Expiring(ctx, owner, apikey.ExpiringRequest{Within: 24 * time.Hour}, apikey.Page{})
		require.NoError(t, err)
		require.Len(t, soon.Keys, 2, "the revoked key does not expire")
		assert.Equal(t, ids[0], soon.Keys[0].ID)
		time.Sleep(2 * time.Millisecond)
		n, err := m.Purge(ctx, apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}, time.Millisecond)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		_, err = s.Key(ctx, ids[2])
		assert.ErrorIs(t, err, apikey.ErrNotFound)
	})
}

// TestPurgeKeysCheckpointsSQLite: on SQLite in WAL mode, PurgeKeys copies
// the pages it wrote into the database file before it returns, so that the
// commit of the next writer (a rotation) does not pay for that checkpoint.
// The pool runs no automatic checkpoint (wal_autocheckpoint(0)), and a
// reader of the database file alone (immutable=1, which ignores the WAL)
// sees the purged key gone only if PurgeKeys checkpointed.
func TestPurgeKeysCheckpointsSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keystile.db")
	s := sqliteBackend.store(t, "file:"+path+"?"+sqliteParams+"&_pragma=wal_autocheckpoint(0)", sqlstore.Options{})
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
	require.NoError(t, err)
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	k, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"orders:read"}})
	require.NoError(t, err)
	var busy, logged, copied int
	require.NoError(t, s.DB().QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &copied))
	require.Zero(t, busy, "the key is in the database file")
	_, err = m.Revoke(ctx, owner, k.View.ID)
	require.NoError(t, err)

	inFile := func(id string) bool { // a connection of its own: an immutable one keeps its cache
		file, err := sql.Open("sqlite", "file:"+path+"?immutable=1")
		require.NoError(t, err)
		defer file.Close()
		var n int
		require.NoError(t, file.QueryRowContext(ctx, "SELECT COUNT(*) FROM keystile_keys WHERE id = ?", id).Scan(&n))
		return n == 1
	}
	require.True(t, inFile(k.View.ID), "the revocation is in the WAL only")

	time.Sleep(2 * time.Millisecond)
	purged, err := s.PurgeKeys(ctx, time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, purged, 1)
	assert.Equal(t, k.View.ID, purged[0].ID)
	assert.False(t, inFile(k.View.ID), "the deletion was copied into the database file")
	def, err := s.DefaultKey(ctx, apikey.DefaultAccount, apikey.Production, apikey.Server)
	require.NoError(t, err)
	assert.True(t, inFile(def.ID), "the database file holds the other keys")
}
