package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.CallerLog = (*Store)(nil)

// Caller statements (see the version 12 migration). Callers are ordered as
// apikey.CompareCallers orders them.
const (
	callerColumns = `address, user_agent, requests, first_seen, last_seen`
	callerOrder   = `ORDER BY last_seen DESC, requests DESC, address, user_agent`
	keyCallers    = `SELECT account, ` + callerColumns + ` FROM keystile_callers WHERE key_id = ? ` + callerOrder + ` LIMIT ?`
	keyOthers     = `SELECT account, others, requests FROM keystile_caller_others WHERE key_id = ?`
	addOthers     = `INSERT INTO keystile_caller_others (key_id, account, others, requests) VALUES (?, ?, ?, ?)
		ON CONFLICT (key_id) DO UPDATE SET others = keystile_caller_others.others + excluded.others,
			requests = keystile_caller_others.requests + excluded.requests`
)

// addCaller is the upsert of one caller in dialect d: requests added, the
// earlier first_seen and the later last_seen kept.
func addCaller(d Dialect) string {
	least, greatest := "LEAST", "GREATEST"
	if d == SQLite {
		least, greatest = "MIN", "MAX"
	}
	return d.rebind(`INSERT INTO keystile_callers (key_id, address, user_agent, account, ` + `requests, first_seen, last_seen)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key_id, address, user_agent) DO UPDATE SET
			requests = keystile_callers.requests + excluded.requests,
			first_seen = ` + least + `(keystile_callers.first_seen, excluded.first_seen),
			last_seen = ` + greatest + `(keystile_callers.last_seen, excluded.last_seen)`)
}

// trimCallers deletes, in dialect d, the callers of a key beyond the
// apikey.MaxCallers most recently seen, and returns their requests.
func trimCallers(d Dialect) string {
	all := "-1" // SQLite's "no limit"
	if d == Postgres {
		all = "ALL"
	}
	return d.rebind(`DELETE FROM keystile_callers WHERE key_id = ? AND (address, user_agent) IN (
		SELECT address, user_agent FROM keystile_callers WHERE key_id = ? ` + callerOrder + ` LIMIT ` + all + ` OFFSET ?)
		RETURNING requests`)
}

// RecordCallers implements storage.CallerLog in one transaction: per key,
// in key id order (so that concurrent batches never deadlock), an upsert
// of the key's others row, which locks it until the commit so that the
// writers of one key take turns; an upsert per caller, in (address, user
// agent) order; then one DELETE of the callers beyond apikey.MaxCallers,
// whose count and requests are added to the others row. Each dropped
// caller is counted once, by the writer that deleted it. The lock order,
// which PurgeKeys follows too: per key in key id order (byte order), its
// others row, then its caller rows.
func (s *Store) RecordCallers(ctx context.Context, reports []apikey.KeyCallers) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(ctx, "record callers", err)
	}
	if len(reports) == 0 {
		return nil
	}
	merged := mergeReports(reports)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(ctx, "record callers", err)
	}
	defer func() { _ = tx.Rollback() }()
	add, trim, others := addCaller(s.d), trimCallers(s.d), s.d.rebind(addOthers)
	for _, r := range merged {
		// First the key's others row, which also locks it: the writers of
		// one key take turns, each statement after it seeing the rows of
		// the writer before (READ COMMITTED).
		if _, err := tx.ExecContext(ctx, others, r.KeyID, r.Account, r.Others, r.OtherRequests); err != nil {
			return s.wrap(ctx, "record callers", err)
		}
		for _, c := range r.Callers {
			if _, err := tx.ExecContext(ctx, add, r.KeyID, c.Address, c.UserAgent, r.Account,
				c.Requests, micros(c.FirstSeen), micros(c.LastSeen)); err != nil {
				return s.wrap(ctx, "record callers", err)
			}
		}
		dropped, requests, err := s.trimCallers(ctx, tx, trim, r.KeyID)
		if err != nil {
			return err
		}
		if dropped == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, others, r.KeyID, r.Account, dropped, requests); err != nil {
			return s.wrap(ctx, "record callers", err)
		}
	}
	return s.wrap(ctx, "record callers: commit", tx.Commit())
}

// trimCallers runs the statement trim for keyID and returns how many
// callers it deleted and their requests.
func (s *Store) trimCallers(ctx context.Context, tx *sql.Tx, trim, keyID string) (dropped, requests int64, _ error) {
	rows, err := tx.QueryContext(ctx, trim, keyID, keyID, apikey.MaxCallers)
	if err != nil {
		return 0, 0, s.wrap(ctx, "record callers: trimming", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return 0, 0, s.wrap(ctx, "record callers: trimming", err)
		}
		dropped, requests = dropped+1, requests+n
	}
	return dropped, requests, s.wrap(ctx, "record callers: trimming", rows.Err())
}

// mergeReports returns reports merged per key (apikey.MergeCallers without
// the trim, which the store does), in key id order, each key's callers in
// (address, user agent) order, one row each, user agents as
// apikey.CleanUserAgent returns them.
func mergeReports(reports []apikey.KeyCallers) []apikey.KeyCallers {
	index := map[string]int{}
	var out []apikey.KeyCallers
	for _, r := range reports {
		i, ok := index[r.KeyID]
		if !ok {
			i = len(out)
			index[r.KeyID] = i
			out = append(out, apikey.KeyCallers{Account: r.Account, KeyID: r.KeyID})
		}
		out[i].Others += r.Others
		out[i].OtherRequests += r.OtherRequests
		out[i].Callers = append(out[i].Callers, r.Callers...)
	}
	for i := range out {
		cs := out[i].Callers // a copy of the reports' callers
		for j := range cs {
			cs[j].UserAgent = apikey.CleanUserAgent(cs[j].UserAgent)
		}
		slices.SortFunc(cs, func(a, b apikey.Caller) int {
			return cmp.Or(strings.Compare(a.Address, b.Address), strings.Compare(a.UserAgent, b.UserAgent))
		})
		one := cs[:0]
		for _, c := range cs {
			n := len(one)
			if n == 0 || one[n-1].Address != c.Address || one[n-1].UserAgent != c.UserAgent {
				one = append(one, c)
				continue
			}
			last := &one[n-1]
			last.Requests += c.Requests
			if c.FirstSeen.Before(last.FirstSeen) {
				last.FirstSeen = c.FirstSeen
			}
			if c.LastSeen.After(last.LastSeen) {
				last.LastSeen = c.LastSeen
			}
		}
		out[i].Callers = one
	}
	slices.SortFunc(out, func(a, b apikey.KeyCallers) int { return strings.Compare(a.KeyID, b.KeyID) })
	return out
}

// Callers implements storage.CallerLog: the key's rows by the primary
// key's prefix, and its others' row, in one read transaction.
func (s *Store) Callers(ctx context.Context, keyID string) (apikey.KeyCallers, error) {
	out := apikey.KeyCallers{KeyID: keyID}
	if err := ctx.Err(); err != nil {
		return out, s.wrap(ctx, "callers", err)
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: s.d == Postgres})
	if err != nil {
		return out, s.wrap(ctx, "callers", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, s.d.rebind(keyCallers), keyID, apikey.MaxCallers)
	if err != nil {
		return out, s.wrap(ctx, "callers", err)
	}
	for rows.Next() {
		var c apikey.Caller
		var first, last int64
		if err := rows.Scan(&out.Account, &c.Address, &c.UserAgent, &c.Requests, &first, &last); err != nil {
			rows.Close()
			return out, s.wrap(ctx, "callers", err)
		}
		c.FirstSeen, c.LastSeen = fromMicros(first), fromMicros(last)
		out.Callers = append(out.Callers, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, s.wrap(ctx, "callers", err)
	}
	var account string
	switch err := tx.QueryRowContext(ctx, s.d.rebind(keyOthers), keyID).Scan(&account, &out.Others, &out.OtherRequests); {
	case err == nil:
		out.Account = cmp.Or(out.Account, account)
	case !errors.Is(err, sql.ErrNoRows):
		return out, s.wrap(ctx, "callers", err)
	}
	return out, nil
}
