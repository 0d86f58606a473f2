// Package sqlstore is keystile's SQL store: SQLite, the embedded default for
// a single node, and PostgreSQL, for many app instances sharing keys. It
// implements apikey.Store and every optional capability of package storage
// (ChangeFeed, LastUsedRecorder, AuditLog, EventStream, TimedEventLog, DeliveryLog, ReplayLog,
// EndpointStore, QuotaLedger, UsageRecorder, OwnerIndex, ExpiryIndex, KeyPurger, CallerLog,
// InstanceLog), and passes the storetest
// conformance suite on both engines, with several connection pools on one
// database standing in for several processes.
//
// The package imports no driver, only database/sql: bring your own, open a
// *sql.DB, and hand it over with its dialect. Its tests, which need the
// drivers, are in this repository's examples module (examples/integration),
// so that the drivers stay out of a user's module graph.
//
// # SQLite
//
// With modernc.org/sqlite (pure Go, no cgo; driver name "sqlite"):
//
//	import _ "modernc.org/sqlite"
//
//	db, err := sql.Open("sqlite", "file:keystile.db?"+
//		"_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
//	...
//	store, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.SQLite})
//	...
//	err = store.Migrate(ctx)
//
// The DSN parameters matter, and each applies to every connection of the
// pool:
//   - busy_timeout (milliseconds) is required once the pool has more than one
//     connection or the file more than one process: a writer waits that
//     long for another's write lock instead of failing at once with
//     "database is locked". Errors that remain after the timeout are
//     reported as system errors that say so.
//   - journal_mode(WAL) is recommended: readers (key lookups) then never
//     wait for a writer, nor a writer for readers. The switch happens when
//     the first connection opens a new file and needs the file alone: a
//     connection that opens at that very moment gets SQLITE_BUSY at once,
//     whatever the busy timeout. Processes that start together on a new
//     file should let one of them open it (and Migrate) first.
//   - _txlock=immediate is recommended for your own transactions on the
//     same pool; this package does not depend on it (see Concurrency).
//   - synchronous is best left at its default, FULL: each commit syncs the
//     write-ahead log, so a committed change (a revocation) survives a power
//     loss. NORMAL (_pragma=synchronous(NORMAL)) skips that sync, which
//     shortens commits on a busy disk (rotations during Manager.Purge, see
//     docs/lifecycle.md), but a power loss may undo the last commits.
//
// With github.com/mattn/go-sqlite3 (cgo), the equivalent DSN is
// "file:keystile.db?_busy_timeout=5000&_journal_mode=WAL&_txlock=immediate".
// SQLite 3.35 or later is needed (for RETURNING).
//
// # PostgreSQL
//
// With github.com/jackc/pgx/v5/stdlib (driver name "pgx"), or any other
// database/sql driver such as github.com/lib/pq:
//
//	import _ "github.com/jackc/pgx/v5/stdlib"
//
//	db, err := sql.Open("pgx", "postgres://app@db.internal/app")
//	...
//	store, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.Postgres})
//	...
//	err = store.Migrate(ctx)
//
// The tables go in the connection's current schema: to keep them apart, set
// search_path in the DSN (pgx passes "?search_path=keystile" to the server).
// The default isolation level, READ COMMITTED, is all the store needs.
// PostgreSQL 12 or later is supported.
//
// # Schema and migrations
//
// Migrate creates or upgrades the tables, all prefixed keystile_: keys
// (one row per key, primary key id), settings (one row per account's
// environment, primary key (account, environment)), events (the audit log,
// in append order, primary key seq, each event also numbered within its
// account: account_seq, the apikey.Event.Seq that callers see), changes (the change feed, primary key
// revision), quotas (the balance of each key whose record has a quota,
// primary key key_id), usage (requests per account, hour, key and outcome,
// primary key (account, hour, key_id, outcome)), instances (the running
// validators, the change-feed revision each has applied and until when
// it may serve its cache, primary key id, stamped by the database's
// clock; a removed instance stays as a tombstone with removed_at set
// until it is forgotten; storage.InstanceLog), endpoints (the webhook endpoints
// tenants register, primary key id, with their signing secrets as the Manager gives them: sealed
// when it has a Sealer; storage.EndpointStore), revision (a single-row counter) and
// schema_migrations (the applied versions). Every key, settings row, event and feed entry carries
// its account. Times are stored as BIGINT microseconds since the Unix epoch,
// in UTC, and come back as time.Time in UTC; NULL stands for the zero time.
// Scopes and allowed origins are JSON arrays, a key's metadata and limits
// JSON objects; an environment's lifetime policy is two BIGINT columns of
// whole seconds, 0 for none. A key's hash and its recoverable form are stored as the Record
// holds them; a secret never is.
//
// Every read is one statement answered by an index, in time that does not
// grow with the number of keys or accounts: a key by its id (the primary
// key); an (account, environment, type)'s default key by a unique partial
// index on (account, environment, type) WHERE is_default; a page of an
// environment's keys by keyset pagination on an index on (account,
// environment, created_at, id); settings, pages of environments and the
// distinct accounts by the settings' primary key; a page of audit events,
// newest first: an account's by the unique index (account, account_seq) or
// by (account, environment, account_seq), every account's by the primary
// key seq or by (environment, seq); the event stream (EventStream) after a
// cursor by the primary key seq, in commit order (see streamV11); the keys
// due for a time-based event by the partial index keystile_keys_due
// (expires_at, id). A page of the
// change feed is its revision counter, a range of its primary key, and
// the changed keys' records by their primary key (one more statement per
// 1,000 keys).
//
// Migrations are versioned Go strings per dialect, applied in order by the
// explicit, idempotent Migrate call; every process may call it at start-up.
// Concurrent calls are serialised by the database; a database with a newer
// schema than this package knows is an error, never downgraded. Version 2
// (accounts) upgrades a database of version 1: its rows join the default
// account (apikey.DefaultAccount). On PostgreSQL it alters the tables in
// place and rebuilds two indexes of the keys table; on SQLite it rebuilds
// the four tables (SQLite cannot change a primary key in place), so it
// rewrites every key and event once, in Migrate's transaction. Version 3
// (per-account audit numbers) adds account_seq to the events, numbers the
// existing events of each account in their order (one UPDATE that rewrites
// every event row once) and replaces the events' two account indexes.
// Version 4 (limits and quotas) adds the keys' limits column (NULL: no
// limits, as every existing key has) and the quotas table; it rewrites
// nothing.
// Version 5 (usage) adds the usage table; it rewrites nothing.
// Version 9 (owners, expiring keys, clean-up) adds partial indexes to the
// keys table; it rewrites nothing, but builds the indexes (see ownersV9).
// Version 10 (limits shared by an owner's keys) adds the keys'
// owner_limits column (NULL: none, as every existing key has); owners'
// quota balances are rows of the quotas table. It rewrites nothing.
// Version 14 (removed instances) adds the instances' removed_at column
// (NULL: reporting, as every existing row is). It rewrites nothing.
//
// # Concurrency
//
// Every Apply is one transaction. Its first statement increments the
// single-row revision counter: in PostgreSQL that takes the counter's row
// lock until commit, so writers commit in revision order and the change feed
// is gap-free for readers; in SQLite it takes the write lock before the
// transaction reads anything, as BEGIN IMMEDIATE would, so the busy timeout
// applies. Key and settings updates are compare-and-set on their revision;
// a unique partial index on (account, environment, type) WHERE is_default
// makes two default keys of one type in an account's environment
// impossible even between processes that share nothing but the database.
// Lost races are apikey.ErrConflict; the Manager retries them. Reads (Key,
// DefaultKey, Keys, Settings, Environments, Accounts, Changes, Events) are
// single statements and take no lock.
//
// # Connection pool
//
// Bound the pool and keep its connections open: database/sql opens as many
// connections as there are concurrent calls but keeps 2 of them between
// uses, so a burst of concurrent calls (quota leases of many keys, the
// flushes of usage and last use) opens and closes a connection per call.
// A SQLite connection reads the whole schema when it opens, and on
// PostgreSQL each one is a server process. For example:
//
//	db.SetMaxOpenConns(16)
//	db.SetMaxIdleConns(16)
//
// Calls beyond the bound wait for a connection, within their context.
//
// # Change feed and last use
//
// Every key or settings row that Apply writes appends one row (revision,
// account, environment, key id) to the changes table in the same
// transaction, so polling Changes is one indexed range read; other
// processes use it to evict what they cached, and to reload the settings
// of the one environment that changed. The feed keeps
// Options.FeedRetention entries; a reader that falls further behind gets
// storage.ErrFeedGap. RecordLastUsed writes a batch of last-used times in
// one transaction without touching revisions or the feed.
//
// # Quotas
//
// The quotas table holds one row per rotation lineage
// (apikey.Record.LineageID), which every key of the lineage spends from.
// Apply writes the row in the transaction that writes the lineage's key
// that is not rotated out (a rotated key never writes it): a new quota
// starts full, the same quota keeps its balance, a quota that differs
// (limit, refill or period) keeps what was spent and takes a new
// generation (see storage.QuotaLedger), and a removed quota removes the
// row. LeaseQuota is one UPDATE ... RETURNING of the row of the key's
// lineage: in the same statement it adds the refills of the UTC period
// boundaries passed since the row's period, never beyond the limit, and
// takes up to the uses asked for. The database locks the row for the
// statement, so concurrent leases from any number of processes never
// grant a use twice and refill once per period; a lease's time counts
// as at most the database's clock plus one hour, so that a process whose
// clock is far ahead cannot stop the refills. ReturnQuota is one
// conditional UPDATE that adds unspent uses back only while the lease's
// generation and period are the row's and the period has not ended. Both
// need no more than READ COMMITTED; under a stricter default isolation
// level, a statement that fails with a serialization failure or deadlock
// runs again in an explicit READ COMMITTED transaction.
//
// On SQLite, whose writers commit one at a time, each syncing the log, the
// leases that arrive while a batch is being written are written together
// in the next: one transaction of at most 100 lease statements, compiled
// once per batch. A caller whose context ends while it waits gets the
// context's error; a lease granted to it meanwhile is returned.
//
// A lease that the row cannot grant in full appends the balance's
// apikey.ActionQuotaExhausted event, after the UPDATE, in a transaction of
// its own: it inserts the mark (balance id,
// apikey.QuotaExhaustedKind(generation), period index) into
// keystile_event_marks with ON CONFLICT DO NOTHING, and only when it
// inserted it takes the revision counter's lock and appends the event, so
// that each balance, quota and period has one event however many
// processes lease. The lease stands if that write fails; the next lease
// that finds the balance empty in the period writes it.
//
// # Usage
//
// RecordUsage adds a batch of counts in one transaction of multi-row
// upserts, 200 rows per statement (INSERT ... ON CONFLICT DO UPDATE SET
// count = count + excluded.count), in a fixed order so that concurrent
// batches never deadlock: about 7 ms for 1,000 counts on either engine. Usage reads a page of one account's counts, of
// one of its environments or of one key, by a range scan of the primary
// key or of an index in the page's order (hour, key id, outcome);
// PruneUsage deletes the hours before a time by an index on hour.
//
// # Owners, expiring keys and clean-up
//
// OwnerKeys and ExpiringKeys are one range scan each of a partial index
// of version 9: (account, owner, id) of keys with an owner, (account,
// expires_at, id) or (account, environment, expires_at, id) of keys with an
// expiry that are not revoked. PurgeKeys deletes a batch in one
// transaction that takes the write lock as Apply does, finds the keys by
// the indexes (revoked_at) and (expires_at), deletes them and appends their
// feed entries in one statement each, and deletes the quota rows of the
// lineages left without a key (by the index (lineage)): about 10 ms for
// 500 keys on PostgreSQL and 35 ms on SQLite (Manager.Purge sizes its
// batches to about 5 ms), while readers never wait. On SQLite it then runs
// PRAGMA wal_checkpoint(PASSIVE), which copies the batch's pages from the
// write-ahead log into the database file without taking a lock that others
// wait for: SQLite's automatic checkpoint would otherwise run in the commit
// of a writer that leaves 1,000 pages or more in the log, often a rotation
// between two batches, and make it wait for the copy and the file's sync.
package sqlstore
