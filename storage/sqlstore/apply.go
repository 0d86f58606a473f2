package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
)

// Apply implements apikey.Store. The change is one database transaction:
//
//  1. It first adds the number of rows it writes to the single-row revision
//     counter (keystile_revision) and takes the revisions below the new
//     value. That write comes first on purpose. In PostgreSQL it takes the
//     counter's row lock, held until commit, so that writers commit in
//     revision order: a change-feed reader that has seen revision n has
//     seen every revision below n, and never misses a row committed later
//     with a lower revision (as it could with a sequence, whose numbers are
//     handed out in start order, not commit order). In SQLite it takes the
//     database's write lock before the transaction reads anything, which
//     is what BEGIN IMMEDIATE does, so the busy timeout applies and a
//     writer never fails because its snapshot went stale.
//  2. With Change.OpenAccount set, it counts the account's closed
//     environments and fails with ErrAccountClosed if there is one. The
//     count is read after step 1, so it sees every change committed before
//     this one (READ COMMITTED reads each statement's data afresh, and
//     every writer holds the counter's lock until it commits).
//  3. Updates are compare-and-set: WHERE id = ? AND revision = ?. No row
//     means ErrNotFound if the key does not exist, else ErrConflict.
//  4. Inserts fail with ErrConflict on a duplicate id, settings on a
//     duplicate (account, environment).
//  5. A unique partial index on (account, environment, type) WHERE
//     is_default makes two default keys of one type in an account's
//     environment impossible, whoever writes: a violation is ErrConflict.
//     Updates that clear Default run before those that set it, so that
//     handing the role from one key to another within a change never
//     passes through two defaults.
//  6. Every key or settings row written appends one change-feed row at its
//     revision, with its account; audit events are appended with theirs,
//     each numbered after the last of its account.
//
// The rules do not depend on the transaction isolation level: READ
// COMMITTED (PostgreSQL's default) is enough. Under stricter levels a
// serialization failure or deadlock is reported as ErrConflict.
func (s *Store) Apply(ctx context.Context, c apikey.Change) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(ctx, "apply", err)
	}
	writes := len(c.Update) + len(c.Insert) + len(c.Settings)
	if writes == 0 && len(c.Events) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(ctx, "apply", err)
	}
	if err := s.apply(ctx, tx, c, writes); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.writeError(ctx, "apply: commit", err, "the change lost a race with another writer")
	}
	return nil
}

func (s *Store) apply(ctx context.Context, tx *sql.Tx, c apikey.Change, writes int) error {
	var top int64
	if err := tx.QueryRowContext(ctx, s.q.bump, writes).Scan(&top); err != nil {
		return s.writeError(ctx, "apply: taking revisions", err, "the change lost a race with another writer")
	}
	if c.OpenAccount != "" {
		var closed, suspended int64
		if err := tx.QueryRowContext(ctx, s.q.closedAccount, c.OpenAccount).Scan(&closed, &suspended); err != nil {
			return s.wrap(ctx, "apply: checking the account is open", err)
		}
		switch {
		case closed > 0:
			return fmt.Errorf("%w: %s", apikey.ErrAccountClosed, c.OpenAccount)
		case suspended > 0:
			return fmt.Errorf("%w: %s", apikey.ErrAccountSuspended, c.OpenAccount)
		}
	}
	first := top - int64(writes) + 1
	rev := first - 1
	for _, setsDefault := range []bool{false, true} {
		for _, r := range c.Update {
			if r.Default != setsDefault {
				continue
			}
			rev++
			if err := s.updateKey(ctx, tx, r, rev); err != nil {
				return err
			}
		}
	}
	for _, r := range c.Insert {
		rev++
		if err := s.insertKey(ctx, tx, r, rev); err != nil {
			return err
		}
	}
	if err := s.putOwnerQuotas(ctx, tx, c, top); err != nil {
		return err
	}
	for _, st := range c.Settings {
		rev++
		if err := s.putSettings(ctx, tx, st, rev); err != nil {
			return err
		}
	}
	if err := s.appendEvents(ctx, tx, c.Events); err != nil {
		return err
	}
	// Now and then, when the revision passes a multiple of pruneEvery, drop
	// the feed entries older than the retention.
	if s.retention > 0 && top/pruneEvery != (first-1)/pruneEvery && top > s.retention {
		if _, err := tx.ExecContext(ctx, s.q.pruneTo, top-s.retention); err != nil {
			return s.wrap(ctx, "apply: pruning the change feed", err)
		}
	}
	// PostgreSQL: wake the feed readers that LISTEN (package pgnotify) the
	// moment the change commits; the notification is sent only if it does.
	if s.d == Postgres && writes > 0 {
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, strconv.FormatInt(top, 10)); err != nil {
			return s.wrap(ctx, "apply: notifying the change", err)
		}
	}
	return nil
}

// appendEvents appends audit events, each numbered after the last event of
// its account (see storage.AuditLog). The transaction holds the write lock
// (see Apply), so the numbers cannot race.
func (s *Store) appendEvents(ctx context.Context, tx *sql.Tx, events []apikey.Event) error {
	last := map[string]int64{} // by account, once read
	for _, e := range events {
		n, ok := last[e.Account]
		if !ok {
			if err := tx.QueryRowContext(ctx, s.q.lastAccountSeq, e.Account).Scan(&n); err != nil {
				return s.wrap(ctx, "apply: numbering an audit event", err)
			}
		}
		n++
		last[e.Account] = n
		if _, err := tx.ExecContext(ctx, s.q.insertEvent, micros(e.Time), e.Actor.ID, string(e.Actor.Role),
			e.Actor.Account, string(e.Action), e.Account, e.Environment, e.KeyID, string(e.KeyType), e.Detail, n); err != nil {
			return s.writeError(ctx, "apply: appending an audit event", err, "an audit event was numbered twice")
		}
	}
	return nil
}

// NotifyChannel is the PostgreSQL channel on which Apply notifies, in the
// same transaction, every change that writes keys or settings; the payload
// is the change's newest revision. Package
// github.com/keystile/keystile/storage/sqlstore/pgnotify listens on it.
// Stores in other schemas of the same database share the channel: their
// notifications only wake a reader early.
const NotifyChannel = "keystile_changes"

func (s *Store) updateKey(ctx context.Context, tx *sql.Tx, r apikey.Record, rev int64) error {
	metadata, scopes, limits, ownerLimits, err := encodeKeyLists(r)
	if err != nil {
		return err
	}
	lastUsed := nullMicros(r.LastUsedAt)
	res, err := tx.ExecContext(ctx, s.q.updateKey,
		r.Account, string(r.Type), r.Environment, r.Name, r.Owner, metadata, scopes, r.Default,
		micros(r.CreatedAt), r.CreatedBy, nullMicros(r.ExpiresAt), nullMicros(r.RotatedAt),
		nullMicros(r.ExpiryLimit), nullMicros(r.RevokedAt), lastUsed, lastUsed,
		r.Hash.Reveal(), blob(r.Recoverable.Bytes()), rev, limits, nullString(r.Lineage), nullMicros(r.DisabledAt),
		ownerLimits, r.ID, r.Revision)
	if err != nil {
		return s.writeError(ctx, "apply: updating key "+r.Prefix(), err, defaultTaken(r))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(ctx, "apply: updating key "+r.Prefix(), err)
	}
	if n == 1 {
		if err := s.putQuota(ctx, tx, r, rev, false); err != nil {
			return err
		}
		return s.publish(ctx, tx, rev, r.Account, r.Environment, r.ID)
	}
	// No row: the key is missing or its revision moved on. The transaction
	// holds the write lock (see Apply), so the answer cannot change under us.
	var exists int64
	if err := tx.QueryRowContext(ctx, s.q.keyExists, r.ID).Scan(&exists); err != nil {
		return s.wrap(ctx, "apply: updating key "+r.Prefix(), err)
	}
	if exists == 0 {
		return fmt.Errorf("%w: key %s", apikey.ErrNotFound, r.Prefix())
	}
	return fmt.Errorf("%w: key %s changed since it was read", apikey.ErrConflict, r.Prefix())
}

func (s *Store) insertKey(ctx context.Context, tx *sql.Tx, r apikey.Record, rev int64) error {
	metadata, scopes, limits, ownerLimits, err := encodeKeyLists(r)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.q.insertKey,
		r.ID, r.Account, string(r.Type), r.Environment, r.Name, r.Owner, metadata, scopes, r.Default,
		micros(r.CreatedAt), r.CreatedBy, nullMicros(r.ExpiresAt), nullMicros(r.RotatedAt),
		nullMicros(r.ExpiryLimit), nullMicros(r.RevokedAt), nullMicros(r.LastUsedAt),
		r.Hash.Reveal(), blob(r.Recoverable.Bytes()), rev, limits, nullString(r.Lineage), nullMicros(r.DisabledAt),
		ownerLimits)
	if err != nil {
		why := fmt.Sprintf("key id %s exists", r.Prefix())
		// PostgreSQL names the index, SQLite its columns.
		if msg := err.Error(); strings.Contains(msg, "keystile_keys_one_default") || strings.Contains(msg, "keystile_keys.type") {
			why = defaultTaken(r)
		}
		return s.writeError(ctx, "apply: inserting key "+r.Prefix(), err, why)
	}
	if err := s.putQuota(ctx, tx, r, rev, true); err != nil {
		return err
	}
	return s.publish(ctx, tx, rev, r.Account, r.Environment, r.ID)
}

// encodeKeyLists encodes a key's metadata, scopes, limits and owner
// limits as JSON (limits: NULL for none).
func encodeKeyLists(r apikey.Record) (metadata, scopes, limits, ownerLimits any, err error) {
	if metadata, err = encodeMap(r.Metadata); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("sqlstore: apply: key %s: metadata: %w", r.Prefix(), err)
	}
	if scopes, err = encodeList(r.Scopes); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("sqlstore: apply: key %s: scopes: %w", r.Prefix(), err)
	}
	if limits, err = encodeLimits(r.Limits); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("sqlstore: apply: key %s: limits: %w", r.Prefix(), err)
	}
	if ownerLimits, err = encodeLimits(r.OwnerLimits); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("sqlstore: apply: key %s: owner_limits: %w", r.Prefix(), err)
	}
	return metadata, scopes, limits, ownerLimits, nil
}

// encodeLimits encodes l as JSON, or NULL for the zero Limits.
func encodeLimits(l apikey.Limits) (any, error) {
	if l.IsZero() {
		return nil, nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// defaultTaken says why a key could not become its environment's default.
func defaultTaken(r apikey.Record) string {
	return fmt.Sprintf("%s of account %s already has a default %s key", r.Environment, r.Account, r.Type)
}

func (s *Store) putSettings(ctx context.Context, tx *sql.Tx, st apikey.Settings, rev int64) error {
	origins, err := encodeList(st.AllowedOrigins)
	if err != nil {
		return fmt.Errorf("sqlstore: apply: settings of %s: allowed origins: %w", st.Environment, err)
	}
	op := "apply: settings of " + st.Environment
	if st.Revision == 0 {
		_, err := tx.ExecContext(ctx, s.q.insertSettings, st.Account, st.Environment, origins,
			micros(st.UpdatedAt), nullMicros(st.ClosedAt), rev, nullMicros(st.SuspendedAt),
			wholeSeconds(st.Lifetime.DefaultExpiry), wholeSeconds(st.Lifetime.MaxLifetime))
		if err != nil {
			return s.writeError(ctx, op, err, fmt.Sprintf("settings of %s exist", st.Environment))
		}
		return s.publish(ctx, tx, rev, st.Account, st.Environment, "")
	}
	res, err := tx.ExecContext(ctx, s.q.updateSettings, origins, micros(st.UpdatedAt), nullMicros(st.ClosedAt), rev,
		nullMicros(st.SuspendedAt), wholeSeconds(st.Lifetime.DefaultExpiry), wholeSeconds(st.Lifetime.MaxLifetime),
		st.Account, st.Environment, st.Revision)
	if err != nil {
		return s.writeError(ctx, op, err, fmt.Sprintf("settings of %s changed since they were read", st.Environment))
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.wrap(ctx, op, err)
	} else if n == 0 {
		return fmt.Errorf("%w: settings of %s changed since they were read", apikey.ErrConflict, st.Environment)
	}
	return s.publish(ctx, tx, rev, st.Account, st.Environment, "")
}

// publish appends a change-feed entry.
func (s *Store) publish(ctx context.Context, tx *sql.Tx, rev int64, account, environment, keyID string) error {
	if _, err := tx.ExecContext(ctx, s.q.insertChange, rev, account, environment, keyID); err != nil {
		return s.wrap(ctx, "apply: appending to the change feed", err)
	}
	return nil
}

// writeError is wrap for a write that may lose a race: a unique violation
// (or a serialization failure) becomes ErrConflict with the reason why.
func (s *Store) writeError(ctx context.Context, op string, err error, why string) error {
	if ctx.Err() == nil && isConflict(err) {
		return fmt.Errorf("%w: %s", apikey.ErrConflict, why)
	}
	return s.wrap(ctx, op, err)
}

// micros is t in microseconds since the Unix epoch; the zero time maps to
// its own (negative) value and back.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros is micros, or NULL for the zero time.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// nullString stores "" as NULL.
func nullString(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// blob stores nil as NULL, whatever the driver does with a nil []byte.
func blob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
