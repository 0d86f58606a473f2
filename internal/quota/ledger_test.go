package quota

import (
	"context"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// memLedger is a storage.QuotaLedger in memory, with the contract's
// refills, and counters for the tests.
type memLedger struct {
	mu       sync.Mutex
	keys     map[string]*balance
	calls    int   // LeaseQuota calls
	leased   int64 // uses granted
	returned int64 // uses given back, dropped ones included
	dropped  int64 // uses given back for an ended period or a replaced balance
	gen      int64 // the latest generation given to a quota
	err      error // returned by every call when set
	panics   bool  // LeaseQuota panics when set
	rpanics  bool  // ReturnQuota panics when set
	// block, when set, holds LeaseQuota until closed; entered receives
	// once per call before it blocks.
	block   chan struct{}
	entered chan struct{}
	// after makes LeaseQuota block (with block and entered) after it
	// took the uses from the balance instead of before.
	after bool
	// rblock and rentered do the same for ReturnQuota.
	rblock   chan struct{}
	rentered chan struct{}
}

type balance struct {
	q      apikey.Quota
	n      int64     // below zero when a change lowered the limit below what was leased
	period time.Time // start of the period last refilled
	gen    int64     // storage.QuotaLease.Generation
	from   int64     // the generation from which returns are accepted
}

var _ storage.QuotaLedger = (*memLedger)(nil)

func newLedger() *memLedger { return &memLedger{keys: map[string]*balance{}} }

// set gives keyID the quota q, full at now, under a new generation from
// which returns are accepted.
func (l *memLedger) set(keyID string, q apikey.Quota, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	l.keys[keyID] = &balance{q: q, n: q.Limit, period: q.Period.Start(now), gen: l.gen, from: l.gen}
}

// change changes keyID's quota to q, of the same Period, as the contract
// of storage.QuotaLedger does: what was spent or leased stays so, and the
// returns of earlier leases are still accepted.
func (l *memLedger) change(keyID string, q apikey.Quota) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[keyID]
	l.gen++
	b.n, b.q, b.gen = q.Limit-(b.q.Limit-b.n), q, l.gen
}

func (l *memLedger) balance(keyID string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keys[keyID].n
}

func (l *memLedger) counts() (calls int, leased, returned int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls, l.leased, l.returned
}

func (b *balance) refill(now time.Time) {
	if b.q.Refill == 0 {
		return
	}
	start := b.q.Period.Start(now)
	for b.period.Before(start) {
		b.period = b.q.Period.Next(b.period)
		b.n = min(b.q.Limit, max(b.n, 0)+b.q.Refill)
	}
}

func (b *balance) nextRefill(now time.Time) time.Time {
	if b.q.Refill == 0 {
		return time.Time{}
	}
	return b.q.Period.Next(now)
}

func (l *memLedger) LeaseQuota(ctx context.Context, keyID string, want int64, now time.Time) (storage.QuotaLease, error) {
	l.mu.Lock()
	block, entered, after := l.block, l.entered, l.after
	l.mu.Unlock()
	if block != nil && !after {
		entered <- struct{}{}
		<-block
	}
	if block != nil && after {
		defer func() {
			entered <- struct{}{}
			<-block
		}()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if err := ctx.Err(); err != nil {
		return storage.QuotaLease{}, err
	}
	if l.panics {
		panic("ledger bug")
	}
	if l.err != nil {
		return storage.QuotaLease{}, l.err
	}
	if want < 1 {
		panic("LeaseQuota: want < 1")
	}
	b := l.keys[keyID]
	if b == nil {
		return storage.QuotaLease{}, apikey.ErrNotFound
	}
	if b.q.IsZero() {
		return storage.QuotaLease{Unlimited: true}, nil
	}
	b.refill(now)
	g := min(want, max(b.n, 0))
	b.n -= g
	l.leased += g
	return storage.QuotaLease{Granted: g, Remaining: max(b.n, 0), NextRefill: b.nextRefill(now), LeasedAt: now, Generation: b.gen}, nil
}

func (l *memLedger) ReturnQuota(ctx context.Context, keyID string, n int64, lease storage.QuotaLease, now time.Time) error {
	leasedAt := lease.LeasedAt
	l.mu.Lock()
	block, entered := l.rblock, l.rentered
	l.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		<-block
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rpanics {
		panic("ledger bug")
	}
	if l.err != nil {
		return l.err
	}
	if n < 1 {
		panic("ReturnQuota: n < 1")
	}
	l.returned += n
	b := l.keys[keyID]
	if b == nil || b.q.IsZero() {
		return nil
	}
	b.refill(now)
	if lease.Generation < b.from || b.q.Refill > 0 && !b.q.Period.Start(leasedAt).Equal(b.q.Period.Start(now)) {
		l.dropped += n
		return nil
	}
	b.n = min(b.q.Limit, b.n+n)
	return nil
}
