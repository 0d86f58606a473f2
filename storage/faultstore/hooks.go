package faultstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// A Call is one call of an operation, as hooks see it: its arguments and,
// once the call is answered, its results. Only the fields of the call's
// operation are set, as the comments name them; the others are zero. Each
// call has its own Call, which its Before and After hooks share: a Before
// hook may change the arguments that the wrapped store or hasher receives,
// an After hook the results that the caller receives.
//
// A Call of OpHash or OpVerify holds a secret: never print or log one.
type Call struct {
	Op Op

	// Arguments.
	ID          string                  // Key, LeaseQuota, ReturnQuota
	Account     string                  // DefaultKey, Settings
	Environment string                  // DefaultKey, Settings
	Type        apikey.KeyType          // DefaultKey
	KeyQuery    apikey.KeyQuery         // Keys
	EnvQuery    apikey.EnvironmentQuery // Environments
	Cursor      string                  // Accounts: the account to start after
	Limit       int                     // Accounts, Changes, PurgeKeys
	Since       int64                   // Changes
	Change      apikey.Change           // Apply
	Used        map[string]time.Time    // RecordLastUsed
	EventQuery  storage.EventQuery      // Events
	Secret      []byte                  // Hash, Verify
	Encoded     string                  // Verify's and Outdated's argument, Hash's result
	Uses        int64                   // LeaseQuota: want; ReturnQuota: n
	Now         time.Time               // LeaseQuota, ReturnQuota
	Counts      []apikey.UsageCount     // RecordUsage
	UsageQuery  apikey.UsageQuery       // Usage
	PruneBefore time.Time               // PruneUsage
	OwnerQuery  apikey.OwnerQuery       // OwnerKeys
	ExpiryQuery apikey.ExpiryQuery      // ExpiringKeys
	PurgeBefore time.Time               // PurgeKeys

	// Results, set when After hooks run.
	Record       apikey.Record       // Key, DefaultKey
	Records      []apikey.Record     // Keys, OwnerKeys, ExpiringKeys
	Settings     apikey.Settings     // Settings
	Environments []apikey.Settings   // Environments
	Accounts     []string            // Accounts
	Changes      []storage.Changed   // Changes
	Revision     int64               // Revision; Changes: the since of the next call, since before the store answers
	Events       []apikey.Event      // Events
	Lease        storage.QuotaLease  // LeaseQuota; ReturnQuota's argument, the lease returned to
	UsageCounts  []apikey.UsageCount // Usage
	Pruned       int64               // PruneUsage
	Purged       []apikey.PurgedKey  // PurgeKeys
	Match        bool                // Verify
	Outdated     bool                // Verify, Outdated
	// Err is the error of the call, of every operation: the wrapped
	// store's or hasher's, or the fault's or Before hook's that replaced
	// the call.
	Err error
}

// A BeforeHook runs when a call starts, after the call is counted and
// after any fault switched on with Fail or Delay. It may change c's
// arguments. A non-nil error ends the call: the caller receives an error
// wrapping it, and the wrapped store or hasher is not called. A hook may
// block (until its ctx ends, to honour the caller's deadline) or panic, as
// a store or hasher may.
type BeforeHook func(ctx context.Context, c *Call) error

// An AfterHook runs when a call has its results, whether the wrapped store
// or hasher answered or a fault or Before hook failed the call (c.Err is
// then set). It may change c's results, c.Err included: the caller
// receives them as the hook left them. It may block or panic.
type AfterHook func(ctx context.Context, c *Call)

// fault is what happens to calls of one operation.
type fault struct {
	err   error         // returned after the delay, instead of calling the inner store
	delay time.Duration // waited before the call, or until ctx ends
}

// hooks holds the faults and hooks of a wrapper's operations and counts
// their calls. Its lock guards faults, before and after; calls is fixed at
// construction. Hooks run without the lock held.
type hooks struct {
	calls map[Op]*atomic.Int64 // one counter per operation of the wrapper

	mu     sync.Mutex
	faults map[Op]fault
	before map[Op][]BeforeHook
	after  map[Op][]AfterHook
}

func newHooks(ops []Op) *hooks {
	h := &hooks{calls: map[Op]*atomic.Int64{}, faults: map[Op]fault{},
		before: map[Op][]BeforeHook{}, after: map[Op][]AfterHook{}}
	for _, op := range ops {
		h.calls[op] = new(atomic.Int64)
	}
	return h
}

// each runs change on every op of ops, of every operation if ops is
// empty, with the lock held. An operation the wrapper lacks is a
// programmer's error: it panics.
func (h *hooks) each(ops []Op, change func(Op)) {
	if len(ops) == 0 {
		for op := range h.calls {
			ops = append(ops, op)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range ops {
		if _, ok := h.calls[op]; !ok {
			panic("faultstore: unknown operation " + string(op))
		}
		change(op)
	}
}

func (h *hooks) setFault(ops []Op, change func(*fault)) {
	h.each(ops, func(op Op) {
		f := h.faults[op]
		change(&f)
		h.faults[op] = f
	})
}

func (h *hooks) addBefore(hook BeforeHook, ops []Op) {
	h.each(ops, func(op Op) { h.before[op] = append(h.before[op], hook) })
}

func (h *hooks) addAfter(hook AfterHook, ops []Op) {
	h.each(ops, func(op Op) { h.after[op] = append(h.after[op], hook) })
}

func (h *hooks) clear(ops []Op) {
	h.each(ops, func(op Op) { delete(h.before, op); delete(h.after, op) })
}

func (h *hooks) count(op Op) int64 {
	n, ok := h.calls[op]
	if !ok {
		panic("faultstore: unknown operation " + string(op))
	}
	return n.Load()
}

// do runs the call c: it counts it, applies the fault and the Before
// hooks of c.Op, then, if none failed it, runs call, which calls the
// wrapped store or hasher with c's arguments and sets c's results; then the
// After hooks.
func (h *hooks) do(ctx context.Context, c *Call, call func()) {
	h.calls[c.Op].Add(1)
	h.mu.Lock()
	f, before, after := h.faults[c.Op], h.before[c.Op], h.after[c.Op]
	h.mu.Unlock()
	c.Err = applyFault(ctx, c.Op, f)
	for _, hook := range before {
		if c.Err != nil {
			break
		}
		if err := hook(ctx, c); err != nil {
			c.Err = fmt.Errorf("faultstore: %s: %w", c.Op, err)
		}
	}
	if c.Err == nil {
		call()
	}
	for _, hook := range after {
		hook(ctx, c)
	}
}

// applyFault waits out f's delay and returns f's error, wrapped; nil if the
// call may go on.
func applyFault(ctx context.Context, op Op, f fault) error {
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
