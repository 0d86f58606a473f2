package quota

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

var (
	ctx = context.Background()
	t0  = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
)

func newSpender(t testing.TB, l *memLedger, o Options) *Spender {
	t.Helper()
	o.Ledger = l
	if o.Now == nil {
		o.Now = func() time.Time { return t0 }
	}
	s, err := New(o)
	require.NoError(t, err)
	return s
}

func (s *Spender) keys() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].keys)
		s.shards[i].mu.Unlock()
	}
	return n
}

func TestSpendFromLease(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	l.set("k", q, t0)
	s := newSpender(t, l, Options{MinLease: 10, LeaseTime: time.Hour})

	for i := range 10 {
		d, err := s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
		assert.Equal(t, Decision{Allowed: true, Remaining: 99 - int64(i)}, d)
	}
	calls, leased, _ := l.counts()
	assert.Equal(t, 1, calls, "ten uses from one lease")
	assert.EqualValues(t, 10, leased)
	assert.EqualValues(t, 90, l.balance("k"), "the store holds what was not leased")

	d, err := s.Spend(ctx, "k", q, 1, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.True(t, d.Allowed)
	calls, _, _ = l.counts()
	assert.Equal(t, 2, calls, "an empty lease takes another")
}

func TestLeaseSizeAdapts(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 1_000_000}
	l.set("k", q, t0)
	s := newSpender(t, l, Options{MinLease: 10, MaxLease: 500, LeaseTime: 2 * time.Second})

	// A fast key: 10 uses in 10 ms is 2,000 per LeaseTime, clamped to 500.
	now := t0
	for range 10 {
		_, err := s.Spend(ctx, "k", q, 1, now)
		require.NoError(t, err)
		now = now.Add(time.Millisecond)
	}
	_, err := s.Spend(ctx, "k", q, 1, now)
	require.NoError(t, err)
	_, leased, _ := l.counts()
	assert.EqualValues(t, 10+500, leased, "the second lease is MaxLease")

	// A slow key: 10 uses in 10 s is 2 per LeaseTime, raised to MinLease.
	l.set("slow", q, t0)
	for range 11 {
		_, err := s.Spend(ctx, "slow", q, 1, now)
		require.NoError(t, err)
		now = now.Add(time.Second)
	}
	_, leased2, _ := l.counts()
	assert.EqualValues(t, 10+10, leased2-leased)

	// A cost beyond MaxLease leases the cost.
	l.set("big", q, t0)
	d, err := s.Spend(ctx, "big", q, 800, now)
	require.NoError(t, err)
	assert.True(t, d.Allowed)
	_, leased3, _ := l.counts()
	assert.EqualValues(t, 800, leased3-leased2)
}

func TestSpendRefusesAtZeroUntilRefill(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 5, Refill: 5, Period: apikey.Daily}
	l.set("k", q, t0)
	s := newSpender(t, l, Options{MinLease: 10, LeaseTime: time.Minute})
	midnight := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)

	for i := range 5 {
		d, err := s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
		assert.Equal(t, Decision{Allowed: true, Remaining: 4 - int64(i), NextRefill: midnight}, d)
	}
	d, err := s.Spend(ctx, "k", q, 1, t0)
	require.NoError(t, err)
	assert.Equal(t, Decision{NextRefill: midnight}, d)
	calls, _, _ := l.counts()
	for range 100 {
		d, err = s.Spend(ctx, "k", q, 1, t0.Add(time.Second))
		require.NoError(t, err)
		assert.False(t, d.Allowed)
	}
	calls2, _, _ := l.counts()
	assert.Equal(t, calls, calls2, "an empty store is not asked again within LeaseTime")

	d, err = s.Spend(ctx, "k", q, 1, t0.Add(time.Minute))
	require.NoError(t, err)
	assert.False(t, d.Allowed, "asked again after LeaseTime: still empty")
	calls3, _, _ := l.counts()
	assert.Equal(t, calls2+1, calls3)

	d, err = s.Spend(ctx, "k", q, 1, midnight)
	require.NoError(t, err)
	assert.Equal(t, Decision{Allowed: true, Remaining: 4, NextRefill: midnight.AddDate(0, 0, 1)}, d, "refilled at midnight")
}

func TestSpendRefillBoundaryDropsTheOldLease(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100, Refill: 100, Period: apikey.Daily}
	before := time.Date(2026, 12, 4, 23, 59, 59, 0, time.UTC)
	midnight := before.Add(time.Second)
	l.set("k", q, before)
	s := newSpender(t, l, Options{MinLease: 30, MaxLease: 30, LeaseTime: time.Hour})

	admitted := func(now time.Time) (n int64) {
		for {
			d, err := s.Spend(ctx, "k", q, 1, now)
			require.NoError(t, err)
			if !d.Allowed {
				return n
			}
			n++
		}
	}
	// Day one: 40 spent locally leaves 20 of a lease held at midnight.
	for range 40 {
		_, err := s.Spend(ctx, "k", q, 1, before)
		require.NoError(t, err)
	}
	assert.EqualValues(t, 40, l.balance("k"), "two leases of 30 taken")
	// Day two: the held 20 are dropped, not spent; the store refilled to
	// 100 (40 + 100, capped), and exactly that is admitted.
	assert.EqualValues(t, 100, admitted(midnight))
	_, _, returned := l.counts()
	assert.Zero(t, returned, "the old lease is dropped locally, not returned")
	require.NoError(t, s.Close(ctx))
	assert.Zero(t, l.balance("k"))
}

func TestSpendSingleFlight(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 1000}
	l.set("k", q, t0)
	l.block, l.entered = make(chan struct{}), make(chan struct{}, 1)
	s := newSpender(t, l, Options{MinLease: 100})

	const n = 50
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range n {
		wg.Go(func() {
			d, err := s.Spend(ctx, "k", q, 1, t0)
			assert.NoError(t, err)
			if d.Allowed {
				allowed.Add(1)
			}
		})
	}
	<-l.entered
	time.Sleep(20 * time.Millisecond) // let the others reach the flight
	l.mu.Lock()
	block := l.block
	l.block = nil
	l.mu.Unlock()
	close(block)
	wg.Wait()

	calls, leased, _ := l.counts()
	assert.Equal(t, 1, calls, "one lease for all concurrent requests")
	assert.EqualValues(t, 100, leased)
	assert.EqualValues(t, n, allowed.Load())
}

func TestSpendLedgerError(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 1000}
	l.set("k", q, t0)
	down := errors.New("store down")
	l.err = down
	s := newSpender(t, l, Options{})

	d, err := s.Spend(ctx, "k", q, 1, t0)
	require.ErrorIs(t, err, down)
	assert.False(t, d.Allowed)

	// Waiters get the leader's error.
	l.mu.Lock()
	l.block, l.entered = make(chan struct{}), make(chan struct{}, 1)
	l.mu.Unlock()
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := s.Spend(ctx, "k", q, 1, t0)
			errs <- err
		}()
	}
	<-l.entered
	time.Sleep(20 * time.Millisecond)
	l.mu.Lock()
	close(l.block)
	l.block = nil
	l.mu.Unlock()
	for range 10 {
		assert.ErrorIs(t, <-errs, down)
	}

	// Recovered, the key spends again.
	l.mu.Lock()
	l.err = nil
	l.mu.Unlock()
	d, err = s.Spend(ctx, "k", q, 1, t0)
	require.NoError(t, err)
	assert.True(t, d.Allowed)

	// An unknown key is the ledger's error.
	_, err = s.Spend(ctx, "unknown", q, 1, t0)
	assert.ErrorIs(t, err, apikey.ErrNotFound)
}

func TestSpendLedgerPanic(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 1000}
	l.set("k", q, t0)
	l.panics = true
	s := newSpender(t, l, Options{})
	_, err := s.Spend(ctx, "k", q, 1, t0)
	require.ErrorIs(t, err, ErrLedgerPanic)
	l.mu.Lock()
	l.panics = false
	l.mu.Unlock()
	d, err := s.Spend(ctx, "k", q, 1, t0)
	require.NoError(t, err, "the key is not stuck behind the panicked lease")
	assert.True(t, d.Allowed)
}

func TestSpendContextWhileWaiting(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 1000}
	l.set("k", q, t0)
	l.block, l.entered = make(chan struct{}), make(chan struct{}, 1)
	s := newSpender(t, l, Options{})
	leader := make(chan error)
	go func() {
		_, err := s.Spend(ctx, "k", q, 1, t0)
		leader <- err
	}()
	<-l.entered
	c, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Spend(c, "k", q, 1, t0)
	assert.ErrorIs(t, err, context.Canceled)
	l.mu.Lock()
	close(l.block)
	l.block = nil
	l.mu.Unlock()
	assert.NoError(t, <-leader)
}

// A leader whose request ends does not fail the requests waiting for its
// lease: one of them takes the lease.
func TestSpendLeaderCanceled(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 1000}
	l.set("k", q, t0)
	l.block, l.entered = make(chan struct{}), make(chan struct{}, 2)
	s := newSpender(t, l, Options{})
	c, cancel := context.WithCancel(ctx)
	leader := make(chan error)
	go func() {
		_, err := s.Spend(c, "k", q, 1, t0)
		leader <- err
	}()
	<-l.entered
	waiter := make(chan Decision)
	go func() {
		d, err := s.Spend(ctx, "k", q, 1, t0)
		assert.NoError(t, err)
		waiter <- d
	}()
	time.Sleep(20 * time.Millisecond) // the waiter waits for the flight
	cancel()
	l.mu.Lock()
	close(l.block)
	l.block = nil
	l.mu.Unlock()
	assert.ErrorIs(t, <-leader, context.Canceled)
	assert.True(t, (<-waiter).Allowed)
	calls, leased, _ := l.counts()
	assert.Equal(t, 2, calls)
	assert.EqualValues(t, DefaultMinLease, leased)
}

func TestSpendArguments(t *testing.T) {
	l := newLedger()
	s := newSpender(t, l, Options{})
	q := apikey.Quota{Limit: 10}
	l.set("k", q, t0)

	for _, cost := range []int64{0, -1} {
		_, err := s.Spend(ctx, "k", q, cost, t0)
		assert.ErrorIs(t, err, ErrInvalidCost)
	}
	d, err := s.Spend(ctx, "k", apikey.Quota{}, 5, t0)
	require.NoError(t, err)
	assert.Equal(t, Decision{Allowed: true, Unlimited: true}, d, "no quota: unlimited, no I/O")
	d, err = s.Spend(ctx, "k", q, 11, t0)
	require.NoError(t, err)
	assert.False(t, d.Allowed, "a cost beyond the limit")
	calls, _, _ := l.counts()
	assert.Zero(t, calls)

	// The store knows no quota for the key (the caller's view is stale):
	// unlimited, asked again after LeaseTime.
	l.set("free", apikey.Quota{}, t0)
	for range 3 {
		d, err = s.Spend(ctx, "free", q, 1, t0)
		require.NoError(t, err)
		assert.Equal(t, Decision{Allowed: true, Unlimited: true}, d)
	}
	calls, _, _ = l.counts()
	assert.Equal(t, 1, calls)
	_, err = s.Spend(ctx, "free", q, 1, t0.Add(DefaultLeaseTime))
	require.NoError(t, err)
	calls, _, _ = l.counts()
	assert.Equal(t, 2, calls)
}

// A request under a changed quota returns the old lease's unspent uses
// (with its Generation) before it leases under the new one: the store
// adds them to the new balance when the change kept them leased, and
// drops them when it replaced the balance.
func TestSpendQuotaChange(t *testing.T) {
	l := newLedger()
	q1, q2, q3 := apikey.Quota{Limit: 100}, apikey.Quota{Limit: 50}, apikey.Quota{Limit: 200}
	l.set("k", q1, t0)
	s := newSpender(t, l, Options{MinLease: 10})
	_, err := s.Spend(ctx, "k", q1, 1, t0) // 90 in the store, 9 held
	require.NoError(t, err)

	l.change("k", q2) // 50 - 10 leased
	d, err := s.Spend(ctx, "k", q2, 1, t0)
	require.NoError(t, err)
	assert.Equal(t, Decision{Allowed: true, Remaining: 48}, d, "40 + 9 returned - 1")
	_, leased, returned := l.counts()
	assert.EqualValues(t, 20, leased)
	assert.EqualValues(t, 9, returned, "the old lease's unspent uses")
	assert.EqualValues(t, 39, l.balance("k"))
	assert.Zero(t, l.dropped)

	l.set("k", q3, t0) // removed and set again: the store starts it full
	d, err = s.Spend(ctx, "k", q3, 1, t0)
	require.NoError(t, err)
	assert.Equal(t, Decision{Allowed: true, Remaining: 199}, d)
	assert.EqualValues(t, 9, l.dropped, "returned, and dropped by the store")
	assert.Equal(t, 1, s.keys())
}

// The review's case: a key spends 15 of a quota of 100 from a lease that
// holds the rest, and the quota is raised to 200: exactly 185 more are
// admitted.
func TestSpendRaisedQuota(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	l.set("k", q, t0)
	s := newSpender(t, l, Options{MinLease: 10, LeaseAhead: true})
	for i := range 15 {
		d, err := s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
		require.True(t, d.Allowed, "request %d", i)
	}
	require.EqualValues(t, 0, l.balance("k"), "the leases hold the rest")

	q = apikey.Quota{Limit: 200}
	l.change("k", q)
	admitted := 0
	for range 400 {
		d, err := s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
		if d.Allowed {
			admitted++
		}
	}
	assert.Equal(t, 185, admitted, "200 - 15 spent")
	require.NoError(t, s.Close(ctx))
}

func TestForget(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	l.set("k", q, t0)
	s := newSpender(t, l, Options{MinLease: 10})
	_, err := s.Spend(ctx, "k", q, 3, t0)
	require.NoError(t, err)
	assert.EqualValues(t, 90, l.balance("k"))

	require.NoError(t, s.Forget(ctx, "k", q))
	assert.EqualValues(t, 97, l.balance("k"), "the 7 unspent uses are back")
	assert.Zero(t, s.keys())
	require.NoError(t, s.Forget(ctx, "k", q), "forgetting an unknown key is a no-op")
	_, _, returned := l.counts()
	assert.EqualValues(t, 7, returned)

	_, err = s.Spend(ctx, "k", q, 1, t0)
	require.NoError(t, err)
	calls, _, _ := l.counts()
	assert.Equal(t, 2, calls, "a forgotten key leases again")

	// Under another quota (or none) the lease is returned too, with its
	// Generation: the store decides.
	for _, q2 := range []apikey.Quota{{Limit: 50}, {Limit: 100, Refill: 1, Period: apikey.Daily}, {}} {
		returned0 := returned
		require.NoError(t, s.Forget(ctx, "k", q2))
		_, _, returned = l.counts()
		assert.EqualValues(t, 9, returned-returned0, "%+v: the 9 unspent uses are returned", q2)
		assert.EqualValues(t, 96, l.balance("k"), "%+v: 97 - 10 leased + 9 returned", q2)
		assert.Zero(t, s.keys())
		_, err = s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
		l.mu.Lock()
		l.keys["k"].n = 97 - 10 // the next round starts from the same balance
		l.mu.Unlock()
	}
}

// The quota of a key lowered while four instances hold leases of the old
// one: the store counts the leases as leased, an instance that learns of
// the change (a Spend under the new quota, or Forget) returns its unspent
// uses instead of spending them, and the key admits its new Limit less
// what was spent under the old one, not more.
func TestForgetAfterQuotaChange(t *testing.T) {
	l := newLedger()
	old, q := apikey.Quota{Limit: 1000}, apikey.Quota{Limit: 300}
	l.set("k", old, t0)
	var sp []*Spender
	for range 4 {
		s := newSpender(t, l, Options{MinLease: 100, MaxLease: 100})
		_, err := s.Spend(ctx, "k", old, 1, t0) // each holds 99
		require.NoError(t, err)
		sp = append(sp, s)
	}
	l.change("k", q) // 300 - 400 leased

	admitted := 0
	spend := func(now time.Time) {
		for range 1000 {
			d, err := sp[0].Spend(ctx, "k", q, 1, now)
			require.NoError(t, err)
			if d.Allowed {
				admitted++
			}
		}
	}
	spend(t0)
	assert.Zero(t, admitted, "the balance is below zero, 99 returned included")
	for _, s := range sp[1:] {
		require.NoError(t, s.Forget(ctx, "k", q))
	}
	spend(t0.Add(time.Hour)) // the store is asked again
	assert.Equal(t, int(q.Limit)-4, admitted, "the new quota less the 4 spent under the old one")
	_, _, returned := l.counts()
	assert.EqualValues(t, 4*99, returned)
}

// A key dropped while its lease is taken: the request that took it spends
// its cost and returns the rest.
func TestDropDuringLease(t *testing.T) {
	for name, drop := range map[string]func(*Spender) error{
		"Forget": func(s *Spender) error { return s.Forget(ctx, "k", apikey.Quota{Limit: 100}) },
		"Close":  func(s *Spender) error { return s.Close(ctx) },
		"Forget under another quota": func(s *Spender) error {
			return s.Forget(ctx, "k", apikey.Quota{Limit: 50})
		},
	} {
		t.Run(name, func(t *testing.T) {
			l := newLedger()
			q := apikey.Quota{Limit: 100}
			l.set("k", q, t0)
			l.block, l.entered = make(chan struct{}), make(chan struct{}, 1)
			s := newSpender(t, l, Options{MinLease: 10})
			done := make(chan Decision)
			go func() {
				d, err := s.Spend(ctx, "k", q, 1, t0)
				assert.NoError(t, err)
				done <- d
			}()
			<-l.entered
			require.NoError(t, drop(s))
			l.mu.Lock()
			close(l.block)
			l.block = nil
			l.mu.Unlock()
			assert.True(t, (<-done).Allowed)
			if strings.HasSuffix(name, "another quota") {
				_, leased, returned := l.counts()
				assert.EqualValues(t, 10, returned, "the leader returned its lease whole")
				assert.EqualValues(t, 20, leased, "and spent from a lease under the quota Forget named")
				assert.Equal(t, 1, s.keys())
			} else {
				assert.EqualValues(t, 99, l.balance("k"), "the leader returned the rest of its lease")
				assert.Zero(t, s.keys())
			}
		})
	}
}

func TestReturnIdle(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	l.set("a", q, t0)
	l.set("b", q, t0)
	s := newSpender(t, l, Options{MinLease: 10, LeaseTime: time.Second})
	_, err := s.Spend(ctx, "a", q, 1, t0)
	require.NoError(t, err)
	_, err = s.Spend(ctx, "b", q, 1, t0.Add(time.Second))
	require.NoError(t, err)

	require.NoError(t, s.ReturnIdle(ctx, t0.Add(1500*time.Millisecond)))
	assert.EqualValues(t, 99, l.balance("a"), "a was idle for LeaseTime")
	assert.EqualValues(t, 90, l.balance("b"), "b was used within LeaseTime")
	assert.Equal(t, 1, s.keys())
}

func TestClose(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	s := newSpender(t, l, Options{MinLease: 10})
	for i := range 20 {
		k := fmt.Sprint("k", i)
		l.set(k, q, t0)
		_, err := s.Spend(ctx, k, q, int64(i%5+1), t0)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close(ctx))
	var spent int64
	for i := range 20 {
		b := l.balance(fmt.Sprint("k", i))
		spent += 100 - b
		assert.EqualValues(t, 100-(i%5+1), b, "every unspent use is back")
	}
	_, leased, returned := l.counts()
	assert.Equal(t, spent, leased-returned)
	assert.Zero(t, s.keys())

	_, err := s.Spend(ctx, "k1", q, 1, t0)
	assert.ErrorIs(t, err, ErrClosed)

	// Returns that fail are reported.
	l2 := newLedger()
	l2.set("k", q, t0)
	s2 := newSpender(t, l2, Options{})
	_, err = s2.Spend(ctx, "k", q, 1, t0)
	require.NoError(t, err)
	l2.err = errors.New("store down")
	assert.ErrorIs(t, s2.Close(ctx), l2.err)
}

func TestMaxKeys(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	var errs atomic.Int64
	s := newSpender(t, l, Options{MinLease: 10, MaxKeys: 64, OnError: func(error) { errs.Add(1) }})
	const n = 2000
	for i := range n {
		k := fmt.Sprint("key", i)
		l.set(k, q, t0)
		d, err := s.Spend(ctx, k, q, 1, t0)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		require.LessOrEqual(t, s.keys(), 64)
	}
	require.NoError(t, s.Close(ctx))
	_, leased, returned := l.counts()
	assert.EqualValues(t, n, leased-returned, "evicted keys' unspent uses were returned")
	assert.Zero(t, errs.Load())
}

// Spenders sharing one ledger, as instances share a store, never admit
// more than the quota, and every leased use is either admitted or returned.
func TestConcurrentSpendersStayWithinQuota(t *testing.T) {
	const (
		instances = 8
		workers   = 4
		limit     = 10_000
	)
	l := newLedger()
	q := apikey.Quota{Limit: limit}
	l.set("k", q, t0)
	var spenders []*Spender
	for i := range instances {
		// Half the instances take their leases ahead.
		spenders = append(spenders, newSpender(t, l, Options{MinLease: 10, MaxLease: 200, LeaseTime: time.Second, LeaseAhead: i%2 == 0}))
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i, s := range spenders {
		for w := range workers {
			wg.Go(func() {
				now := t0
				for n := 0; ; n++ {
					cost := int64((i+w+n)%3 + 1)
					d, err := s.Spend(ctx, "k", q, cost, now)
					if !assert.NoError(t, err) {
						return
					}
					if !d.Allowed {
						return
					}
					admitted.Add(cost)
					now = now.Add(time.Microsecond)
				}
			})
		}
	}
	wg.Wait()
	assert.LessOrEqual(t, admitted.Load(), int64(limit))
	assert.Greater(t, admitted.Load(), int64(limit-instances*(200+50+3)), "refused only while uses sat in other leases")
	for _, s := range spenders {
		require.NoError(t, s.Close(ctx))
	}
	_, leased, returned := l.counts()
	assert.Equal(t, admitted.Load(), leased-returned)
	assert.Equal(t, limit-admitted.Load(), l.balance("k"))
}

// waitQuota waits for s to hold keyID under q: a request under q learned
// of it.
func waitQuota(t *testing.T, s *Spender, keyID string, q apikey.Quota) {
	t.Helper()
	sh := s.shard(keyID)
	for range 10_000 {
		sh.mu.Lock()
		e := sh.keys[keyID]
		sh.mu.Unlock()
		if e != nil && e.quota == q {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no request learned of the quota")
}

// waitEntered waits for a LeaseQuota call to reach l's block.
func waitEntered(t *testing.T, l *memLedger) {
	t.Helper()
	select {
	case <-l.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no lease was taken")
	}
}

// unblock lets the LeaseQuota calls held by l's block through, and every
// later one.
func unblock(l *memLedger) {
	l.mu.Lock()
	block := l.block
	l.block = nil
	l.mu.Unlock()
	close(block)
}

func TestLeaseAhead(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	l.set("k", q, t0)
	s := newSpender(t, l, Options{MinLease: 8, MaxLease: 8, LeaseTime: time.Hour, LeaseAhead: true})
	spend := func() {
		t.Helper()
		d, err := s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}

	for range 6 { // the first takes a lease of 8; 2 are left: a quarter
		spend()
	}
	calls, _, _ := l.counts()
	require.Equal(t, 1, calls, "a quarter of the lease left: no lease yet")

	l.block, l.entered = make(chan struct{}), make(chan struct{}, 1)
	spend() // 1 left: the next lease starts, and this request does not wait for it
	waitEntered(t, l)
	spend() // the last use of the first lease, while the next is taken
	unblock(l)
	s.aheads.Wait()

	calls, leased, _ := l.counts()
	assert.Equal(t, 2, calls)
	assert.EqualValues(t, 16, leased)
	for range 6 {
		spend()
	}
	calls, _, _ = l.counts()
	assert.Equal(t, 2, calls, "the lease taken ahead serves the next requests")
	spend()
	s.aheads.Wait()
	calls, leased, _ = l.counts()
	assert.Equal(t, 3, calls)
	assert.EqualValues(t, 24, leased)
	assert.EqualValues(t, 76, l.balance("k"))

	require.NoError(t, s.Close(ctx))
	_, leased, returned := l.counts()
	assert.EqualValues(t, 15, leased-returned, "the uses taken ahead and not spent are returned")
	assert.EqualValues(t, 85, l.balance("k"))
}

func TestLeaseAheadFailure(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	l.set("k", q, t0)
	errs := make(chan error, 10)
	s := newSpender(t, l, Options{MinLease: 4, MaxLease: 4, LeaseTime: time.Hour, LeaseAhead: true,
		OnError: func(err error) { errs <- err }})
	for range 3 {
		_, err := s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
	}
	l.mu.Lock()
	l.err = errors.New("store down")
	l.mu.Unlock()
	d, err := s.Spend(ctx, "k", q, 1, t0) // the lease's last use: the lease ahead fails
	require.NoError(t, err)
	assert.True(t, d.Allowed)
	s.aheads.Wait()
	select {
	case err := <-errs:
		assert.ErrorIs(t, err, l.err)
		assert.ErrorContains(t, err, "leasing ahead")
	default:
		t.Fatal("the failed lease ahead was not reported")
	}
	_, err = s.Spend(ctx, "k", q, 1, t0)
	assert.ErrorIs(t, err, l.err, "a request with no use left takes a lease itself")
}

func TestCloseWaitsForLeaseAhead(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100}
	l.set("k", q, t0)
	s := newSpender(t, l, Options{MinLease: 4, MaxLease: 4, LeaseTime: time.Hour, LeaseAhead: true})
	for range 3 {
		_, err := s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
	}
	l.block, l.entered = make(chan struct{}), make(chan struct{}, 1)
	_, err := s.Spend(ctx, "k", q, 1, t0) // none left: a lease ahead
	require.NoError(t, err)
	waitEntered(t, l)

	closed := make(chan error, 1)
	go func() { closed <- s.Close(ctx) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned while a lease ahead was taken: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	unblock(l)
	require.NoError(t, <-closed)
	_, leased, returned := l.counts()
	assert.EqualValues(t, 8, leased)
	assert.EqualValues(t, 4, leased-returned, "the lease taken ahead is returned")
	assert.EqualValues(t, 96, l.balance("k"))
}

func TestNew(t *testing.T) {
	l := newLedger()
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{}, "Ledger"},
		{Options{Ledger: l, MinLease: -1}, "MinLease"},
		{Options{Ledger: l, MaxLease: -1}, "MaxLease"},
		{Options{Ledger: l, MinLease: 10, MaxLease: 5}, "MaxLease"},
		{Options{Ledger: l, LeaseTime: -time.Second}, "LeaseTime"},
		{Options{Ledger: l, MaxKeys: -1}, "MaxKeys"},
	} {
		_, err := New(tt.o)
		require.ErrorIs(t, err, ErrInvalidOptions)
		assert.Contains(t, err.Error(), tt.want)
	}
	s, err := New(Options{Ledger: l})
	require.NoError(t, err)
	assert.EqualValues(t, DefaultMinLease, s.minLease)
	assert.EqualValues(t, DefaultMaxLease, s.maxLease)
	assert.Equal(t, DefaultLeaseTime, s.leaseTime)
	assert.Equal(t, (DefaultMaxKeys+shards-1)/shards, s.perShard)
	s, err = New(Options{Ledger: l, MinLease: 5000})
	require.NoError(t, err)
	assert.EqualValues(t, 5000, s.maxLease, "MaxLease defaults to at least MinLease")
}

func BenchmarkSpend(b *testing.B) {
	l := newLedger()
	q := apikey.Quota{Limit: apikey.MaxQuotaUses}
	l.set("k", q, t0)
	s := newSpender(b, l, Options{MinLease: 1 << 40, MaxLease: 1 << 40})
	_, err := s.Spend(ctx, "k", q, 1, t0)
	require.NoError(b, err)
	b.Run("held lease", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = s.Spend(ctx, "k", q, 1, t0)
		}
	})
	b.Run("held lease parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = s.Spend(ctx, "k", q, 1, t0)
			}
		})
	})
	calls, _, _ := l.counts()
	require.Equal(b, 1, calls)
}

// sameShard returns n keys that share a shard of s.
func sameShard(s *Spender, n int) []string {
	keys := []string{"k0"}
	for i := 1; len(keys) < n; i++ {
		if k := fmt.Sprint("k", i); s.shard(k) == s.shard(keys[0]) {
			keys = append(keys, k)
		}
	}
	return keys
}

// A ReturnQuota panic while a request evicts a key, and a panic in
// OnError, are reported or dropped: the request is served, and neither
// the evicting key nor the evicted one is left blocked.
func TestReturnPanic(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 1000}
	var reported []error
	onError := func(err error) { reported = append(reported, err) }
	s := newSpender(t, l, Options{MinLease: 10, MaxLease: 10, MaxKeys: 1, OnError: func(err error) { onError(err) }})
	keys := sameShard(s, 3)
	for _, k := range keys {
		l.set(k, q, t0)
	}
	_, err := s.Spend(ctx, keys[0], q, 1, t0)
	require.NoError(t, err)

	l.mu.Lock()
	l.rpanics = true
	l.mu.Unlock()
	d, err := s.Spend(ctx, keys[1], q, 1, t0) // evicts keys[0]
	require.NoError(t, err)
	assert.True(t, d.Allowed)
	require.Len(t, reported, 1)
	assert.ErrorIs(t, reported[0], ErrLedgerPanic)

	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, k := range keys[:2] {
		d, err = s.Spend(c, k, q, 10, t0) // a new lease for both
		require.NoError(t, err, "key %s is not blocked", k)
		assert.True(t, d.Allowed)
	}

	// OnError panics: the panic is dropped.
	onError = func(error) { panic("OnError bug") }
	d, err = s.Spend(c, keys[2], q, 1, t0)
	require.NoError(t, err)
	assert.True(t, d.Allowed)
	d, err = s.Spend(c, keys[2], q, 5, t0)
	require.NoError(t, err)
	assert.True(t, d.Allowed)

	// Forget, ReturnIdle and Close return the panic as an error.
	require.ErrorIs(t, s.Forget(ctx, keys[2], q), ErrLedgerPanic)
	_, err = s.Spend(c, keys[2], q, 1, t0)
	require.NoError(t, err)
	require.ErrorIs(t, s.ReturnIdle(ctx, t0.Add(time.Hour)), ErrLedgerPanic)
	_, err = s.Spend(c, keys[2], q, 1, t0)
	require.NoError(t, err)
	require.ErrorIs(t, s.Close(ctx), ErrLedgerPanic)
}

// A request under a new quota while a lease under the old one is taken:
// it waits for that lease, which is returned whole, not spent, and the
// request that took it is decided under the new quota.
func TestQuotaChangeDuringLease(t *testing.T) {
	l := newLedger()
	q1, q2 := apikey.Quota{Limit: 100}, apikey.Quota{Limit: 50}
	l.set("k", q1, t0)
	l.block, l.entered = make(chan struct{}), make(chan struct{}, 2)
	s := newSpender(t, l, Options{MinLease: 10})
	done := make(chan Decision, 2)
	spend := func(q apikey.Quota) { spendTo(t, s, q, done) }
	go spend(q1)
	<-l.entered
	l.change("k", q2)
	go spend(q2)
	waitQuota(t, s, "k", q2) // it waits for the old lease's return
	l.mu.Lock()
	close(l.block)
	l.block = nil
	l.mu.Unlock()
	assert.True(t, (<-done).Allowed)
	assert.True(t, (<-done).Allowed)
	_, leased, returned := l.counts()
	assert.EqualValues(t, 20, leased)
	assert.EqualValues(t, 10, returned, "the old quota's lease, whole")
	assert.EqualValues(t, 40, l.balance("k"))
	assert.Equal(t, 1, s.keys())
	d, err := s.Spend(ctx, "k", q2, 1, t0)
	require.NoError(t, err)
	assert.Equal(t, Decision{Allowed: true, Remaining: 47}, d, "both spent from the new quota's lease: 40 + 10 - 3")
}

func TestRefund(t *testing.T) {
	l := newLedger()
	q := apikey.Quota{Limit: 100, Refill: 100, Period: apikey.Daily}
	l.set("k", q, t0)
	s := newSpender(t, l, Options{MinLease: 10, MaxLease: 10, LeaseTime: time.Hour})
	for range 10 {
		d, err := s.Spend(ctx, "k", q, 1, t0)
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	tests := []struct {
		name string
		q    apikey.Quota
		n    int64
		at   time.Time
		held int64 // uses spendable after the refund without a lease
	}{
		{"another quota", apikey.Quota{Limit: 50}, 3, t0, 0},
		{"after the refill", q, 3, t0.Add(24 * time.Hour), 0},
		{"nothing", q, 0, t0, 0},
		{"the lease's", q, 3, t0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Refund("k", tt.q, tt.n, tt.at)
			calls, _, _ := l.counts()
			for range tt.held {
				d, err := s.Spend(ctx, "k", q, 1, t0)
				require.NoError(t, err)
				require.True(t, d.Allowed)
			}
			after, _, _ := l.counts()
			assert.Equal(t, calls, after, "spent from the refunded uses, no lease")
		})
	}
	s.Refund("unknown", q, 3, t0) // no entry: nothing
	assert.EqualValues(t, 90, l.balance("k"), "a refund never reaches the store")
}

// A request under a lowered quota while another, that learned of the
// change first, gives back the old lease: it waits for the return, and
// both are admitted from the uses returned, instead of finding the balance
// below zero and refusing the key (until LeaseTime, or the next refill)
// while the store holds uses.
func TestQuotaChangeWaitsForTheReturn(t *testing.T) {
	l := newLedger()
	q1, q2 := apikey.Quota{Limit: 100}, apikey.Quota{Limit: 50}
	l.set("k", q1, t0)
	s := newSpender(t, l, Options{MinLease: 100, LeaseTime: time.Hour})
	d, err := s.Spend(ctx, "k", q1, 1, t0) // the store at 0, 99 held
	require.NoError(t, err)
	require.True(t, d.Allowed)

	l.change("k", q2) // 50 - 100 leased: -50, 49 once the lease is returned
	l.mu.Lock()
	l.rblock, l.rentered = make(chan struct{}), make(chan struct{}, 2)
	l.mu.Unlock()
	done := make(chan Decision, 2)
	spend := func() { spendTo(t, s, q2, done) }
	go spend()
	select {
	case <-l.rentered:
	case <-time.After(10 * time.Second):
		t.Fatal("the old lease was not returned")
	}
	go spend()
	// The second request either waits for the return or leases from the
	// store at once; give it the time to lease before the return lands.
	for range 100 {
		if calls, _, _ := l.counts(); calls > 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	l.mu.Lock()
	close(l.rblock)
	l.rblock = nil
	l.mu.Unlock()
	assert.True(t, (<-done).Allowed, "49 uses returned")
	assert.True(t, (<-done).Allowed, "49 uses returned")
	d, err = s.Spend(ctx, "k", q2, 1, t0.Add(time.Second))
	require.NoError(t, err)
	assert.True(t, d.Allowed, "the store holds 46")
	require.NoError(t, s.Close(ctx))
	assert.EqualValues(t, 46, l.balance("k"))
}

// A request under a lowered quota while a lease under the old one, already
// taken from the store, is on its way back: it waits for that lease to be
// returned, and is admitted from the uses returned.
func TestQuotaChangeWaitsForTheLeaseInFlight(t *testing.T) {
	l := newLedger()
	q1, q2 := apikey.Quota{Limit: 100}, apikey.Quota{Limit: 50}
	l.set("k", q1, t0)
	l.block, l.entered, l.after = make(chan struct{}), make(chan struct{}, 2), true
	s := newSpender(t, l, Options{MinLease: 100, LeaseTime: time.Hour})
	done := make(chan Decision, 2)
	spend := func(q apikey.Quota) { spendTo(t, s, q, done) }
	go spend(q1)
	waitEntered(t, l) // 100 taken from the store: 0 left
	l.change("k", q2) // -50, and 50 once the lease is returned
	l.mu.Lock()
	held := l.block
	l.block = nil // a lease taken from now on is not held
	l.mu.Unlock()
	go spend(q2)
	waitQuota(t, s, "k", q2)
	// It waits for the lease in flight, or leases from the store at once:
	// give it the time to lease first.
	for range 100 {
		if calls, _, _ := l.counts(); calls > 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(held)
	assert.True(t, (<-done).Allowed, "50 uses returned")
	assert.True(t, (<-done).Allowed, "50 uses returned")
	d, err := s.Spend(ctx, "k", q2, 1, t0.Add(time.Second))
	require.NoError(t, err)
	assert.True(t, d.Allowed, "the store holds 47")
	require.NoError(t, s.Close(ctx))
	assert.EqualValues(t, 47, l.balance("k"))
}

// Instances spend a key's quota while its limit changes up and down, and
// requests carry the old quota or the new one (the instances learn of a
// change at different times): every use is admitted once, every lease's
// unspent uses reach the store, none is dropped, and once the instances
// close the store holds the final limit minus what was admitted.
func TestConcurrentQuotaChanges(t *testing.T) {
	const (
		instances = 4
		workers   = 3
		changes   = 40
	)
	l := newLedger()
	quotas := []apikey.Quota{{Limit: 5_000}, {Limit: 300}, {Limit: 8_000}, {Limit: 50}}
	l.set("k", quotas[0], t0)
	var cur atomic.Int64 // index in quotas of the store's quota
	var spenders []*Spender
	for i := range instances {
		spenders = append(spenders, newSpender(t, l, Options{MinLease: 10, MaxLease: 100, LeaseTime: time.Hour, LeaseAhead: i%2 == 0}))
	}
	var admitted atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range spenders {
		for w := range workers {
			wg.Go(func() {
				now := t0
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					c := cur.Load()
					if (i+w+n)%4 == 0 && c > 0 {
						c-- // a request under the quota before the latest change
					}
					cost := int64((i+w+n)%3 + 1)
					d, err := s.Spend(ctx, "k", quotas[c], cost, now)
					if !assert.NoError(t, err) {
						return
					}
					if d.Allowed {
						admitted.Add(cost)
					}
					if n%50 == 0 {
						now = now.Add(time.Microsecond)
					}
				}
			})
		}
	}
	for i := 1; i <= changes; i++ {
		q := quotas[i%len(quotas)]
		l.change("k", q)
		cur.Store(int64(i % len(quotas)))
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, s := range spenders {
		require.NoError(t, s.Close(ctx))
	}
	_, leased, returned := l.counts()
	assert.Zero(t, l.dropped, "no return is dropped")
	assert.Equal(t, admitted.Load(), leased-returned, "every unspent use returned")
	assert.Equal(t, quotas[changes%len(quotas)].Limit-admitted.Load(), l.balance("k"))
}

// spendTo spends one use of key "k" under q at t0 and sends the decision
// to done; tests run it on goroutines of their own.
func spendTo(t *testing.T, s *Spender, q apikey.Quota, done chan<- Decision) {
	d, err := s.Spend(ctx, "k", q, 1, t0)
	assert.NoError(t, err)
	done <- d
}
