package sqlstore

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.UsageRecorder = (*Store)(nil)

// Usage statements (see the version 5 migration).
const (
	usageColumns = `account, environment, key_id, hour, outcome, count`
	// The primary key (account, hour, key_id, outcome).
	accountUsage = `SELECT ` + usageColumns + ` FROM keystile_usage
		WHERE account = ? AND hour >= ? AND hour < ? AND (hour, key_id, outcome) > (?, ?, ?)
		ORDER BY hour, key_id, outcome LIMIT ?`
	// keystile_usage_environment (account, environment, hour, key_id,
	// outcome).
	environmentUsage = `SELECT ` + usageColumns + ` FROM keystile_usage
		WHERE account = ? AND environment = ? AND hour >= ? AND hour < ? AND (hour, key_id, outcome) > (?, ?, ?)
		ORDER BY hour, key_id, outcome LIMIT ?`
	// keystile_usage_key (key_id, hour, outcome); the cursor is in the
	// index's order, (hour, outcome): see keyCursor.
	keyUsage = `SELECT ` + usageColumns + ` FROM keystile_usage
		WHERE key_id = ? AND account = ? AND (? = '' OR environment = ?)
			AND hour >= ? AND hour < ? AND (hour, outcome) > (?, ?)
		ORDER BY hour, outcome LIMIT ?`
	// keystile_usage_hour.
	pruneUsage = `DELETE FROM keystile_usage WHERE hour < ?`
)

// usageLimit is the size of a page of Usage when the query names none.
const usageLimit = 1000

// RecordUsage implements storage.UsageRecorder: one transaction of
// multi-row upserts that add each count to its row, usageChunk rows per
// statement, in a fixed order so that concurrent batches never deadlock.
// Counts of one row are added up first (a statement may not change a row
// twice). Hours are truncated to the hour, in UTC.
func (s *Store) RecordUsage(ctx context.Context, counts []apikey.UsageCount) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(ctx, "record usage", err)
	}
	if len(counts) == 0 {
		return nil
	}
	sorted := make([]apikey.UsageCount, 0, len(counts))
	for _, c := range counts {
		c.Hour = c.Hour.UTC().Truncate(time.Hour)
		sorted = append(sorted, c)
	}
	slices.SortFunc(sorted, func(a, b apikey.UsageCount) int {
		return cmp.Or(strings.Compare(a.Account, b.Account), a.Hour.Compare(b.Hour),
			strings.Compare(a.KeyID, b.KeyID), strings.Compare(a.Outcome, b.Outcome))
	})
	merged := sorted[:0]
	for _, c := range sorted {
		if n := len(merged); n > 0 && sameUsageRow(merged[n-1], c) {
			merged[n-1].Count += c.Count
			continue
		}
		merged = append(merged, c)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(ctx, "record usage", err)
	}
	defer func() { _ = tx.Rollback() }()
	args := make([]any, 0, 6*min(len(merged), usageChunk))
	for chunk := range slices.Chunk(merged, usageChunk) {
		args = args[:0]
		for _, c := range chunk {
			args = append(args, c.Account, c.Environment, c.KeyID, micros(c.Hour), c.Outcome, c.Count)
		}
		if _, err := tx.ExecContext(ctx, s.addUsageQuery(len(chunk)), args...); err != nil {
			return s.wrap(ctx, "record usage", err)
		}
	}
	return s.wrap(ctx, "record usage: commit", tx.Commit())
}

// usageChunk is how many rows one statement of RecordUsage writes: 6
// parameters each, well below the bound of both engines (SQLite 32,766,
// PostgreSQL 65,535).
const usageChunk = 200

// addUsageQuery returns the upsert of n rows: the prepared text for a full
// chunk, else built for n.
func (s *Store) addUsageQuery(n int) string {
	if n == usageChunk {
		return s.q.addUsage
	}
	return s.d.rebind(addUsageRows(n))
}

// addUsageRows is the upsert of n rows, with '?' placeholders.
func addUsageRows(n int) string {
	return `INSERT INTO keystile_usage (` + usageColumns + `) VALUES (?, ?, ?, ?, ?, ?)` +
		strings.Repeat(`, (?, ?, ?, ?, ?, ?)`, n-1) +
		` ON CONFLICT (account, hour, key_id, outcome) DO UPDATE SET count = keystile_usage.count + excluded.count`
}

func sameUsageRow(a, b apikey.UsageCount) bool {
	return a.Account == b.Account && a.Hour.Equal(b.Hour) && a.KeyID == b.KeyID && a.Outcome == b.Outcome
}

// Usage implements storage.UsageRecorder: one range scan of the index
// that matches the query (see the version 5 migration).
func (s *Store) Usage(ctx context.Context, q apikey.UsageQuery) ([]apikey.UsageCount, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "usage", err)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = usageLimit
	}
	from, to := micros(q.From), micros(q.To)
	// Before every row of the range: hours are at least from.
	afterHour, afterKey, afterOutcome := from-1, "", ""
	if q.After != nil {
		afterHour, afterKey, afterOutcome = micros(q.After.Hour), q.After.KeyID, q.After.Outcome
	}
	var (
		query string
		args  []any
	)
	switch {
	case q.KeyID != "":
		h, o := keyCursor(q.KeyID, afterHour, afterKey, afterOutcome)
		query, args = s.q.keyUsage, []any{q.KeyID, q.Account, q.Environment, q.Environment, from, to, h, o, limit}
	case q.Environment != "":
		query, args = s.q.environmentUsage, []any{q.Account, q.Environment, from, to, afterHour, afterKey, afterOutcome, limit}
	default:
		query, args = s.q.accountUsage, []any{q.Account, from, to, afterHour, afterKey, afterOutcome, limit}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(ctx, "usage", err)
	}
	defer rows.Close()
	out := make([]apikey.UsageCount, 0, min(limit, maxPrealloc))
	for rows.Next() {
		var (
			c    apikey.UsageCount
			hour int64
		)
		if err := rows.Scan(&c.Account, &c.Environment, &c.KeyID, &hour, &c.Outcome, &c.Count); err != nil {
			return nil, s.wrap(ctx, "usage", err)
		}
		c.Hour = fromMicros(hour)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "usage", err)
	}
	return out, nil
}

// keyCursor turns a cursor (hour, key id, outcome) into one over the rows
// of keyID alone, in its index's order (hour, outcome): the rows of keyID
// after it. Hours are whole hours, so "hour > h" is "(hour, outcome) >
// (h+1, "")" and "hour >= h" is "(hour, outcome) > (h-1, "")".
func keyCursor(keyID string, hour int64, key, outcome string) (int64, string) {
	switch {
	case key == keyID:
		return hour, outcome
	case key < keyID:
		return hour - 1, ""
	default:
		return hour + 1, ""
	}
}

// PruneUsage implements storage.UsageRecorder: one DELETE of a range of
// the index on hour.
func (s *Store) PruneUsage(ctx context.Context, before time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, s.wrap(ctx, "prune usage", err)
	}
	res, err := s.db.ExecContext(ctx, s.q.pruneUsage, micros(before))
	if err != nil {
		return 0, s.wrap(ctx, "prune usage", err)
	}
	n, err := res.RowsAffected()
	return n, s.wrap(ctx, "prune usage", err)
}
