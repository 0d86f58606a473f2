package memory

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.InstanceLog = (*Store)(nil)

// instanceLog holds the running validators by id, and the ids removed,
// with a lock of its own so that reports never wait for key changes. Its
// clock is the process's.
type instanceLog struct {
	mu        sync.Mutex
	instances map[string]apikey.Instance
	removed   map[string]time.Time // id: when it was removed
}

// instanceNow is the instance log's clock, in UTC with microseconds.
func instanceNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// ReportInstance implements storage.InstanceLog.
func (s *Store) ReportInstance(ctx context.Context, r apikey.InstanceReport) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := &s.instances
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, gone := l.removed[r.ID]; gone {
		return nil
	}
	if l.instances == nil {
		l.instances = map[string]apikey.Instance{}
	}
	now := instanceNow()
	in := apikey.Instance{ID: r.ID, Label: r.Label, Applied: r.Applied, AppliedAt: now, ReportedAt: now, StartedAt: now,
		ServesUntil: now.Add(r.Lease).Truncate(time.Microsecond)}
	if old, ok := l.instances[r.ID]; ok {
		if now.Before(old.ReportedAt) {
			return nil // never backwards
		}
		in.StartedAt = old.StartedAt
		if old.Applied == in.Applied {
			in.AppliedAt = old.AppliedAt
		}
	}
	l.instances[r.ID] = in
	return nil
}

// Instances implements storage.InstanceLog.
func (s *Store) Instances(ctx context.Context) ([]apikey.Instance, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	l := &s.instances
	l.mu.Lock()
	defer l.mu.Unlock()
	now := instanceNow()
	out := make([]apikey.Instance, 0, len(l.instances))
	for _, in := range l.instances {
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b apikey.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out, now, nil
}

// RemoveInstance implements storage.InstanceLog.
func (s *Store) RemoveInstance(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := &s.instances
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.instances, id)
	if l.removed == nil {
		l.removed = map[string]time.Time{}
	}
	l.removed[id] = instanceNow()
	return nil
}

// ForgetInstances implements storage.InstanceLog.
func (s *Store) ForgetInstances(ctx context.Context, age time.Duration) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l := &s.instances
	l.mu.Lock()
	defer l.mu.Unlock()
	t := instanceNow().Add(-age)
	n := 0
	for id, in := range l.instances {
		if in.ReportedAt.Before(t) && in.ServesUntil.Before(t) {
			delete(l.instances, id)
			n++
		}
	}
	for id, at := range l.removed {
		if at.Before(t) {
			delete(l.removed, id)
			n++
		}
	}
	return n, nil
}
