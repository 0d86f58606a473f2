package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.QuotaLedger = (*Store)(nil)

// Quota statements (see the version 4 migration). Every statement reads
// the row it changes in the statement itself, never in a read before it,
// so that no two processes can both spend or refill the same uses.
const (
	// upsertQuota writes a lineage's quota: a new row starts full (balance
	// = limit, period_index NULL). An existing row keeps its balance while
	// the quota is the same. When it differs, what was spent or leased
	// stays so (balance = new limit - (old limit - balance), at most the
	// new limit, below zero when more than it was spent or leased), and
	// period_index and returns_from are kept while the period is the same
	// (else period_index is NULL, so that the new period's refills start
	// at the next lease, and returns_from is the new generation).
	// generation is the revision of the change that set the quota, given
	// twice: as generation and as returns_from.
	upsertQuota = `INSERT INTO keystile_quotas (key_id, quota_limit, refill, period, balance, period_index, last_grant, generation, returns_from)
		VALUES (?, ?, ?, ?, ?, NULL, 0, ?, ?)
		ON CONFLICT (key_id) DO UPDATE SET
			generation = CASE WHEN ` + sameQuota + ` THEN keystile_quotas.generation ELSE excluded.generation END,
			returns_from = CASE WHEN ` + sameQuota + ` OR keystile_quotas.period = excluded.period
				THEN keystile_quotas.returns_from ELSE excluded.returns_from END,
			balance = CASE WHEN ` + sameQuota + ` THEN keystile_quotas.balance
				WHEN ` + keptBalance + ` > excluded.quota_limit THEN excluded.quota_limit
				ELSE ` + keptBalance + ` END,
			period_index = CASE WHEN keystile_quotas.period = excluded.period THEN keystile_quotas.period_index ELSE NULL END,
			quota_limit = excluded.quota_limit, refill = excluded.refill, period = excluded.period`
	keptBalance = `(excluded.quota_limit - (keystile_quotas.quota_limit - keystile_quotas.balance))`
	sameQuota   = `(keystile_quotas.quota_limit = excluded.quota_limit AND keystile_quotas.refill = excluded.refill
		AND keystile_quotas.period = excluded.period)`
	deleteQuota = `DELETE FROM keystile_quotas WHERE key_id = ?`

	// nowIndex is the index of the period that holds the lease's time,
	// for the row's period (see apikey.QuotaPeriod.Index).
	nowIndex = `(CASE period WHEN 'day' THEN p.day_index WHEN 'month' THEN p.month_index ELSE 0 END)`
	// refilled is the balance after the refills of every boundary passed
	// since period_index, added to the balance or to zero when the balance
	// is below zero, never above quota_limit. A quota not leased from
	// since it was set (period_index NULL) holds its balance; past
	// ceil(limit/refill) periods it is full, which keeps refill * periods
	// far from overflowing.
	refilled = `(CASE
		WHEN refill = 0 OR period_index IS NULL OR ` + nowIndex + ` <= period_index THEN balance
		WHEN ` + nowIndex + ` - period_index >= (quota_limit + refill - 1) / refill THEN quota_limit
		WHEN ` + floored + ` + refill * (` + nowIndex + ` - period_index) > quota_limit THEN quota_limit
		ELSE ` + floored + ` + refill * (` + nowIndex + ` - period_index) END)`
	floored = `(CASE WHEN balance < 0 THEN 0 ELSE balance END)`
	// granted is min(want, max(refilled, 0)).
	granted = `(CASE WHEN ` + refilled + ` <= 0 THEN 0 WHEN ` + refilled + ` < p.want THEN ` + refilled + ` ELSE p.want END)`
)

// returnQuota adds returned uses back, never above the limit (compared as
// limit - balance, which cannot overflow, whatever n), only while the
// lease's generation is at least the row's returns_from, the row's period
// is the lease's, and the lease's period has not ended. balance is the
// row's key_id: lineageOf, or a parameter.
func returnQuota(d Dialect, balance string) string {
	return `UPDATE keystile_quotas SET
			balance = CASE WHEN p.n >= quota_limit - balance THEN quota_limit ELSE balance + p.n END
		FROM (SELECT CAST(? AS BIGINT) AS day_index, CAST(? AS BIGINT) AS month_index,
			CAST(? AS BIGINT) AS now_day, CAST(? AS BIGINT) AS now_month, CAST(? AS BIGINT) AS n,
			CAST(? AS BIGINT) AS generation) AS p
		WHERE key_id = ` + balance + ` AND p.generation >= keystile_quotas.returns_from AND period_index = ` + nowIndex + `
			AND ` + nowIndex + ` = (CASE period WHEN 'day' THEN p.now_day WHEN 'month' THEN p.now_month ELSE 0 END)`
}

// lineageOf is the id of the balance (the lineage) of the key whose id is
// the statement's last parameter, by keystile_keys' primary key. In
// PostgreSQL it takes the quota table's collation, so that the comparison
// with key_id can use that table's primary key (keystile_keys.id is
// COLLATE "C").
func lineageOf(d Dialect) string {
	q := `(SELECT COALESCE(k.lineage, k.id) FROM keystile_keys AS k WHERE k.id = ?)`
	if d == Postgres {
		q += ` COLLATE "default"`
	}
	return q
}

// leaseQuota refills and spends in one UPDATE: its SET expressions all
// read the row as it was before the statement, which the database locks
// for the statement's (and transaction's) length. The lease's period
// indexes are those of the caller's now, but never beyond those of the
// database's clock plus one hour (see storage.QuotaLedger). balance is the
// row's key_id: lineageOf, or a parameter.
func leaseQuota(d Dialect, balance string) string {
	// The day and month indexes of the database's clock, one hour ahead.
	// p's LIMIT 1 keeps both engines from inlining p's expressions into
	// each of their many uses (which costs as much as the lease itself).
	maxDay := `CAST(FLOOR(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP + INTERVAL '1 hour') / 86400) AS BIGINT)`
	maxMonth := `CAST(EXTRACT(YEAR FROM (CURRENT_TIMESTAMP + INTERVAL '1 hour') AT TIME ZONE 'UTC') * 12
		+ EXTRACT(MONTH FROM (CURRENT_TIMESTAMP + INTERVAL '1 hour') AT TIME ZONE 'UTC') - 1 AS BIGINT)`
	if d == SQLite {
		maxDay = `(CAST(strftime('%s', 'now', '+1 hour') AS INTEGER) / 86400)`
		maxMonth = `(CAST(strftime('%Y', 'now', '+1 hour') AS INTEGER) * 12 + CAST(strftime('%m', 'now', '+1 hour') AS INTEGER) - 1)`
	}
	return `UPDATE keystile_quotas SET
			balance = ` + refilled + ` - ` + granted + `,
			last_grant = ` + granted + `,
			period_index = CASE WHEN period_index IS NULL OR ` + nowIndex + ` > period_index
				THEN ` + nowIndex + ` ELSE period_index END
		FROM (SELECT CASE WHEN c.day_index > c.max_day THEN c.max_day ELSE c.day_index END AS day_index,
				CASE WHEN c.month_index > c.max_month THEN c.max_month ELSE c.month_index END AS month_index, c.want
			FROM (SELECT CAST(? AS BIGINT) AS day_index, CAST(? AS BIGINT) AS month_index, CAST(? AS BIGINT) AS want,
				` + maxDay + ` AS max_day, ` + maxMonth + ` AS max_month) AS c
			LIMIT 1) AS p
		WHERE key_id = ` + balance + `
		RETURNING last_grant, balance, refill, period, generation, quota_limit, period_index`
}

// putQuota keeps the quota row of a key's lineage in step with its record,
// in Apply's transaction: written while the record has a quota, deleted
// when it has none (a first key without a quota has no row to delete). A
// rotated-out key never writes the row: it follows the lineage's current
// key.
func (s *Store) putQuota(ctx context.Context, tx *sql.Tx, r apikey.Record, rev int64, inserted bool) error {
	if !r.RotatedAt.IsZero() {
		return nil
	}
	id, q := r.LineageID(), r.Limits.Quota
	if q.IsZero() {
		if inserted && r.Lineage == "" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, s.q.deleteQuota, id); err != nil {
			return s.wrap(ctx, "apply: removing the quota of key "+r.Prefix(), err)
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.q.upsertQuota, id, q.Limit, q.Refill, string(q.Period), q.Limit, rev, rev); err != nil {
		return s.wrap(ctx, "apply: writing the quota of key "+r.Prefix(), err)
	}
	return nil
}

// putOwnerQuotas keeps the balances of the owners of the keys that c
// writes in step with their owner quotas, in Apply's transaction: one
// upsert per owner (the last key's quota wins; every key of an owner
// carries the same), by the statement of a lineage's balance, with the
// change's newest revision top as the generation of a changed quota. A
// key without an owner quota leaves its owner's balance: it is never
// deleted (see storage.QuotaLedger).
func (s *Store) putOwnerQuotas(ctx context.Context, tx *sql.Tx, c apikey.Change, top int64) error {
	var order []string
	quotas := map[string]apikey.Quota{}
	for _, keys := range [][]apikey.Record{c.Update, c.Insert} {
		for _, r := range keys {
			if q := r.OwnerLimits.Quota; r.Owner != "" && !q.IsZero() {
				id := apikey.OwnerBalanceID(r.Account, r.Owner)
				if _, ok := quotas[id]; !ok {
					order = append(order, id)
				}
				quotas[id] = q
			}
		}
	}
	for _, id := range order {
		q := quotas[id]
		if _, err := tx.ExecContext(ctx, s.q.upsertQuota, id, q.Limit, q.Refill, string(q.Period), q.Limit, top, top); err != nil {
			return s.wrap(ctx, "apply: writing an owner's quota", err)
		}
	}
	return nil
}

// LeaseQuota implements storage.QuotaLedger with one UPDATE ... RETURNING
// of the key's quota row, which refills and spends atomically. Only a key
// without a row costs a second query, to tell an unknown key from one
// without a quota.
func (s *Store) LeaseQuota(ctx context.Context, keyID string, want int64, now time.Time) (storage.QuotaLease, error) {
	if err := ctx.Err(); err != nil {
		return storage.QuotaLease{}, s.wrap(ctx, "lease quota", err)
	}
	if want < 1 {
		return storage.QuotaLease{}, fmt.Errorf("sqlstore: lease quota: want must be at least 1, got %d", want)
	}
	owner, stmt := apikey.IsOwnerBalanceID(keyID), s.q.leaseQuota
	if owner {
		stmt = s.q.leaseOwnerQuota
	}
	args := []any{apikey.Daily.Index(now), apikey.Monthly.Index(now), want, keyID}
	var (
		row leaseRow
		err error
	)
	if s.d == SQLite {
		row, err = s.leaseBatched(ctx, keyID, stmt, args, now)
	} else {
		err = s.quotaStatement(ctx, func(q querier) error {
			return q.QueryRowContext(ctx, stmt, args...).Scan(row.dest()...)
		})
	}
	if errors.Is(err, sql.ErrNoRows) && owner {
		return storage.QuotaLease{Unlimited: true}, nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		var n int64
		if err := s.db.QueryRowContext(ctx, s.q.keyExists, keyID).Scan(&n); err != nil {
			return storage.QuotaLease{}, s.wrap(ctx, "lease quota", err)
		}
		if n == 0 {
			return storage.QuotaLease{}, fmt.Errorf("%w: no such key", apikey.ErrNotFound)
		}
		return storage.QuotaLease{Unlimited: true}, nil
	}
	if err != nil {
		return storage.QuotaLease{}, s.wrap(ctx, "lease quota", err)
	}
	lease := storage.QuotaLease{Granted: row.granted, Remaining: max(row.remaining, 0), Generation: row.generation, LeasedAt: now}
	if row.refill > 0 {
		lease.NextRefill = apikey.QuotaPeriod(row.period).Next(now)
	}
	if lease.Granted < want {
		// The lease stands whatever happens to the event: a later lease
		// that finds the balance empty in the period writes it.
		q := apikey.Quota{Limit: row.limit, Refill: row.refill, Period: apikey.QuotaPeriod(row.period)}
		_ = s.exhausted(ctx, keyID, lease.Generation, row.index, q, now)
	}
	return lease, nil
}

// exhausted appends the apikey.ActionQuotaExhausted event of the balance
// that a lease of keyID (a key or an owner's balance id) found empty, in
// the period of index under the quota of generation, unless it has one:
// in one transaction, a conditional insert of the mark (balance id,
// apikey.QuotaExhaustedKind(generation), index) into
// keystile_event_marks, whose primary key lets one writer insert it, and,
// only when it inserted the mark, the revision counter's lock (as Apply
// takes it, so that the event joins the stream in commit order) and the
// event. A lease whose mark exists costs the insert alone.
func (s *Store) exhausted(ctx context.Context, keyID string, generation, index int64, q apikey.Quota, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var (
		key     apikey.Record
		balance = keyID
	)
	if !apikey.IsOwnerBalanceID(keyID) {
		var keyType string
		if err := tx.QueryRowContext(ctx, s.d.rebind(quotaKeyQuery), keyID).
			Scan(&balance, &key.Account, &key.Environment, &keyType); err != nil {
			return err
		}
		key.ID, key.Type = keyID, apikey.KeyType(keyType)
	}
	res, err := tx.ExecContext(ctx, s.d.rebind(exhaustedMarkQuery), balance, string(apikey.QuotaExhaustedKind(generation)), index)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	var top int64
	if err := tx.QueryRowContext(ctx, s.q.bump, 0).Scan(&top); err != nil {
		return err
	}
	if err := s.appendEvents(ctx, tx, []apikey.Event{apikey.QuotaExhaustedEvent(balance, key, q, now)}); err != nil {
		return err
	}
	return tx.Commit()
}

// The statements of quota events, in '?' form (rebound per dialect).
const (
	// The balance (lineage) and the names of a key, by primary key.
	quotaKeyQuery = `SELECT COALESCE(lineage, id), account, environment, type FROM keystile_keys WHERE id = ?`
	// A balance's mark, once (the primary key).
	exhaustedMarkQuery = `INSERT INTO keystile_event_marks (key_id, kind, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`
)

// ReturnQuota implements storage.QuotaLedger with one conditional UPDATE.
func (s *Store) ReturnQuota(ctx context.Context, keyID string, n int64, lease storage.QuotaLease, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(ctx, "return quota", err)
	}
	if n <= 0 {
		return nil
	}
	stmt := s.q.returnQuota
	if apikey.IsOwnerBalanceID(keyID) {
		stmt = s.q.returnOwnerQuota
	}
	err := s.quotaStatement(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, stmt,
			apikey.Daily.Index(lease.LeasedAt), apikey.Monthly.Index(lease.LeasedAt), apikey.Daily.Index(now), apikey.Monthly.Index(now),
			n, lease.Generation, keyID)
		return err
	})
	return s.wrap(ctx, "return quota", err)
}

// querier is what quota statements run on: the pool or a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// quotaStatement runs one quota statement on the pool, in the database's
// default isolation level. The statements need no more than READ
// COMMITTED, PostgreSQL's default; under a stricter default (an
// operator's default_transaction_isolation of REPEATABLE READ or
// SERIALIZABLE) a statement racing another on the same row fails with a
// serialization failure (or, in principle, a deadlock), and is then run
// again in an explicit READ COMMITTED transaction, which waits for the
// row's lock instead (up to maxQuotaRetries times).
func (s *Store) quotaStatement(ctx context.Context, run func(querier) error) error {
	err := run(s.db)
	for i := 0; i < maxQuotaRetries && err != nil && ctx.Err() == nil && isSerializationFailure(err); i++ {
		err = s.readCommitted(ctx, run)
	}
	return err
}

// maxQuotaRetries bounds the READ COMMITTED reruns of a quota statement.
const maxQuotaRetries = 3

// readCommitted runs run in a READ COMMITTED transaction.
func (s *Store) readCommitted(ctx context.Context, run func(querier) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	if err := run(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
