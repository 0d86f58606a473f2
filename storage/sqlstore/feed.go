package sqlstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// defaultChangesLimit is the page size of Changes when limit <= 0.
const defaultChangesLimit = 1000

// Changes implements storage.ChangeFeed. Polling it is two indexed reads:
// the revision counter, then the feed rows after since (the feed's primary
// key is the revision); a page with key entries adds one read of those
// keys' records (see attachKeys).
//
// Revisions are dense (each Apply takes exactly as many as it writes rows,
// and a rolled-back Apply gives them back) and commit in order (see Apply),
// so the rows a reader sees after since start at since+1 unless they were
// pruned. The counter is read first: every revision up to it has committed,
// so if the feed then holds none of them, they were pruned. A since beyond
// the counter is a gap too: the database went back in time (a restore), so
// the reader must drop what it cached.
func (s *Store) Changes(ctx context.Context, since int64, limit int) ([]storage.Changed, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, since, s.wrap(ctx, "changes", err)
	}
	if limit <= 0 {
		limit = defaultChangesLimit
	}
	var current int64
	if err := s.db.QueryRowContext(ctx, s.q.revision).Scan(&current); err != nil {
		return nil, since, s.wrap(ctx, "changes", err)
	}
	rows, err := s.db.QueryContext(ctx, s.q.changes, since, limit)
	if err != nil {
		return nil, since, s.wrap(ctx, "changes", err)
	}
	defer rows.Close()
	out := []storage.Changed{}
	for rows.Next() {
		var c storage.Changed
		if err := rows.Scan(&c.Revision, &c.Account, &c.Environment, &c.KeyID); err != nil {
			return nil, since, s.wrap(ctx, "changes", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, since, s.wrap(ctx, "changes", err)
	}
	switch {
	case len(out) > 0 && out[0].Revision != since+1, len(out) == 0 && since < current:
		return nil, current, storage.ErrFeedGap // pruned
	case since > current:
		// The reader is ahead of the database: it was restored from a
		// backup or replaced. What the reader cached may be stale.
		return nil, current, storage.ErrFeedGap
	}
	if len(out) == 0 {
		return out, since, nil
	}
	if err := s.attachKeys(ctx, out); err != nil {
		return nil, since, s.wrap(ctx, "changes", err)
	}
	return out, out[len(out)-1].Revision, nil
}

// attachKeys sets the Key of every key entry of changes to the key's
// current record: one read of the primary key per 1,000 keys, so that a
// reader updates what it cached without reading each key again. A record
// that cannot be decoded is left out (nil): the reader then reads the key
// itself, and that one key's fault does not stop the feed.
func (s *Store) attachKeys(ctx context.Context, changes []storage.Changed) error {
	ids := make([]string, 0, len(changes))
	for _, c := range changes {
		if c.KeyID != "" {
			ids = append(ids, c.KeyID)
		}
	}
	byID, err := s.recordsByID(ctx, ids)
	if err != nil {
		return err
	}
	for i := range changes {
		changes[i].Key = byID[changes[i].KeyID]
	}
	return nil
}

// KeysByID implements storage.KeyBatchReader: one read of the primary key
// per 1,000 keys.
func (s *Store) KeysByID(ctx context.Context, ids []string) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "keys by id", err)
	}
	byID, err := s.recordsByID(ctx, ids)
	if err != nil {
		return nil, s.wrap(ctx, "keys by id", err)
	}
	out := make([]apikey.Record, 0, len(byID))
	for _, r := range byID {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}

// recordsByID reads the records of ids, each id once, attachChunk ids per
// query. An id whose key does not exist or cannot be decoded maps to nil.
func (s *Store) recordsByID(ctx context.Context, ids []string) (map[string]*apikey.Record, error) {
	byID := map[string]*apikey.Record{}
	args := []any{}
	for _, id := range ids {
		if _, seen := byID[id]; !seen {
			byID[id] = nil
			args = append(args, id)
		}
	}
	for chunk := range slices.Chunk(args, attachChunk) {
		if err := s.readKeys(ctx, chunk, byID); err != nil {
			return nil, err
		}
	}
	return byID, nil
}

// attachChunk is how many keys one query of recordsByID reads, well below
// the bound on parameters of both engines (SQLite 32,766, PostgreSQL
// 65,535).
const attachChunk = 1000

// readKeys reads the records of ids into byID. The list of ids is padded,
// by repeating the last, to 1, 10, 100 or 1,000 entries, so that the
// queries are four statements that drivers can keep prepared.
func (s *Store) readKeys(ctx context.Context, ids []any, byID map[string]*apikey.Record) error {
	n := 1
	for n < len(ids) {
		n *= 10
	}
	for len(ids) < n {
		ids = append(ids, ids[len(ids)-1])
	}
	query := `SELECT ` + keyColumns + ` FROM keystile_keys WHERE id IN (?` + strings.Repeat(`, ?`, n-1) + `)`
	rows, err := s.db.QueryContext(ctx, s.d.rebind(query), ids...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if r, err := scanKey(rows); err == nil {
			byID[r.ID] = &r
		}
	}
	return rows.Err()
}

// Revision implements storage.ChangeFeed.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, s.wrap(ctx, "revision", err)
	}
	var current int64
	if err := s.db.QueryRowContext(ctx, s.q.revision).Scan(&current); err != nil {
		return 0, s.wrap(ctx, "revision", err)
	}
	return current, nil
}

// RecordLastUsed implements storage.LastUsedRecorder: one transaction for
// the whole batch, one conditional UPDATE per key (the time only moves
// forward), no revision or feed entry. Zero times are ignored.
//
// In PostgreSQL the transaction first locks the revision counter row, as
// Apply does, so that the two never lock the same key rows in opposite
// orders (a deadlock); the batch holds up writers for its duration only.
func (s *Store) RecordLastUsed(ctx context.Context, used map[string]time.Time) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(ctx, "record last used", err)
	}
	ids := make([]string, 0, len(used))
	for id, t := range used {
		if !t.IsZero() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(ctx, "record last used", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if s.q.lockRevision != "" {
		var current int64
		if err := tx.QueryRowContext(ctx, s.q.lockRevision).Scan(&current); err != nil {
			return s.wrap(ctx, "record last used", err)
		}
	}
	stmt, err := tx.PrepareContext(ctx, s.q.touch)
	if err != nil {
		return s.wrap(ctx, "record last used", err)
	}
	defer stmt.Close()
	for _, id := range ids {
		t := micros(used[id])
		if _, err := stmt.ExecContext(ctx, t, id, t); err != nil {
			return s.wrap(ctx, "record last used", err)
		}
	}
	return s.wrap(ctx, "record last used: commit", tx.Commit())
}

// Events implements storage.AuditLog: the newest events first, each with
// its Seq (account_seq), read backwards from an index: (account,
// account_seq) or (account, environment, account_seq) for an account's
// events, the primary key seq or (environment, seq) for every account's. A
// page costs the same however long the log is.
func (s *Store) Events(ctx context.Context, q storage.EventQuery) ([]apikey.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "events", err)
	}
	if q.Account == "" && q.Before > 0 {
		return nil, fmt.Errorf("%w: paging every account's events needs an account", apikey.ErrInvalidCursor)
	}
	var (
		where []string
		args  []any
	)
	if q.Account != "" {
		where, args = append(where, "account = ?"), append(args, q.Account)
	}
	if q.Environment != "" {
		where, args = append(where, "environment = ?"), append(args, q.Environment)
	}
	if q.Before > 0 {
		where, args = append(where, "account_seq < ?"), append(args, q.Before)
	}
	query := `SELECT ` + eventColumns + ` FROM keystile_events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := int64(q.Limit)
	if q.Limit <= 0 {
		limit = math.MaxInt64
	}
	order := "seq" // every account's: the order they were appended
	if q.Account != "" {
		order = "account_seq"
	}
	query += ` ORDER BY ` + order + ` DESC LIMIT ?`
	args = append(args, limit)

	rows, err := s.db.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, s.wrap(ctx, "events", err)
	}
	defer rows.Close()
	out := []apikey.Event{}
	for rows.Next() {
		var (
			e                     apikey.Event
			at                    int64
			role, action, keyType string
		)
		if err := rows.Scan(&e.Seq, &at, &e.Actor.ID, &role, &e.Actor.Account, &action, &e.Account, &e.Environment,
			&e.KeyID, &keyType, &e.Detail); err != nil {
			return nil, s.wrap(ctx, "events", err)
		}
		e.Time, e.Actor.Role, e.Action, e.KeyType = fromMicros(at), apikey.Role(role), apikey.Action(action), apikey.KeyType(keyType)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "events", err)
	}
	return out, nil
}
