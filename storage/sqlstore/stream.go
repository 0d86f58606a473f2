package sqlstore

import (
	"context"
	"database/sql"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var (
	_ storage.EventStream   = (*Store)(nil)
	_ storage.TimedEventLog = (*Store)(nil)
)

// streamV11 is version 11: the event stream and time-based events.
//   - The stream's cursor is keystile_events.seq, the primary key, which
//     needs no change: every write that appends events (Apply,
//     AppendTimed) first takes the revision counter's lock (see Apply) and
//     holds it until it commits, so that seq values are handed out, and
//     become visible, in commit order (an identity or AUTOINCREMENT value
//     is taken at insert time, under the lock). A rolled-back write leaves
//     a gap, never a smaller number committed later.
//   - keystile_keys_due (expires_at, id), keys with an expiry that are
//     not revoked, in every account: the keys whose expiry falls in a
//     window (storage.TimedEventLog.DueKeys).
//   - keystile_event_marks records each (key_id, kind, expires_at) whose
//     time-based event was appended; its primary key makes a second one
//     impossible, whoever writes. The quota ledger records there too, in
//     kinds of its own (apikey.QuotaExhaustedKind): the balance's id, and
//     the period's index as expires_at (see LeaseQuota).
//   - keystile_deliveries and keystile_dead_letters: the delivery of the
//     stream to the service's endpoints (see deliveryTables).
//
// On a large table, building the index blocks writes to keystile_keys on
// PostgreSQL for a while: migrate at a quiet time, or create it with CREATE
// INDEX CONCURRENTLY beforehand under this name (IF NOT EXISTS skips it).
func streamV11(d Dialect) []string {
	rowid := ""
	if d == SQLite {
		rowid = " WITHOUT ROWID"
	}
	return append([]string{
		`CREATE INDEX IF NOT EXISTS keystile_keys_due ON keystile_keys (expires_at, id)
			WHERE expires_at IS NOT NULL AND revoked_at IS NULL`,
		`CREATE TABLE keystile_event_marks (
			key_id     TEXT   NOT NULL,
			kind       TEXT   NOT NULL,
			expires_at BIGINT NOT NULL,
			PRIMARY KEY (key_id, kind, expires_at)
		)` + rowid,
	}, deliveryTables(d)...)
}

// The statements of the stream, in '?' form (rebound per dialect).
const (
	// The primary key seq, read in order from the cursor.
	eventsAfterQuery = `SELECT seq, ` + eventColumns + ` FROM keystile_events WHERE seq > ? ORDER BY seq LIMIT ?`
	// keystile_keys_due: a range scan from the position to the end of the
	// window; each key is checked against keystile_event_marks' primary
	// key. The query repeats the index's condition, which SQLite needs to
	// use a partial index.
	dueKeysQuery = `SELECT ` + keyColumns + ` FROM keystile_keys k
		WHERE expires_at IS NOT NULL AND revoked_at IS NULL
			AND (expires_at, id) > (?, ?) AND expires_at <= ?
			AND NOT EXISTS (SELECT 1 FROM keystile_event_marks m
				WHERE m.key_id = k.id AND m.kind = ? AND m.expires_at = k.expires_at)
		ORDER BY expires_at, id LIMIT ?`
	// A mark is written only for a key that has the expiry and is not
	// revoked, and only once (the primary key). The WHERE clause also
	// settles SQLite's parsing of INSERT ... SELECT ... ON CONFLICT.
	markQuery = `INSERT INTO keystile_event_marks (key_id, kind, expires_at)
		SELECT id, ?, expires_at FROM keystile_keys WHERE id = ? AND expires_at = ? AND revoked_at IS NULL
		ON CONFLICT DO NOTHING`
)

// EventsAfter implements storage.EventStream: one range scan of the
// events' primary key from the cursor. See streamV11 for why seq follows
// commit order.
func (s *Store) EventsAfter(ctx context.Context, cursor int64, limit int) ([]apikey.StreamEvent, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, cursor, s.wrap(ctx, "events after", err)
	}
	if limit <= 0 {
		limit = apikey.DefaultStreamLimit
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(eventsAfterQuery), cursor, limit)
	if err != nil {
		return nil, cursor, s.wrap(ctx, "events after", err)
	}
	return s.scanStream(ctx, rows, cursor, "events after")
}

// scanStream reads rows of seq then eventColumns as a page of the stream
// after cursor, and closes them.
func (s *Store) scanStream(ctx context.Context, rows *sql.Rows, cursor int64, op string) ([]apikey.StreamEvent, int64, error) {
	defer rows.Close()
	out := []apikey.StreamEvent{}
	for rows.Next() {
		var (
			se                    apikey.StreamEvent
			at                    int64
			role, action, keyType string
		)
		e := &se.Event
		if err := rows.Scan(&se.Cursor, &e.Seq, &at, &e.Actor.ID, &role, &e.Actor.Account, &action, &e.Account,
			&e.Environment, &e.KeyID, &keyType, &e.Detail); err != nil {
			return nil, cursor, s.wrap(ctx, op, err)
		}
		e.Time, e.Actor.Role, e.Action, e.KeyType = fromMicros(at), apikey.Role(role), apikey.Action(action), apikey.KeyType(keyType)
		out = append(out, se)
	}
	if err := rows.Err(); err != nil {
		return nil, cursor, s.wrap(ctx, op, err)
	}
	if len(out) == 0 {
		return out, cursor, nil
	}
	return out, out[len(out)-1].Cursor, nil
}

// DueKeys implements storage.TimedEventLog: one range scan of
// keystile_keys_due from q.After to q.Until.
func (s *Store) DueKeys(ctx context.Context, q apikey.DueQuery) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "due keys", err)
	}
	if q.Limit <= 0 {
		return []apikey.Record{}, nil
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(dueKeysQuery), micros(q.After.ExpiresAt), q.After.ID, micros(q.Until),
		string(q.Kind), q.Limit)
	if err != nil {
		return nil, s.wrap(ctx, "due keys", err)
	}
	defer rows.Close()
	out := make([]apikey.Record, 0, min(q.Limit, maxPrealloc))
	for rows.Next() {
		r, err := scanKey(rows)
		if err != nil {
			return nil, s.wrap(ctx, "due keys", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "due keys", err)
	}
	return out, nil
}

// AppendTimed implements storage.TimedEventLog: one transaction that takes
// the revision counter's lock as Apply does (so that its events join the
// stream in commit order and are numbered without a race), writes each
// event's mark if the key still has the expiry (a conditional INSERT that
// the mark's primary key makes happen once), and appends the events whose
// mark it wrote.
func (s *Store) AppendTimed(ctx context.Context, events []apikey.TimedEvent) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, s.wrap(ctx, "append timed events", err)
	}
	if len(events) == 0 {
		return 0, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.wrap(ctx, "append timed events", err)
	}
	appended, err := s.appendTimed(ctx, tx, events)
	if err != nil {
		_ = tx.Rollback()
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, s.writeError(ctx, "append timed events: commit", err, "the events lost a race with another writer")
	}
	return appended, nil
}

func (s *Store) appendTimed(ctx context.Context, tx *sql.Tx, events []apikey.TimedEvent) (int, error) {
	var top int64
	if err := tx.QueryRowContext(ctx, s.q.bump, 0).Scan(&top); err != nil {
		return 0, s.writeError(ctx, "append timed events: taking the lock", err, "the events lost a race with another writer")
	}
	mark := s.d.rebind(markQuery)
	var appended []apikey.Event
	for _, te := range events {
		res, err := tx.ExecContext(ctx, mark, string(te.Kind), te.Event.KeyID, micros(te.ExpiresAt))
		if err != nil {
			return 0, s.wrap(ctx, "append timed events: marking", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, s.wrap(ctx, "append timed events: marking", err)
		}
		if n == 1 {
			appended = append(appended, te.Event)
		}
	}
	if err := s.appendEvents(ctx, tx, appended); err != nil {
		return 0, err
	}
	return len(appended), nil
}
