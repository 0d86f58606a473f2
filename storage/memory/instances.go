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

// instanceLog holds the running validators by id, with a lock of its own
// so that reports never wait for key changes.
type instanceLog struct {
	mu        sync.Mutex
	instances map[string]apikey.Instance
}

// ReportInstance implements storage.InstanceLog.
func (s *Store) ReportInstance(ctx context.Context, in apikey.Instance) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := &s.instances
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.instances == nil {
		l.instances = map[string]apikey.Instance{}
	}
	in.ReportedAt = in.ReportedAt.UTC().Truncate(time.Microsecond)
	in.AppliedAt, in.StartedAt = in.ReportedAt, in.ReportedAt
	in.ServesUntil = in.ServesUntil.UTC().Truncate(time.Microsecond)
	if old, ok := l.instances[in.ID]; ok {
		in.StartedAt = old.StartedAt
		if old.Applied == in.Applied {
			in.AppliedAt = old.AppliedAt
		}
	}
	l.instances[in.ID] = in
	return nil
}

// Instances implements storage.InstanceLog.
func (s *Store) Instances(ctx context.Context) ([]apikey.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := &s.instances
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]apikey.Instance, 0, len(l.instances))
	for _, in := range l.instances {
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b apikey.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
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
	return nil
}

// ForgetInstances implements storage.InstanceLog.
func (s *Store) ForgetInstances(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l := &s.instances
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id, in := range l.instances {
		if in.ReportedAt.Before(t) && in.ServesUntil.Before(t) {
			delete(l.instances, id)
			n++
		}
	}
	return n, nil
}
