// Package exampledb opens the store that the example programs share: a SQLite
// file by default, or a PostgreSQL database for a postgres:// DSN. It is where
// the drivers are imported; the library itself imports none.
package exampledb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite", pure Go

	"github.com/keystile/keystile/storage/sqlstore"
)

// sqliteParams are the connection settings keystile recommends for SQLite:
// wait for locks instead of failing, write-ahead logging so that readers
// never block, and transactions that take the write lock up front.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"

// Open opens and migrates the store at dsn: a postgres:// or postgresql://
// URL, or else a SQLite file path (created if missing). Close the store's
// DB when done.
func Open(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	driver, dialect, source := "sqlite", sqlstore.SQLite, "file:"+dsn+"?"+sqliteParams
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		driver, dialect, source = "pgx", sqlstore.Postgres, dsn
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", dialect, err)
	}
	store, err := sqlstore.New(db, sqlstore.Options{Dialect: dialect})
	if err == nil {
		err = store.Migrate(ctx)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s database: %w", dialect, err)
	}
	return store, nil
}
