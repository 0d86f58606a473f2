package sqlstore

import (
	"context"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.InstanceLog = (*Store)(nil)

// Instance statements (see the version 13 migration).
const (
	reportInstance = `INSERT INTO keystile_instances (id, label, applied, applied_at, reported_at, started_at, serves_until)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET label = excluded.label, reported_at = excluded.reported_at,
			serves_until = excluded.serves_until,
			applied_at = CASE WHEN keystile_instances.applied = excluded.applied
				THEN keystile_instances.applied_at ELSE excluded.applied_at END,
			applied = excluded.applied`
	listInstances   = `SELECT id, label, applied, applied_at, reported_at, started_at, serves_until FROM keystile_instances ORDER BY id`
	removeInstance  = `DELETE FROM keystile_instances WHERE id = ?`
	forgetInstances = `DELETE FROM keystile_instances WHERE reported_at < ? AND serves_until < ?`
)

// ReportInstance implements storage.InstanceLog with one upsert.
func (s *Store) ReportInstance(ctx context.Context, in apikey.Instance) error {
	at := micros(in.ReportedAt)
	_, err := s.db.ExecContext(ctx, s.d.rebind(reportInstance), in.ID, in.Label, in.Applied, at, at, at, micros(in.ServesUntil))
	return s.wrap(ctx, "report instance", err)
}

// Instances implements storage.InstanceLog.
func (s *Store) Instances(ctx context.Context) ([]apikey.Instance, error) {
	rows, err := s.db.QueryContext(ctx, listInstances)
	if err != nil {
		return nil, s.wrap(ctx, "instances", err)
	}
	defer rows.Close()
	out := []apikey.Instance{}
	for rows.Next() {
		var in apikey.Instance
		var applied, reported, started, serves int64
		if err := rows.Scan(&in.ID, &in.Label, &in.Applied, &applied, &reported, &started, &serves); err != nil {
			return nil, s.wrap(ctx, "instances", err)
		}
		in.AppliedAt, in.ReportedAt, in.StartedAt, in.ServesUntil = fromMicros(applied), fromMicros(reported), fromMicros(started), fromMicros(serves)
		out = append(out, in)
	}
	return out, s.wrap(ctx, "instances", rows.Err())
}

// RemoveInstance implements storage.InstanceLog.
func (s *Store) RemoveInstance(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.d.rebind(removeInstance), id)
	return s.wrap(ctx, "remove instance", err)
}

// ForgetInstances implements storage.InstanceLog.
func (s *Store) ForgetInstances(ctx context.Context, t time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, s.d.rebind(forgetInstances), micros(t), micros(t))
	if err != nil {
		return 0, s.wrap(ctx, "forget instances", err)
	}
	n, err := res.RowsAffected()
	return int(n), s.wrap(ctx, "forget instances", err)
}
