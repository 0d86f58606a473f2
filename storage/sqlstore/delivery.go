package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var (
	_ storage.DeliveryLog = (*Store)(nil)
	_ storage.ReplayLog   = (*Store)(nil)
)

// deliveryTables are the tables of storage.DeliveryLog (schema version
// 11): keystile_deliveries holds each endpoint's cursor (through: every
// event up to it is delivered or dead) and lease (holder, lease_until in
// microseconds), by its primary key endpoint; keystile_dead_letters each
// endpoint's dead letters, by its primary key (endpoint, event_cursor).
func deliveryTables(d Dialect) []string {
	rowid := ""
	if d == SQLite {
		rowid = " WITHOUT ROWID"
	}
	return []string{
		`CREATE TABLE keystile_deliveries (
			endpoint    TEXT   NOT NULL PRIMARY KEY,
			holder      TEXT   NOT NULL,
			lease_until BIGINT NOT NULL,
			through     BIGINT NOT NULL
		)` + rowid,
		`CREATE TABLE keystile_dead_letters (
			endpoint   TEXT   NOT NULL,
			event_cursor BIGINT NOT NULL,
			event_id   TEXT   NOT NULL,
			attempts   BIGINT NOT NULL,
			reason     TEXT   NOT NULL,
			dead_at    BIGINT NOT NULL,
			PRIMARY KEY (endpoint, event_cursor)
		)` + rowid,
	}
}

// deadLettersV16 is version 16: dead letters found by index for a page of
// a tenant's endpoint and for a replay of one event
// (storage.ReplayLog.DeadLettersBySeq, DeadLetterByEventID).
//   - keystile_dead_letters.event_seq: the number of the letter's event in
//     its account (apikey.EventIDSeq of event_id), which the store writes
//     with the letter; letters of earlier versions are numbered from their
//     event_id in the migration, by the same rule (0 for an id that does
//     not end in '_' and 1 to 18 digits). PostgreSQL then drops the
//     column's default, so that a letter written without it fails.
//   - keystile_dead_letters_seq (endpoint, event_seq, event_cursor): an
//     endpoint's letters in the order of their events' numbers, from a
//     number.
//   - keystile_dead_letters_event (endpoint, event_id, event_cursor): an
//     endpoint's letter of one event.
func deadLettersV16(d Dialect) []string {
	// event_id without the digits that end it.
	const stem = `rtrim(event_id, '0123456789')`
	statements := []string{
		`ALTER TABLE keystile_dead_letters ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0`,
		`UPDATE keystile_dead_letters SET event_seq = CAST(substr(event_id, length(` + stem + `) + 1) AS BIGINT)
		WHERE length(event_id) - length(` + stem + `) BETWEEN 1 AND 18
			AND substr(` + stem + `, length(` + stem + `), 1) = '_'`,
		`CREATE INDEX keystile_dead_letters_seq ON keystile_dead_letters (endpoint, event_seq, event_cursor)`,
		`CREATE INDEX keystile_dead_letters_event ON keystile_dead_letters (endpoint, event_id, event_cursor)`,
	}
	if d == Postgres {
		statements = append(statements, `ALTER TABLE keystile_dead_letters ALTER COLUMN event_seq DROP DEFAULT`)
	}
	return statements
}

// deadLettersV17 is version 17: a dead letter's event type, and the
// replaying letters found by index (storage.ReplayLog.Replaying).
//   - keystile_dead_letters.event_type: the action of the letter's event
//     (apikey.DeadLetter.Type), which the store writes with the letter;
//     letters of earlier versions take the action of their event, the row
//     of keystile_events whose seq is the letter's event_cursor, found by
//     that primary key, or the empty string when there is none. PostgreSQL then drops
//     the column's default, so that a letter written without it fails.
//   - keystile_dead_letters_replaying (endpoint, event_cursor) WHERE state
//     = 'replaying': an endpoint's replaying letters in cursor order,
//     which holds only the letters a replay re-queued.
func deadLettersV17(d Dialect) []string {
	statements := []string{
		`ALTER TABLE keystile_dead_letters ADD COLUMN event_type TEXT NOT NULL DEFAULT ''`,
		`UPDATE keystile_dead_letters SET event_type = COALESCE(
			(SELECT action FROM keystile_events WHERE seq = keystile_dead_letters.event_cursor), '')`,
		`CREATE INDEX keystile_dead_letters_replaying ON keystile_dead_letters (endpoint, event_cursor)
			WHERE state = 'replaying'`,
	}
	if d == Postgres {
		statements = append(statements, `ALTER TABLE keystile_dead_letters ALTER COLUMN event_type DROP DEFAULT`)
	}
	return statements
}

const (
	// One conditional upsert: a new endpoint's row, or the lease taken
	// over when it is the holder's or expired; RETURNING reads the row only
	// when it was written. A tenant endpoint's name ("tenant/" + id) is
	// written only while its endpoint's row exists (by primary key; locked
	// FOR SHARE on PostgreSQL, see leaseDeliveryPostgres), so that a lease
	// racing the endpoint's delete either commits before the delete, which
	// then deletes its row, or writes nothing.
	leaseDeliveryQuery = `INSERT INTO keystile_deliveries (endpoint, holder, lease_until, through)
		SELECT ?, ?, CAST(? AS BIGINT), 0
		WHERE substr(CAST(? AS TEXT), 1, 7) <> 'tenant/' OR EXISTS (SELECT 1 FROM keystile_endpoints WHERE id = ?` + lockShare + `)
		ON CONFLICT (endpoint) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until
		WHERE keystile_deliveries.holder = excluded.holder OR keystile_deliveries.lease_until < ?
		RETURNING through`
	advanceDeliveryQuery = `UPDATE keystile_deliveries SET through = CASE WHEN through < ? THEN ? ELSE through END
		WHERE endpoint = ? AND holder = ? AND lease_until >= ?`
	deadLetterQuery = `INSERT INTO keystile_dead_letters (endpoint, event_cursor, event_id, event_seq, event_type, attempts, reason, dead_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	deadLettersQuery = `SELECT ` + deadLetterColumns + ` FROM keystile_dead_letters
		WHERE endpoint = ? AND event_cursor > ? ORDER BY event_cursor LIMIT ?`
	// The primary key (endpoint, event_cursor): one letter, or the
	// endpoint's range.
	replayOneQuery = `UPDATE keystile_dead_letters SET state = 'replaying'
		WHERE endpoint = ? AND event_cursor = ? AND state <> 'replaying'`
	replayAllQuery = `UPDATE keystile_dead_letters SET state = 'replaying'
		WHERE endpoint = ? AND state <> 'replaying'`
	replayedQuery = `UPDATE keystile_dead_letters SET state = 'delivered'
		WHERE endpoint = ? AND event_cursor = ? AND state = 'replaying'`
	deadAgainQuery = `UPDATE keystile_dead_letters SET state = 'dead', attempts = ?, reason = ?, dead_at = ?
		WHERE endpoint = ? AND event_cursor = ? AND state = 'replaying'`
)

// deadLetterColumns are the columns scanDeadLetters reads.
const deadLetterColumns = `event_cursor, event_id, event_type, attempts, reason, dead_at, state`

// deadLetterIndexQueries are the statements of the dead letters' indexes
// of versions 16 and 17, in '?' form: a page by number from
// keystile_dead_letters_seq (endpoint, event_seq, event_cursor), the first
// letter of an event from keystile_dead_letters_event (endpoint, event_id,
// event_cursor), and the replaying letters from the partial index
// keystile_dead_letters_replaying (endpoint, event_cursor). SQLite is told
// the index: left to itself, it reads the endpoint's range of the primary
// key (every letter of the endpoint) and filters it.
func deadLetterIndexQueries(d Dialect) (bySeq, byEvent, replaying string) {
	indexedBy := func(string) string { return "" } // PostgreSQL's planner picks it
	if d == SQLite {
		indexedBy = func(index string) string { return " INDEXED BY " + index }
	}
	const columns = `SELECT ` + deadLetterColumns + ` FROM keystile_dead_letters`
	bySeq = columns + indexedBy("keystile_dead_letters_seq") + `
		WHERE endpoint = ? AND event_seq > ? ORDER BY event_seq, event_cursor LIMIT ?`
	byEvent = columns + indexedBy("keystile_dead_letters_event") + `
		WHERE endpoint = ? AND event_id = ? ORDER BY event_cursor LIMIT 1`
	// The condition of the partial index, as written there, which SQLite
	// needs to use it.
	replaying = columns + indexedBy("keystile_dead_letters_replaying") + `
		WHERE endpoint = ? AND state = 'replaying' ORDER BY event_cursor LIMIT ?`
	return bySeq, byEvent, replaying
}

// lockShare marks where leaseDeliveryQuery locks the endpoint's row.
const lockShare = " /*lock*/"

// leaseDeliveryQuery in each dialect: PostgreSQL locks the endpoint's row
// FOR SHARE, so that the EXISTS waits for a delete in progress and then
// finds no row; SQLite needs no lock, its write holding the database's.
var (
	leaseDeliveryPostgres = strings.Replace(leaseDeliveryQuery, lockShare, " FOR SHARE", 1)
	leaseDeliverySQLite   = strings.Replace(leaseDeliveryQuery, lockShare, "", 1)
)

// LeaseDelivery implements storage.DeliveryLog: a tenant endpoint's name
// is leased only while its endpoint exists (see leaseDeliveryQuery).
func (s *Store) LeaseDelivery(ctx context.Context, endpoint, holder string, now, until time.Time) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, s.wrap(ctx, "lease delivery", err)
	}
	var cursor int64
	q := leaseDeliverySQLite
	if s.d == Postgres {
		q = leaseDeliveryPostgres
	}
	id := strings.TrimPrefix(endpoint, apikey.EndpointDeliveryPrefix)
	err := s.db.QueryRowContext(ctx, s.d.rebind(q), endpoint, holder, micros(until), endpoint, id, micros(now)).Scan(&cursor)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil // held by another, or a tenant endpoint that does not exist
	case err != nil && isConflict(err):
		return 0, false, nil // a concurrent first lease of the endpoint won
	case err != nil:
		return 0, false, s.wrap(ctx, "lease delivery", err)
	}
	return cursor, true, nil
}

// AdvanceDelivery implements storage.DeliveryLog: one transaction, the
// conditional UPDATE of the endpoint's row first (which locks it), then the
// dead letter.
func (s *Store) AdvanceDelivery(ctx context.Context, endpoint, holder string, now time.Time, cursor int64, dead *apikey.DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(ctx, "advance delivery", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(ctx, "advance delivery", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	res, err := tx.ExecContext(ctx, s.d.rebind(advanceDeliveryQuery), cursor, cursor, endpoint, holder, micros(now))
	if err != nil {
		return s.wrap(ctx, "advance delivery", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.wrap(ctx, "advance delivery", err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s", apikey.ErrLeaseLost, endpoint)
	}
	if dead != nil {
		if _, err := tx.ExecContext(ctx, s.d.rebind(deadLetterQuery), endpoint, dead.Cursor, dead.EventID,
			apikey.EventIDSeq(dead.EventID), string(dead.Type), dead.Attempts, dead.Reason, micros(dead.At)); err != nil {
			return s.wrap(ctx, "advance delivery: dead letter", err)
		}
	}
	return s.wrap(ctx, "advance delivery: commit", tx.Commit())
}

// DeadLetters implements storage.DeliveryLog: a range of the dead letters'
// primary key.
func (s *Store) DeadLetters(ctx context.Context, endpoint string, after int64, limit int) ([]apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "dead letters", err)
	}
	out := []apikey.DeadLetter{}
	if limit <= 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(deadLettersQuery), endpoint, after, limit)
	if err != nil {
		return nil, s.wrap(ctx, "dead letters", err)
	}
	return s.scanDeadLetters(ctx, rows, endpoint, "dead letters")
}

// DeadLettersBySeq implements storage.ReplayLog: a range of the index
// keystile_dead_letters_seq.
func (s *Store) DeadLettersBySeq(ctx context.Context, endpoint string, after int64, limit int) ([]apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "dead letters by number", err)
	}
	if limit <= 0 {
		return []apikey.DeadLetter{}, nil
	}
	rows, err := s.db.QueryContext(ctx, s.q.deadLettersBySeq, endpoint, after, limit)
	if err != nil {
		return nil, s.wrap(ctx, "dead letters by number", err)
	}
	return s.scanDeadLetters(ctx, rows, endpoint, "dead letters by number")
}

// DeadLetterByEventID implements storage.ReplayLog: a search of the index
// keystile_dead_letters_event.
func (s *Store) DeadLetterByEventID(ctx context.Context, endpoint, eventID string) (apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return apikey.DeadLetter{}, s.wrap(ctx, "dead letter by event id", err)
	}
	rows, err := s.db.QueryContext(ctx, s.q.deadLetterByEvent, endpoint, eventID)
	if err != nil {
		return apikey.DeadLetter{}, s.wrap(ctx, "dead letter by event id", err)
	}
	letters, err := s.scanDeadLetters(ctx, rows, endpoint, "dead letter by event id")
	if err != nil {
		return apikey.DeadLetter{}, err
	}
	if len(letters) == 0 {
		return apikey.DeadLetter{}, fmt.Errorf("%w: no dead letter with that event id", apikey.ErrNotFound) // the id is caller input: never echoed
	}
	return letters[0], nil
}

// scanDeadLetters reads rows of deadLetterColumns, and closes
// them.
func (s *Store) scanDeadLetters(ctx context.Context, rows *sql.Rows, endpoint, op string) ([]apikey.DeadLetter, error) {
	defer rows.Close()
	out := []apikey.DeadLetter{}
	for rows.Next() {
		l := apikey.DeadLetter{Endpoint: endpoint}
		var (
			at         int64
			typ, state string
		)
		if err := rows.Scan(&l.Cursor, &l.EventID, &typ, &l.Attempts, &l.Reason, &at, &state); err != nil {
			return nil, s.wrap(ctx, op, err)
		}
		l.Type, l.At, l.State = apikey.Action(typ), fromMicros(at), apikey.DeadLetterState(state)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, op, err)
	}
	return out, nil
}

// ReplayDeadLetters implements storage.ReplayLog: one transaction that
// takes the revision counter's lock as Apply does (its events join the
// stream in commit order), marks the letters by their primary key, and
// appends the events when it marked one.
func (s *Store) ReplayDeadLetters(ctx context.Context, endpoint string, cursor int64, events []apikey.Event) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, s.wrap(ctx, "replay dead letters", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.wrap(ctx, "replay dead letters", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	var top int64
	if err := tx.QueryRowContext(ctx, s.q.bump, 0).Scan(&top); err != nil {
		return 0, s.writeError(ctx, "replay dead letters: taking the lock", err, "the change lost a race with another writer")
	}
	var res sql.Result
	if cursor == 0 {
		res, err = tx.ExecContext(ctx, s.d.rebind(replayAllQuery), endpoint)
	} else {
		res, err = tx.ExecContext(ctx, s.d.rebind(replayOneQuery), endpoint, cursor)
	}
	if err != nil {
		return 0, s.wrap(ctx, "replay dead letters", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.wrap(ctx, "replay dead letters", err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.appendEvents(ctx, tx, events); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, s.writeError(ctx, "replay dead letters: commit", err, "the change lost a race with another writer")
	}
	return int(n), nil
}

// Replaying implements storage.ReplayLog: the endpoint's range of the
// partial index keystile_dead_letters_replaying.
func (s *Store) Replaying(ctx context.Context, endpoint string, limit int) ([]apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "replaying", err)
	}
	if limit <= 0 {
		return []apikey.DeadLetter{}, nil
	}
	rows, err := s.db.QueryContext(ctx, s.q.replaying, endpoint, limit)
	if err != nil {
		return nil, s.wrap(ctx, "replaying", err)
	}
	return s.scanDeadLetters(ctx, rows, endpoint, "replaying")
}

// ResolveReplay implements storage.ReplayLog: one transaction that checks
// the lease with the same condition as AdvanceDelivery, then updates the
// letter if it is replaying.
func (s *Store) ResolveReplay(ctx context.Context, endpoint, holder string, now time.Time, cursor int64, dead *apikey.DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(ctx, "resolve replay", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(ctx, "resolve replay", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	// Lock the endpoint's row as AdvanceDelivery does: a write that keeps
	// it as it is, if the holder holds the lease.
	res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE keystile_deliveries SET through = through
		WHERE endpoint = ? AND holder = ? AND lease_until >= ?`), endpoint, holder, micros(now))
	if err != nil {
		return s.wrap(ctx, "resolve replay", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.wrap(ctx, "resolve replay", err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s", apikey.ErrLeaseLost, endpoint)
	}
	if dead == nil {
		_, err = tx.ExecContext(ctx, s.d.rebind(replayedQuery), endpoint, cursor)
	} else {
		_, err = tx.ExecContext(ctx, s.d.rebind(deadAgainQuery), dead.Attempts, dead.Reason, micros(dead.At), endpoint, cursor)
	}
	if err != nil {
		return s.wrap(ctx, "resolve replay", err)
	}
	return s.wrap(ctx, "resolve replay: commit", tx.Commit())
}
