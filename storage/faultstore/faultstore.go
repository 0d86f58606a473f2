// Package faultstore wraps a keystile store with faults that a test switches
// on and off: every call failing with an error, calls that are slow, and a
// store that is down until it comes back up. It is test support, for proving
// that the middleware and the Manager fail closed, recover, and lose
// nothing; it is not meant for production builds.
//
//	fs := faultstore.New(store)
//	v, _ := middleware.New(middleware.Options{Store: fs.Exact(), ...})
//	fs.Down()                             // every call fails with ErrDown
//	fs.Up()                               // the database is back
//	fs.Delay(time.Second, faultstore.OpKey) // key lookups take a second
//	fs.Fail(err, faultstore.OpApply)        // writes fail with err
//
// # Optional interfaces
//
// *Store implements apikey.Store and the optional capabilities of package
// storage ChangeFeed, LastUsedRecorder and AuditLog, passing each call to
// the inner store; a capability the inner store lacks fails with an error
// wrapping errors.ErrUnsupported. Code that discovers capabilities by type
// assertion, as the middleware does, would be misled by that: give it
// Exact(), which is the same wrapper seen through exactly the optional
// interfaces of the inner store. For the stores of this module, which have
// them all, Exact returns s itself.
//
// A Store is safe for concurrent use; faults may be switched while calls run.
package faultstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// Op names a store operation, to aim a fault at it.
type Op string

// The operations of apikey.Store and of the optional interfaces.
const (
	OpKey            Op = "Key"
	OpDefaultKey     Op = "DefaultKey"
	OpKeys           Op = "Keys"
	OpSettings       Op = "Settings"
	OpEnvironments   Op = "Environments"
	OpAccounts       Op = "Accounts"
	OpApply          Op = "Apply"
	OpChanges        Op = "Changes"        // storage.ChangeFeed
	OpRevision       Op = "Revision"       // storage.ChangeFeed
	OpRecordLastUsed Op = "RecordLastUsed" // storage.LastUsedRecorder
	OpEvents         Op = "Events"         // storage.AuditLog
)

// Ops lists every operation.
var Ops = []Op{
	OpKey, OpDefaultKey, OpKeys, OpSettings, OpEnvironments, OpAccounts, OpApply,
	OpChanges, OpRevision, OpRecordLastUsed, OpEvents,
}

// ErrDown is the error of every call to a store that is Down.
var ErrDown = errors.New("faultstore: store is down (injected fault)")

// fault is what happens to calls of one operation.
type fault struct {
	err   error         // returned after the delay, instead of calling the inner store
	delay time.Duration // waited before the call, or until ctx ends
}

// Store is a store wrapper with switchable faults. Create it with New.
type Store struct {
	inner    apikey.Store
	feed     storage.ChangeFeed
	recorder storage.LastUsedRecorder
	audit    storage.AuditLog

	mu     sync.Mutex
	faults map[Op]fault
	calls  map[Op]*atomic.Int64
}

var (
	_ apikey.Store             = (*Store)(nil)
	_ storage.ChangeFeed       = (*Store)(nil)
	_ storage.LastUsedRecorder = (*Store)(nil)
	_ storage.AuditLog         = (*Store)(nil)
)

// New returns a wrapper of inner with no fault switched on: every call goes
// through unchanged.
func New(inner apikey.Store) *Store {
	s := &Store{inner: inner, faults: map[Op]fault{}, calls: map[Op]*atomic.Int64{}}
	s.feed, _ = inner.(storage.ChangeFeed)
	s.recorder, _ = inner.(storage.LastUsedRecorder)
	s.audit, _ = inner.(storage.AuditLog)
	for _, op := range Ops {
		s.calls[op] = new(atomic.Int64)
	}
	return s
}

// Inner returns the wrapped store, to inspect it behind the faults' back.
func (s *Store) Inner() apikey.Store { return s.inner }

// Exact returns s as an apikey.Store that implements exactly the optional
// interfaces of package storage that the inner store implements. Pass it to
// code that finds capabilities by type assertion.
func (s *Store) Exact() apikey.Store {
	type (
		F = storage.ChangeFeed
		R = storage.LastUsedRecorder
		A = storage.AuditLog
	)
	f, r, a := s.feed != nil, s.recorder != nil, s.audit != nil
	switch {
	case f && r && a:
		return s
	case f && r:
		return struct {
			apikey.Store
			F
			R
		}{s, s, s}
	case f && a:
		return struct {
			apikey.Store
			F
			A
		}{s, s, s}
	case r && a:
		return struct {
			apikey.Store
			R
			A
		}{s, s, s}
	case f:
		return struct {
			apikey.Store
			F
		}{s, s}
	case r:
		return struct {
			apikey.Store
			R
		}{s, s}
	case a:
		return struct {
			apikey.Store
			A
		}{s, s}
	}
	return struct{ apikey.Store }{s}
}

// Fail makes every call of the given operations (of every operation if none
// is given) fail with an error wrapping err, until Up; a nil err ends the
// failure of those operations. A delay set with Delay still runs first.
func (s *Store) Fail(err error, ops ...Op) {
	s.set(ops, func(f *fault) { f.err = err })
}

// Down makes every call of the given operations (of every operation if none
// is given) fail with ErrDown until Up: the database went away.
func (s *Store) Down(ops ...Op) { s.Fail(ErrDown, ops...) }

// Delay makes every call of the given operations (of every operation if none
// is given) wait d before it runs, or until its context ends, when it
// returns an error wrapping ctx.Err() without calling the inner store. Zero
// ends the delay.
func (s *Store) Delay(d time.Duration, ops ...Op) {
	s.set(ops, func(f *fault) { f.delay = d })
}

// Up ends every fault, failures and delays: the database is back. Calls
// already waiting out a delay still wait.
func (s *Store) Up() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// Calls returns how many calls of op were made, faulty or not.
func (s *Store) Calls(op Op) int64 { return s.calls[op].Load() }

func (s *Store) set(ops []Op, change func(*fault)) {
	if len(ops) == 0 {
		ops = Ops
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		if _, ok := s.calls[op]; !ok {
			panic("faultstore: unknown operation " + string(op))
		}
		f := s.faults[op]
		change(&f)
		s.faults[op] = f
	}
}

// before counts a call of op and applies its fault: it returns nil if the
// call may go through to the inner store.
func (s *Store) before(ctx context.Context, op Op) error {
	s.calls[op].Add(1)
	s.mu.Lock()
	f := s.faults[op]
	s.mu.Unlock()
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("faultstore: %s: %w", op, ctx.Err())
		case <-t.C:
		}
	}
	if f.err != nil {
		return fmt.Errorf("faultstore: %s: %w", op, f.err)
	}
	return nil
}

// unsupported is the error of a capability the inner store lacks.
func unsupported(op Op) error {
	return fmt.Errorf("faultstore: %s: inner store has no such capability: %w", op, errors.ErrUnsupported)
}

// Key implements apikey.Store.
func (s *Store) Key(ctx context.Context, id string) (apikey.Record, error) {
	if err := s.before(ctx, OpKey); err != nil {
		return apikey.Record{}, err
	}
	return s.inner.Key(ctx, id)
}

// DefaultKey implements apikey.Store.
func (s *Store) DefaultKey(ctx context.Context, account, environment string, t apikey.KeyType) (apikey.Record, error) {
	if err := s.before(ctx, OpDefaultKey); err != nil {
		return apikey.Record{}, err
	}
	return s.inner.DefaultKey(ctx, account, environment, t)
}

// Keys implements apikey.Store.
func (s *Store) Keys(ctx context.Context, q apikey.KeyQuery) ([]apikey.Record, error) {
	if err := s.before(ctx, OpKeys); err != nil {
		return nil, err
	}
	return s.inner.Keys(ctx, q)
}

// Settings implements apikey.Store.
func (s *Store) Settings(ctx context.Context, account, environment string) (apikey.Settings, error) {
	if err := s.before(ctx, OpSettings); err != nil {
		return apikey.Settings{}, err
	}
	return s.inner.Settings(ctx, account, environment)
}

// Environments implements apikey.Store.
func (s *Store) Environments(ctx context.Context, q apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	if err := s.before(ctx, OpEnvironments); err != nil {
		return nil, err
	}
	return s.inner.Environments(ctx, q)
}

// Accounts implements apikey.Store.
func (s *Store) Accounts(ctx context.Context, after string, limit int) ([]string, error) {
	if err := s.before(ctx, OpAccounts); err != nil {
		return nil, err
	}
	return s.inner.Accounts(ctx, after, limit)
}

// Apply implements apikey.Store. A failed Apply writes nothing.
func (s *Store) Apply(ctx context.Context, c apikey.Change) error {
	if err := s.before(ctx, OpApply); err != nil {
		return err
	}
	return s.inner.Apply(ctx, c)
}

// Changes implements storage.ChangeFeed.
func (s *Store) Changes(ctx context.Context, since int64, limit int) ([]storage.Changed, int64, error) {
	if s.feed == nil {
		return nil, since, unsupported(OpChanges)
	}
	if err := s.before(ctx, OpChanges); err != nil {
		return nil, since, err
	}
	return s.feed.Changes(ctx, since, limit)
}

// Revision implements storage.ChangeFeed.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	if s.feed == nil {
		return 0, unsupported(OpRevision)
	}
	if err := s.before(ctx, OpRevision); err != nil {
		return 0, err
	}
	return s.feed.Revision(ctx)
}

// RecordLastUsed implements storage.LastUsedRecorder.
func (s *Store) RecordLastUsed(ctx context.Context, used map[string]time.Time) error {
	if s.recorder == nil {
		return unsupported(OpRecordLastUsed)
	}
	if err := s.before(ctx, OpRecordLastUsed); err != nil {
		return err
	}
	return s.recorder.RecordLastUsed(ctx, used)
}

// Events implements storage.AuditLog.
func (s *Store) Events(ctx context.Context, q storage.EventQuery) ([]apikey.Event, error) {
	if s.audit == nil {
		return nil, unsupported(OpEvents)
	}
	if err := s.before(ctx, OpEvents); err != nil {
		return nil, err
	}
	return s.audit.Events(ctx, q)
}
