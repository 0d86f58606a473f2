// Package exampledb opens the store that the example programs share: a SQLite
// file by default, or a PostgreSQL database for a postgres:// DSN. It is where
// the drivers are imported; the library itself imports none.
package exampledb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite", pure Go

	"github.com/keystile/keystile/storage/sqlstore"
)

// sqliteParams are the connection settings keystile recommends for SQLite:
// wait for locks instead of failing, write-ahead logging so that readers
// never block, and transactions that take the write lock up front.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"

// sqliteReadParams are those of a ReadOnly open: no journal mode, whose
// setting is a write (the database that bootstrap made is in WAL mode
// already), and mode=rw, which refuses to create a missing file.
// poolSize bounds the connections of the store's pool, all of them kept
// open between uses.
const poolSize = 16

const sqliteReadParams = "mode=rw&_pragma=busy_timeout(10000)"

// ErrNoDatabase means that OpenFor, told not to create a database, found
// none: no SQLite file at the path, or no keystile tables in the database.
// Nothing was created.
var ErrNoDatabase = errors.New("exampledb: no keystile database")

// Access is what OpenFor may do to the database.
type Access int

const (
	// Create creates what is missing (the SQLite file, keystile's tables)
	// and brings the schema up to date. Open and the example server use it.
	Create Access = iota
	// Migrate needs a keystile database that exists: otherwise it fails
	// with ErrNoDatabase and creates nothing. It brings an older schema up
	// to date.
	Migrate
	// ReadOnly needs a keystile database that exists (else ErrNoDatabase)
	// with the current schema, and writes nothing to it.
	ReadOnly
)

// Open opens and migrates the store at dsn: a postgres:// or postgresql://
// URL, or else a SQLite file path (created if missing). Close the store's
// DB when done. It is OpenFor with Create.
func Open(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	return OpenFor(ctx, dsn, Create)
}

// OpenFor opens the store at dsn, as Open does, doing to the database only
// what access allows. Error messages name a SQLite file by its path but
// never repeat a PostgreSQL URL, which may hold a password. Close the
// store's DB when done.
func OpenFor(ctx context.Context, dsn string, access Access) (*sqlstore.Store, error) {
	driver, dialect, source := "sqlite", sqlstore.SQLite, "file:"+dsn+"?"+sqliteParams
	// check is the source that checkSchema reads through: for SQLite, one
	// that sets no journal mode, which would write to an empty file.
	check := "file:" + dsn + "?" + sqliteReadParams
	where := "" // where the database is, for errors
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		driver, dialect, source, check = "pgx", sqlstore.Postgres, dsn, dsn
	} else if access != Create {
		where = " at " + dsn
		if _, err := os.Stat(dsn); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w%s: the file does not exist", ErrNoDatabase, where)
		}
		source = "file:" + dsn + "?mode=rw&" + sqliteParams // never creates the file
	}
	if access == ReadOnly {
		source = check
	}
	if access != Create {
		if err := checkDatabase(ctx, driver, check, dialect, access, where); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", dialect, err)
	}
	// A pool of poolSize connections, each kept open (storage/sqlstore,
	// Connection pool).
	db.SetMaxOpenConns(poolSize)
	db.SetMaxIdleConns(poolSize)
	store, err := sqlstore.New(db, sqlstore.Options{Dialect: dialect})
	if err == nil && access != ReadOnly {
		err = store.Migrate(ctx)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s database%s: %w", dialect, where, err)
	}
	return store, nil
}

// checkDatabase runs checkSchema on a connection of its own.
func checkDatabase(ctx context.Context, driver, source string, dialect sqlstore.Dialect, access Access, where string) error {
	db, err := sql.Open(driver, source)
	if err != nil {
		return fmt.Errorf("opening %s database: %w", dialect, err)
	}
	defer db.Close()
	err = checkSchema(ctx, db, dialect, access, where, sqlstore.SchemaVersion)
	if err != nil && !errors.Is(err, ErrNoDatabase) {
		return fmt.Errorf("opening %s database%s: %w", dialect, where, err)
	}
	return err
}

// checkSchema fails with ErrNoDatabase if the database has no keystile
// tables, and for ReadOnly if their schema version is not current (that
// of package sqlstore). It only reads.
func checkSchema(ctx context.Context, db *sql.DB, dialect sqlstore.Dialect, access Access, where string, current int) error {
	exists := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'keystile_schema_migrations'`
	if dialect == sqlstore.Postgres {
		exists = `SELECT COUNT(*) FROM pg_catalog.pg_tables
			WHERE schemaname = current_schema() AND tablename = 'keystile_schema_migrations'`
	}
	var n int
	if err := db.QueryRowContext(ctx, exists).Scan(&n); err != nil {
		return err
	}
	var version int
	if n > 0 {
		err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM keystile_schema_migrations`).Scan(&version)
		if err != nil {
			return err
		}
	}
	switch {
	case version == 0 && dialect == sqlstore.Postgres:
		return fmt.Errorf("%w: the database has no keystile tables in its schema", ErrNoDatabase)
	case version == 0:
		return fmt.Errorf("%w%s: the file has no keystile tables", ErrNoDatabase, where)
	case access == ReadOnly && version < current:
		return fmt.Errorf("schema version %d is older than this program's %d: a command that changes keys, or the server, upgrades it",
			version, current)
	case access == ReadOnly && version > current:
		return fmt.Errorf("schema version %d is newer than this program's %d: upgrade keystile", version, current)
	}
	return nil
}
