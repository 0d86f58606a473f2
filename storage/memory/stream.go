package memory

import (
	"context"
	"slices"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var (
	_ storage.EventStream   = (*Store)(nil)
	_ storage.TimedEventLog = (*Store)(nil)
)

// timedMark is the fact a time-based event reports: a key's expiry and its
// phase, or a quota balance found empty (keyID the balance's id, kind
// apikey.QuotaExhaustedKind, expiresAt the period's index).
type timedMark struct {
	keyID     string
	kind      apikey.TimedKind
	expiresAt int64 // microseconds since the Unix epoch
}

// EventsAfter implements storage.EventStream: an event's cursor is its
// place in the log of every account (1 for the first), which Apply appends
// to under the store's lock, in commit order.
func (s *Store) EventsAfter(ctx context.Context, cursor int64, limit int) ([]apikey.StreamEvent, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, cursor, err
	}
	if limit <= 0 {
		limit = apikey.DefaultStreamLimit
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.StreamEvent{}
	for i := max(cursor, 0); i < int64(len(s.events)) && len(out) < limit; i++ {
		out = append(out, apikey.StreamEvent{Cursor: i + 1, Event: s.events[i]})
	}
	if len(out) == 0 {
		return out, cursor, nil
	}
	return out, out[len(out)-1].Cursor, nil
}

// DueKeys implements storage.TimedEventLog, by binary search in the list of
// every account's keys that expire and are not revoked.
func (s *Store) DueKeys(ctx context.Context, q apikey.DueQuery) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.ix.due
	i, found := slices.BinarySearchFunc(list, timed{at: q.After.ExpiresAt, id: q.After.ID}, compareTimed)
	if found {
		i++
	}
	out := []apikey.Record{}
	for ; i < len(list) && len(out) < q.Limit && !list[i].at.After(q.Until); i++ {
		if _, done := s.marks[timedMark{list[i].id, q.Kind, list[i].at.UnixMicro()}]; done {
			continue
		}
		out = append(out, s.keys[list[i].id].Clone())
	}
	return out, nil
}

// AppendTimed implements storage.TimedEventLog.
func (s *Store) AppendTimed(ctx context.Context, events []apikey.TimedEvent) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, te := range events {
		at := te.ExpiresAt
		mark := timedMark{te.Event.KeyID, te.Kind, at.UnixMicro()}
		r, ok := s.keys[te.Event.KeyID]
		if _, done := s.marks[mark]; done || !ok || !r.RevokedAt.IsZero() || !r.ExpiresAt.Equal(at) {
			continue
		}
		s.marks[mark] = struct{}{}
		s.appendEvent(te.Event)
		n++
	}
	return n, nil
}
