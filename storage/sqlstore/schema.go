package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"
)

// A migration is one schema version: statements run in order, in one
// transaction with the others of the same Migrate call.
type migration struct {
	version    int
	statements []string
}

// migrations lists each dialect's schema versions, oldest first. Never edit
// a released version: append a new one. Both dialects keep the same version
// numbers, so that a version means the same schema everywhere.
//
// Times are BIGINT microseconds since the Unix epoch, UTC, exact in both
// dialects; NULL means the zero time ("never") where a column may be unset.
// Lists (scopes, origins) are JSON arrays of strings; NULL means none.
var migrations = map[Dialect][]migration{
	SQLite: {{version: 1, statements: []string{
		`CREATE TABLE keystile_keys (
			id           TEXT    NOT NULL PRIMARY KEY,
			type         TEXT    NOT NULL,
			environment  TEXT    NOT NULL,
			name         TEXT    NOT NULL,
			scopes       TEXT,
			is_default   BOOLEAN NOT NULL,
			created_at   BIGINT  NOT NULL,
			created_by   TEXT    NOT NULL,
			expires_at   BIGINT,
			rotated_at   BIGINT,
			expiry_limit BIGINT,
			revoked_at   BIGINT,
			last_used_at BIGINT,
			hash         TEXT    NOT NULL,
			recoverable  BLOB,
			revision     BIGINT  NOT NULL
		) WITHOUT ROWID`,
		`CREATE INDEX keystile_keys_environment ON keystile_keys (environment, created_at, id)`,
		`CREATE UNIQUE INDEX keystile_keys_one_default ON keystile_keys (environment, type) WHERE is_default`,
		`CREATE TABLE keystile_settings (
			environment     TEXT   NOT NULL PRIMARY KEY,
			allowed_origins TEXT,
			updated_at      BIGINT NOT NULL,
			revision        BIGINT NOT NULL
		) WITHOUT ROWID`,
		`CREATE TABLE keystile_events (
			seq         INTEGER PRIMARY KEY AUTOINCREMENT,
			occurred_at BIGINT NOT NULL,
			actor_id    TEXT   NOT NULL,
			actor_role  TEXT   NOT NULL,
			action      TEXT   NOT NULL,
			environment TEXT   NOT NULL,
			key_id      TEXT   NOT NULL,
			detail      TEXT   NOT NULL
		)`,
		`CREATE INDEX keystile_events_environment ON keystile_events (environment, seq)`,
		`CREATE TABLE keystile_changes (
			revision    INTEGER NOT NULL PRIMARY KEY,
			environment TEXT    NOT NULL,
			key_id      TEXT    NOT NULL
		)`,
		`CREATE TABLE keystile_revision (
			id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			value BIGINT  NOT NULL
		)`,
		`INSERT INTO keystile_revision (id, value) VALUES (1, 0)`,
	}}},
	// PostgreSQL text columns that are compared or sorted use the "C"
	// collation, so that the order is byte order, as in SQLite and the
	// memory store, whatever the database's locale.
	Postgres: {{version: 1, statements: []string{
		`CREATE TABLE keystile_keys (
			id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
			type         TEXT COLLATE "C" NOT NULL,
			environment  TEXT COLLATE "C" NOT NULL,
			name         TEXT    NOT NULL,
			scopes       TEXT,
			is_default   BOOLEAN NOT NULL,
			created_at   BIGINT  NOT NULL,
			created_by   TEXT    NOT NULL,
			expires_at   BIGINT,
			rotated_at   BIGINT,
			expiry_limit BIGINT,
			revoked_at   BIGINT,
			last_used_at BIGINT,
			hash         TEXT    NOT NULL,
			recoverable  BYTEA,
			revision     BIGINT  NOT NULL
		)`,
		`CREATE INDEX keystile_keys_environment ON keystile_keys (environment, created_at, id)`,
		`CREATE UNIQUE INDEX keystile_keys_one_default ON keystile_keys (environment, type) WHERE is_default`,
		`CREATE TABLE keystile_settings (
			environment     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
			allowed_origins TEXT,
			updated_at      BIGINT NOT NULL,
			revision        BIGINT NOT NULL
		)`,
		`CREATE TABLE keystile_events (
			seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			occurred_at BIGINT NOT NULL,
			actor_id    TEXT   NOT NULL,
			actor_role  TEXT   NOT NULL,
			action      TEXT   NOT NULL,
			environment TEXT COLLATE "C" NOT NULL,
			key_id      TEXT   NOT NULL,
			detail      TEXT   NOT NULL
		)`,
		`CREATE INDEX keystile_events_environment ON keystile_events (environment, seq)`,
		`CREATE TABLE keystile_changes (
			revision    BIGINT NOT NULL PRIMARY KEY,
			environment TEXT   NOT NULL,
			key_id      TEXT   NOT NULL
		)`,
		`CREATE TABLE keystile_revision (
			id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			value BIGINT  NOT NULL
		)`,
		`INSERT INTO keystile_revision (id, value) VALUES (1, 0)`,
	}}},
}

// SchemaVersion is the newest schema version this package knows; Migrate
// brings a database up to it.
const SchemaVersion = 1

// migrationsTable records the applied schema versions. It is not named
// schema_migrations, which other migration tools own in many databases.
const migrationsTable = `CREATE TABLE IF NOT EXISTS keystile_schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	applied_at BIGINT  NOT NULL
)`

// migrationLockID is the PostgreSQL advisory lock that serialises Migrate
// calls from several processes ("keystile" in ASCII).
const migrationLockID = 0x6b65797374696c65

// Migrate creates or upgrades the store's tables to SchemaVersion. It is
// idempotent: versions already applied are skipped, so every process may call
// it at start-up. Concurrent calls, also from several processes, are
// serialised (a PostgreSQL advisory lock; SQLite's write lock through BEGIN
// IMMEDIATE), and each call applies all missing versions in one transaction,
// so a failed call changes nothing. A database whose schema is newer than
// this package's is an error: upgrade keystile instead.
func (s *Store) Migrate(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(ctx, "migrate", err)
	}
	if s.d == Postgres {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return s.wrap(ctx, "migrate", err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(migrationLockID))); err != nil {
			_ = tx.Rollback()
			return s.wrap(ctx, "migrate: taking the migration lock", err)
		}
		if err := s.migrate(ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return s.wrap(ctx, "migrate: commit", tx.Commit())
	}

	// SQLite: database/sql's BeginTx would start a deferred transaction,
	// which cannot wait for the write lock once it has read the schema;
	// BEGIN IMMEDIATE on a dedicated connection takes the lock first.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.wrap(ctx, "migrate", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return s.wrap(ctx, "migrate: BEGIN IMMEDIATE", err)
	}
	if err := s.migrate(ctx, conn); err != nil {
		rollback(conn)
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		rollback(conn)
		return s.wrap(ctx, "migrate: commit", err)
	}
	return nil
}

// rollback ends a transaction begun by hand on conn; if it cannot, it
// discards the connection so that no later user inherits the transaction.
func rollback(conn *sql.Conn) {
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrate applies the missing versions inside the caller's transaction.
func (s *Store) migrate(ctx context.Context, tx execQuerier) error {
	if _, err := tx.ExecContext(ctx, migrationsTable); err != nil {
		return s.wrap(ctx, "migrate: creating keystile_schema_migrations", err)
	}
	var current sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT MAX(version) FROM keystile_schema_migrations").Scan(&current); err != nil {
		return s.wrap(ctx, "migrate: reading the schema version", err)
	}
	if current.Int64 > SchemaVersion {
		return fmt.Errorf("sqlstore: migrate: the database has schema version %d, newer than this package's %d; upgrade keystile",
			current.Int64, SchemaVersion)
	}
	for _, m := range migrations[s.d] {
		if int64(m.version) <= current.Int64 {
			continue
		}
		for _, stmt := range m.statements {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return s.wrap(ctx, fmt.Sprintf("migrate: version %d", m.version), err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.rebind("INSERT INTO keystile_schema_migrations (version, applied_at) VALUES (?, ?)"),
			m.version, time.Now().UnixMicro()); err != nil {
			return s.wrap(ctx, fmt.Sprintf("migrate: recording version %d", m.version), err)
		}
	}
	return nil
}
