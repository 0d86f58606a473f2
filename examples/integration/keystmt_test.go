package integration_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/pgtest"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestKeyLeavesPostgresStatementsToTheDriver: on PostgreSQL, Key prepares
// no statement of its own, so that a pool in pgx's simple-protocol mode
// (the setting for PgBouncer in transaction mode) creates no prepared
// statement on the server. (SQLite's Key uses a prepared statement.)
func TestKeyLeavesPostgresStatementsToTheDriver(t *testing.T) {
	dsn := pgtest.FreshSchema(t, "keystile_stmt")
	if strings.Contains(dsn, "://") {
		dsn += "&default_query_exec_mode=simple_protocol"
	} else {
		dsn += " default_query_exec_mode=simple_protocol"
	}
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1) // the query below sees the connection Key used
	s, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.Postgres})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Migrate(ctx))
	for range 2 {
		_, err = s.Key(ctx, "nosuchkey000")
		require.ErrorIs(t, err, apikey.ErrNotFound)
	}
	var prepared int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_statements`).Scan(&prepared))
	require.Zero(t, prepared, "statements prepared on the server")
}
