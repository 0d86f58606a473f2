package exampledb

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/pgtest"
	"github.com/keystile/keystile/storage/sqlstore"
)

// files lists the names in dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestOpenForSQLite: only Create makes a database; Migrate and ReadOnly
// refuse a missing file or one without keystile tables with ErrNoDatabase
// and leave the directory as it was.
func TestOpenForSQLite(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		access Access
	}{
		{"migrate", Migrate},
		{"read-only", ReadOnly},
	} {
		t.Run(tc.name+"/missing file", func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "keystile.db")
			_, err := OpenFor(ctx, db, tc.access)
			require.ErrorIs(t, err, ErrNoDatabase)
			assert.Contains(t, err.Error(), db+": the file does not exist")
			assert.Empty(t, files(t, dir), "nothing created")
		})
		t.Run(tc.name+"/missing directory", func(t *testing.T) {
			dir := t.TempDir()
			_, err := OpenFor(ctx, filepath.Join(dir, "no-such-dir", "keystile.db"), tc.access)
			require.ErrorIs(t, err, ErrNoDatabase)
			assert.Empty(t, files(t, dir), "nothing created")
		})
		t.Run(tc.name+"/empty file", func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "keystile.db")
			require.NoError(t, os.WriteFile(db, nil, 0o600))
			_, err := OpenFor(ctx, db, tc.access)
			require.ErrorIs(t, err, ErrNoDatabase)
			assert.Contains(t, err.Error(), "no keystile tables")
			assert.Equal(t, []string{"keystile.db"}, files(t, dir), "nothing created")
			info, err := os.Stat(db)
			require.NoError(t, err)
			assert.Zero(t, info.Size(), "nothing written")
		})
		t.Run(tc.name+"/keystile database", func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "keystile.db")
			store, err := Open(ctx, db)
			require.NoError(t, err)
			require.NoError(t, store.DB().Close())
			store, err = OpenFor(ctx, db, tc.access)
			require.NoError(t, err)
			defer store.DB().Close()
			_, err = store.Environments(ctx, apikey.EnvironmentQuery{Limit: 1})
			assert.NoError(t, err)
		})
	}
	t.Run("create", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "keystile.db")
		store, err := OpenFor(ctx, db, Create)
		require.NoError(t, err)
		defer store.DB().Close()
		_, err = store.Environments(ctx, apikey.EnvironmentQuery{Limit: 1})
		assert.NoError(t, err)
	})
}

// TestOpenForSchemaVersion: ReadOnly refuses a schema newer than the
// current one and an older one, which it would have to migrate; Migrate and
// Create leave an older one to sqlstore's Migrate.
func TestOpenForSchemaVersion(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "keystile.db")
	store, err := Open(ctx, db)
	require.NoError(t, err)
	defer store.DB().Close()
	// The newest version recorded becomes one this program does not know.
	_, err = store.DB().Exec(`UPDATE keystile_schema_migrations SET version = ? WHERE version = ?`, sqlstore.SchemaVersion+1, sqlstore.SchemaVersion)
	require.NoError(t, err)
	_, err = OpenFor(ctx, db, ReadOnly)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "newer than")
	_, err = store.DB().Exec(`UPDATE keystile_schema_migrations SET version = ? WHERE version = ?`, sqlstore.SchemaVersion, sqlstore.SchemaVersion+1)
	require.NoError(t, err)

	// An older schema: the database's version against a newer program's.
	for _, tc := range []struct {
		access Access
		says   string
	}{
		{ReadOnly, "older than this program's"},
		{Migrate, ""},
		{Create, ""},
	} {
		err := checkSchema(ctx, store.DB(), sqlstore.SQLite, tc.access, "", sqlstore.SchemaVersion+1)
		if tc.says == "" {
			assert.NoError(t, err, "access %d", tc.access)
		} else {
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.says)
		}
	}
}

// TestOpenForPostgres: the same rules on PostgreSQL, where Migrate and
// ReadOnly refuse a schema without keystile tables and create none.
func TestOpenForPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.FreshSchema(t, "exampledb")
	tables := func() int {
		t.Helper()
		db, err := sql.Open("pgx", dsn)
		require.NoError(t, err)
		defer db.Close()
		var n int
		require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()`).Scan(&n))
		return n
	}
	for _, access := range []Access{Migrate, ReadOnly} {
		_, err := OpenFor(ctx, dsn, access)
		require.ErrorIs(t, err, ErrNoDatabase)
		assert.NotContains(t, err.Error(), dsn, "the URL, which may hold a password, is never repeated")
		assert.False(t, strings.Contains(err.Error(), "postgres://"))
		assert.Zero(t, tables(), "nothing created")
	}
	store, err := OpenFor(ctx, dsn, Create)
	require.NoError(t, err)
	require.NoError(t, store.DB().Close())
	assert.NotZero(t, tables())
	for _, access := range []Access{Migrate, ReadOnly} {
		store, err := OpenFor(ctx, dsn, access)
		require.NoError(t, err)
		_, err = store.Environments(ctx, apikey.EnvironmentQuery{Limit: 1})
		assert.NoError(t, err)
		require.NoError(t, store.DB().Close())
	}
}
