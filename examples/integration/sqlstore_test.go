package integration_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // driver "sqlite", for tests only

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/pgtest"
	"github.com/keystile/keystile/storage/sqlstore"
	"github.com/keystile/keystile/storage/storetest"
)

// sqliteParams are the DSN parameters the package doc recommends for
// modernc.org/sqlite.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"

// A backend opens pools on fresh, empty databases of one dialect.
type backend struct {
	name    string
	dialect sqlstore.Dialect
	// fresh returns the DSN of a new, empty database, removed when tb ends.
	fresh func(tb testing.TB) string
	// open opens a pool on a DSN that fresh returned.
	open func(tb testing.TB, dsn string) *sql.DB
}

var sqliteBackend = backend{
	name:    "sqlite",
	dialect: sqlstore.SQLite,
	fresh: func(tb testing.TB) string {
		return "file:" + filepath.Join(tb.TempDir(), "keystile.db") + "?" + sqliteParams
	},
	open: func(tb testing.TB, dsn string) *sql.DB {
		db, err := sql.Open("sqlite", dsn)
		require.NoError(tb, err)
		return db
	},
}

var postgresBackend = backend{
	name:    "postgres",
	dialect: sqlstore.Postgres,
	fresh:   func(tb testing.TB) string { return pgtest.FreshSchema(tb, "keystile_test") },
	open: func(tb testing.TB, dsn string) *sql.DB {
		db, err := sql.Open("pgx", dsn)
		require.NoError(tb, err)
		// Many pools share one server in the tests: stay well below
		// max_connections.
		db.SetMaxOpenConns(8)
		return db
	},
}

// store opens a migrated store on dsn, closed when tb ends.
func (b backend) store(tb testing.TB, dsn string, opts sqlstore.Options) *sqlstore.Store {
	tb.Helper()
	db := b.open(tb, dsn)
	tb.Cleanup(func() { db.Close() })
	opts.Dialect = b.dialect
	s, err := sqlstore.New(db, opts)
	require.NoError(tb, err)
	require.NoError(tb, s.Migrate(context.Background()))
	return s
}

// config returns the conformance suite's configuration: a fresh database per
// store, and peers that are other pools on the same database.
func (b backend) config() storetest.Config {
	var (
		mu   sync.Mutex
		dsns = map[apikey.Store]string{}
	)
	return storetest.Config{
		New: func(tb testing.TB) apikey.Store {
			dsn := b.fresh(tb)
			s := b.store(tb, dsn, sqlstore.Options{})
			mu.Lock()
			dsns[s] = dsn
			mu.Unlock()
			return s
		},
		Peer: func(tb testing.TB, s apikey.Store) apikey.Store {
			mu.Lock()
			dsn := dsns[s]
			mu.Unlock()
			return b.store(tb, dsn, sqlstore.Options{})
		},
		Require: storetest.All,
	}
}

var backends = []backend{sqliteBackend, postgresBackend}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.dialect == sqlstore.Postgres {
				pgtest.DSN(t)
			}
			storetest.Run(t, b.config())
		})
	}
}

// TestConformanceSQLiteMinimalDSN runs the suite on SQLite with only a busy
// timeout: no WAL, no _txlock. Apply must not depend on either.
func TestConformanceSQLiteMinimalDSN(t *testing.T) {
	b := sqliteBackend
	b.fresh = func(tb testing.TB) string {
		return "file:" + filepath.Join(tb.TempDir(), "keystile.db") + "?_pragma=busy_timeout(10000)"
	}
	storetest.Run(t, b.config())
}
