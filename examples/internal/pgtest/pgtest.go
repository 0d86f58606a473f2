// Package pgtest gives tests an empty PostgreSQL schema of their own on the
// server named by KEYSTILE_POSTGRES_DSN (scripts/test.sh starts one). It is
// test support: it registers the pgx driver, which is why it lives in the
// examples module.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// DSN returns KEYSTILE_POSTGRES_DSN. Without it the test skips, except in CI
// (CI=true), where it fails: scripts/test.sh always provides a server, so a
// PostgreSQL test never passes there without running.
func DSN(tb testing.TB) string {
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

// FreshSchema creates an empty schema named prefix_<random hex> and returns
// a DSN for driver "pgx" that selects it (search_path) and names its
// connections after it (application_name, to find or end them). The schema
// is dropped when tb ends.
func FreshSchema(tb testing.TB, prefix string) string {
	tb.Helper()
	dsn, drop, err := NewSchema(DSN(tb), prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Log(err)
		}
	})
	return dsn
}

// NewSchema is FreshSchema for a schema that outlives one test, such as a
// large database that several benchmarks share: it creates the schema on
// the server named by dsn, and returns the schema's DSN and the function
// that drops it.
func NewSchema(dsn, prefix string) (schemaDSN string, drop func() error, err error) {
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, fmt.Errorf("opening KEYSTILE_POSTGRES_DSN: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := prefix + "_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("cannot reach the PostgreSQL server at KEYSTILE_POSTGRES_DSN: %w", err)
	}
	drop = func() error {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			return fmt.Errorf("dropping schema %s: %w", schema, err)
		}
		return nil
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			_ = drop()
			return "", nil, fmt.Errorf("KEYSTILE_POSTGRES_DSN is not a valid URL: %w", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		q.Set("application_name", schema)
		u.RawQuery = q.Encode()
		return u.String(), drop, nil
	}
	return dsn + " search_path=" + schema + " application_name=" + schema, drop, nil
}
