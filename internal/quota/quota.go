package quota

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// Defaults of Options.
const (
	DefaultMinLease  = 10
	DefaultMaxLease  = 1000
	DefaultLeaseTime = 2 * time.Second
	DefaultMaxKeys   = 100_000
)

// shards spreads keys over locks, so that requests for different keys
// rarely contend.
const shards = 32

// maxLeadsPerSpend bounds the leases one Spend takes when concurrent
// requests spend each lease before it can.
const maxLeadsPerSpend = 3

// Errors of a Spender.
var (
	// ErrInvalidOptions means Options holds a value New cannot use; the
	// wrapped error names the field.
	ErrInvalidOptions = errors.New("quota: invalid options")
	// ErrInvalidCost means a Spend's cost is below 1.
	ErrInvalidCost = errors.New("quota: invalid cost")
	// ErrClosed means the Spender was closed.
	ErrClosed = errors.New("quota: spender closed")
	// ErrLedgerPanic means the ledger (LeaseQuota or ReturnQuota)
	// panicked; the Spender recovered.
	ErrLedgerPanic = errors.New("quota: ledger panicked")
)

// Options configure a Spender.
type Options struct {
	// Ledger keeps the balances; required.
	Ledger storage.QuotaLedger
	// MinLease is the fewest uses a lease asks for (unless the cost is
	// more); 0 means DefaultMinLease.
	MinLease int64
	// MaxLease is the most uses a lease asks for (unless the cost is
	// more), and so the most one instance holds per key; 0 means
	// DefaultMaxLease, or MinLease when that is larger. It is the term of
	// the bound in the package doc.
	MaxLease int64
	// LeaseTime is how long a lease may go unused before ReturnIdle
	// returns its uses, and the spending rate that sizes a lease is
	// measured over it (a lease holds about LeaseTime of the key's recent
	// spending); 0 means DefaultLeaseTime.
	LeaseTime time.Duration
	// MaxKeys bounds the keys with local state; 0 means DefaultMaxKeys.
	MaxKeys int
	// OnError receives the errors of returns no caller waits for (those
	// of keys evicted or whose quota changed, and of leases whose key was
	// dropped while they were taken); a ReturnQuota panic reaches it as an error wrapping
	// ErrLedgerPanic. A panic in OnError is recovered and dropped; nil
	// drops every error.
	OnError func(error)
	// Now is the clock of Forget and Close, whose returns name the time;
	// nil means time.Now.
	Now func() time.Time
	// LeaseAhead, if set, takes a key's next lease in the background,
	// once a spend leaves its lease with less than a quarter of the uses
	// it was granted, so that a key spending steadily never waits for the
	// store. Requests that find the lease empty while that lease is taken
	// wait for it as for any other; a failed lease ahead reaches OnError
	// and the next request that needs uses takes a lease itself.
	LeaseAhead bool
}

// leaseAheadTimeout bounds a lease taken ahead, which no request waits for
// (Close waits for it).
const leaseAheadTimeout = 5 * time.Second

// Decision is the outcome of a Spend.
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Remaining is the best local estimate of the uses left: the store's
	// balance at the latest lease plus this instance's unspent uses.
	Remaining int64
	// NextRefill is when the balance next gains the quota's Refill; zero
	// when unknown or never.
	NextRefill time.Time
	// Unlimited reports that the key has no quota.
	Unlimited bool
}

// Spender spends request costs from leases of each key's quota. Create it
// with New; it is safe for concurrent use.
type Spender struct {
	ledger    storage.QuotaLedger
	minLease  int64
	maxLease  int64
	leaseTime time.Duration
	perShard  int
	onError   func(error)
	now       func() time.Time
	seed      maphash.Seed
	ahead     bool           // Options.LeaseAhead
	aheads    sync.WaitGroup // leases taken ahead, awaited by Close
	closed    atomic.Bool
	shards    [shards]shard
}

type shard struct {
	mu   sync.Mutex // guards keys and every entry in it
	keys map[string]*entry
	_    [48]byte // one shard per cache line
}

// entry is one key's local state, guarded by its shard's mutex.
type entry struct {
	quota      apikey.Quota // the quota the lease was taken under
	held       int64        // unspent uses of the lease
	leasedAt   time.Time    // when the lease was taken (names its period)
	generation int64        // the latest lease's storage.QuotaLease.Generation
	nextRefill time.Time    // from the latest lease; zero: never
	remaining  int64        // the store's balance after the latest lease
	spent      int64        // uses spent since leasedAt, to size the next lease
	granted    int64        // uses the latest lease granted: below a quarter held, LeaseAhead leases
	lastUsed   time.Time    // latest spend or lease
	emptyUntil time.Time    // the store was empty: refuse without I/O until then
	unlimited  time.Time    // the store said the key has no quota: admit until then
	flight     *flight      // the lease being taken, nil when none
	dropped    bool         // no longer in the map: a flight's leader returns its grant
	// stale reports that e was dropped because its key's quota changed to
	// next: a lease taken for e meanwhile is returned whole, never spent.
	stale bool
	next  apikey.Quota
	// heir is the entry that replaced e at a change of its quota while e's
	// flight was open: heir's flight stays open until e's ends and e's
	// lease, if any, is returned (see settle).
	heir *entry
	// waits counts the returns that e's flight, when it takes no lease,
	// awaits: the old entry's unspent uses, and its flight's lease.
	waits int
}

// flight is one LeaseQuota call, awaited by every request that needs it.
// A flight taken ahead (LeaseAhead) carries no error: its waiters take a
// lease themselves when it failed.
type flight struct {
	done chan struct{}
	err  error
}

// giveBack is a return to make once no lock is held.
type giveBack struct {
	keyID    string
	n        int64
	leasedAt time.Time
	gen      int64 // the lease's storage.QuotaLease.Generation
}

// New returns a Spender for o. Errors wrap ErrInvalidOptions and name the
// field.
func New(o Options) (*Spender, error) {
	switch {
	case o.Ledger == nil:
		return nil, fmt.Errorf("%w: Ledger is required", ErrInvalidOptions)
	case o.MinLease < 0:
		return nil, fmt.Errorf("%w: MinLease must not be negative", ErrInvalidOptions)
	case o.MaxLease < 0:
		return nil, fmt.Errorf("%w: MaxLease must not be negative", ErrInvalidOptions)
	case o.MaxLease > 0 && o.MaxLease < o.MinLease:
		return nil, fmt.Errorf("%w: MaxLease must be at least MinLease", ErrInvalidOptions)
	case o.LeaseTime < 0:
		return nil, fmt.Errorf("%w: LeaseTime must not be negative", ErrInvalidOptions)
	case o.MaxKeys < 0:
		return nil, fmt.Errorf("%w: MaxKeys must not be negative", ErrInvalidOptions)
	}
	s := &Spender{
		ledger:    o.Ledger,
		minLease:  o.MinLease,
		maxLease:  o.MaxLease,
		leaseTime: o.LeaseTime,
		onError:   o.OnError,
		now:       o.Now,
		seed:      maphash.MakeSeed(),
		ahead:     o.LeaseAhead,
	}
	if s.minLease == 0 {
		s.minLease = DefaultMinLease
	}
	if s.maxLease == 0 {
		s.maxLease = max(DefaultMaxLease, s.minLease)
	}
	if s.leaseTime == 0 {
		s.leaseTime = DefaultLeaseTime
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	s.perShard = max(1, (o.MaxKeys+shards-1)/shards)
	if s.onError == nil {
		s.onError = func(error) {}
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.shards {
		s.shards[i].keys = map[string]*entry{}
	}
	return s, nil
}

func (s *Spender) shard(keyID string) *shard {
	return &s.shards[maphash.String(s.seed, keyID)%shards]
}

// Spend spends cost uses of keyID's quota q at now. It admits from the
// key's lease without I/O when the lease holds cost; otherwise it takes a
// lease with one LeaseQuota call (one per key at a time: concurrent
// requests for the key wait for it). A zero q is unlimited, a cost beyond
// q.Limit is never allowed, and a key whose store balance is empty is
// refused (Allowed false, with NextRefill). A ledger error (or ctx's) is
// returned, and the request must then not proceed; cost < 1 is
// ErrInvalidCost, and Spend after Close is ErrClosed.
func (s *Spender) Spend(ctx context.Context, keyID string, q apikey.Quota, cost int64, now time.Time) (Decision, error) {
	if cost < 1 {
		return Decision{}, fmt.Errorf("%w: cost %d must be at least 1", ErrInvalidCost, cost)
	}
	if q.IsZero() {
		return Decision{Allowed: true, Unlimited: true}, nil
	}
	if cost > q.Limit {
		return Decision{}, nil
	}
	sh := s.shard(keyID)
	sh.mu.Lock()
	if e := sh.keys[keyID]; e != nil && e.quota == q && e.held >= cost &&
		(e.nextRefill.IsZero() || now.Before(e.nextRefill)) {
		e.held -= cost
		e.spent += cost
		e.lastUsed = now
		d := Decision{Allowed: true, Remaining: e.remaining + e.held, NextRefill: e.nextRefill}
		s.maybeLeaseAhead(sh, e, keyID, now) // unlocks sh.mu
		return d, nil
	}
	return s.spendSlow(ctx, sh, keyID, q, cost, now) // unlocks sh.mu
}

// maybeLeaseAhead starts taking e's next lease in the background when
// LeaseAhead is set and e holds less than a quarter of its latest grant.
// It is called with sh.mu held and returns with it released.
func (s *Spender) maybeLeaseAhead(sh *shard, e *entry, keyID string, now time.Time) {
	if !s.ahead || e.flight != nil || e.dropped || 4*e.held >= e.granted ||
		now.Before(e.emptyUntil) || now.Before(e.unlimited) || s.closed.Load() {
		sh.mu.Unlock()
		return
	}
	want := s.leaseSize(e, 1, now)
	f := &flight{done: make(chan struct{})}
	e.flight = f
	s.aheads.Add(1)
	sh.mu.Unlock()
	go s.leaseAhead(sh, e, f, keyID, want, now)
}

// leaseAhead takes the lease that maybeLeaseAhead started.
func (s *Spender) leaseAhead(sh *shard, e *entry, f *flight, keyID string, want int64, now time.Time) {
	defer s.aheads.Done()
	ctx, cancel := context.WithTimeout(context.Background(), leaseAheadTimeout)
	lease, err := s.lease(ctx, keyID, want, now)
	cancel()
	sh.mu.Lock()
	e.flight = nil
	close(f.done)
	switch {
	case err != nil:
		sh.mu.Unlock()
		s.report(fmt.Errorf("quota: leasing ahead: %w", err))
	case e.dropped || s.closed.Load():
		sh.mu.Unlock()
		s.returnOrphan(ctx, keyID, lease, lease.Granted, now)
	default:
		s.credit(e, lease, want, now)
		sh.mu.Unlock()
		return
	}
	sh.mu.Lock()
	e.handOff()
	sh.mu.Unlock()
}

// settle ends one of the returns that e's flight awaits (see
// entry.waits); the last one closes the flight, and hands off to e's heir
// when e was replaced meanwhile. It is called with e's shard's mutex held.
func (e *entry) settle() {
	if e.waits--; e.waits > 0 {
		return
	}
	f := e.flight
	e.flight = nil
	close(f.done)
	e.handOff()
}

// handOff settles e's heir, once e's flight has ended and its lease is
// returned. It is called with e's shard's mutex held.
func (e *entry) handOff() {
	if h := e.heir; h != nil {
		e.heir = nil
		h.settle()
	}
}

// credit adds lease, asked for want uses at now, to e. It is called with
// e's shard's mutex held.
func (s *Spender) credit(e *entry, lease storage.QuotaLease, want int64, now time.Time) {
	if lease.Unlimited {
		e.unlimited = now.Add(s.leaseTime)
		return
	}
	e.held += lease.Granted
	e.granted = lease.Granted
	e.leasedAt, e.spent, e.lastUsed = now, 0, now
	e.generation = lease.Generation
	e.remaining, e.nextRefill = lease.Remaining, lease.NextRefill
	if lease.Granted < want {
		e.emptyUntil = now.Add(s.leaseTime)
		if !e.nextRefill.IsZero() && e.nextRefill.Before(e.emptyUntil) {
			e.emptyUntil = e.nextRefill
		}
	}
}

// spendSlow is Spend when the key's lease does not hold cost. It is called
// with sh.mu held and returns with it released.
func (s *Spender) spendSlow(ctx context.Context, sh *shard, keyID string, q apikey.Quota, cost int64, now time.Time) (Decision, error) {
	for leads := 0; ; {
		if s.closed.Load() {
			sh.mu.Unlock()
			return Decision{}, ErrClosed
		}
		e := sh.keys[keyID]
		if e == nil || e.quota != q {
			var evicted []giveBack
			old := e
			if old != nil {
				// The key's quota changed: the old lease's unspent uses
				// go back to the store, which adds them to the new
				// quota's balance or drops them (by the lease's
				// Generation); a lease being taken under the old quota
				// is returned whole by the request that took it.
				old.stale, old.next = true, q
				evicted = drop(sh, keyID, old, now, nil)
			} else {
				evicted = s.evict(sh, now)
			}
			e = &entry{quota: q}
			sh.keys[keyID] = e
			if old != nil {
				// No request leases under the new quota before both
				// returns: the new entry's flight, which the key's other
				// requests (and this one) wait for, ends with them, so
				// that none finds the balance without those uses (below
				// zero under a lowered quota) and refuses the key.
				if old.flight != nil {
					old.heir = e
					e.waits++
				}
				if len(evicted) > 0 {
					e.waits++
				}
				if e.waits > 0 {
					e.flight = &flight{done: make(chan struct{})}
				}
			}
			if len(evicted) > 0 {
				sh.mu.Unlock()
				s.giveBack(ctx, evicted, now)
				sh.mu.Lock()
				if old != nil {
					e.settle()
				}
				continue
			}
		}
		if now.Before(e.unlimited) {
			sh.mu.Unlock()
			return Decision{Allowed: true, Unlimited: true}, nil
		}
		e.rollover(now)
		if e.held >= cost {
			e.held -= cost
			e.spent += cost
			e.lastUsed = now
			d := Decision{Allowed: true, Remaining: e.remaining + e.held, NextRefill: e.nextRefill}
			s.maybeLeaseAhead(sh, e, keyID, now) // unlocks sh.mu
			return d, nil
		}
		if now.Before(e.emptyUntil) || leads == maxLeadsPerSpend {
			d := Decision{Remaining: e.remaining + e.held, NextRefill: e.nextRefill}
			sh.mu.Unlock()
			return d, nil
		}
		if f := e.flight; f != nil {
			sh.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return Decision{}, ctx.Err()
			}
			if f.err != nil && !(ctx.Err() == nil && isContextErr(f.err)) {
				return Decision{}, f.err
			}
			// Leased, or the leader's request ended and this one may
			// take the lease itself.
			sh.mu.Lock()
			if e.stale {
				// The key's quota changed meanwhile: the request is
				// decided under the quota the Spender learned.
				q = e.next
				if q.IsZero() || cost > q.Limit {
					sh.mu.Unlock()
					return Decision{Allowed: q.IsZero(), Unlimited: q.IsZero()}, nil
				}
			}
			continue
		}

		// Lead one lease for the key.
		leads++
		want := s.leaseSize(e, cost, now) - e.held
		lease, err := s.lead(ctx, sh, e, keyID, want, now)
		if err != nil {
			e.handOff()
			sh.mu.Unlock()
			return Decision{}, err
		}
		if e.stale {
			// The key's quota changed while the lease was taken: nothing
			// is spent from it, and the request is decided under the
			// quota the Spender learned (or fails with ErrClosed).
			q = e.next
			sh.mu.Unlock()
			s.returnOrphan(ctx, keyID, lease, lease.Granted, now)
			sh.mu.Lock()
			e.handOff()
			if q.IsZero() || cost > q.Limit {
				sh.mu.Unlock()
				return Decision{Allowed: q.IsZero(), Unlimited: q.IsZero()}, nil
			}
			continue
		}
		if e.dropped || s.closed.Load() {
			sh.mu.Unlock()
			return s.spendOrphan(ctx, keyID, lease, cost, now)
		}
		s.credit(e, lease, want, now)
	}
}

// spendOrphan admits a request from a lease whose key was dropped (Forget
// under the same quota, eviction, Close) while the lease was taken, and
// returns the rest.
func (s *Spender) spendOrphan(ctx context.Context, keyID string, lease storage.QuotaLease, cost int64, now time.Time) (Decision, error) {
	if lease.Unlimited {
		return Decision{Allowed: true, Unlimited: true}, nil
	}
	d := Decision{Remaining: lease.Remaining + lease.Granted, NextRefill: lease.NextRefill}
	rest := lease.Granted
	if rest >= cost {
		d.Allowed, d.Remaining, rest = true, d.Remaining-cost, rest-cost
	}
	s.returnOrphan(ctx, keyID, lease, rest, now)
	return d, nil
}

// returnOrphan returns rest uses of lease, taken at now for a key that was
// dropped meanwhile, with the lease's Generation: the store adds them to
// the key's balance or drops them.
func (s *Spender) returnOrphan(ctx context.Context, keyID string, lease storage.QuotaLease, rest int64, now time.Time) {
	if rest <= 0 || lease.Unlimited {
		return
	}
	g := giveBack{keyID: keyID, n: rest, leasedAt: now, gen: lease.Generation}
	if err := s.returnOne(context.WithoutCancel(ctx), g, now); err != nil {
		s.report(fmt.Errorf("quota: returning %d uses of a dropped key: %w", rest, err))
	}
}

// lead takes one lease for e (named keyID) as the leader of a flight that
// the key's other requests wait for. It is called with sh.mu held and
// returns with it held; the flight is closed however lead ends.
func (s *Spender) lead(ctx context.Context, sh *shard, e *entry, keyID string, want int64, now time.Time) (l storage.QuotaLease, err error) {
	f := &flight{done: make(chan struct{})}
	e.flight = f
	sh.mu.Unlock()
	defer func() {
		sh.mu.Lock()
		e.flight = nil
		f.err = err
		close(f.done)
	}()
	return s.lease(ctx, keyID, want, now)
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// lease calls LeaseQuota, turning a panic into an error so that the
// requests waiting for the lease are released.
func (s *Spender) lease(ctx context.Context, keyID string, want int64, now time.Time) (l storage.QuotaLease, err error) {
	defer func() {
		if p := recover(); p != nil {
			l, err = storage.QuotaLease{}, fmt.Errorf("%w: %v", ErrLedgerPanic, p)
		}
	}()
	return s.ledger.LeaseQuota(ctx, keyID, want, now)
}

// leaseSize is how many uses the key should hold after its next lease:
// what it spent over the last LeaseTime, between MinLease and MaxLease,
// and at least cost.
func (s *Spender) leaseSize(e *entry, cost int64, now time.Time) int64 {
	size := s.minLease
	if e.spent > 0 && !e.leasedAt.IsZero() {
		elapsed := max(now.Sub(e.leasedAt), time.Millisecond)
		rate := float64(e.spent) * float64(s.leaseTime) / float64(elapsed)
		size = int64(min(max(rate, float64(s.minLease)), float64(s.maxLease)))
	}
	return max(size, cost)
}

// rollover drops a lease whose period ended at now: the store refilled the
// balance, and the ledger would drop the return.
func (e *entry) rollover(now time.Time) {
	if !e.nextRefill.IsZero() && !now.Before(e.nextRefill) {
		e.held, e.emptyUntil, e.nextRefill = 0, time.Time{}, time.Time{}
	}
}

// evict makes room in sh for one key when it is full, and returns the
// unspent uses to give back. Keys taking a lease are kept.
func (s *Spender) evict(sh *shard, now time.Time) []giveBack {
	if len(sh.keys) < s.perShard {
		return nil
	}
	var out []giveBack
	for k, e := range sh.keys {
		if e.flight != nil {
			continue
		}
		out = drop(sh, k, e, now, out)
		if len(sh.keys) < s.perShard {
			break
		}
	}
	return out
}

// giveBack returns the uses of keys evicted or dropped for a change of
// their quota, reporting errors to OnError. The returns outlive the
// cancellation of ctx, the request's.
func (s *Spender) giveBack(ctx context.Context, gs []giveBack, now time.Time) {
	if len(gs) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, g := range gs {
		if err := s.returnOne(ctx, g, now); err != nil {
			s.report(fmt.Errorf("quota: returning %d uses of a dropped key: %w", g.n, err))
		}
	}
}

// returnAll returns gs, joining the errors.
func (s *Spender) returnAll(ctx context.Context, gs []giveBack, now time.Time) error {
	var errs []error
	for _, g := range gs {
		if err := s.returnOne(ctx, g, now); err != nil {
			errs = append(errs, fmt.Errorf("quota: returning %d uses: %w", g.n, err))
		}
	}
	return errors.Join(errs...)
}

// returnOne calls ReturnQuota for g, turning a panic into an error
// wrapping ErrLedgerPanic.
func (s *Spender) returnOne(ctx context.Context, g giveBack, now time.Time) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrLedgerPanic, p)
		}
	}()
	return s.ledger.ReturnQuota(ctx, g.keyID, g.n, storage.QuotaLease{LeasedAt: g.leasedAt, Generation: g.gen}, now)
}

// report passes err to OnError, dropping a panic of OnError.
func (s *Spender) report(err error) {
	defer func() { _ = recover() }()
	s.onError(err)
}

// drop removes e (named k) from its shard, whose lock is held, and returns
// what to give back: its unspent uses, with its lease's Generation.
func drop(sh *shard, k string, e *entry, now time.Time, gs []giveBack) []giveBack {
	delete(sh.keys, k)
	e.dropped = true
	e.rollover(now)
	if e.held > 0 {
		gs = append(gs, giveBack{keyID: k, n: e.held, leasedAt: e.leasedAt, gen: e.generation})
	}
	e.held = 0
	return gs
}

// ReturnIdle returns the unspent uses of every lease not spent from for
// LeaseTime before now, and forgets those keys. Call it periodically (every
// LeaseTime or so), so that uses an instance no longer needs reach the
// others.
func (s *Spender) ReturnIdle(ctx context.Context, now time.Time) error {
	var gs []giveBack
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.keys {
			if e.flight == nil && now.Sub(e.lastUsed) >= s.leaseTime {
				gs = drop(sh, k, e, now, gs)
			}
		}
		sh.mu.Unlock()
	}
	return s.returnAll(ctx, gs, now)
}

// Forget drops keyID's local state; call it when the key changes (its
// quota, its status), with q the key's quota after the change (zero when
// it has none, or was deleted). The unspent uses of the key's lease are
// returned with the lease's Generation, whatever q: the store adds them
// to the balance when the change kept them leased (see
// storage.QuotaLedger), and drops them when it replaced the balance. A
// lease being taken for the key meanwhile is returned by the request that
// took it: whole when q is another quota (that request is then decided
// under q), else but the request's cost.
func (s *Spender) Forget(ctx context.Context, keyID string, q apikey.Quota) error {
	now := s.now()
	sh := s.shard(keyID)
	sh.mu.Lock()
	var gs []giveBack
	if e := sh.keys[keyID]; e != nil {
		if e.quota != q {
			e.stale, e.next = true, q
		}
		gs = drop(sh, keyID, e, now, nil)
	}
	sh.mu.Unlock()
	return s.returnAll(ctx, gs, now)
}

// Refund gives back n uses that Spend admitted for keyID under q at no
// cost, to the key's lease, while it is the lease they were spent from
// (the same quota, before its next refill); otherwise they stay spent.
// It does no I/O. The middleware refunds a key's uses when the quota its
// owner's keys share refuses the request.
func (s *Spender) Refund(keyID string, q apikey.Quota, n int64, now time.Time) {
	if n <= 0 {
		return
	}
	sh := s.shard(keyID)
	sh.mu.Lock()
	if e := sh.keys[keyID]; e != nil && e.quota == q && !e.dropped && (e.nextRefill.IsZero() || now.Before(e.nextRefill)) {
		e.held += n
		e.spent = max(e.spent-n, 0)
	}
	sh.mu.Unlock()
}

// Close returns every unspent use with ReturnQuota and makes every later
// Spend fail with ErrClosed. Leases being taken meanwhile are returned by
// the requests that took them; Close waits for the leases taken ahead
// (LeaseAhead) to end and return, or for ctx.
func (s *Spender) Close(ctx context.Context) error {
	s.closed.Store(true)
	aheads := make(chan struct{})
	go func() { s.aheads.Wait(); close(aheads) }()
	select {
	case <-aheads:
	case <-ctx.Done():
	}
	now := s.now()
	var gs []giveBack
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.keys {
			gs = drop(sh, k, e, now, gs)
		}
		sh.mu.Unlock()
	}
	return s.returnAll(ctx, gs, now)
}
