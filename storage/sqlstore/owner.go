package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var (
	_ storage.OwnerIndex  = (*Store)(nil)
	_ storage.ExpiryIndex = (*Store)(nil)
	_ storage.KeyPurger   = (*Store)(nil)
)

// ownerQueries are the statements of this file, with placeholders for the
// dialect. Each repeats the condition of its partial index, which SQLite
// needs to use it.
type ownerQueries struct {
	ownerKeys, ownerKeysNotRevoked   string
	expiring, environmentExpiring    string
	revokedBefore, expiredBefore     string
	lockRevision, keepOrphanedQuotas string
}

func newOwnerQueries(d Dialect) ownerQueries {
	keyID := "k.id = keystile_quotas.key_id"
	if d == Postgres {
		keyID += ` COLLATE "C"` // keystile_keys.id's collation, for its primary key
	}
	environmentExpiringIndex := "" // PostgreSQL's planner picks it
	if d == SQLite {
		environmentExpiringIndex = " INDEXED BY keystile_keys_environment_expiring"
	}
	q := ownerQueries{
		// keystile_keys_owner: a range scan from the id after.
		ownerKeys: `SELECT ` + keyColumns + ` FROM keystile_keys
			WHERE account = ? AND owner = ? AND owner <> '' AND id > ? ORDER BY id LIMIT ?`,
		ownerKeysNotRevoked: `SELECT ` + keyColumns + ` FROM keystile_keys
			WHERE account = ? AND owner = ? AND owner <> '' AND id > ? AND revoked_at IS NULL ORDER BY id LIMIT ?`,
		// keystile_keys_expiring and keystile_keys_environment_expiring: a
		// range scan from the position after, up to the end of the window.
		// SQLite is told the environment's index: left to itself, it
		// scans the account's (every expiring key of the account's other
		// environments in the window) and filters on environment.
		expiring: `SELECT ` + keyColumns + ` FROM keystile_keys
			WHERE account = ? AND expires_at IS NOT NULL AND revoked_at IS NULL
				AND (expires_at, id) > (?, ?) AND expires_at <= ?
			ORDER BY expires_at, id LIMIT ?`,
		environmentExpiring: `SELECT ` + keyColumns + ` FROM keystile_keys` + environmentExpiringIndex + `
			WHERE account = ? AND environment = ? AND expires_at IS NOT NULL AND revoked_at IS NULL
				AND (expires_at, id) > (?, ?) AND expires_at <= ?
			ORDER BY expires_at, id LIMIT ?`,
		// keystile_keys_revoked and keystile_keys_expires: the oldest first.
		revokedBefore: `SELECT id FROM keystile_keys WHERE revoked_at IS NOT NULL AND ` + notImported + `
			AND revoked_at < ? ORDER BY revoked_at LIMIT ?`,
		expiredBefore: `SELECT id FROM keystile_keys WHERE expires_at IS NOT NULL AND ` + notImported + `
			AND expires_at < ? ORDER BY expires_at LIMIT ?`,
		// Takes the write lock as Apply's first statement does, changing
		// nothing.
		lockRevision: `UPDATE keystile_revision SET value = value WHERE id = 1`,
		// The quota rows of the given lineages that no key belongs to any
		// more: by the primary keys and keystile_keys_lineage.
		keepOrphanedQuotas: `AND NOT EXISTS (SELECT 1 FROM keystile_keys AS k WHERE ` + keyID + `)
			AND NOT EXISTS (SELECT 1 FROM keystile_keys AS k WHERE k.lineage = keystile_quotas.key_id)`,
	}
	for _, p := range []*string{&q.ownerKeys, &q.ownerKeysNotRevoked, &q.expiring, &q.environmentExpiring,
		&q.revokedBefore, &q.expiredBefore, &q.lockRevision} {
		*p = d.rebind(*p)
	}
	return q
}

// OwnerKeys implements storage.OwnerIndex: one range scan of
// keystile_keys_owner.
func (s *Store) OwnerKeys(ctx context.Context, q apikey.OwnerQuery) ([]apikey.Record, error) {
	query := s.oq.ownerKeys
	if q.NotRevoked {
		query = s.oq.ownerKeysNotRevoked
	}
	return s.keyList(ctx, "owner keys", q.Limit, query, q.Account, q.Owner, q.After, q.Limit)
}

// ExpiringKeys implements storage.ExpiryIndex: one range scan of
// keystile_keys_expiring, or keystile_keys_environment_expiring for an
// environment (named to SQLite with INDEXED BY).
func (s *Store) ExpiringKeys(ctx context.Context, q apikey.ExpiryQuery) ([]apikey.Record, error) {
	if q.Environment == "" {
		return s.keyList(ctx, "expiring keys", q.Limit, s.oq.expiring,
			q.Account, micros(q.After.ExpiresAt), q.After.ID, micros(q.Until), q.Limit)
	}
	return s.keyList(ctx, "expiring keys", q.Limit, s.oq.environmentExpiring,
		q.Account, q.Environment, micros(q.After.ExpiresAt), q.After.ID, micros(q.Until), q.Limit)
}

// keyList runs a query that returns up to limit keys.
func (s *Store) keyList(ctx context.Context, op string, limit int, query string, args ...any) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, op, err)
	}
	out := make([]apikey.Record, 0, min(max(limit, 0), maxPrealloc))
	if limit <= 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(ctx, op, err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanKey(rows)
		if err != nil {
			return nil, s.wrap(ctx, op, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, op, err)
	}
	return out, nil
}

// maxPurge bounds limit in PurgeKeys: each statement of a batch names its
// keys, within the bound on parameters of both engines.
const maxPurge = 5000

// purgeCallers deletes the callers of the keys ids in tx. It takes the
// locks in the order of RecordCallers, so that the two never deadlock: per
// key in key id order its others row, then its caller rows. On PostgreSQL
// it first locks the others rows, in key id order (byte order, as
// RecordCallers sorts); SQLite has one writer at a time.
func (s *Store) purgeCallers(ctx context.Context, tx *sql.Tx, ids []any) error {
	in := `key_id IN (` + params(len(ids)) + `)`
	if s.d == Postgres {
		rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT key_id FROM keystile_caller_others WHERE `+in+
			` ORDER BY key_id COLLATE "C" FOR UPDATE`), ids...)
		if err != nil {
			return s.wrap(ctx, "purge keys: locking callers", err)
		}
		for rows.Next() { // each row read is locked
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return s.wrap(ctx, "purge keys: locking callers", err)
		}
	}
	for _, table := range []string{"keystile_callers", "keystile_caller_others"} {
		if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM `+table+` WHERE `+in), ids...); err != nil {
			return s.wrap(ctx, "purge keys: deleting callers", err)
		}
	}
	return nil
}

// PurgeKeys implements storage.KeyPurger in one transaction, which first
// takes the write lock as Apply does (the revision counter's row), so that
// it commits in revision order and no change to the keys it deletes can
// interleave. It then reads up to limit ids from keystile_keys_revoked and
// keystile_keys_expires, deletes those keys (one statement), takes one
// revision per deleted key and appends their feed entries (one statement),
// deletes their callers (storage.CallerLog, locking them in the order of
// RecordCallers, see purgeCallers; two or three statements), and deletes
// the quota rows of their lineages that no key is left in
// (one statement). Other writers wait for that transaction only; readers
// never wait (PostgreSQL's MVCC, SQLite's WAL mode). On SQLite, after the
// commit, it checkpoints the write-ahead log (see checkpoint), so that the
// purge, not the next writer, copies the batch's pages into the database
// file. Under an isolation level stricter than READ COMMITTED, a
// serialization failure is apikey.ErrConflict, and nothing was deleted.
func (s *Store) PurgeKeys(ctx context.Context, before time.Time, limit int) ([]apikey.PurgedKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "purge keys", err)
	}
	if limit <= 0 || limit > maxPurge {
		return nil, fmt.Errorf("sqlstore: purge keys: limit must be 1 to %d, got %d", maxPurge, limit)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.wrap(ctx, "purge keys", err)
	}
	out, err := s.purge(ctx, tx, micros(before), limit)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, s.writeError(ctx, "purge keys: commit", err, "the purge lost a race with another writer")
	}
	if s.d == SQLite && len(out) > 0 {
		s.checkpoint(ctx)
	}
	return out, nil
}

func (s *Store) purge(ctx context.Context, tx *sql.Tx, before int64, limit int) ([]apikey.PurgedKey, error) {
	if _, err := tx.ExecContext(ctx, s.oq.lockRevision); err != nil {
		return nil, s.writeError(ctx, "purge keys: taking the write lock", err, "the purge lost a race with another writer")
	}
	var ids []any
	seen := map[string]bool{}
	for _, query := range []string{s.oq.revokedBefore, s.oq.expiredBefore} {
		if err := s.collectIDs(ctx, tx, query, before, limit, seen, &ids); err != nil {
			return nil, err
		}
	}
	out := []apikey.PurgedKey{}
	if len(ids) == 0 {
		return out, nil
	}
	ids = ids[:min(len(ids), limit)]
	rows, err := tx.QueryContext(ctx, s.d.rebind(`DELETE FROM keystile_keys WHERE id IN (`+params(len(ids))+`)
		RETURNING id, account, environment, COALESCE(lineage, id)`), ids...)
	if err != nil {
		return nil, s.wrap(ctx, "purge keys: deleting", err)
	}
	var lineages []any
	for rows.Next() {
		var k apikey.PurgedKey
		var lineage string
		if err := rows.Scan(&k.ID, &k.Account, &k.Environment, &lineage); err != nil {
			rows.Close()
			return nil, s.wrap(ctx, "purge keys: deleting", err)
		}
		out = append(out, k)
		lineages = append(lineages, lineage)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "purge keys: deleting", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	var top int64
	if err := tx.QueryRowContext(ctx, s.q.bump, len(out)).Scan(&top); err != nil {
		return nil, s.wrap(ctx, "purge keys: taking revisions", err)
	}
	first := top - int64(len(out)) + 1
	feed := make([]any, 0, 4*len(out))
	for i, k := range out {
		feed = append(feed, first+int64(i), k.Account, k.Environment, k.ID)
	}
	if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO keystile_changes (revision, account, environment, key_id) VALUES `+
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", len(out)), ", ")), feed...); err != nil {
		return nil, s.wrap(ctx, "purge keys: appending to the change feed", err)
	}
	purged := make([]any, len(out))
	for i, k := range out {
		purged[i] = k.ID
	}
	if err := s.purgeCallers(ctx, tx, purged); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM keystile_quotas WHERE key_id IN (`+params(len(lineages))+`) `+
		s.oq.keepOrphanedQuotas), lineages...); err != nil {
		return nil, s.wrap(ctx, "purge keys: deleting quota balances", err)
	}
	if s.retention > 0 && top/pruneEvery != (first-1)/pruneEvery && top > s.retention {
		if _, err := tx.ExecContext(ctx, s.q.pruneTo, top-s.retention); err != nil {
			return nil, s.wrap(ctx, "purge keys: pruning the change feed", err)
		}
	}
	if s.d == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, strconv.FormatInt(top, 10)); err != nil {
			return nil, s.wrap(ctx, "purge keys: notifying the change", err)
		}
	}
	return out, nil
}

// collectIDs appends to ids the ids that query returns and seen does not
// hold.
func (s *Store) collectIDs(ctx context.Context, tx *sql.Tx, query string, before int64, limit int, seen map[string]bool, ids *[]any) error {
	rows, err := tx.QueryContext(ctx, query, before, limit)
	if err != nil {
		return s.wrap(ctx, "purge keys: finding keys", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return s.wrap(ctx, "purge keys: finding keys", err)
		}
		if !seen[id] {
			seen[id] = true
			*ids = append(*ids, id)
		}
	}
	return s.wrap(ctx, "purge keys: finding keys", rows.Err())
}

// checkpoint copies into the SQLite database file the pages that the
// write-ahead log holds (PRAGMA wal_checkpoint(PASSIVE)): it takes no lock
// that a writer or a reader waits for, and copies the pages that no reader
// still needs. Otherwise SQLite's automatic checkpoint copies them in the
// commit of a writer that leaves 1,000 pages or more in the log (every
// writer, while readers keep the log from starting over): a purge batch
// writes hundreds, so that writer would often be a rotation, whose commit
// then takes as long as copying the batch's pages and syncing the file (a
// median of 10 ms on a busy shared disk, hundreds at worst). Outside WAL
// mode it does nothing. Its errors are not the caller's: what it did not
// copy, the next checkpoint does.
func (s *Store) checkpoint(ctx context.Context) {
	_, _ = s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
}

// params returns n placeholders, "?, ?, ...".
func params(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
