package middleware_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // driver "sqlite", for tests only

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/faulttest"
	"github.com/keystile/keystile/internal/pgtest"
	"github.com/keystile/keystile/storage/memory"
	"github.com/keystile/keystile/storage/sqlstore"
)

var faultBackends = []faulttest.Backend{
	{Name: "memory", Open: func(t *testing.T) (apikey.Store, func() apikey.Store) {
		s := memory.New()
		return s, func() apikey.Store { return s }
	}},
	{Name: "sqlite", Open: func(t *testing.T) (apikey.Store, func() apikey.Store) {
		dsn := "file:" + filepath.Join(t.TempDir(), "keystile.db") +
			"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
		return openSQL(t, "sqlite", sqlstore.SQLite, dsn), func() apikey.Store { return openSQL(t, "sqlite", sqlstore.SQLite, dsn) }
	}},
	{Name: "postgres", Postgres: true, Open: func(t *testing.T) (apikey.Store, func() apikey.Store) {
		dsn := pgtest.FreshSchema(t, "keystile_fault")
		return openSQL(t, "pgx", sqlstore.Postgres, dsn), func() apikey.Store { return openSQL(t, "pgx", sqlstore.Postgres, dsn) }
	}},
}

// openSQL opens a migrated sqlstore on dsn, closed when t ends.
func openSQL(t *testing.T, driver string, d sqlstore.Dialect, dsn string) *sqlstore.Store {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8) // keep the connections that testConnectionsKilled kills
	t.Cleanup(func() { db.Close() })
	s, err := sqlstore.New(db, sqlstore.Options{Dialect: d})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(context.Background()))
	return s
}

func TestStorageFaults(t *testing.T) { faulttest.StorageFaults(t, faultBackends...) }

func TestSecretsNeverLeak(t *testing.T) { faulttest.SecretsNeverLeak(t, faultBackends...) }
