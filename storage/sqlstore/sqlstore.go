package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// DefaultFeedRetention is how many change-feed entries a Store keeps when
// Options.FeedRetention is zero.
const DefaultFeedRetention = 100_000

// pruneEvery is how many revisions pass between two prunings of the feed.
const pruneEvery = 1024

// Options configure a Store.
type Options struct {
	// Dialect is the SQL dialect of the database: SQLite or Postgres.
	// Required; the zero value is an error.
	Dialect Dialect
	// FeedRetention is how many of the newest change-feed entries the store
	// keeps; older ones are pruned now and then by Apply, and a reader that
	// falls behind them gets storage.ErrFeedGap. Zero means
	// DefaultFeedRetention; a negative value keeps every entry.
	FeedRetention int64
}

// Store is a keystile store in a SQL database reached through database/sql.
// It implements apikey.Store, storage.ChangeFeed, storage.LastUsedRecorder,
// storage.AuditLog, storage.QuotaLedger, storage.UsageRecorder,
// storage.OwnerIndex, storage.ExpiryIndex, storage.KeyPurger, storage.EventStream,
// storage.TimedEventLog and storage.DeliveryLog.
//
// A Store is safe for concurrent use, and any number of Stores, in one
// process or many, may share one database: every write is one transaction
// whose rules the database enforces (see the package documentation).
type Store struct {
	db        *sql.DB
	d         Dialect
	retention int64
	q         queries
	oq        ownerQueries // owner.go
	// keyStmt is Key's statement in SQLite, prepared at its first use (New
	// does not touch the database): a validator re-reads each key it holds
	// once per cache lifetime, and SQLite drivers compile a statement per
	// query otherwise (half of a Key read: BenchmarkColdLookup/sqlite/Key).
	// PostgreSQL drivers keep their own statement caches, which also follow
	// the connection's query mode (simple protocol behind PgBouncer) and
	// schema changes; a statement prepared here would bypass both.
	keyStmt atomic.Pointer[sql.Stmt]
	// leases groups concurrent quota leases into one transaction on SQLite
	// (leasebatch.go).
	leases leaseBatches
}

var (
	_ apikey.Store             = (*Store)(nil)
	_ storage.ChangeFeed       = (*Store)(nil)
	_ storage.LastUsedRecorder = (*Store)(nil)
	_ storage.AuditLog         = (*Store)(nil)
)

// New returns a store on db. It does not touch the database: call Migrate
// before first use (once per process is fine; it is idempotent). The caller
// keeps ownership of db and closes it after the last use of the store.
func New(db *sql.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	if !opts.Dialect.valid() {
		return nil, fmt.Errorf("sqlstore: Options.Dialect: want SQLite or Postgres, got %v", opts.Dialect)
	}
	retention := opts.FeedRetention
	if retention == 0 {
		retention = DefaultFeedRetention
	}
	return &Store{db: db, d: opts.Dialect, retention: retention, q: newQueries(opts.Dialect), oq: newOwnerQueries(opts.Dialect)}, nil
}

// DB returns the database the store uses.
func (s *Store) DB() *sql.DB { return s.db }

// Dialect returns the store's SQL dialect.
func (s *Store) Dialect() Dialect { return s.d }

const keyColumns = `id, account, type, environment, name, owner, metadata, scopes, is_default, created_at, created_by,
	expires_at, rotated_at, expiry_limit, revoked_at, last_used_at, hash, recoverable, revision, limits,
	lineage, disabled_at, owner_limits`

const settingsColumns = `account, environment, allowed_origins, updated_at, closed_at, revision, suspended_at,
	default_expiry_seconds, max_lifetime_seconds`

const eventColumns = `account_seq, occurred_at, actor_id, actor_role, actor_account, action, account, environment,
	key_id, key_type, detail`

// queries holds every statement, with placeholders for the dialect. The
// comment of each read names the index that answers it (see the version 2
// migration).
type queries struct {
	key, defaultKey, keys                                 string
	settings, environments, accountEnvironments, accounts string
	bump, closedAccount, insertKey, updateKey, keyExists  string
	insertChange, lastAccountSeq                          string
	insertSettings, updateSettings, insertEvent, pruneTo  string
	revision, changes, lockRevision, touch                string
	upsertQuota, deleteQuota, leaseQuota, returnQuota     string
	leaseOwnerQuota, returnOwnerQuota                     string
	addUsage, accountUsage, environmentUsage, keyUsage    string
	pruneUsage                                            string
	deadLettersBySeq, deadLetterByEvent, replaying        string
}

func newQueries(d Dialect) queries {
	q := queries{
		// The primary key.
		key: `SELECT ` + keyColumns + ` FROM keystile_keys WHERE id = ?`,
		// keystile_keys_one_default: the query repeats the index's
		// condition (is_default), which SQLite needs to use a partial index.
		defaultKey: `SELECT ` + keyColumns + ` FROM keystile_keys
			WHERE account = ? AND environment = ? AND type = ? AND is_default`,
		// keystile_keys_environment (account, environment, created_at, id):
		// a range scan that starts after the position and stops after the
		// limit.
		keys: `SELECT ` + keyColumns + ` FROM keystile_keys
			WHERE account = ? AND environment = ? AND (created_at, id) > (?, ?)
			ORDER BY created_at, id LIMIT ?`,
		// The primary key (account, environment), for all three.
		settings: `SELECT ` + settingsColumns + ` FROM keystile_settings WHERE account = ? AND environment = ?`,
		environments: `SELECT ` + settingsColumns + ` FROM keystile_settings
			WHERE (account, environment) > (?, ?) ORDER BY account, environment LIMIT ?`,
		accountEnvironments: `SELECT ` + settingsColumns + ` FROM keystile_settings
			WHERE account = ? AND environment > ? ORDER BY environment LIMIT ?`,
		// The primary key, read in order from the first account after the
		// given one: both engines stop once they have the limit, having read
		// each returned account's environments (a few index entries each; a
		// PostgreSQL plan reads them from the index alone). A recursive
		// "loose index scan", one index probe per account, was three times
		// slower on PostgreSQL for a page of 100 accounts of three
		// environments each; it would only win for accounts of hundreds.
		accounts: `SELECT DISTINCT account FROM keystile_settings WHERE account > ? ORDER BY account LIMIT ?`,

		// bump hands out revisions. See Apply for why it comes first.
		bump: `UPDATE keystile_revision SET value = value + ? WHERE id = 1 RETURNING value`,
		// The primary key (account, environment): an account's few
		// environments, closed and suspended.
		closedAccount: `SELECT COUNT(closed_at), COUNT(suspended_at) FROM keystile_settings WHERE account = ?`,
		insertKey: `INSERT INTO keystile_keys (` + keyColumns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		// The later of the stored and the given last-used time is kept.
		updateKey: `UPDATE keystile_keys SET account = ?, type = ?, environment = ?, name = ?, owner = ?,
			metadata = ?, scopes = ?, is_default = ?, created_at = ?, created_by = ?, expires_at = ?,
			rotated_at = ?, expiry_limit = ?, revoked_at = ?,
			last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < COALESCE(CAST(? AS BIGINT), 0)
				THEN CAST(? AS BIGINT) ELSE last_used_at END,
			hash = ?, recoverable = ?, revision = ?, limits = ?, lineage = ?, disabled_at = ?,
			owner_limits = ?
			WHERE id = ? AND revision = ?`,
		keyExists:    `SELECT COUNT(*) FROM keystile_keys WHERE id = ?`,
		insertChange: `INSERT INTO keystile_changes (revision, account, environment, key_id) VALUES (?, ?, ?, ?)`,
		insertSettings: `INSERT INTO keystile_settings (` + settingsColumns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		updateSettings: `UPDATE keystile_settings SET allowed_origins = ?, updated_at = ?, closed_at = ?, revision = ?,
			suspended_at = ?, default_expiry_seconds = ?, max_lifetime_seconds = ?
			WHERE account = ? AND environment = ? AND revision = ?`,
		insertEvent: `INSERT INTO keystile_events (occurred_at, actor_id, actor_role, actor_account, action, account,
			environment, key_id, key_type, detail, account_seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		// keystile_events_account_seq (account, account_seq): the last
		// entry of the account's range.
		lastAccountSeq: `SELECT COALESCE(MAX(account_seq), 0) FROM keystile_events WHERE account = ?`,
		pruneTo:        `DELETE FROM keystile_changes WHERE revision <= ?`,

		revision: `SELECT value FROM keystile_revision WHERE id = 1`,
		changes: `SELECT revision, account, environment, key_id FROM keystile_changes
			WHERE revision > ? ORDER BY revision LIMIT ?`,
		touch: `UPDATE keystile_keys SET last_used_at = ?
			WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,

		// The primary key of keystile_quotas, for all six; leaseQuota and
		// returnQuota find the key's lineage by keystile_keys' (see quota.go),
		// the owner's statements name the row.
		upsertQuota: upsertQuota, deleteQuota: deleteQuota,
		leaseQuota: leaseQuota(d, lineageOf(d)), returnQuota: returnQuota(d, lineageOf(d)),
		leaseOwnerQuota: leaseQuota(d, "?"), returnOwnerQuota: returnQuota(d, "?"),

		// keystile_usage (see usage.go).
		addUsage: addUsageRows(usageChunk), accountUsage: accountUsage, environmentUsage: environmentUsage, keyUsage: keyUsage,
		pruneUsage: pruneUsage,
	}
	// keystile_dead_letters_seq, keystile_dead_letters_event and
	// keystile_dead_letters_replaying (see delivery.go).
	q.deadLettersBySeq, q.deadLetterByEvent, q.replaying = deadLetterIndexQueries(d)
	if d == Postgres {
		// See RecordLastUsed.
		q.lockRevision = `SELECT value FROM keystile_revision WHERE id = 1 FOR UPDATE`
	}
	for _, p := range []*string{
		&q.key, &q.defaultKey, &q.keys, &q.settings, &q.environments, &q.accountEnvironments, &q.accounts,
		&q.bump, &q.closedAccount, &q.insertKey, &q.updateKey, &q.keyExists, &q.insertChange, &q.insertSettings,
		&q.updateSettings, &q.insertEvent, &q.lastAccountSeq, &q.pruneTo, &q.revision, &q.changes, &q.lockRevision, &q.touch,
		&q.upsertQuota, &q.deleteQuota, &q.leaseQuota, &q.returnQuota, &q.leaseOwnerQuota, &q.returnOwnerQuota,
		&q.addUsage, &q.accountUsage, &q.environmentUsage, &q.keyUsage, &q.pruneUsage,
		&q.deadLettersBySeq, &q.deadLetterByEvent, &q.replaying,
	} {
		*p = d.rebind(*p)
	}
	return q
}

// Key implements apikey.Store.
func (s *Store) Key(ctx context.Context, id string) (apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Record{}, s.wrap(ctx, "key", err)
	}
	r, err := scanKey(s.keyRow(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.Record{}, fmt.Errorf("%w: no such key", apikey.ErrNotFound) // the id is caller input: never echoed
	}
	if err != nil {
		return apikey.Record{}, s.wrap(ctx, "key", err)
	}
	return r, nil
}

// keyRow queries the key id: in SQLite with the prepared statement of Key.
// If it cannot be prepared (the database is not migrated yet), the query
// runs unprepared, and the next call tries again.
func (s *Store) keyRow(ctx context.Context, id string) *sql.Row {
	if s.d != SQLite {
		return s.db.QueryRowContext(ctx, s.q.key, id)
	}
	stmt := s.keyStmt.Load()
	if stmt == nil {
		prepared, err := s.db.PrepareContext(ctx, s.q.key)
		if err != nil {
			return s.db.QueryRowContext(ctx, s.q.key, id)
		}
		if !s.keyStmt.CompareAndSwap(nil, prepared) {
			_ = prepared.Close() // another call prepared it first
		}
		stmt = s.keyStmt.Load()
	}
	return stmt.QueryRowContext(ctx, id)
}

// DefaultKey implements apikey.Store: one lookup in the unique partial
// index of default keys.
func (s *Store) DefaultKey(ctx context.Context, account, environment string, t apikey.KeyType) (apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Record{}, s.wrap(ctx, "default key", err)
	}
	r, err := scanKey(s.db.QueryRowContext(ctx, s.q.defaultKey, account, environment, string(t)))
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.Record{}, fmt.Errorf("%w: no default %s key", apikey.ErrNotFound, t)
	}
	if err != nil {
		return apikey.Record{}, s.wrap(ctx, "default key", err)
	}
	return r, nil
}

// Keys implements apikey.Store: one range scan of the index on (account,
// environment, created_at, id), from q.After, of at most q.Limit rows.
func (s *Store) Keys(ctx context.Context, q apikey.KeyQuery) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "keys", err)
	}
	if q.Limit <= 0 {
		return []apikey.Record{}, nil
	}
	out := make([]apikey.Record, 0, min(q.Limit, maxPrealloc))
	// The zero position is before every key: its time is the zero time
	// (year 1), its id "".
	rows, err := s.db.QueryContext(ctx, s.q.keys, q.Account, q.Environment, micros(q.After.CreatedAt), q.After.ID, q.Limit)
	if err != nil {
		return nil, s.wrap(ctx, "keys", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanKey(rows)
		if err != nil {
			return nil, s.wrap(ctx, "keys", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "keys", err)
	}
	return out, nil
}

// Settings implements apikey.Store.
func (s *Store) Settings(ctx context.Context, account, environment string) (apikey.Settings, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Settings{}, s.wrap(ctx, "settings", err)
	}
	st, err := scanSettings(s.db.QueryRowContext(ctx, s.q.settings, account, environment))
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.Settings{}, fmt.Errorf("%w: no such environment", apikey.ErrNotFound)
	}
	if err != nil {
		return apikey.Settings{}, s.wrap(ctx, "settings", err)
	}
	return st, nil
}

// Environments implements apikey.Store: one range scan of the settings'
// primary key (account, environment), from q.After, of at most q.Limit
// rows.
func (s *Store) Environments(ctx context.Context, q apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "environments", err)
	}
	if q.Limit <= 0 {
		return []apikey.Settings{}, nil
	}
	out := make([]apikey.Settings, 0, min(q.Limit, maxPrealloc))
	query, args := s.q.environments, []any{q.After.Account, q.After.Environment, q.Limit}
	if q.Account != "" {
		after := q.After.Environment
		switch {
		case q.After.Account < q.Account:
			after = "" // before the account's first environment
		case q.After.Account > q.Account:
			return out, nil // past the account's last one
		}
		query, args = s.q.accountEnvironments, []any{q.Account, after, q.Limit}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(ctx, "environments", err)
	}
	defer rows.Close()
	for rows.Next() {
		st, err := scanSettings(rows)
		if err != nil {
			return nil, s.wrap(ctx, "environments", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "environments", err)
	}
	return out, nil
}

// Accounts implements apikey.Store: the distinct accounts of the settings'
// primary key after the given one, read in index order up to the limit.
func (s *Store) Accounts(ctx context.Context, after string, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "accounts", err)
	}
	out := []string{}
	if limit <= 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, s.q.accounts, after, limit)
	if err != nil {
		return nil, s.wrap(ctx, "accounts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var account string
		if err := rows.Scan(&account); err != nil {
			return nil, s.wrap(ctx, "accounts", err)
		}
		out = append(out, account)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "accounts", err)
	}
	return out, nil
}

// maxPrealloc bounds the room a page's slice is made with, whatever limit
// the caller asks for.
const maxPrealloc = 1024

type scanner interface{ Scan(dest ...any) error }

func scanKey(row scanner) (apikey.Record, error) {
	var (
		r                                          apikey.Record
		typ                                        string
		metadata, scopes, limits, lineage          sql.NullString
		ownerLimits                                sql.NullString
		created                                    int64
		expires, rotated, limit, revoked, lastUsed sql.NullInt64
		disabled                                   sql.NullInt64
		hash                                       string
		recoverable                                []byte
	)
	err := row.Scan(&r.ID, &r.Account, &typ, &r.Environment, &r.Name, &r.Owner, &metadata, &scopes, &r.Default,
		&created, &r.CreatedBy, &expires, &rotated, &limit, &revoked, &lastUsed, &hash, &recoverable, &r.Revision, &limits,
		&lineage, &disabled, &ownerLimits)
	if err != nil {
		return apikey.Record{}, err
	}
	r.Type, r.Hash, r.Recoverable = apikey.KeyType(typ), apikey.NewOpaque(hash), apikey.OpaqueBytes(recoverable)
	if r.Metadata, err = decodeMap(metadata); err != nil {
		return apikey.Record{}, fmt.Errorf("key %s: metadata: %w", r.Prefix(), err)
	}
	if r.Scopes, err = decodeList(scopes); err != nil {
		return apikey.Record{}, fmt.Errorf("key %s: scopes: %w", r.Prefix(), err)
	}
	if limits.Valid {
		if err := json.Unmarshal([]byte(limits.String), &r.Limits); err != nil {
			return apikey.Record{}, fmt.Errorf("key %s: limits: %w", r.Prefix(), err)
		}
	}
	if ownerLimits.Valid {
		if err := json.Unmarshal([]byte(ownerLimits.String), &r.OwnerLimits); err != nil {
			return apikey.Record{}, fmt.Errorf("key %s: owner_limits: %w", r.Prefix(), err)
		}
	}
	r.Lineage = lineage.String
	r.CreatedAt = fromMicros(created)
	r.ExpiresAt = fromNullMicros(expires)
	r.RotatedAt = fromNullMicros(rotated)
	r.ExpiryLimit = fromNullMicros(limit)
	r.RevokedAt = fromNullMicros(revoked)
	r.DisabledAt = fromNullMicros(disabled)
	r.LastUsedAt = fromNullMicros(lastUsed)
	return r, nil
}

func scanSettings(row scanner) (apikey.Settings, error) {
	var (
		st      apikey.Settings
		origins sql.NullString
		updated int64
		closed  sql.NullInt64
		suspend sql.NullInt64
		// The lifetime policy in whole seconds (0 for none); see
		// lifetimeV8.
		defaultExpiry, maxLifetime int64
	)
	if err := row.Scan(&st.Account, &st.Environment, &origins, &updated, &closed, &st.Revision, &suspend,
		&defaultExpiry, &maxLifetime); err != nil {
		return apikey.Settings{}, err
	}
	st.Lifetime = apikey.LifetimePolicy{DefaultExpiry: seconds(defaultExpiry), MaxLifetime: seconds(maxLifetime)}
	var err error
	if st.AllowedOrigins, err = decodeList(origins); err != nil {
		return apikey.Settings{}, fmt.Errorf("settings of %s: allowed origins: %w", st.Environment, err)
	}
	st.UpdatedAt = fromMicros(updated)
	st.ClosedAt = fromNullMicros(closed)
	st.SuspendedAt = fromNullMicros(suspend)
	return st, nil
}

// encodeList stores a list as a JSON array, nil as NULL.
func encodeList(list []string) (any, error) {
	if list == nil {
		return nil, nil
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// encodeMap stores a map as a JSON object, nil as NULL.
func encodeMap(m map[string]string) (any, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeMap(v sql.NullString) (map[string]string, error) {
	if !v.Valid {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v.String), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeList reads a list that encodeList wrote. A list of plain ASCII
// strings, as origins and scopes are, is read without encoding/json, five
// to ten times faster: a validator that starts reads the origins of every
// environment of every account (BenchmarkEnvironmentsAllAccounts in
// examples/integration). Anything else goes through json.Unmarshal.
func decodeList(v sql.NullString) ([]string, error) {
	if !v.Valid {
		return nil, nil
	}
	if list, ok := decodePlainList(v.String); ok {
		return list, nil
	}
	var list []string
	if err := json.Unmarshal([]byte(v.String), &list); err != nil {
		return nil, err
	}
	return list, nil
}

// decodePlainList parses s if it is a JSON array of strings of printable
// ASCII with no escape, and no space outside the strings, as json.Marshal
// writes such a list; ok is false for anything else. The strings share s's
// memory.
func decodePlainList(s string) (list []string, ok bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	body := s[1 : len(s)-1]
	if body == "" {
		return []string{}, true
	}
	list = make([]string, 0, strings.Count(body, ",")+1)
	for {
		if len(body) < 2 || body[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(body[1:], '"') + 1
		if end == 0 {
			return nil, false
		}
		item := body[1:end]
		for i := 0; i < len(item); i++ {
			if c := item[i]; c < 0x20 || c > 0x7e || c == '\\' {
				return nil, false
			}
		}
		list = append(list, item)
		if body = body[end+1:]; body == "" {
			return list, true
		}
		if body[0] != ',' {
			return nil, false
		}
		body = body[1:]
	}
}

// wrap turns a database error into this package's: it wraps ctx.Err() once
// ctx is done (database/sql may report a canceled query in its own words),
// explains SQLite's busy errors, and names the operation.
func (s *Store) wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("sqlstore: %s: %w (%w)", op, ctxErr, err)
	}
	if s.d == SQLite && isBusy(err) {
		return fmt.Errorf("sqlstore: %s: %w", op, busyError(err))
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}
