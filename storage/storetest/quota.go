package storetest

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// day0 is the start of a UTC day; the quota cases count days from it. It
// is in the past, and so are the days the cases use: a store may bound a
// lease's now by its own clock (see storage.QuotaLedger).
var day0 = time.Date(2024, 11, 25, 0, 0, 0, 0, time.UTC)

func day(n int) time.Time { return day0.AddDate(0, 0, n) }

// quotaKey stores a server key with quota q and returns its id.
func quotaKey(t testing.TB, s apikey.Store, q apikey.Quota) string {
	t.Helper()
	r := record(acme, apikey.Production, apikey.Server, false)
	r.Limits.Quota = q
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	return r.ID
}

// lease leases want uses of id at now and returns the lease.
func lease(t testing.TB, l storage.QuotaLedger, id string, want int64, now time.Time) storage.QuotaLease {
	t.Helper()
	got, err := l.LeaseQuota(context.Background(), id, want, now)
	require.NoError(t, err)
	return got
}

func testQuotaLeaseUntilEmpty(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	id := quotaKey(t, s, apikey.Quota{Limit: 10})
	for i, want := range []struct{ want, granted, remaining int64 }{
		{4, 4, 6}, {4, 4, 2}, {4, 2, 0}, {1, 0, 0},
	} {
		got := lease(t, l, id, want.want, day(i*40)) // a quota without refill never refills
		assert.Equal(t, want.granted, got.Granted, "lease %d", i)
		assert.Equal(t, want.remaining, got.Remaining, "lease %d", i)
		assert.True(t, got.NextRefill.IsZero() && !got.Unlimited, "lease %d", i)
	}
	_, err := l.LeaseQuota(context.Background(), id, 0, day(0))
	assert.Error(t, err, "want 0 is a caller's mistake")
}

func testQuotaRefill(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	daily := quotaKey(t, s, apikey.Quota{Limit: 10, Refill: 4, Period: apikey.Daily})
	steps := []struct {
		at                 time.Time
		want, granted, rem int64
	}{
		{day(0).Add(10 * time.Hour), 10, 10, 0},  // a new quota is full
		{day(1).Add(-time.Microsecond), 1, 0, 0}, // same day: no refill
		{day(1), 3, 3, 1},                        // one boundary: +4
		{day(1).Add(23 * time.Hour), 5, 1, 0},    // still day 1
		{day(3).Add(time.Hour), 20, 8, 0},        // two boundaries: +8
		{day(30), 20, 10, 0},                     // many: full, never above the limit
		{day(29), 1, 0, 0},                       // an earlier clock refills nothing
		{day(31).Add(-time.Nanosecond), 1, 0, 0}, // day 30 still
		{day(31).Add(12 * time.Hour), 4, 4, 0},   // day 31
	}
	for i, st := range steps {
		got := lease(t, l, daily, st.want, st.at)
		assert.Equal(t, st.granted, got.Granted, "daily step %d granted", i)
		assert.Equal(t, st.rem, got.Remaining, "daily step %d remaining", i)
		assert.False(t, got.Unlimited)
		assert.Equal(t, apikey.Daily.Next(st.at), got.NextRefill, "daily step %d next refill", i)
	}

	monthly := quotaKey(t, s, apikey.Quota{Limit: 100, Refill: 100, Period: apikey.Monthly})
	endOfJanuary := time.Date(2025, 1, 31, 23, 59, 59, 0, time.UTC)
	got := lease(t, l, monthly, 100, endOfJanuary)
	assert.Equal(t, int64(100), got.Granted)
	assert.Equal(t, time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), got.NextRefill)
	assert.Zero(t, lease(t, l, monthly, 1, endOfJanuary.Add(time.Second-time.Microsecond)).Granted)
	// The boundary is UTC midnight, whatever the zone of now.
	tokyo := time.FixedZone("UTC+9", 9*3600)
	got = lease(t, l, monthly, 100, time.Date(2025, 2, 1, 8, 59, 0, 0, tokyo)) // 2025-01-31T23:59Z
	assert.Zero(t, got.Granted, "still January in UTC")
	got = lease(t, l, monthly, 100, time.Date(2025, 2, 1, 9, 0, 0, 0, tokyo))
	assert.Equal(t, int64(100), got.Granted, "February in UTC")
}

func testQuotaReturn(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	id := quotaKey(t, s, apikey.Quota{Limit: 10, Refill: 4, Period: apikey.Daily})
	at := day(0).Add(time.Hour)
	first := lease(t, l, id, 6, at)
	assert.Equal(t, int64(6), first.Granted)
	assert.True(t, at.Equal(first.LeasedAt), "LeasedAt is the lease's now")
	require.NoError(t, l.ReturnQuota(ctx, id, 2, first, at.Add(time.Hour)), "same period")
	assert.Equal(t, int64(6), lease(t, l, id, 10, at.Add(2*time.Hour)).Granted, "4 left and 2 returned")
	require.NoError(t, l.ReturnQuota(ctx, id, 50, first, at.Add(3*time.Hour)))
	got := lease(t, l, id, 50, at.Add(4*time.Hour))
	assert.Equal(t, int64(10), got.Granted, "a return never raises the balance above the limit")

	// After a boundary, uses of the ended period are dropped: the refill
	// replaced them.
	require.NoError(t, l.ReturnQuota(ctx, id, 3, first, day(1)))
	ofDay1 := lease(t, l, id, 10, day(1))
	assert.Equal(t, int64(4), ofDay1.Granted, "the refill only")
	// A lease of day 0 returned on day 1 after day 1's refill: dropped too.
	require.NoError(t, l.ReturnQuota(ctx, id, 3, first, day(1).Add(time.Hour)))
	assert.Zero(t, lease(t, l, id, 10, day(1).Add(2*time.Hour)).Granted)
	// A lease of day 1 returned on day 1 counts.
	require.NoError(t, l.ReturnQuota(ctx, id, 2, ofDay1, day(1).Add(3*time.Hour)))
	assert.Equal(t, int64(2), lease(t, l, id, 10, day(1).Add(4*time.Hour)).Granted)

	// Unknown keys and keys without a quota are ignored.
	assert.NoError(t, l.ReturnQuota(ctx, "nosuchkey000", 1, first, at))
	plain := record(acme, apikey.Production, apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{plain}})
	assert.NoError(t, l.ReturnQuota(ctx, plain.ID, 1, first, at))
}

// testQuotaReturnHuge: a return of any n, up to math.MaxInt64, fills the
// balance up to the limit and never fails or overflows.
func testQuotaReturnHuge(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	id := quotaKey(t, s, apikey.Quota{Limit: 100})
	at := day(0).Add(time.Hour)
	some := lease(t, l, id, 10, at)
	require.NoError(t, l.ReturnQuota(ctx, id, math.MaxInt64, some, at))
	assert.Equal(t, int64(100), lease(t, l, id, 1000, at).Granted, "full, not overflowed")
	require.NoError(t, l.ReturnQuota(ctx, id, math.MaxInt64-50, some, at))
	got := lease(t, l, id, 1000, at)
	assert.Equal(t, int64(100), got.Granted, "from empty")
	assert.Zero(t, got.Remaining)
}

// testQuotaReturnOtherGeneration: a change that keeps the quota keeps
// the generation; a change of the quota's limit or refill counts a lease
// taken before it as leased, and its returns are added to the new
// balance (at most the limit, from below zero when the limit was lowered
// below what was leased); a quota removed and set again starts full, and
// drops the returns of leases of the first quota.
func testQuotaReturnOtherGeneration(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	id := quotaKey(t, s, apikey.Quota{Limit: 100})
	at := day(0).Add(time.Hour)
	update := func(change func(*apikey.Record)) {
		r := mustKey(t, s, id)
		change(&r)
		apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	}
	b := lease(t, l, id, 20, at) // held by one process
	require.Equal(t, int64(80), b.Remaining)
	update(func(r *apikey.Record) { r.Name = "renamed" })
	assert.Equal(t, b.Generation, lease(t, l, id, 1, at).Generation, "the same quota, the same generation")
	require.NoError(t, l.ReturnQuota(ctx, id, 1, b, at)) // 80 left

	update(func(r *apikey.Record) { r.Limits.Quota.Limit = 200 }) // 200 - 20 leased
	require.NoError(t, l.ReturnQuota(ctx, id, 15, b, at.Add(time.Minute)))
	got := lease(t, l, id, 1000, at.Add(2*time.Minute))
	assert.NotEqual(t, b.Generation, got.Generation, "a changed quota, a new generation")
	assert.Equal(t, int64(195), got.Granted, "180 left and 15 returned by the lease of the old limit")
	require.NoError(t, l.ReturnQuota(ctx, id, 5, b, at.Add(3*time.Minute)))
	require.NoError(t, l.ReturnQuota(ctx, id, 50, got, at.Add(3*time.Minute)))
	assert.Equal(t, int64(55), lease(t, l, id, 1000, at.Add(4*time.Minute)).Granted)

	// A lowered limit: the balance goes below zero, a lease grants nothing,
	// and returns fill it from there.
	low := quotaKey(t, s, apikey.Quota{Limit: 100})
	half := lease(t, l, low, 50, at)
	r := mustKey(t, s, low)
	r.Limits.Quota.Limit = 40
	apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	got = lease(t, l, low, 10, at)
	assert.Zero(t, got.Granted, "50 leased of 40")
	assert.Zero(t, got.Remaining, "never negative")
	require.NoError(t, l.ReturnQuota(ctx, low, 30, half, at))
	assert.Equal(t, int64(20), lease(t, l, low, 100, at).Granted, "-10 + 30")
	r = mustKey(t, s, low)
	r.Limits.Quota.Refill = 5 // a changed refill keeps the returns too
	apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	require.NoError(t, l.ReturnQuota(ctx, low, 10, half, at))
	assert.Equal(t, int64(10), lease(t, l, low, 100, at).Granted)

	// Removed and set again: a lease of the first quota is dropped.
	update(func(r *apikey.Record) { r.Limits.Quota = apikey.Quota{} })
	update(func(r *apikey.Record) { r.Limits.Quota = apikey.Quota{Limit: 100} })
	got = lease(t, l, id, 90, at)
	require.Equal(t, int64(90), got.Granted)
	require.NoError(t, l.ReturnQuota(ctx, id, 60, b, at))
	assert.Equal(t, int64(10), lease(t, l, id, 100, at).Granted, "the first quota's lease is dropped")
	require.NoError(t, l.ReturnQuota(ctx, id, 5, got, at))
	assert.Equal(t, int64(5), lease(t, l, id, 100, at).Granted, "a lease of the current generation counts")
}

// testQuotaReturnOtherPeriod: a change of a quota's period drops the
// returns of leases taken before it, even in a period the new one holds
// too, and accepts those of leases taken after it.
func testQuotaReturnOtherPeriod(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	id := quotaKey(t, s, apikey.Quota{Limit: 100, Refill: 100, Period: apikey.Daily})
	at := day(0).Add(time.Hour)
	daily := lease(t, l, id, 50, at)
	r := mustKey(t, s, id)
	r.Limits.Quota.Period = apikey.Monthly
	apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	monthly := lease(t, l, id, 10, at) // 40 left
	require.Equal(t, int64(10), monthly.Granted)
	require.NoError(t, l.ReturnQuota(ctx, id, 30, daily, at))
	require.NoError(t, l.ReturnQuota(ctx, id, 5, monthly, at))
	assert.Equal(t, int64(45), lease(t, l, id, 100, at).Granted, "the daily lease's return is dropped")
}

// testQuotaLoweredRefill: a balance below zero (a limit lowered below what
// was spent) refills from zero at the next boundary: the excess is
// forgiven.
func testQuotaLoweredRefill(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	id := quotaKey(t, s, apikey.Quota{Limit: 100, Refill: 10, Period: apikey.Daily})
	assert.Equal(t, int64(100), lease(t, l, id, 100, day(0)).Granted)
	r := mustKey(t, s, id)
	r.Limits.Quota.Limit = 40 // -60
	apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	assert.Zero(t, lease(t, l, id, 10, day(0).Add(time.Hour)).Granted)
	got := lease(t, l, id, 100, day(1))
	assert.Equal(t, int64(10), got.Granted, "one refill from zero")
	assert.Zero(t, got.Remaining)
	assert.Equal(t, int64(40), lease(t, l, id, 100, day(9)).Granted, "full at the limit")
}

// testQuotaOwnerReturnAcrossChange: an owner's balance keeps the returns
// of leases taken before a change of its limit, as a key's does.
func testQuotaOwnerReturnAcrossChange(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	a := ownerQuotaKey(t, s, acme, "user-1", apikey.Quota{Limit: 100})
	id := apikey.OwnerBalanceID(acme, "user-1")
	at := day(0).Add(time.Hour)
	first := lease(t, l, id, 20, at)
	setOwnerQuota(t, s, apikey.Quota{Limit: 200}, a.ID)
	require.NoError(t, l.ReturnQuota(ctx, id, 15, first, at))
	assert.Equal(t, int64(195), lease(t, l, id, 1000, at).Granted)

	b := ownerQuotaKey(t, s, acme, "user-2", apikey.Quota{Limit: 100})
	other := apikey.OwnerBalanceID(acme, "user-2")
	half := lease(t, l, other, 50, at)
	setOwnerQuota(t, s, apikey.Quota{Limit: 40}, b.ID)
	assert.Zero(t, lease(t, l, other, 10, at).Granted)
	require.NoError(t, l.ReturnQuota(ctx, other, 30, half, at))
	assert.Equal(t, int64(20), lease(t, l, other, 100, at).Granted)

	setOwnerQuota(t, s, apikey.Quota{Limit: 40, Refill: 40, Period: apikey.Daily}, b.ID)
	require.NoError(t, l.ReturnQuota(ctx, other, 30, half, at))
	assert.Zero(t, lease(t, l, other, 100, at).Granted, "a changed period drops the returns of earlier leases")
}

// testQuotaKeepsSpentOnChange: a change of a key's quota keeps what was
// spent in the period (the balance is the new limit minus the uses spent,
// within 0 and the limit), and keeps the period's refill state while the
// period is the same; only a quota set again after removal starts full.
func testQuotaKeepsSpentOnChange(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	id := quotaKey(t, s, apikey.Quota{Limit: 10})
	at := day(0)
	assert.Equal(t, int64(10), lease(t, l, id, 10, at).Granted)

	update := func(change func(*apikey.Record)) {
		r := mustKey(t, s, id)
		change(&r)
		apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	}
	update(func(r *apikey.Record) { r.Name = "renamed" })
	assert.Zero(t, lease(t, l, id, 10, at).Granted, "another change keeps the balance")
	update(func(r *apikey.Record) { r.Limits.Rate = apikey.RateLimit{Requests: 5, Window: time.Second} })
	assert.Zero(t, lease(t, l, id, 10, at).Granted, "a change of the rate keeps the balance")
	update(func(r *apikey.Record) { r.Limits.Quota.Limit = 110 })
	assert.Equal(t, int64(100), lease(t, l, id, 500, at).Granted, "a raised limit adds the difference, not a full quota")
	update(func(r *apikey.Record) { r.Limits.Quota.Limit = 150 })
	assert.Equal(t, int64(40), lease(t, l, id, 30, at).Granted+lease(t, l, id, 30, at).Granted)
	update(func(r *apikey.Record) { r.Limits.Quota.Limit = 100 })
	assert.Zero(t, lease(t, l, id, 50, at).Granted, "a limit below what was spent leaves nothing")

	// Same period: the refill state is kept, so the next boundary refills.
	daily := quotaKey(t, s, apikey.Quota{Limit: 10, Refill: 10, Period: apikey.Daily})
	assert.Equal(t, int64(10), lease(t, l, daily, 10, day(0)).Granted)
	r := mustKey(t, s, daily)
	r.Limits.Quota.Limit = 20
	apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	assert.Equal(t, int64(20), lease(t, l, daily, 50, day(1)).Granted, "10 kept plus day 1's refill")
	r = mustKey(t, s, daily)
	r.Limits.Quota.Refill = 5
	apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	assert.Zero(t, lease(t, l, daily, 50, day(1)).Granted, "a changed refill keeps what was spent")
	assert.Equal(t, int64(5), lease(t, l, daily, 50, day(2)).Granted)
	// A changed period keeps what was spent, and refills from the next
	// boundary of the new period.
	r = mustKey(t, s, daily)
	r.Limits.Quota.Period = apikey.Monthly
	apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	assert.Zero(t, lease(t, l, daily, 50, day(3)).Granted)

	update(func(r *apikey.Record) { r.Limits.Quota = apikey.Quota{} })
	got := lease(t, l, id, 50, at)
	assert.Equal(t, storage.QuotaLease{Unlimited: true}, got, "a removed quota")
	update(func(r *apikey.Record) { r.Limits.Quota = apikey.Quota{Limit: 20, Refill: 1, Period: apikey.Daily} })
	assert.Equal(t, int64(20), lease(t, l, id, 50, at).Granted, "set again, the quota starts full")
}

func testQuotaUnknownAndUnlimited(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	_, err := l.LeaseQuota(ctx, "nosuchkey000", 1, day(0))
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	plain := record(acme, apikey.Production, apikey.Server, false)
	plain.Limits.Rate = apikey.RateLimit{Requests: 1, Window: time.Second}
	apply(t, s, apikey.Change{Insert: []apikey.Record{plain}})
	got, err := l.LeaseQuota(ctx, plain.ID, 5, day(0))
	require.NoError(t, err)
	assert.Equal(t, storage.QuotaLease{Unlimited: true}, got, "a key without a quota")
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = l.LeaseQuota(ctx, plain.ID, 1, day(0))
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, l.ReturnQuota(ctx, plain.ID, 1, storage.QuotaLease{LeasedAt: day(0)}, day(0)), context.Canceled)
}

// testQuotaConcurrentLeases: leasers in several processes (peers) draining
// one quota are granted exactly its limit in all, never more.
func testQuotaConcurrentLeases(t *testing.T, c Config) {
	s := c.New(t)
	const limit = 600
	id := quotaKey(t, s, apikey.Quota{Limit: limit})
	var total atomic.Int64
	var wg sync.WaitGroup
	for i, peer := range c.peers(t, s, 8) {
		l := peer.(storage.QuotaLedger)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := int64(i%5 + 1); ; {
				got, err := l.LeaseQuota(context.Background(), id, want, day(0))
				if !assert.NoError(t, err) {
					return
				}
				total.Add(got.Granted)
				if got.Granted < want {
					return
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(limit), total.Load(), "every use granted once")
	assert.Zero(t, lease(t, s.(storage.QuotaLedger), id, 1, day(0)).Granted)
}

// testQuotaConcurrentRefill: leasers in several processes drain a quota
// in each of many periods, starting together in each: every boundary
// refills once, whoever leases first, so the grants add up to the limit
// plus one refill per boundary.
func testQuotaConcurrentRefill(t *testing.T, c Config) {
	s := c.New(t)
	const (
		limit, refill = 10, 3
		periods       = 12
	)
	id := quotaKey(t, s, apikey.Quota{Limit: limit, Refill: refill, Period: apikey.Daily})
	peers := c.peers(t, s, 8)
	var total atomic.Int64
	for p := range periods {
		var wg sync.WaitGroup
		for i, peer := range peers {
			l := peer.(storage.QuotaLedger)
			wg.Add(1)
			go func() {
				defer wg.Done()
				now := day(p).Add(time.Duration(i) * time.Minute)
				for {
					got, err := l.LeaseQuota(context.Background(), id, 1, now)
					if !assert.NoError(t, err) || got.Granted == 0 {
						return
					}
					total.Add(got.Granted)
				}
			}()
		}
		wg.Wait()
	}
	assert.Equal(t, int64(limit+refill*(periods-1)), total.Load(), "one refill per boundary")
}

// testQuotaRotationSharesBalance: a replacement key (Lineage set to the
// rotated key's lineage) continues its balance, and during the grace both
// keys spend from that one balance: old and new together are granted one
// quota per period, however many times the key is rotated.
func testQuotaRotationSharesBalance(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	q := apikey.Quota{Limit: 10, Refill: 10, Period: apikey.Daily}
	first := quotaKey(t, s, q)
	at := day(0).Add(time.Hour)
	assert.Equal(t, int64(6), lease(t, l, first, 6, at).Granted)

	rotate := func(oldID string, at time.Time) apikey.Record {
		old := mustKey(t, s, oldID)
		next := record(acme, apikey.Production, apikey.Server, false)
		next.Limits, next.Lineage = old.Limits, old.LineageID()
		old.RotatedAt, old.ExpiresAt = at, at.Add(24*time.Hour)
		apply(t, s, apikey.Change{Update: []apikey.Record{old}, Insert: []apikey.Record{next}})
		got := mustKey(t, s, next.ID)
		assert.Equal(t, first, got.Lineage, "the store keeps Lineage")
		return got
	}
	second := rotate(first, at)
	got := lease(t, l, second.ID, 10, at)
	assert.Equal(t, int64(4), got.Granted, "the replacement continues the balance")
	assert.Zero(t, lease(t, l, first, 10, at).Granted, "the rotated key spends the same balance")

	// A change of the rotated key (its grace) leaves the balance alone.
	old := mustKey(t, s, first)
	old.ExpiresAt = at.Add(48 * time.Hour)
	old.Limits.Quota = apikey.Quota{Limit: 1000}
	apply(t, s, apikey.Change{Update: []apikey.Record{old}})
	assert.Zero(t, lease(t, l, first, 10, at).Granted, "a rotated key never writes the balance")

	// Next day: one refill for the lineage, whichever key leases; a return
	// through either key lands in the one balance.
	next := day(1).Add(time.Hour)
	ofFirst := lease(t, l, first, 7, next)
	assert.Equal(t, int64(7), ofFirst.Granted)
	third := rotate(second.ID, next)
	assert.Equal(t, int64(3), lease(t, l, third.ID, 10, next).Granted)
	require.NoError(t, l.ReturnQuota(ctx, second.ID, 2, ofFirst, next))
	assert.Equal(t, int64(2), lease(t, l, first, 10, next).Granted)
	assert.Zero(t, lease(t, l, second.ID, 10, next).Granted)
	assert.Zero(t, lease(t, l, third.ID, 10, next).Granted)

	// Removing the current key's quota removes the lineage's balance.
	cur := mustKey(t, s, third.ID)
	cur.Limits.Quota = apikey.Quota{}
	apply(t, s, apikey.Change{Update: []apikey.Record{cur}})
	assert.True(t, lease(t, l, first, 1, next).Unlimited)
}

// ownerQuotaKey stores a server key of account issued to owner, whose
// owner limits hold quota q, and returns it.
func ownerQuotaKey(t testing.TB, s apikey.Store, account, owner string, q apikey.Quota) apikey.Record {
	t.Helper()
	r := record(account, apikey.Production, apikey.Server, false)
	r.Owner, r.OwnerLimits.Quota = owner, q
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	return mustKey(t, s, r.ID)
}

// setOwnerQuota writes quota q as the owner limits of keys, in one change.
func setOwnerQuota(t testing.TB, s apikey.Store, q apikey.Quota, keys ...string) {
	t.Helper()
	var c apikey.Change
	for _, id := range keys {
		r := mustKey(t, s, id)
		r.OwnerLimits.Quota = q
		c.Update = append(c.Update, r)
	}
	apply(t, s, c)
}

func testQuotaOwnerSharesBalance(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	q := apikey.Quota{Limit: 10, Refill: 10, Period: apikey.Daily}
	a := ownerQuotaKey(t, s, acme, "user-1", q)
	own := apikey.Quota{Limit: 5}
	b := record(acme, apikey.Staging, apikey.Server, false)
	b.Owner, b.OwnerLimits.Quota, b.Limits.Quota = "user-1", q, own
	apply(t, s, apikey.Change{Insert: []apikey.Record{b}})
	ownerQuotaKey(t, s, acme, "user-2", q)
	ownerQuotaKey(t, s, globex, "user-1", q)
	id := apikey.OwnerBalanceID(acme, "user-1")
	at := day(0).Add(time.Hour)

	first := lease(t, l, id, 6, at)
	assert.Equal(t, int64(6), first.Granted, "a new owner quota is full")
	assert.Equal(t, int64(4), first.Remaining)
	assert.Equal(t, day(1), first.NextRefill)
	// Writing another key of the owner, with the same quota, keeps the
	// balance.
	setOwnerQuota(t, s, q, b.ID)
	assert.Equal(t, int64(4), lease(t, l, id, 10, at).Granted, "one balance for both keys")
	assert.Equal(t, int64(10), lease(t, l, apikey.OwnerBalanceID(acme, "user-2"), 10, at).Granted, "another owner's")
	assert.Equal(t, int64(10), lease(t, l, apikey.OwnerBalanceID(globex, "user-1"), 10, at).Granted, "another account's")
	assert.Equal(t, int64(5), lease(t, l, b.ID, 10, at).Granted, "a key's own quota is a balance of its own")
	assert.True(t, lease(t, l, a.ID, 1, at).Unlimited, "a key without a quota of its own")
	assert.True(t, lease(t, l, apikey.OwnerBalanceID(acme, "nobody"), 1, at).Unlimited,
		"an owner without a balance has no quota, and is not unknown")

	require.NoError(t, l.ReturnQuota(ctx, id, 3, first, at))
	assert.Equal(t, int64(3), lease(t, l, id, 10, at).Granted, "a return lands in the owner's balance")
	require.NoError(t, l.ReturnQuota(ctx, apikey.OwnerBalanceID(acme, "nobody"), 3, first, at), "ignored")

	// A changed quota keeps what was spent (10 of 10), on every key.
	more := apikey.Quota{Limit: 15, Refill: 10, Period: apikey.Daily}
	setOwnerQuota(t, s, more, a.ID, b.ID)
	assert.Equal(t, int64(5), lease(t, l, id, 10, at).Granted, "15 - 10 spent")
	assert.Equal(t, int64(10), lease(t, l, id, 20, day(1).Add(time.Hour)).Granted, "one refill for the owner")
}

func testQuotaOwnerBalanceOutlivesRemoval(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	q := apikey.Quota{Limit: 10}
	a := ownerQuotaKey(t, s, acme, "user-1", q)
	id := apikey.OwnerBalanceID(acme, "user-1")
	at := day(0).Add(time.Hour)
	assert.Equal(t, int64(10), lease(t, l, id, 10, at).Granted)

	setOwnerQuota(t, s, apikey.Quota{}, a.ID)
	// The middleware no longer leases from it; the balance is kept.
	setOwnerQuota(t, s, q, a.ID)
	assert.Zero(t, lease(t, l, id, 10, at).Granted, "removing and setting the quota again refills nothing")

	// A key issued to the owner without owner limits (a key of an owner
	// whose limits were removed) leaves the balance alone too.
	r := record(acme, apikey.Production, apikey.Server, false)
	r.Owner = "user-1"
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	assert.Zero(t, lease(t, l, id, 10, at).Granted)
}

// testQuotaChangeSequence: sequences of changes and returns never hand out
// more than the quota plus what leases hold. A change of the period drops
// the returns of leases taken before it and keeps, through later changes
// of the limit, those of leases taken after it; a balance below zero at a
// boundary refills from zero, and a return of a lease of the period before
// is dropped, once or twice; a return of math.MaxInt64 to a balance far
// below zero fills it to the limit, never beyond; an owner's quota
// removed and set again with another limit keeps the returns of its
// leases (the balance never started full); a rotated key returns to the
// lineage's balance changed through its replacement.
func testQuotaChangeSequence(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.QuotaLedger](t, s)
	ctx := context.Background()
	at := day(0).Add(time.Hour)
	setQuota := func(id string, q apikey.Quota) {
		t.Helper()
		r := mustKey(t, s, id)
		r.Limits.Quota = q
		apply(t, s, apikey.Change{Update: []apikey.Record{r}})
	}
	ret := func(id string, n int64, of storage.QuotaLease, now time.Time) {
		t.Helper()
		require.NoError(t, l.ReturnQuota(ctx, id, n, of, now))
	}

	// Period, then limit.
	id := quotaKey(t, s, apikey.Quota{Limit: 100, Refill: 100, Period: apikey.Daily})
	daily := lease(t, l, id, 30, at) // 70
	setQuota(id, apikey.Quota{Limit: 100, Refill: 100, Period: apikey.Monthly})
	monthly := lease(t, l, id, 20, at)                                         // 50
	setQuota(id, apikey.Quota{Limit: 60, Refill: 100, Period: apikey.Monthly}) // 60 - 50: 10
	ret(id, 30, daily, at)
	ret(id, 20, monthly, at)
	assert.Equal(t, int64(30), lease(t, l, id, 1000, at).Granted, "10 + the monthly lease's 20; the daily lease's dropped")
	ret(id, 20, monthly, at) // a duplicate is the caller's: added, never beyond the limit
	assert.Equal(t, int64(20), lease(t, l, id, 1000, at).Granted)
	ret(id, 1000, monthly, at)
	assert.Equal(t, int64(60), lease(t, l, id, 1000, at).Granted, "never beyond the limit")

	// Below zero at a boundary, then late returns.
	low := quotaKey(t, s, apikey.Quota{Limit: 100, Refill: 30, Period: apikey.Daily})
	all := lease(t, l, low, 100, at)
	setQuota(low, apikey.Quota{Limit: 40, Refill: 30, Period: apikey.Daily}) // -60
	next := day(1).Add(time.Hour)
	got := lease(t, l, low, 5, next)
	assert.Equal(t, int64(5), got.Granted, "refilled from zero: 30")
	ret(low, 100, all, next)
	ret(low, 100, all, next)
	assert.Equal(t, int64(25), lease(t, l, low, 1000, next).Granted, "the returns of day 0's lease are dropped")
	ret(low, 5, got, next)
	assert.Equal(t, int64(5), lease(t, l, low, 1000, next).Granted)

	// Saturation far below zero.
	huge := quotaKey(t, s, apikey.Quota{Limit: apikey.MaxQuotaUses})
	whole := lease(t, l, huge, apikey.MaxQuotaUses, at)
	require.Equal(t, int64(apikey.MaxQuotaUses), whole.Granted)
	setQuota(huge, apikey.Quota{Limit: 1}) // 1 - MaxQuotaUses
	assert.Zero(t, lease(t, l, huge, 1, at).Granted)
	setQuota(huge, apikey.Quota{Limit: 2}) // 2 - MaxQuotaUses
	assert.Zero(t, lease(t, l, huge, 1, at).Granted)
	ret(huge, math.MaxInt64, whole, at)
	got = lease(t, l, huge, 1000, at)
	assert.Equal(t, int64(2), got.Granted, "filled to the limit, not overflowed")
	assert.Zero(t, got.Remaining)
	setQuota(huge, apikey.Quota{Limit: apikey.MaxQuotaUses}) // MaxQuotaUses - 2
	got = lease(t, l, huge, apikey.MaxQuotaUses, at)
	assert.Equal(t, int64(apikey.MaxQuotaUses-2), got.Granted)

	// An owner's quota removed and set again with another limit.
	a := ownerQuotaKey(t, s, acme, "user-9", apikey.Quota{Limit: 100})
	owner := apikey.OwnerBalanceID(acme, "user-9")
	held := lease(t, l, owner, 40, at) // 60
	setOwnerQuota(t, s, apikey.Quota{}, a.ID)
	setOwnerQuota(t, s, apikey.Quota{Limit: 50}, a.ID) // 50 - 40: 10
	ret(owner, 40, held, at)
	assert.Equal(t, int64(50), lease(t, l, owner, 1000, at).Granted, "10 + 40 returned, never a fresh quota")

	// A rotated key's lease, returned after its replacement's quota
	// changed.
	first := quotaKey(t, s, apikey.Quota{Limit: 100})
	old := lease(t, l, first, 60, at) // 40
	prev := mustKey(t, s, first)
	repl := record(acme, apikey.Production, apikey.Server, false)
	repl.Limits, repl.Lineage = prev.Limits, prev.LineageID()
	prev.RotatedAt, prev.ExpiresAt = at, at.Add(24*time.Hour)
	apply(t, s, apikey.Change{Update: []apikey.Record{prev}, Insert: []apikey.Record{repl}})
	setQuota(repl.ID, apikey.Quota{Limit: 80}) // 80 - 60: 20
	ret(first, 50, old, at)
	assert.Equal(t, int64(70), lease(t, l, repl.ID, 1000, at).Granted, "20 + 50 returned through the rotated key")
	assert.Zero(t, lease(t, l, first, 1000, at).Granted, "one balance")
}
