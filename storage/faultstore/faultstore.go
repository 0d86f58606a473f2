// Package faultstore wraps a keystile store, or a hasher, with faults that a
// test switches on and off: every call failing with an error, calls that
// are slow, a store that is down until it comes back up, and per-operation
// hooks that count, block, fail, rewrite or panic. It is test support, for
// proving that the middleware and the Manager fail closed, recover, and
// lose nothing; it is not meant for production builds.
//
//	fs := faultstore.New(store)
//	v, _ := middleware.New(middleware.Options{Store: fs.Exact(), ...})
//	fs.Down()                               // every call fails with ErrDown
//	fs.Up()                                 // the database is back
//	fs.Delay(time.Second, faultstore.OpKey) // key lookups take a second
//	fs.Fail(err, faultstore.OpApply)        // writes fail with err
//	<-fs.Gap()                              // the next Changes reported a feed gap
//
// # Hooks
//
// Before and After add hooks to operations: a BeforeHook runs when a call
// starts and may fail it, block it, change its arguments or panic; an
// AfterHook runs when the call has its results and may change them. Both
// see the call as a *Call. Hooks stay until Clear; Up ends only the faults
// of Fail, Down and Delay.
//
//	fs.Before(func(ctx context.Context, c *faultstore.Call) error {
//		<-release // hold every key read until the test releases it
//		return nil
//	}, faultstore.OpKey)
//	fs.After(func(_ context.Context, c *faultstore.Call) {
//		c.Records = slices.DeleteFunc(c.Records, hidden) // a listing misses a key
//	}, faultstore.OpKeys)
//
// NewHasher wraps an apikey.Hasher with the same hooks, on OpHash,
// OpVerify and OpOutdated.
//
// # Optional interfaces
//
// *Store implements apikey.Store and the optional capabilities of package
// storage ChangeFeed, LastUsedRecorder, AuditLog, QuotaLedger,
// UsageRecorder, OwnerIndex, ExpiryIndex and KeyPurger, passing each call to
// the inner store; a capability the inner store lacks, or that Hide hid,
// fails with an error wrapping errors.ErrUnsupported. Code that discovers
// capabilities by type assertion, as the middleware does, would be misled
// by that: give it
// Exact(), which is the same wrapper seen through exactly the optional
// interfaces of the inner store that are not hidden. For the stores of
// this module, which have them all, Exact returns s itself unless Hide hid
// one.
//
// A Store is safe for concurrent use; faults and hooks may be switched
// while calls run. Hide is the exception: call it before the Store is used.
package faultstore

//go:generate go run gen_exact.go

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// Op names a store operation, to aim a fault at it.
type Op string

// The operations of apikey.Store and of the optional interfaces of package
// storage, the operations of a Store.
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
	OpLeaseQuota     Op = "LeaseQuota"     // storage.QuotaLedger
	OpReturnQuota    Op = "ReturnQuota"    // storage.QuotaLedger
	OpRecordUsage    Op = "RecordUsage"    // storage.UsageRecorder
	OpUsage          Op = "Usage"          // storage.UsageRecorder
	OpPruneUsage     Op = "PruneUsage"     // storage.UsageRecorder
	OpOwnerKeys      Op = "OwnerKeys"      // storage.OwnerIndex
	OpExpiringKeys   Op = "ExpiringKeys"   // storage.ExpiryIndex
	OpPurgeKeys      Op = "PurgeKeys"      // storage.KeyPurger
)

// Ops lists every operation of a Store.
var Ops = []Op{
	OpKey, OpDefaultKey, OpKeys, OpSettings, OpEnvironments, OpAccounts, OpApply,
	OpChanges, OpRevision, OpRecordLastUsed, OpEvents, OpLeaseQuota, OpReturnQuota,
	OpRecordUsage, OpUsage, OpPruneUsage, OpOwnerKeys, OpExpiringKeys, OpPurgeKeys,
}

// ErrDown is the error of every call to a store that is Down.
var ErrDown = errors.New("faultstore: store is down (injected fault)")

// Store is a store wrapper with switchable faults and hooks. Create it
// with New.
type Store struct {
	inner    apikey.Store
	feed     storage.ChangeFeed       // nil if the inner store has none, or Hide hid it
	recorder storage.LastUsedRecorder // nil if the inner store has none, or Hide hid it
	audit    storage.AuditLog         // nil if the inner store has none, or Hide hid it
	ledger   storage.QuotaLedger      // nil if the inner store has none, or Hide hid it
	usage    storage.UsageRecorder    // nil if the inner store has none, or Hide hid it
	owners   storage.OwnerIndex       // nil if the inner store has none, or Hide hid it
	expiry   storage.ExpiryIndex      // nil if the inner store has none, or Hide hid it
	purger   storage.KeyPurger        // nil if the inner store has none, or Hide hid it
	hooks    *hooks
	gap      atomic.Pointer[chan struct{}] // set: the next Changes reports ErrFeedGap, then closes it
}

var (
	_ apikey.Store             = (*Store)(nil)
	_ storage.ChangeFeed       = (*Store)(nil)
	_ storage.LastUsedRecorder = (*Store)(nil)
	_ storage.AuditLog         = (*Store)(nil)
	_ storage.QuotaLedger      = (*Store)(nil)
	_ storage.UsageRecorder    = (*Store)(nil)
	_ storage.OwnerIndex       = (*Store)(nil)
	_ storage.ExpiryIndex      = (*Store)(nil)
	_ storage.KeyPurger        = (*Store)(nil)
)

// New returns a wrapper of inner with no fault or hook: every call goes
// through unchanged.
func New(inner apikey.Store) *Store {
	s := &Store{inner: inner, hooks: newHooks(Ops)}
	s.feed, _ = inner.(storage.ChangeFeed)
	s.recorder, _ = inner.(storage.LastUsedRecorder)
	s.audit, _ = inner.(storage.AuditLog)
	s.ledger, _ = inner.(storage.QuotaLedger)
	s.usage, _ = inner.(storage.UsageRecorder)
	s.owners, _ = inner.(storage.OwnerIndex)
	s.expiry, _ = inner.(storage.ExpiryIndex)
	s.purger, _ = inner.(storage.KeyPurger)
	return s
}

// Inner returns the wrapped store, to inspect it behind the faults' back.
func (s *Store) Inner() apikey.Store { return s.inner }

// Exact returns s as an apikey.Store that implements exactly the optional
// interfaces of package storage that the inner store implements and that
// Hide did not hide. Pass it to code that finds capabilities by type
// assertion.
func (s *Store) Exact() apikey.Store {
	var has uint // bits in the order of gen_exact.go's capabilities
	for i, ok := range []bool{s.feed != nil, s.recorder != nil, s.audit != nil, s.ledger != nil, s.usage != nil,
		s.owners != nil, s.expiry != nil, s.purger != nil} {
		if ok {
			has |= 1 << i
		}
	}
	return exact(s, has)
}

// Hide hides the optional interfaces of the given operations, as if the
// inner store lacked them: OpChanges or OpRevision hide storage.ChangeFeed,
// OpRecordLastUsed storage.LastUsedRecorder, OpEvents storage.AuditLog,
// OpLeaseQuota or OpReturnQuota storage.QuotaLedger, OpRecordUsage, OpUsage
// or OpPruneUsage storage.UsageRecorder, OpOwnerKeys storage.OwnerIndex,
// OpExpiringKeys storage.ExpiryIndex, OpPurgeKeys storage.KeyPurger.
// Exact then does not implement them, and their calls on s fail with an
// error wrapping errors.ErrUnsupported. Call it before s is used (before
// Exact and the first call); it is not safe for concurrent use. Hiding an
// operation of apikey.Store is a programmer's error: it panics.
func (s *Store) Hide(ops ...Op) {
	for _, op := range ops {
		switch op {
		case OpChanges, OpRevision:
			s.feed = nil
		case OpRecordLastUsed:
			s.recorder = nil
		case OpEvents:
			s.audit = nil
		case OpLeaseQuota, OpReturnQuota:
			s.ledger = nil
		case OpRecordUsage, OpUsage, OpPruneUsage:
			s.usage = nil
		case OpOwnerKeys:
			s.owners = nil
		case OpExpiringKeys:
			s.expiry = nil
		case OpPurgeKeys:
			s.purger = nil
		default:
			panic("faultstore: Hide: " + string(op) + " is not an operation of an optional interface")
		}
	}
}

// Fail makes every call of the given operations (of every operation if none
// is given) fail with an error wrapping err, until Up; a nil err ends the
// failure of those operations. A delay set with Delay still runs first.
func (s *Store) Fail(err error, ops ...Op) {
	s.hooks.setFault(ops, func(f *fault) { f.err = err })
}

// Down makes every call of the given operations (of every operation if none
// is given) fail with ErrDown until Up: the database went away.
func (s *Store) Down(ops ...Op) { s.Fail(ErrDown, ops...) }

// Delay makes every call of the given operations (of every operation if none
// is given) wait d before it runs, or until its context ends, when it
// returns an error wrapping ctx.Err() without calling the inner store. Zero
// ends the delay.
func (s *Store) Delay(d time.Duration, ops ...Op) {
	s.hooks.setFault(ops, func(f *fault) { f.delay = d })
}

// Up ends every fault, failures and delays: the database is back. Calls
// already waiting out a delay still wait. Hooks stay (see Clear).
func (s *Store) Up() {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	clear(s.hooks.faults)
}

// Gap makes the next call of Changes that reaches the inner store (one
// call) return storage.ErrFeedGap, wrapped, with the inner store's current
// revision, as a feed whose entries were pruned does. Its After hooks see
// the gap. The channel returned is closed when that call returns.
func (s *Store) Gap() <-chan struct{} {
	reported := make(chan struct{})
	s.gap.Store(&reported)
	return reported
}

// Before adds hook to the given operations (to every operation if none is
// given), after the hooks they have: it runs at the start of each of their
// calls, in the order added. See BeforeHook.
func (s *Store) Before(hook BeforeHook, ops ...Op) { s.hooks.addBefore(hook, ops) }

// After adds hook to the given operations (to every operation if none is
// given), after the hooks they have: it runs when each of their calls has
// its results, in the order added. See AfterHook.
func (s *Store) After(hook AfterHook, ops ...Op) { s.hooks.addAfter(hook, ops) }

// Clear removes the Before and After hooks of the given operations (of
// every operation if none is given). Calls already running keep theirs.
func (s *Store) Clear(ops ...Op) { s.hooks.clear(ops) }

// Calls returns how many calls of op were made, faulty or not; calls of a
// hidden or missing capability are not counted.
func (s *Store) Calls(op Op) int64 { return s.hooks.count(op) }

// unsupported is the error of a capability the inner store or hasher
// lacks, or that Hide hid.
func unsupported(op Op) error {
	return fmt.Errorf("faultstore: %s: inner store has no such capability: %w", op, errors.ErrUnsupported)
}

// Key implements apikey.Store.
func (s *Store) Key(ctx context.Context, id string) (apikey.Record, error) {
	c := &Call{Op: OpKey, ID: id}
	s.hooks.do(ctx, c, func() { c.Record, c.Err = s.inner.Key(ctx, c.ID) })
	return c.Record, c.Err
}

// DefaultKey implements apikey.Store.
func (s *Store) DefaultKey(ctx context.Context, account, environment string, t apikey.KeyType) (apikey.Record, error) {
	c := &Call{Op: OpDefaultKey, Account: account, Environment: environment, Type: t}
	s.hooks.do(ctx, c, func() { c.Record, c.Err = s.inner.DefaultKey(ctx, c.Account, c.Environment, c.Type) })
	return c.Record, c.Err
}

// Keys implements apikey.Store.
func (s *Store) Keys(ctx context.Context, q apikey.KeyQuery) ([]apikey.Record, error) {
	c := &Call{Op: OpKeys, KeyQuery: q}
	s.hooks.do(ctx, c, func() { c.Records, c.Err = s.inner.Keys(ctx, c.KeyQuery) })
	return c.Records, c.Err
}

// Settings implements apikey.Store.
func (s *Store) Settings(ctx context.Context, account, environment string) (apikey.Settings, error) {
	c := &Call{Op: OpSettings, Account: account, Environment: environment}
	s.hooks.do(ctx, c, func() { c.Settings, c.Err = s.inner.Settings(ctx, c.Account, c.Environment) })
	return c.Settings, c.Err
}

// Environments implements apikey.Store.
func (s *Store) Environments(ctx context.Context, q apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	c := &Call{Op: OpEnvironments, EnvQuery: q}
	s.hooks.do(ctx, c, func() { c.Environments, c.Err = s.inner.Environments(ctx, c.EnvQuery) })
	return c.Environments, c.Err
}

// Accounts implements apikey.Store.
func (s *Store) Accounts(ctx context.Context, after string, limit int) ([]string, error) {
	c := &Call{Op: OpAccounts, Cursor: after, Limit: limit}
	s.hooks.do(ctx, c, func() { c.Accounts, c.Err = s.inner.Accounts(ctx, c.Cursor, c.Limit) })
	return c.Accounts, c.Err
}

// Apply implements apikey.Store. A failed Apply writes nothing, unless an
// After hook fails a call that the inner store applied.
func (s *Store) Apply(ctx context.Context, change apikey.Change) error {
	c := &Call{Op: OpApply, Change: change}
	s.hooks.do(ctx, c, func() { c.Err = s.inner.Apply(ctx, c.Change) })
	return c.Err
}

// Changes implements storage.ChangeFeed.
func (s *Store) Changes(ctx context.Context, since int64, limit int) ([]storage.Changed, int64, error) {
	if s.feed == nil {
		return nil, since, unsupported(OpChanges)
	}
	c := &Call{Op: OpChanges, Since: since, Limit: limit, Revision: since} // since, if a fault ends the call
	var gap *chan struct{}
	s.hooks.do(ctx, c, func() {
		if gap = s.gap.Swap(nil); gap == nil {
			c.Changes, c.Revision, c.Err = s.feed.Changes(ctx, c.Since, c.Limit)
			return
		}
		c.Revision, c.Err = s.feed.Revision(ctx)
		if c.Err == nil {
			c.Err = fmt.Errorf("faultstore: %s: %w", OpChanges, storage.ErrFeedGap)
		}
	})
	if gap != nil {
		close(*gap)
	}
	return c.Changes, c.Revision, c.Err
}

// Revision implements storage.ChangeFeed.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	if s.feed == nil {
		return 0, unsupported(OpRevision)
	}
	c := &Call{Op: OpRevision}
	s.hooks.do(ctx, c, func() { c.Revision, c.Err = s.feed.Revision(ctx) })
	return c.Revision, c.Err
}

// RecordLastUsed implements storage.LastUsedRecorder.
func (s *Store) RecordLastUsed(ctx context.Context, used map[string]time.Time) error {
	if s.recorder == nil {
		return unsupported(OpRecordLastUsed)
	}
	c := &Call{Op: OpRecordLastUsed, Used: used}
	s.hooks.do(ctx, c, func() { c.Err = s.recorder.RecordLastUsed(ctx, c.Used) })
	return c.Err
}

// Events implements storage.AuditLog.
func (s *Store) Events(ctx context.Context, q storage.EventQuery) ([]apikey.Event, error) {
	if s.audit == nil {
		return nil, unsupported(OpEvents)
	}
	c := &Call{Op: OpEvents, EventQuery: q}
	s.hooks.do(ctx, c, func() { c.Events, c.Err = s.audit.Events(ctx, c.EventQuery) })
	return c.Events, c.Err
}

// LeaseQuota implements storage.QuotaLedger.
func (s *Store) LeaseQuota(ctx context.Context, keyID string, want int64, now time.Time) (storage.QuotaLease, error) {
	if s.ledger == nil {
		return storage.QuotaLease{}, unsupported(OpLeaseQuota)
	}
	c := &Call{Op: OpLeaseQuota, ID: keyID, Uses: want, Now: now}
	s.hooks.do(ctx, c, func() { c.Lease, c.Err = s.ledger.LeaseQuota(ctx, c.ID, c.Uses, c.Now) })
	return c.Lease, c.Err
}

// ReturnQuota implements storage.QuotaLedger.
func (s *Store) ReturnQuota(ctx context.Context, keyID string, n int64, lease storage.QuotaLease, now time.Time) error {
	if s.ledger == nil {
		return unsupported(OpReturnQuota)
	}
	c := &Call{Op: OpReturnQuota, ID: keyID, Uses: n, Lease: lease, Now: now}
	s.hooks.do(ctx, c, func() { c.Err = s.ledger.ReturnQuota(ctx, c.ID, c.Uses, c.Lease, c.Now) })
	return c.Err
}

// RecordUsage implements storage.UsageRecorder.
func (s *Store) RecordUsage(ctx context.Context, counts []apikey.UsageCount) error {
	if s.usage == nil {
		return unsupported(OpRecordUsage)
	}
	c := &Call{Op: OpRecordUsage, Counts: counts}
	s.hooks.do(ctx, c, func() { c.Err = s.usage.RecordUsage(ctx, c.Counts) })
	return c.Err
}

// Usage implements storage.UsageRecorder.
func (s *Store) Usage(ctx context.Context, q apikey.UsageQuery) ([]apikey.UsageCount, error) {
	if s.usage == nil {
		return nil, unsupported(OpUsage)
	}
	c := &Call{Op: OpUsage, UsageQuery: q}
	s.hooks.do(ctx, c, func() { c.UsageCounts, c.Err = s.usage.Usage(ctx, c.UsageQuery) })
	return c.UsageCounts, c.Err
}

// PruneUsage implements storage.UsageRecorder.
func (s *Store) PruneUsage(ctx context.Context, before time.Time) (int64, error) {
	if s.usage == nil {
		return 0, unsupported(OpPruneUsage)
	}
	c := &Call{Op: OpPruneUsage, PruneBefore: before}
	s.hooks.do(ctx, c, func() { c.Pruned, c.Err = s.usage.PruneUsage(ctx, c.PruneBefore) })
	return c.Pruned, c.Err
}

// OwnerKeys implements storage.OwnerIndex.
func (s *Store) OwnerKeys(ctx context.Context, q apikey.OwnerQuery) ([]apikey.Record, error) {
	if s.owners == nil {
		return nil, unsupported(OpOwnerKeys)
	}
	c := &Call{Op: OpOwnerKeys, OwnerQuery: q}
	s.hooks.do(ctx, c, func() { c.Records, c.Err = s.owners.OwnerKeys(ctx, c.OwnerQuery) })
	return c.Records, c.Err
}

// ExpiringKeys implements storage.ExpiryIndex.
func (s *Store) ExpiringKeys(ctx context.Context, q apikey.ExpiryQuery) ([]apikey.Record, error) {
	if s.expiry == nil {
		return nil, unsupported(OpExpiringKeys)
	}
	c := &Call{Op: OpExpiringKeys, ExpiryQuery: q}
	s.hooks.do(ctx, c, func() { c.Records, c.Err = s.expiry.ExpiringKeys(ctx, c.ExpiryQuery) })
	return c.Records, c.Err
}

// PurgeKeys implements storage.KeyPurger. A failed PurgeKeys deletes
// nothing, unless an After hook fails a call that the inner store made.
func (s *Store) PurgeKeys(ctx context.Context, before time.Time, limit int) ([]apikey.PurgedKey, error) {
	if s.purger == nil {
		return nil, unsupported(OpPurgeKeys)
	}
	c := &Call{Op: OpPurgeKeys, PurgeBefore: before, Limit: limit}
	s.hooks.do(ctx, c, func() { c.Purged, c.Err = s.purger.PurgeKeys(ctx, c.PurgeBefore, c.Limit) })
	return c.Purged, c.Err
}
