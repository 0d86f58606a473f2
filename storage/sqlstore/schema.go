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
	}}, {version: 2, statements: sqliteV2}, {version: 3, statements: eventsV3(SQLite)}, {version: 4, statements: limitsV4}, {version: 5, statements: usageV5(SQLite)}, {version: 6, statements: lineageV6}, {version: 7, statements: stateV7}, {version: 8, statements: lifetimeV8}, {version: 9, statements: ownersV9}, {version: 10, statements: ownerLimitsV10}, {version: 11, statements: streamV11(SQLite)}, {version: 12, statements: callersV12(SQLite)}, {version: 13, statements: instancesV13(SQLite)}, {version: 14, statements: instancesV14}, {version: 15, statements: endpointsV15(SQLite)}, {version: 16, statements: deadLettersV16(SQLite)}, {version: 17, statements: deadLettersV17(SQLite)}, {version: 18, statements: returnsV18}},
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
	}}, {version: 2, statements: postgresV2}, {version: 3, statements: eventsV3(Postgres)}, {version: 4, statements: limitsV4}, {version: 5, statements: usageV5(Postgres)}, {version: 6, statements: lineageV6}, {version: 7, statements: stateV7}, {version: 8, statements: lifetimeV8}, {version: 9, statements: ownersV9}, {version: 10, statements: ownerLimitsV10}, {version: 11, statements: streamV11(Postgres)}, {version: 12, statements: callersV12(Postgres)}, {version: 13, statements: instancesV13(Postgres)}, {version: 14, statements: instancesV14}, {version: 15, statements: endpointsV15(Postgres)}, {version: 16, statements: deadLettersV16(Postgres)}, {version: 17, statements: deadLettersV17(Postgres)}, {version: 18, statements: returnsV18}},
}

// SchemaVersion is the newest schema version this package knows; Migrate
// brings a database up to it.
const SchemaVersion = 18

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

// Version 2: accounts. Every key, settings row, audit event and change-feed
// entry carries its account (rows of version 1 join DefaultAccount, "default");
// keys gain an owner and metadata (a JSON object, NULL for none), settings a
// closed_at time, events the acting actor's account and the key's type. The
// indexes answer every question of the store by index:
//   - keys: the default key of an (account, environment, type) by the
//     unique partial index keystile_keys_one_default, a page of an
//     environment's keys by keystile_keys_environment (account,
//     environment, created_at, id);
//   - settings: one environment, a page of environments and the distinct
//     accounts by the primary key (account, environment);
//   - events: the newest page, of everything (the primary key seq), of an
//     account (account, seq), of an account's environment (account,
//     environment, seq) or of an environment in every account (environment,
//     seq).
//
// SQLite cannot change a primary key or add a NOT NULL column without a
// default in place, so version 2 rebuilds its four tables the way SQLite
// documents (https://www.sqlite.org/lang_altertable.html#otheralter): create
// the new table, copy the rows, drop the old one, rename the new one, then
// create its indexes, all inside Migrate's transaction. The schema has no
// foreign keys, triggers or views, so the procedure's steps about them have
// nothing to do. An events table keeps its seq values and its AUTOINCREMENT
// counter, so that a new event never reuses the number of an old one.
var sqliteV2 = []string{
	`CREATE TABLE keystile_keys_v2 (
		id           TEXT    NOT NULL PRIMARY KEY,
		account      TEXT    NOT NULL,
		type         TEXT    NOT NULL,
		environment  TEXT    NOT NULL,
		name         TEXT    NOT NULL,
		owner        TEXT    NOT NULL,
		metadata     TEXT,
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
	`INSERT INTO keystile_keys_v2 (id, account, type, environment, name, owner, metadata, scopes, is_default,
		created_at, created_by, expires_at, rotated_at, expiry_limit, revoked_at, last_used_at, hash, recoverable, revision)
	SELECT id, 'default', type, environment, name, '', NULL, scopes, is_default,
		created_at, created_by, expires_at, rotated_at, expiry_limit, revoked_at, last_used_at, hash, recoverable, revision
	FROM keystile_keys`,
	`DROP TABLE keystile_keys`,
	`ALTER TABLE keystile_keys_v2 RENAME TO keystile_keys`,
	`CREATE INDEX keystile_keys_environment ON keystile_keys (account, environment, created_at, id)`,
	`CREATE UNIQUE INDEX keystile_keys_one_default ON keystile_keys (account, environment, type) WHERE is_default`,

	`CREATE TABLE keystile_settings_v2 (
		account         TEXT   NOT NULL,
		environment     TEXT   NOT NULL,
		allowed_origins TEXT,
		updated_at      BIGINT NOT NULL,
		closed_at       BIGINT,
		revision        BIGINT NOT NULL,
		PRIMARY KEY (account, environment)
	) WITHOUT ROWID`,
	`INSERT INTO keystile_settings_v2 (account, environment, allowed_origins, updated_at, closed_at, revision)
	SELECT 'default', environment, allowed_origins, updated_at, NULL, revision FROM keystile_settings`,
	`DROP TABLE keystile_settings`,
	`ALTER TABLE keystile_settings_v2 RENAME TO keystile_settings`,

	`CREATE TABLE keystile_events_v2 (
		seq           INTEGER PRIMARY KEY AUTOINCREMENT,
		occurred_at   BIGINT NOT NULL,
		actor_id      TEXT   NOT NULL,
		actor_role    TEXT   NOT NULL,
		actor_account TEXT   NOT NULL,
		action        TEXT   NOT NULL,
		account       TEXT   NOT NULL,
		environment   TEXT   NOT NULL,
		key_id        TEXT   NOT NULL,
		key_type      TEXT   NOT NULL,
		detail        TEXT   NOT NULL
	)`,
	// An event's key type is its key's, when the key is known (keys are
	// never deleted, so it is, unless rows were removed by hand).
	`INSERT INTO keystile_events_v2 (seq, occurred_at, actor_id, actor_role, actor_account, action, account,
		environment, key_id, key_type, detail)
	SELECT seq, occurred_at, actor_id, actor_role, '', action, 'default', environment, key_id,
		COALESCE((SELECT k.type FROM keystile_keys k WHERE k.id = e.key_id), ''), detail
	FROM keystile_events e`,
	// The copy set the new table's counter to the largest seq copied; the
	// old counter is at least that (it is never lower than a seq handed
	// out). RENAME carries the counter over to the new name.
	`UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'keystile_events')
	WHERE name = 'keystile_events_v2'`,
	`DROP TABLE keystile_events`,
	`ALTER TABLE keystile_events_v2 RENAME TO keystile_events`,
	`CREATE INDEX keystile_events_account ON keystile_events (account, seq)`,
	`CREATE INDEX keystile_events_account_environment ON keystile_events (account, environment, seq)`,
	`CREATE INDEX keystile_events_environment ON keystile_events (environment, seq)`,

	`CREATE TABLE keystile_changes_v2 (
		revision    INTEGER NOT NULL PRIMARY KEY,
		account     TEXT    NOT NULL,
		environment TEXT    NOT NULL,
		key_id      TEXT    NOT NULL
	)`,
	`INSERT INTO keystile_changes_v2 (revision, account, environment, key_id)
	SELECT revision, 'default', environment, key_id FROM keystile_changes`,
	`DROP TABLE keystile_changes`,
	`ALTER TABLE keystile_changes_v2 RENAME TO keystile_changes`,
}

// postgresV2 is version 2 for PostgreSQL, which changes tables in place:
// a column added with a constant default fills the existing rows without
// rewriting the table (PostgreSQL 11 and later), and the default is then
// dropped, so that a row written without an account fails instead of
// joining the default account.
var postgresV2 = []string{
	`ALTER TABLE keystile_keys
		ADD COLUMN account  TEXT COLLATE "C" NOT NULL DEFAULT 'default',
		ADD COLUMN owner    TEXT NOT NULL DEFAULT '',
		ADD COLUMN metadata TEXT`,
	`ALTER TABLE keystile_keys ALTER COLUMN account DROP DEFAULT, ALTER COLUMN owner DROP DEFAULT`,
	`DROP INDEX keystile_keys_environment`,
	`CREATE INDEX keystile_keys_environment ON keystile_keys (account, environment, created_at, id)`,
	`DROP INDEX keystile_keys_one_default`,
	`CREATE UNIQUE INDEX keystile_keys_one_default ON keystile_keys (account, environment, type) WHERE is_default`,

	`ALTER TABLE keystile_settings
		ADD COLUMN account   TEXT COLLATE "C" NOT NULL DEFAULT 'default',
		ADD COLUMN closed_at BIGINT`,
	`ALTER TABLE keystile_settings ALTER COLUMN account DROP DEFAULT`,
	`ALTER TABLE keystile_settings DROP CONSTRAINT keystile_settings_pkey, ADD PRIMARY KEY (account, environment)`,

	`ALTER TABLE keystile_events
		ADD COLUMN account       TEXT COLLATE "C" NOT NULL DEFAULT 'default',
		ADD COLUMN actor_account TEXT NOT NULL DEFAULT '',
		ADD COLUMN key_type      TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE keystile_events ALTER COLUMN account DROP DEFAULT, ALTER COLUMN actor_account DROP DEFAULT,
		ALTER COLUMN key_type DROP DEFAULT`,
	// An event's key type is its key's, when the key is known.
	`UPDATE keystile_events e SET key_type = k.type FROM keystile_keys k WHERE k.id = e.key_id`,
	`CREATE INDEX keystile_events_account ON keystile_events (account, seq)`,
	`CREATE INDEX keystile_events_account_environment ON keystile_events (account, environment, seq)`,

	`ALTER TABLE keystile_changes ADD COLUMN account TEXT NOT NULL DEFAULT 'default'`,
	`ALTER TABLE keystile_changes ALTER COLUMN account DROP DEFAULT`,
}

// eventsV3 is version 3: audit events are numbered per account. Each event
// gains account_seq, its place in its account's log (apikey.Event.Seq),
// which Apply assigns; existing events are numbered in their order (seq)
// within each account. The unique index (account, account_seq) answers an
// account's newest page and the next number to hand out; (account,
// environment, account_seq) an environment's page. They replace the
// indexes on (account, seq) and (account, environment, seq); the store-wide
// seq stays the primary key, for the order of every account's events and
// the index (environment, seq). UPDATE ... FROM needs SQLite 3.33, within
// the package's 3.35.
func eventsV3(d Dialect) []string {
	statements := []string{
		`ALTER TABLE keystile_events ADD COLUMN account_seq BIGINT NOT NULL DEFAULT 0`,
		`UPDATE keystile_events SET account_seq = numbered.n
		FROM (SELECT seq, ROW_NUMBER() OVER (PARTITION BY account ORDER BY seq) AS n FROM keystile_events) AS numbered
		WHERE keystile_events.seq = numbered.seq`,
		`DROP INDEX keystile_events_account`,
		`DROP INDEX keystile_events_account_environment`,
		`CREATE UNIQUE INDEX keystile_events_account_seq ON keystile_events (account, account_seq)`,
		`CREATE INDEX keystile_events_account_environment ON keystile_events (account, environment, account_seq)`,
	}
	if d == Postgres {
		// A row written without a number fails instead of taking 0.
		statements = append(statements, `ALTER TABLE keystile_events ALTER COLUMN account_seq DROP DEFAULT`)
	}
	return statements
}

// limitsV4 is version 4, the same in both dialects: limits and quotas.
//   - keystile_keys gains limits, the key's apikey.Limits as a JSON object
//     (NULL for none; every key of an earlier version has none).
//   - keystile_quotas holds the balance of each key whose record has a
//     quota (see storage.QuotaLedger), one row per key by its primary key:
//     the quota it was set from (quota_limit, refill, period: "day",
//     "month" or "" for none), the balance, and period_index, the period
//     whose refill the balance holds (days since the Unix epoch for "day",
//     year*12 + month-1 for "month", 0 for ""; NULL for a quota not leased
//     from since it was set, which is full). last_grant is what the latest
//     lease granted, which the lease's UPDATE ... RETURNING reads back.
//     Apply writes the row in the transaction that writes the key: it
//     starts full, is kept while the quota stays the same, keeps what was
//     spent when the quota changes (see storage.QuotaLedger), and is
//     deleted when the quota is removed.
var limitsV4 = []string{
	`ALTER TABLE keystile_keys ADD COLUMN limits TEXT`,
	`CREATE TABLE keystile_quotas (
		key_id       TEXT   NOT NULL PRIMARY KEY,
		quota_limit  BIGINT NOT NULL,
		refill       BIGINT NOT NULL,
		period       TEXT   NOT NULL,
		balance      BIGINT NOT NULL,
		period_index BIGINT,
		last_grant   BIGINT NOT NULL
	)`,
}

// usageV5 is version 5: usage counts (storage.UsageRecorder), one row per
// account, hour, key id and outcome, primary key (account, hour, key_id,
// outcome); a key id names one key across accounts, so its environment is
// a column, not part of the key. hour is the start of the hour, in BIGINT
// microseconds like every time. The indexes answer each selection of
// apikey.UsageQuery in its order (hour, key_id, outcome) by a range scan:
// an account's by the primary key, an environment's by (account,
// environment, hour, key_id, outcome), a key's by (key_id, hour, outcome);
// PruneUsage deletes a range of (hour).
func usageV5(d Dialect) []string {
	text, rowid := `TEXT COLLATE "C"`, ""
	if d == SQLite {
		text, rowid = "TEXT", " WITHOUT ROWID"
	}
	return []string{
		`CREATE TABLE keystile_usage (
			account     ` + text + ` NOT NULL,
			environment ` + text + ` NOT NULL,
			key_id      ` + text + ` NOT NULL,
			hour        BIGINT NOT NULL,
			outcome     ` + text + ` NOT NULL,
			count       BIGINT NOT NULL,
			PRIMARY KEY (account, hour, key_id, outcome)
		)` + rowid,
		`CREATE INDEX keystile_usage_environment ON keystile_usage (account, environment, hour, key_id, outcome)`,
		`CREATE INDEX keystile_usage_key ON keystile_usage (key_id, hour, outcome)`,
		`CREATE INDEX keystile_usage_hour ON keystile_usage (hour)`,
	}
}

// lineageV6 is version 6, the same in both dialects: quota balances per
// rotation lineage.
//   - keystile_keys gains lineage, apikey.Record.Lineage (NULL for none:
//     the key is the first of its lineage).
//   - keystile_quotas.key_id names the lineage whose balance the row holds
//     (apikey.Record.LineageID): every key of a lineage spends from that
//     one row, which only the lineage's key that is not rotated out writes.
//     Rows of earlier versions are keyed by their key's id, which is its
//     lineage id; keys rotated before version 6 keep separate balances.
//   - keystile_quotas gains generation, incremented each time the row's
//     quota changes (see storage.QuotaLease.Generation).
var lineageV6 = []string{
	`ALTER TABLE keystile_keys ADD COLUMN lineage TEXT`,
	`ALTER TABLE keystile_quotas ADD COLUMN generation BIGINT NOT NULL DEFAULT 0`,
}

// stateV7 is version 7, the same in both dialects: reversible switches.
//   - keystile_keys gains disabled_at, apikey.Record.DisabledAt (NULL while
//     the key is enabled; every key of an earlier version is).
//   - keystile_settings gains suspended_at, apikey.Settings.SuspendedAt
//     (NULL while the account is not suspended). Apply's check of
//     Change.OpenAccount counts the suspended environments of the account
//     with its closed ones, in the same read of the primary key.
var stateV7 = []string{
	`ALTER TABLE keystile_keys ADD COLUMN disabled_at BIGINT`,
	`ALTER TABLE keystile_settings ADD COLUMN suspended_at BIGINT`,
}

// ownersV9 is version 9, the same in both dialects: the indexes of keys
// by owner, by expiry and by death, and of rotation lineages. All are
// partial, so that they hold only the keys they answer for:
//   - keystile_keys_owner (account, owner, id), keys with an owner: a
//     page of an owner's keys (storage.OwnerIndex);
//   - keystile_keys_expiring (account, expires_at, id) and
//     keystile_keys_environment_expiring (account, environment,
//     expires_at, id), keys with an expiry that are not revoked: a page
//     of the keys that expire soon (storage.ExpiryIndex);
//   - keystile_keys_revoked (revoked_at) and keystile_keys_expires
//     (expires_at), keys that are not imported: the keys that died before
//     a time, oldest first (storage.KeyPurger, which keeps imported keys);
//   - keystile_keys_lineage (lineage), keys issued by rotation: whether a
//     lineage whose key was purged has a key left, which keeps its quota
//     balance.
//
// On a large table, building them takes a while, during which PostgreSQL
// blocks writes to keystile_keys (CREATE INDEX; CONCURRENTLY cannot run
// in Migrate's transaction): migrate at a quiet time, or create the
// indexes with CREATE INDEX CONCURRENTLY beforehand under these names
// (IF NOT EXISTS then skips them).
var ownersV9 = []string{
	`CREATE INDEX IF NOT EXISTS keystile_keys_owner ON keystile_keys (account, owner, id) WHERE owner <> ''`,
	`CREATE INDEX IF NOT EXISTS keystile_keys_expiring ON keystile_keys (account, expires_at, id)
		WHERE expires_at IS NOT NULL AND revoked_at IS NULL`,
	`CREATE INDEX IF NOT EXISTS keystile_keys_environment_expiring ON keystile_keys (account, environment, expires_at, id)
		WHERE expires_at IS NOT NULL AND revoked_at IS NULL`,
	`CREATE INDEX IF NOT EXISTS keystile_keys_revoked ON keystile_keys (revoked_at)
		WHERE revoked_at IS NOT NULL AND ` + notImported,
	`CREATE INDEX IF NOT EXISTS keystile_keys_expires ON keystile_keys (expires_at)
		WHERE expires_at IS NOT NULL AND ` + notImported,
	`CREATE INDEX IF NOT EXISTS keystile_keys_lineage ON keystile_keys (lineage) WHERE lineage IS NOT NULL`,
}

// notImported is the condition of a key that was not imported: its hash
// does not start with the "$sha256$" of an imported key's digest
// (apikey.Record.Imported). The purge indexes and their queries repeat it
// word for word, which SQLite needs to use a partial index.
const notImported = `substr(hash, 1, 8) <> '$sha256$'`

// ownerLimitsV10 is version 10, the same in both dialects: limits shared by
// an owner's keys (apikey.Manager.SetOwnerLimits).
//   - keystile_keys gains owner_limits, apikey.Record.OwnerLimits as a JSON
//     object (NULL for none; every key of an earlier version has none).
//   - keystile_quotas also holds the balances of owners' quotas, keyed by
//     apikey.OwnerBalanceID ("owner:<account>/<owner>"), which no key or
//     lineage id can be: the table needs no change.
var ownerLimitsV10 = []string{
	`ALTER TABLE keystile_keys ADD COLUMN owner_limits TEXT`,
}

// callersV12 is version 12: the callers of keys rotated out
// (storage.CallerLog).
//   - keystile_callers: one row per key id, address and user agent, at
//     most apikey.MaxCallers per key (RecordCallers trims the least
//     recently seen), primary key (key_id, address, user_agent); the
//     trim and Callers read a key's rows by its prefix.
//   - keystile_caller_others: per key id, the callers dropped from its
//     list and their requests.
//
// PurgeKeys deletes both of the keys it deletes.
func callersV12(d Dialect) []string {
	text, rowid := `TEXT COLLATE "C"`, ""
	if d == SQLite {
		text, rowid = "TEXT", " WITHOUT ROWID"
	}
	return []string{
		`CREATE TABLE keystile_callers (
			key_id     ` + text + ` NOT NULL,
			address    ` + text + ` NOT NULL,
			user_agent ` + text + ` NOT NULL,
			account    ` + text + ` NOT NULL,
			requests   BIGINT NOT NULL,
			first_seen BIGINT NOT NULL,
			last_seen  BIGINT NOT NULL,
			PRIMARY KEY (key_id, address, user_agent)
		)` + rowid,
		`CREATE TABLE keystile_caller_others (
			key_id   ` + text + ` NOT NULL PRIMARY KEY,
			account  ` + text + ` NOT NULL,
			others   BIGINT NOT NULL,
			requests BIGINT NOT NULL
		)` + rowid,
	}
}

// instancesV13 is version 13: the running validators (storage.InstanceLog).
//   - keystile_instances: one row per validator instance id, with the
//     change-feed revision it has applied, its report times and until when
//     it may serve its cache (serves_until), all in Unix microseconds;
//     ForgetInstances deletes by reported_at and serves_until, which
//     have no index (the table holds one row per running process).
func instancesV13(d Dialect) []string {
	text := `TEXT COLLATE "C"`
	if d == SQLite {
		text = "TEXT"
	}
	return []string{
		`CREATE TABLE keystile_instances (
			id          ` + text + ` NOT NULL PRIMARY KEY,
			label       TEXT   NOT NULL,
			applied     BIGINT NOT NULL,
			applied_at  BIGINT NOT NULL,
			reported_at BIGINT NOT NULL,
			started_at  BIGINT NOT NULL,
			serves_until BIGINT NOT NULL
		)`,
	}
}

// instancesV14 is version 14: removed instances.
//   - keystile_instances.removed_at: when RemoveInstance removed the
//     instance, in Unix microseconds by the store's clock; NULL while it
//     reports. A removed row is a tombstone: reports under its id change
//     nothing, so that a report still in flight at a validator's Close
//     does not bring it back. ForgetInstances deletes old tombstones.
var instancesV14 = []string{
	`ALTER TABLE keystile_instances ADD COLUMN removed_at BIGINT`,
}

// returnsV18 is version 18, the same in both dialects: returns across a
// change of a quota's limit (see storage.QuotaLedger).
//   - keystile_quotas gains returns_from, the generation from which the
//     row accepts returned uses: the generation of the change that set the
//     row full or changed its period, kept when a change sets only another
//     limit or refill. A row of an earlier version takes its generation,
//     so that it accepts the returns it accepted before, and a return of a
//     lease taken before its latest change is dropped as before.
var returnsV18 = []string{
	`ALTER TABLE keystile_quotas ADD COLUMN returns_from BIGINT NOT NULL DEFAULT 0`,
	`UPDATE keystile_quotas SET returns_from = generation`,
}
