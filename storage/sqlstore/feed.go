package sqlstore

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// defaultChangesLimit is the page size of Changes when limit <= 0.
const defaultChangesLimit = 1000

// Changes implements storage.ChangeFeed. Polling it is two indexed reads:
// the revision counter, then the feed rows after since (the feed's primary
// key is the revision).
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
		if err := rows.Scan(&c.Revision, &c.Environment, &c.KeyID); err != nil {
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
	return out, out[len(out)-1].Revision, nil
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

// Events implements storage.AuditLog. Events come back in the order they
// were appended, newest first.
func (s *Store) Events(ctx context.Context, environment string, limit int) ([]apikey.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "events", err)
	}
	n := int64(limit)
	if limit <= 0 {
		n = math.MaxInt64
	}
	query, args := s.q.events, []any{n}
	if environment != "" {
		query, args = s.q.eventsIn, []any{environment, n}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(ctx, "events", err)
	}
	defer rows.Close()
	out := []apikey.Event{}
	for rows.Next() {
		var (
			e            apikey.Event
			at           int64
			role, action string
		)
		if err := rows.Scan(&at, &e.Actor.ID, &role, &action, &e.Environment, &e.KeyID, &e.Detail); err != nil {
			return nil, s.wrap(ctx, "events", err)
		}
		e.Time, e.Actor.Role, e.Action = fromMicros(at), apikey.Role(role), apikey.Action(action)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "events", err)
	}
	return out, nil
}
