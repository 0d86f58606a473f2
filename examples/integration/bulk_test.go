package integration_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/pgtest"
	"github.com/keystile/keystile/storage/sqlstore"
)

// This file loads large databases for the scale benchmarks
// (scale_bench_test.go): a million keys in one environment, or many
// accounts. The loaders write rows straight into the tables, many rows per
// INSERT and one transaction per load, as no user of the library would;
// they are test code, not API. Every loaded key has the same precomputed
// hash (apikey.TestParams): hashing is not what the benchmarks measure, and
// hashing a million keys would take longer than the load. Loaded keys take
// revisions from the store's counter but write no change-feed entries: a
// feed reader sees them as history that was pruned.

// TestMain drops, after the tests and benchmarks, the databases that
// several benchmarks share (see sharedDatabase).
func TestMain(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	for _, drop := range sharedDrops {
		if err := drop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	sharedMu.Unlock()
	os.Exit(code)
}

var (
	sharedMu    sync.Mutex
	sharedDSNs  = map[string]string{} // by backend and name
	sharedDrops []func() error
)

// sharedDatabase returns the DSN of a database of backend b that lives
// until the test binary ends, filled by fill the first time it is asked
// for: the million-key environment is loaded once per engine, not once per
// benchmark and -count.
func sharedDatabase(tb testing.TB, b backend, name string, fill func(dsn string)) string {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	key := b.name + "/" + name
	if dsn, ok := sharedDSNs[key]; ok {
		return dsn
	}
	var dsn string
	switch b.dialect {
	case sqlstore.Postgres:
		schemaDSN, drop, err := pgtest.NewSchema(pgtest.DSN(tb), "keystile_bench")
		require.NoError(tb, err)
		dsn = schemaDSN
		sharedDrops = append(sharedDrops, drop)
	default:
		dir, err := os.MkdirTemp("", "keystile-bench")
		require.NoError(tb, err)
		dsn = "file:" + filepath.Join(dir, "keystile.db") + "?" + sqliteParams
		sharedDrops = append(sharedDrops, func() error { return os.RemoveAll(dir) })
	}
	fill(dsn)
	sharedDSNs[key] = dsn
	return dsn
}

// bulkKey is the id of the i-th loaded key: 12 base62 characters, spread
// over the id space as generated ids are (an odd multiplier is a bijection
// of uint64, so the ids are distinct).
func bulkKey(i int) string {
	v := uint64(i+1) * 0x9E3779B97F4A7C15
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [apikey.IDLength]byte
	for j := len(b) - 1; j >= 0; j-- {
		b[j] = digits[v%62]
		v /= 62
	}
	return string(b[:])
}

// bulkCreatedAt is the creation time of the i-th loaded key: one
// microsecond apart from start, so that creation order is load order.
func bulkCreatedAt(start time.Time, i int) time.Time {
	return start.Add(time.Duration(i) * time.Microsecond)
}

// bulkHash is the hash every loaded key shares: that of a real key, with
// apikey.TestParams.
var bulkHash = sync.OnceValue(func() string {
	key, err := apikey.GenerateKey(apikey.Server)
	if err != nil {
		panic(err)
	}
	hash, err := apikey.Argon2id{Params: apikey.TestParams}.Hash([]byte(key.Reveal()))
	if err != nil {
		panic(err)
	}
	return hash
})

// loadKeys inserts n server keys (not default ones, scoped orders:read)
// into an account's environment, created from start on (see
// bulkCreatedAt), and returns how long it took. The environment's settings
// and default keys are not loaded: bootstrap it through a Manager.
func loadKeys(tb testing.TB, s *sqlstore.Store, account, environment string, n int, start time.Time) time.Duration {
	tb.Helper()
	begin := time.Now()
	columns := []string{"id", "account", "type", "environment", "name", "owner", "metadata", "scopes", "is_default",
		"created_at", "created_by", "hash", "revision"}
	hash := bulkHash()
	bulkLoad(tb, s, "keystile_keys", columns, n, func(i int, rev int64) []any {
		return []any{bulkKey(i), account, string(apikey.Server), environment, "bulk", "", nil, `["orders:read"]`, false,
			bulkCreatedAt(start, i).UnixMicro(), "bulk-loader", hash, rev}
	})
	return time.Since(begin)
}

// benchEnvironments are the environments of every account that
// loadAccounts loads.
var benchEnvironments = []string{apikey.Development, apikey.Production, apikey.Staging}

// benchAccount is the id of the i-th account that loadAccounts loads.
func benchAccount(i int) string { return fmt.Sprintf("acct-%07d", i) }

// loadAccounts inserts the settings of n accounts (benchAccount(0) to
// benchAccount(n-1)), each with the three benchEnvironments, each allowing
// two origins (an exact one and a subdomain wildcard), for the validator's
// start over many accounts (middleware.New reads every environment's
// allowed origins). It loads no keys: starting a validator reads none. It
// returns how long it took.
func loadAccounts(tb testing.TB, s *sqlstore.Store, n int) time.Duration {
	tb.Helper()
	begin := time.Now()
	columns := []string{"account", "environment", "allowed_origins", "updated_at", "closed_at", "revision"}
	now := time.Now().UnixMicro()
	envs := len(benchEnvironments)
	bulkLoad(tb, s, "keystile_settings", columns, n*envs, func(i int, rev int64) []any {
		account, env := benchAccount(i/envs), benchEnvironments[i%envs]
		origins := fmt.Sprintf(`["https://%[1]s.example.com","https://*.%[1]s.example.com"]`, account)
		return []any{account, env, origins, now, nil, rev}
	})
	return time.Since(begin)
}

// bulkLoad inserts n rows into table in one transaction, many rows per
// INSERT. row returns the values of the columns of row i, whose revision
// is rev. The transaction first takes n revisions from the store's counter,
// as Apply does.
func bulkLoad(tb testing.TB, s *sqlstore.Store, table string, columns []string, n int, row func(i int, rev int64) []any) {
	tb.Helper()
	ctx := context.Background()
	tx, err := s.DB().BeginTx(ctx, nil)
	require.NoError(tb, err)
	defer func() { _ = tx.Rollback() }()
	if s.Dialect() == sqlstore.SQLite {
		// A page cache that holds the indexes being filled (256 MiB, for
		// this connection only): with the default 2 MiB, inserts in
		// random id order spill and rewrite the same pages to the WAL over
		// and over, and the load takes several times as long.
		_, err := tx.ExecContext(ctx, "PRAGMA cache_size = -262144")
		require.NoError(tb, err)
	}
	var top int64
	require.NoError(tb, tx.QueryRowContext(ctx,
		placeholders(s.Dialect(), "UPDATE keystile_revision SET value = value + ? WHERE id = 1 RETURNING value"), n).Scan(&top))
	first := top - int64(n) + 1

	// At most 10,000 values per statement: within the limits of both
	// engines (SQLite 32,766 variables, PostgreSQL 65,535 parameters).
	perInsert := min(1000, 10_000/len(columns))
	rowPlaceholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	var stmt *sql.Stmt
	for done := 0; done < n; {
		rows := min(perInsert, n-done)
		if stmt == nil || rows != perInsert {
			query := "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES " +
				strings.TrimSuffix(strings.Repeat(rowPlaceholders+", ", rows), ", ")
			stmt, err = tx.PrepareContext(ctx, placeholders(s.Dialect(), query))
			require.NoError(tb, err)
		}
		args := make([]any, 0, rows*len(columns))
		for i := done; i < done+rows; i++ {
			args = append(args, row(i, first+int64(i))...)
		}
		_, err := stmt.ExecContext(ctx, args...)
		require.NoError(tb, err)
		done += rows
	}
	require.NoError(tb, tx.Commit())
	if s.Dialect() == sqlstore.Postgres {
		// Fresh statistics, as autovacuum would gather after a load: the
		// planner then knows how large the table is.
		_, err := s.DB().ExecContext(ctx, "ANALYZE "+table)
		require.NoError(tb, err)
	}
}

// placeholders rewrites '?' as $1, $2... for PostgreSQL.
func placeholders(d sqlstore.Dialect, query string) string {
	if d != sqlstore.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// TestBulkLoaders checks the benchmarks' loaders on a small scale: the
// loaded keys page in creation order and coexist with an environment
// bootstrapped by a Manager, and the loaded accounts list and page as
// accounts and environments.
func TestBulkLoaders(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		start := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
		loadKeys(t, s, apikey.DefaultAccount, apikey.Production, 2500, start)
		loadAccounts(t, s, 10)
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
		require.NoError(t, err)
		_, err = m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)

		page, err := s.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production,
			After: apikey.KeyPosition{CreatedAt: bulkCreatedAt(start, 1249), ID: bulkKey(1249)}, Limit: 3})
		require.NoError(t, err)
		require.Len(t, page, 3)
		for i, r := range page {
			assert.Equal(t, bulkKey(1250+i), r.ID)
			assert.Equal(t, bulkCreatedAt(start, 1250+i), r.CreatedAt)
		}
		def, err := s.DefaultKey(ctx, apikey.DefaultAccount, apikey.Production, apikey.Server)
		require.NoError(t, err)
		assert.Equal(t, "default", def.Name)
		all, err := m.List(ctx, owner, apikey.Production, apikey.Page{Limit: apikey.MaxPageSize})
		require.NoError(t, err)
		assert.Len(t, all.Keys, apikey.MaxPageSize)

		accounts, err := s.Accounts(ctx, benchAccount(3), 4)
		require.NoError(t, err)
		assert.Equal(t, []string{benchAccount(4), benchAccount(5), benchAccount(6), benchAccount(7)}, accounts)
		envs, err := s.Environments(ctx, apikey.EnvironmentQuery{Account: benchAccount(9), Limit: 10})
		require.NoError(t, err)
		require.Len(t, envs, 3)
		assert.Equal(t, []string{"https://acct-0000009.example.com", "https://*.acct-0000009.example.com"}, envs[1].AllowedOrigins)
		for _, e := range envs[1].AllowedOrigins {
			_, err := apikey.ParseOrigin(e)
			assert.NoError(t, err)
		}
	})
}
