package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var (
	_ storage.DeliveryLog = (*Store)(nil)
	_ storage.ReplayLog   = (*Store)(nil)
)

// delivery is an endpoint's delivery progress and lease, and its dead
// letters with their three indexes.
type delivery struct {
	holder string
	until  time.Time
	cursor int64
	dead   []apikey.DeadLetter // by cursor
	// bySeq holds each letter's place by its event's number in its
	// account (apikey.EventIDSeq), then cursor: DeadLettersBySeq.
	bySeq []seqPlace
	// byEvent maps an event id to the lowest cursor of a letter of that
	// id: DeadLetterByEventID.
	byEvent map[string]int64
	// replaying holds the cursors of the letters that are replaying, in
	// ascending order: Replaying.
	replaying []int64
}

// seqPlace is a dead letter's entry in delivery.bySeq.
type seqPlace struct{ seq, cursor int64 }

func compareSeqPlace(a, b seqPlace) int {
	return cmp.Or(cmp.Compare(a.seq, b.seq), cmp.Compare(a.cursor, b.cursor))
}

// letter returns the index in d.dead of the letter at cursor, and whether
// there is one.
func (d *delivery) letter(cursor int64) (int, bool) {
	return slices.BinarySearchFunc(d.dead, cursor, func(l apikey.DeadLetter, c int64) int { return cmp.Compare(l.Cursor, c) })
}

// addLetter inserts l, which has no letter at its cursor yet, into d.dead
// and its indexes.
func (d *delivery) addLetter(l apikey.DeadLetter) {
	i, _ := d.letter(l.Cursor)
	d.dead = slices.Insert(d.dead, i, l)
	p := seqPlace{apikey.EventIDSeq(l.EventID), l.Cursor}
	j, _ := slices.BinarySearchFunc(d.bySeq, p, compareSeqPlace)
	d.bySeq = slices.Insert(d.bySeq, j, p)
	if d.byEvent == nil {
		d.byEvent = map[string]int64{}
	}
	if c, ok := d.byEvent[l.EventID]; !ok || l.Cursor < c {
		d.byEvent[l.EventID] = l.Cursor
	}
}

// LeaseDelivery implements storage.DeliveryLog. A tenant endpoint's name
// (apikey.EndpointDeliveryPrefix) is leased only while its endpoint
// exists, under the lock its delete takes (apikey.EndpointChange.Delete).
func (s *Store) LeaseDelivery(ctx context.Context, endpoint, holder string, now, until time.Time) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := strings.CutPrefix(endpoint, apikey.EndpointDeliveryPrefix); ok {
		if _, ok := s.endpoints.byID[id]; !ok {
			return 0, false, nil // deleted (or never created): leasing it would leave a row its delete cannot reach
		}
	}
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
		if _, found := d.letter(dead.Cursor); !found {
			l := *dead
			l.Endpoint, l.State = endpoint, apikey.DeadLetterDead
			d.addLetter(l)
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
	if d := s.deliveries[endpoint]; d != nil && limit > 0 {
		i, found := d.letter(after)
		if found {
			i++
		}
		out = append(out, d.dead[i:min(i+limit, len(d.dead))]...)
	}
	return out, nil
}

// DeadLettersBySeq implements storage.ReplayLog: a binary search of the
// endpoint's index by event number, then limit letters from there.
func (s *Store) DeadLettersBySeq(ctx context.Context, endpoint string, after int64, limit int) ([]apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.DeadLetter{}
	d := s.deliveries[endpoint]
	if d == nil || limit <= 0 {
		return out, nil
	}
	i, _ := slices.BinarySearchFunc(d.bySeq, after, func(p seqPlace, seq int64) int {
		if p.seq <= seq {
			return -1
		}
		return 1
	})
	for _, p := range d.bySeq[i:min(i+limit, len(d.bySeq))] {
		j, _ := d.letter(p.cursor)
		out = append(out, d.dead[j])
	}
	return out, nil
}

// DeadLetterByEventID implements storage.ReplayLog: the endpoint's map of
// event ids.
func (s *Store) DeadLetterByEventID(ctx context.Context, endpoint, eventID string) (apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return apikey.DeadLetter{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d := s.deliveries[endpoint]; d != nil {
		if cursor, ok := d.byEvent[eventID]; ok {
			i, _ := d.letter(cursor)
			return d.dead[i], nil
		}
	}
	return apikey.DeadLetter{}, fmt.Errorf("%w: no dead letter with that event id", apikey.ErrNotFound) // the id is caller input: never echoed
}

// setState sets the state of the letter at index i of d.dead, and keeps
// d.replaying in step.
func (d *delivery) setState(i int, state apikey.DeadLetterState) {
	l := &d.dead[i]
	if (l.State == apikey.DeadLetterReplaying) != (state == apikey.DeadLetterReplaying) {
		j, found := slices.BinarySearch(d.replaying, l.Cursor)
		if found {
			d.replaying = slices.Delete(d.replaying, j, j+1)
		} else {
			d.replaying = slices.Insert(d.replaying, j, l.Cursor)
		}
	}
	l.State = state
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
		from, to := 0, len(d.dead)
		if cursor != 0 { // the one letter at cursor, found by binary search
			i, found := d.letter(cursor)
			from, to = i, i
			if found {
				to = i + 1
			}
		}
		for i := from; i < to; i++ {
			if d.dead[i].State != apikey.DeadLetterReplaying {
				d.setState(i, apikey.DeadLetterReplaying)
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

// Replaying implements storage.ReplayLog: the first limit cursors of the
// endpoint's index of replaying letters, each found by binary search.
func (s *Store) Replaying(ctx context.Context, endpoint string, limit int) ([]apikey.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.DeadLetter{}
	if d := s.deliveries[endpoint]; d != nil && limit > 0 {
		for _, cursor := range d.replaying[:min(limit, len(d.replaying))] {
			i, _ := d.letter(cursor)
			out = append(out, d.dead[i])
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
	i, found := d.letter(cursor)
	if !found || d.dead[i].State != apikey.DeadLetterReplaying {
		return nil
	}
	if dead == nil {
		d.setState(i, apikey.DeadLetterDelivered)
		return nil
	}
	d.setState(i, apikey.DeadLetterDead)
	l := &d.dead[i]
	l.Attempts, l.Reason, l.At = dead.Attempts, dead.Reason, dead.At
	return nil
}
