package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx", for tests only
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // driver "sqlite", for tests only

	"github.com/keystile/keystile/apikey"
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
	fresh:   freshPostgres,
	open: func(tb testing.TB, dsn string) *sql.DB {
		db, err := sql.Open("pgx", dsn)
		require.NoError(tb, err)
		// Many pools share one server in the tests: stay well below
		// max_connections.
		db.SetMaxOpenConns(8)
		return db
	},
}

// postgresDSN returns the server that PostgreSQL tests use. Without one they
// skip, except in CI, where they fail: scripts/test.sh always provides one.
func postgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("KEYSTILE_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("KEYSTILE_POSTGRES_DSN is empty in CI: run ./scripts/test.sh, which starts a PostgreSQL server")
		}
		tb.Skip("PostgreSQL tests need a server: set KEYSTILE_POSTGRES_DSN or run ./scripts/test.sh")
	}
	return dsn
}

// freshPostgres creates an empty schema on the test server and returns a DSN
// whose search_path selects it; the schema is dropped when tb ends.
func freshPostgres(tb testing.TB) string {
	tb.Helper()
	dsn := postgresDSN(tb)
	admin, err := sql.Open("pgx", dsn)
	require.NoError(tb, err)
	tb.Cleanup(func() { admin.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "keystile_test_" + hex.EncodeToString(b[:])
	_, err = admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema)
	require.NoError(tb, err, "cannot reach the PostgreSQL server at KEYSTILE_POSTGRES_DSN")
	tb.Cleanup(func() {
		_, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		if err != nil {
			tb.Logf("dropping schema %s: %v", schema, err)
		}
	})
	return withSearchPath(tb, dsn, schema)
}

// withSearchPath adds search_path to a URL or key=value DSN; pgx sends it to
// the server as a run-time parameter.
func withSearchPath(tb testing.TB, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		require.NoError(tb, err)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
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
	}
}

var backends = []backend{sqliteBackend, postgresBackend}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.dialect == sqlstore.Postgres {
				postgresDSN(t)
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
