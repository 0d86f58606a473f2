package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var (
	_ storage.DeliveryLog = (*Store)(nil)
	_ storage.ReplayLog   = (*Store)(nil)
)

// delivery is an endpoint's delivery progress and lease.
type delivery struct {
	holder string
	until  time.Time
	cursor int64
	dead   []apikey.DeadLetter // by cursor
}

// LeaseDelivery implements storage.DeliveryLog.
func (s *Store) LeaseDelivery(ctx context.Context, endpoint, holder string, now, until time.Time) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveries[endpoint]
	if d == nil {
		d = &delivery{}
		s.deliveries[endpoint] = d
	}
	if d.holder != "" && d.holder != holder && !d.until.Before(now) {
		return d.cursor, false, nil
	}
	d.holder, d.until = holder, until
	return d.cursor, true, nil
}

// AdvanceDelivery implements storage.DeliveryLog.
func (s *Store) AdvanceDelivery(ctx context.Context, endpoint, holder string, now time.Time, cursor int64, dead *apikey.DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveries[endpoint]
	if d == nil || d.holder != holder || d.until.Before(now) {
		return fmt.Errorf("%w: %s", apikey.ErrLeaseLost, endpoint)
	}
	d.cursor = max(d.cursor, cursor)
	if dead != nil {
		i, found := slices.BinarySearchFunc(d.dead, dead.Cursor, func(l apikey.DeadLetter, c int64) int { return cmp.Compare(l.Cursor, c) })
		if !found {
			l := *dead
			l.Endpoint, l.State = endpoint, apikey.DeadLetterDead
			d.dead = slices.Insert(d.dead, i, l)
		}
	}
	return nil
}

// DeadLetters implements storage.DeliveryLog.
func (s *Store) DeadLetters(ctx context.Context, endpoint string, after int64, limit int) ([]apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.DeadLetter{}
	if d := s.deliveries[endpoint]; d != nil {
		for _, l := range d.dead {
			if l.Cursor > after && len(out) < limit {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// ReplayDeadLetters implements storage.ReplayLog.
func (s *Store) ReplayDeadLetters(ctx context.Context, endpoint string, cursor int64, events []apikey.Event) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if d := s.deliveries[endpoint]; d != nil {
		for i := range d.dead {
			if (cursor == 0 || d.dead[i].Cursor == cursor) && d.dead[i].State != apikey.DeadLetterReplaying {
				d.dead[i].State = apikey.DeadLetterReplaying
				n++
			}
		}
	}
	if n > 0 {
		for _, e := range events {
			s.appendEvent(e)
		}
	}
	return n, nil
}

// Replaying implements storage.ReplayLog.
func (s *Store) Replaying(ctx context.Context, endpoint string, limit int) ([]apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.DeadLetter{}
	if d := s.deliveries[endpoint]; d != nil {
		for _, l := range d.dead {
			if l.State == apikey.DeadLetterReplaying && len(out) < limit {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// ResolveReplay implements storage.ReplayLog.
func (s *Store) ResolveReplay(ctx context.Context, endpoint, holder string, now time.Time, cursor int64, dead *apikey.DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveries[endpoint]
	if d == nil || d.holder != holder || d.until.Before(now) {
		return fmt.Errorf("%w: %s", apikey.ErrLeaseLost, endpoint)
	}
	i, found := slices.BinarySearchFunc(d.dead, cursor, func(l apikey.DeadLetter, c int64) int { return cmp.Compare(l.Cursor, c) })
	if !found || d.dead[i].State != apikey.DeadLetterReplaying {
		return nil
	}
	if dead == nil {
		d.dead[i].State = apikey.DeadLetterDelivered
		return nil
	}
	l := &d.dead[i]
	l.State, l.Attempts, l.Reason, l.At = apikey.DeadLetterDead, dead.Attempts, dead.Reason, dead.At
	return nil
}
