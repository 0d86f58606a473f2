package integration_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

// TestRecordCallersOfUnstorableUserAgent: a batch of callers in which one
// user agent holds a NUL byte (valid UTF-8, which PostgreSQL's text
// refuses; a request built by a non-net/http adapter can carry it) is
// written whole, that user agent without it, so that the callers of every
// other key in the batch are kept, and the batch is not restored and
// retried at every write.
func TestRecordCallersOfUnstorableUserAgent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		seen := fixtureNow.Add(time.Minute)
		err := s.RecordCallers(ctx, []apikey.KeyCallers{
			{Account: "acme", KeyID: "aaaaaaaaaaaa", Callers: []apikey.Caller{{Address: "192.0.2.1", UserAgent: "bad\x00agent", Requests: 1, FirstSeen: seen, LastSeen: seen}}},
			{Account: "globex", KeyID: "bbbbbbbbbbbb", Callers: []apikey.Caller{{Address: "192.0.2.2", UserAgent: "curl/8.5", Requests: 1, FirstSeen: seen, LastSeen: seen}}},
		})
		require.NoError(t, err, "a user agent the store cannot hold does not fail the batch")
		got, err := s.Callers(ctx, "bbbbbbbbbbbb")
		require.NoError(t, err)
		assert.Len(t, got.Callers, 1, "another account's key keeps its caller")
		got, err = s.Callers(ctx, "aaaaaaaaaaaa")
		require.NoError(t, err)
		require.Len(t, got.Callers, 1)
		assert.Equal(t, "badagent", got.Callers[0].UserAgent, "stored without the NUL")
	})
}
