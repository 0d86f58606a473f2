package sqlstore

import (
	"context"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.InstanceLog = (*Store)(nil)

// Instance statements (see the version 13 and 14 migrations). {now} is the
// instance log's clock in Unix microseconds (instanceClocks); a removed
// instance is a row with removed_at set, which reports leave alone.
const (
	reportInstance = `INSERT INTO keystile_instances (id, label, applied, applied_at, reported_at, started_at, serves_until)
		SELECT ?, ?, ?, c.t, c.t, c.t, c.t + ? FROM (SELECT {now} AS t) c WHERE true
		ON CONFLICT (id) DO UPDATE SET label = excluded.label, reported_at = excluded.reported_at,
			serves_until = excluded.serves_until,
			applied_at = CASE WHEN keystile_instances.applied = excluded.applied
				THEN keystile_instances.applied_at ELSE excluded.applied_at END,
			applied = excluded.applied
		WHERE keystile_instances.removed_at IS NULL AND keystile_instances.reported_at <= excluded.reported_at`
	instanceClockNow = `SELECT {now}`
	listInstances    = `SELECT id, label, applied, applied_at, reported_at, started_at, serves_until
		FROM keystile_instances WHERE removed_at IS NULL ORDER BY id`
	removeInstance = `INSERT INTO keystile_instances (id, label, applied, applied_at, reported_at, started_at, serves_until, removed_at)
		SELECT ?, '', 0, c.t, c.t, c.t, c.t, c.t FROM (SELECT {now} AS t) c WHERE true
		ON CONFLICT (id) DO UPDATE SET removed_at = excluded.removed_at`
	forgetInstances = `DELETE FROM keystile_instances WHERE removed_at < {now} - ?
		OR (removed_at IS NULL AND reported_at < {now} - ? AND serves_until < {now} - ?)`
)

// instanceClocks are the instance log's clock in Unix microseconds, by
// dialect: the database server's on PostgreSQL, whichever process asks;
// on SQLite, whose file is on the processes' own host, that host's (with
// millisecond precision, the same within one statement).
var instanceClocks = map[Dialect]string{
	Postgres: `FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT`,
	SQLite:   `(CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000)`,
}

// instanceQuery returns query for the store's dialect, with {now} its
// instance log's clock.
func (s *Store) instanceQuery(query string) string {
	return s.d.rebind(strings.ReplaceAll(query, "{now}", instanceClocks[s.d]))
}

// ReportInstance implements storage.InstanceLog with one upsert, stamped
// by the instance log's clock.
func (s *Store) ReportInstance(ctx context.Context, r apikey.InstanceReport) error {
	_, err := s.db.ExecContext(ctx, s.instanceQuery(reportInstance), r.ID, r.Label, r.Applied, r.Lease.Microseconds())
	return s.wrap(ctx, "report instance", err)
}

// Instances implements storage.InstanceLog.
func (s *Store) Instances(ctx context.Context) ([]apikey.Instance, time.Time, error) {
	var now int64
	if err := s.db.QueryRowContext(ctx, s.instanceQuery(instanceClockNow)).Scan(&now); err != nil {
		return nil, time.Time{}, s.wrap(ctx, "instances", err)
	}
	rows, err := s.db.QueryContext(ctx, listInstances)
	if err != nil {
		return nil, time.Time{}, s.wrap(ctx, "instances", err)
	}
	defer rows.Close()
	out := []apikey.Instance{}
	for rows.Next() {
		var in apikey.Instance
		var applied, reported, started, serves int64
		if err := rows.Scan(&in.ID, &in.Label, &in.Applied, &applied, &reported, &started, &serves); err != nil {
			return nil, time.Time{}, s.wrap(ctx, "instances", err)
		}
		in.AppliedAt, in.ReportedAt, in.StartedAt, in.ServesUntil = fromMicros(applied), fromMicros(reported), fromMicros(started), fromMicros(serves)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, s.wrap(ctx, "instances", err)
	}
	return out, fromMicros(now), nil
}

// RemoveInstance implements storage.InstanceLog: it marks the row removed
// (and writes one if there is none), so that a report still in flight
// does not bring it back.
func (s *Store) RemoveInstance(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.instanceQuery(removeInstance), id)
	return s.wrap(ctx, "remove instance", err)
}

// ForgetInstances implements storage.InstanceLog.
func (s *Store) ForgetInstances(ctx context.Context, age time.Duration) (int, error) {
	cut := max(age, 0).Microseconds()
	res, err := s.db.ExecContext(ctx, s.instanceQuery(forgetInstances), cut, cut, cut)
	if err != nil {
		return 0, s.wrap(ctx, "forget instances", err)
	}
	n, err := res.RowsAffected()
	return int(n), s.wrap(ctx, "forget instances", err)
}
