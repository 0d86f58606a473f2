// Package events works on the store's event stream (apikey.EventStream),
// which services read with a cursor from any process. A Scanner turns the
// passing of time into events: it finds, by index, the keys whose expiry
// comes within a window or has passed, and writes one event per key, kind
// and expiry, whatever the number of instances that scan. A Deliverer
// sends the stream to the service's own webhook endpoints, one instance
// per endpoint at a time, with retries and dead letters.
//
// See docs/events.md for the guarantees.
package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
)

// Defaults of ScannerOptions.
const (
	DefaultWindow   = 72 * time.Hour
	DefaultLookback = 24 * time.Hour
	DefaultInterval = time.Minute
	DefaultBatch    = 500
)

// ScannerOptions configure a Scanner. Only Store is required.
type ScannerOptions struct {
	// Store must implement apikey.TimedEventLog (memory and sqlstore do).
	// Required.
	Store apikey.Store
	// Window is how long before a key's expiry its ActionExpiring event is
	// written (for a rotated-out key, before its grace ends). Zero means
	// DefaultWindow (3 days); a negative Window writes no ActionExpiring.
	Window time.Duration
	// Lookback is how long after a key's expiry its ActionExpired or
	// ActionGraceEnded event may still be written, for keys that expired
	// while no scanner ran. Zero means DefaultLookback (1 day). Each step
	// reads the keys that expired within it by index, so a longer Lookback
	// makes steps cost more.
	Lookback time.Duration
	// Interval is the time between two steps of Run. Zero means
	// DefaultInterval (1 minute).
	Interval time.Duration
	// Batch is how many keys a step reads and writes at a time. Zero
	// means DefaultBatch.
	Batch int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// OnError, if set, is called by Run with the error of a step that
	// failed; Run then tries again at the next interval.
	OnError func(error)
}

// Scanner writes the time-based events of every account's keys: for each
// key that is not revoked, ActionExpiring once its expiry is within
// Window, and ActionGraceEnded (a rotated-out key) or ActionExpired (any
// other key) once it has passed. Each event is written once per key,
// kind and expiry: by the store's conditional write (TimedEventLog), so
// any number of Scanners, in any number of processes, may run against one
// store. A key whose expiry changes (a grace changed) gets the events of
// its new expiry; a key revoked before its expiry gets none.
//
// A Scanner is safe for concurrent use.
type Scanner struct {
	log      apikey.TimedEventLog
	window   time.Duration
	lookback time.Duration
	interval time.Duration
	batch    int
	now      func() time.Time
	onError  func(error)
}

// NewScanner returns a Scanner. It fails when opts.Store is nil or has no
// apikey.TimedEventLog (an error wrapping errors.ErrUnsupported), or an
// option is negative where it may not be.
func NewScanner(opts ScannerOptions) (*Scanner, error) {
	if opts.Store == nil {
		return nil, errors.New("events: ScannerOptions.Store is required")
	}
	log, ok := opts.Store.(apikey.TimedEventLog)
	if !ok {
		return nil, fmt.Errorf("events: the store has no apikey.TimedEventLog: %w", errors.ErrUnsupported)
	}
	if opts.Lookback < 0 || opts.Interval < 0 || opts.Batch < 0 {
		return nil, errors.New("events: ScannerOptions.Lookback, Interval and Batch may not be negative")
	}
	s := &Scanner{log: log, window: opts.Window, lookback: opts.Lookback, interval: opts.Interval, batch: opts.Batch,
		now: opts.Now, onError: opts.OnError}
	if s.window == 0 {
		s.window = DefaultWindow
	}
	if s.lookback == 0 {
		s.lookback = DefaultLookback
	}
	if s.interval == 0 {
		s.interval = DefaultInterval
	}
	if s.batch == 0 {
		s.batch = DefaultBatch
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Step scans once, at the clock's time, and returns how many events this
// call wrote (events another scanner wrote first are not counted). It
// reads, by index, the keys that expired within Lookback and those that
// expire within Window, leaving out those whose event is written, a batch
// at a time. On an error, what it wrote stays written; the next Step
// carries on.
func (s *Scanner) Step(ctx context.Context) (int, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	ended, err := s.pass(ctx, apikey.TimedEnded, now.Add(-s.lookback), now, now)
	if err != nil || s.window < 0 {
		return ended, err
	}
	expiring, err := s.pass(ctx, apikey.TimedExpiring, now, now.Add(s.window), now)
	return ended + expiring, err
}

// pass writes the events of kind for the keys whose expiry is in
// [from, until] (for TimedExpiring, after now only).
func (s *Scanner) pass(ctx context.Context, kind apikey.TimedKind, from, until, now time.Time) (int, error) {
	written := 0
	after := apikey.ExpiryPosition{ExpiresAt: from} // every key expiring at from comes after it
	for {
		keys, err := s.log.DueKeys(ctx, apikey.DueQuery{Kind: kind, After: after, Until: until, Limit: s.batch})
		if err != nil {
			return written, fmt.Errorf("events: scanning %s keys: %w", kind, err)
		}
		batch := make([]apikey.TimedEvent, 0, len(keys))
		for _, r := range keys {
			if kind == apikey.TimedExpiring && !r.ExpiresAt.After(now) {
				continue // expired already: the ended pass reports it
			}
			batch = append(batch, apikey.TimedEvent{Kind: kind, ExpiresAt: r.ExpiresAt, Event: timedEvent(kind, r, now)})
		}
		n, err := s.log.AppendTimed(ctx, batch)
		written += n
		if err != nil {
			return written, fmt.Errorf("events: writing %s events: %w", kind, err)
		}
		if len(keys) < s.batch {
			return written, nil
		}
		last := keys[len(keys)-1]
		after = apikey.ExpiryPosition{ExpiresAt: last.ExpiresAt, ID: last.ID}
	}
}

// timedEvent is the event of kind about r, written at now.
func timedEvent(kind apikey.TimedKind, r apikey.Record, now time.Time) apikey.Event {
	e := apikey.Event{Time: now, Actor: apikey.SystemActor, Account: r.Account, Environment: r.Environment,
		KeyID: r.ID, KeyType: r.Type}
	at := r.ExpiresAt.UTC().Format(time.RFC3339)
	rotated := !r.RotatedAt.IsZero()
	switch {
	case kind == apikey.TimedExpiring && rotated:
		e.Action, e.Detail = apikey.ActionExpiring, "grace ends "+at
	case kind == apikey.TimedExpiring:
		e.Action, e.Detail = apikey.ActionExpiring, "expires "+at
	case rotated:
		e.Action, e.Detail = apikey.ActionGraceEnded, "grace ended "+at
	default:
		e.Action, e.Detail = apikey.ActionExpired, "expired "+at
	}
	return e
}

// Run calls Step at once and then every Interval until ctx is done, and
// returns ctx's error. A step that fails is reported to OnError and tried
// again at the next interval.
func (s *Scanner) Run(ctx context.Context) error {
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	for {
		if _, err := s.Step(ctx); err != nil && ctx.Err() == nil && s.onError != nil {
			s.onError(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}
