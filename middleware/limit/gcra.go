package limit

import (
	"math"
	"math/bits"
	"time"

	"github.com/keystile/keystile/apikey"
)

// maxDebt bounds how far ahead of now a bucket's theoretical arrival time
// may be (about 73 years): a burst whose tolerance would exceed it is
// clamped, which only matters for absurd limits (a burst of a billion at
// one request a day).
const maxDebt = int64(1) << 61

// Interval returns the GCRA emission interval of rate: the time one
// request's worth of capacity takes to return, Window/Requests rounded up
// to the nanosecond (so the limit is never looser than rate). It returns
// 0 for a zero or invalid rate.
func Interval(rate apikey.RateLimit) time.Duration {
	if rate.Requests <= 0 || rate.Window <= 0 {
		return 0
	}
	r := time.Duration(rate.Requests)
	return (rate.Window + r - 1) / r
}

// Step applies the generic cell rate algorithm to one request: debt is how
// far the bucket's theoretical arrival time (TAT) is ahead of now (0 for a
// full bucket), cost is the request's weight. It returns the Decision and
// the bucket's debt after the request (unchanged when refused).
//
// With T = Interval(rate) and a burst B = rate.BurstSize(), a request is
// admitted when debt + cost*T <= B*T; then Remaining is
// (B*T - debt - cost*T) / T rounded down and Reset is debt + cost*T. A
// refused request has RetryAfter debt + cost*T - B*T, exactly the time
// until the same request would be admitted, and Reset debt. A cost above
// the burst is never admitted: its RetryAfter is the rate's Window. A zero
// rate admits everything. Step is the arithmetic that Local and shared
// limiters have in common; it does no I/O and no allocation.
func Step(rate apikey.RateLimit, debt time.Duration, cost int) (Decision, time.Duration) {
	return newGCRA(rate).step(debt, cost)
}

// gcra is a rate in the terms of the algorithm, in nanoseconds.
type gcra struct {
	rate     apikey.RateLimit
	interval int64 // T; 0 for a zero rate
	burst    int64 // B, clamped so that B*T <= maxDebt
	limit    int64 // the burst tolerance plus one interval: B*T
}

func newGCRA(rate apikey.RateLimit) gcra {
	g := gcra{rate: rate, interval: int64(Interval(rate))}
	if g.interval == 0 {
		return g
	}
	g.burst = int64(rate.BurstSize())
	if hi, lo := bits.Mul64(uint64(g.burst), uint64(g.interval)); hi != 0 || lo > uint64(maxDebt) {
		g.burst = maxDebt / g.interval
	}
	g.limit = g.burst * g.interval
	return g
}

func (g gcra) step(debt time.Duration, cost int) (Decision, time.Duration) {
	t := g.interval
	if t == 0 {
		return Decision{Allowed: true, Remaining: math.MaxInt32}, 0
	}
	if cost < 1 {
		cost = 1
	}
	// A debt beyond g.limit was run up under another rate (a limit that
	// was lowered, or a clock that stepped back): the bucket counts as
	// spent under this one, not for longer.
	debt = min(max(debt, 0), time.Duration(g.limit))
	d := int64(debt)
	if int64(cost) > g.burst {
		return Decision{Reset: debt, RetryAfter: g.rate.Window}, debt
	}
	next := d + int64(cost)*t
	if next > g.limit {
		return Decision{Reset: debt, RetryAfter: time.Duration(next - g.limit)}, debt
	}
	return Decision{
		Allowed:   true,
		Remaining: int((g.limit - next) / t),
		Reset:     time.Duration(next),
	}, time.Duration(next)
}
