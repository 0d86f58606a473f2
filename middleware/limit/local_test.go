package limit_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/limit"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// call is one Allow in a sequence: at is the time since t0.
type call struct {
	at   time.Duration
	cost int
	want limit.Decision
}

func TestLocalGCRA(t *testing.T) {
	perMin := apikey.RateLimit{Requests: 60, Window: time.Minute, Burst: 3} // T = 1s, tolerance 3s
	allowed := func(rem int, reset time.Duration) limit.Decision {
		return limit.Decision{Allowed: true, Remaining: rem, Reset: reset}
	}
	refused := func(reset, retry time.Duration) limit.Decision {
		return limit.Decision{Reset: reset, RetryAfter: retry}
	}
	tests := []struct {
		name  string
		rate  apikey.RateLimit
		calls []call
	}{
		{"burst then refused", perMin, []call{
			{0, 1, allowed(2, time.Second)},
			{0, 1, allowed(1, 2*time.Second)},
			{0, 1, allowed(0, 3*time.Second)},
			{0, 1, refused(3*time.Second, time.Second)},
		}},
		{"steady rate at the interval is always admitted", perMin, []call{
			{0, 1, allowed(2, time.Second)},
			{time.Second, 1, allowed(2, time.Second)},
			{2 * time.Second, 1, allowed(2, time.Second)},
			{3 * time.Second, 1, allowed(2, time.Second)},
		}},
		{"retry-after is exact to the nanosecond", perMin, []call{
			{0, 3, allowed(0, 3*time.Second)},
			{400 * time.Millisecond, 1, refused(2600*time.Millisecond, 600*time.Millisecond)},
			{time.Second - time.Nanosecond, 1, refused(2*time.Second+time.Nanosecond, time.Nanosecond)},
			{time.Second, 1, allowed(0, 3*time.Second)},
		}},
		{"cost above one", perMin, []call{
			{0, 2, allowed(1, 2*time.Second)},
			{0, 2, refused(2*time.Second, time.Second)},
			{time.Second, 2, allowed(0, 3*time.Second)},
			{1500 * time.Millisecond, 2, refused(2500*time.Millisecond, 1500*time.Millisecond)},
		}},
		{"cost above the burst is never admitted", perMin, []call{
			{0, 4, refused(0, time.Minute)},
			{time.Hour, 4, refused(0, time.Minute)},
			{time.Hour, 3, allowed(0, 3*time.Second)},
		}},
		{"a full bucket after the tolerance has passed", perMin, []call{
			{0, 3, allowed(0, 3*time.Second)},
			{3 * time.Second, 1, allowed(2, time.Second)},
			{time.Hour, 3, allowed(0, 3*time.Second)},
		}},
		{"window boundary: burst defaults to requests", apikey.RateLimit{Requests: 2, Window: 10 * time.Second}, []call{
			{0, 1, allowed(1, 5*time.Second)},
			{0, 1, allowed(0, 10*time.Second)},
			{5*time.Second - time.Nanosecond, 1, refused(5*time.Second+time.Nanosecond, time.Nanosecond)},
			{5 * time.Second, 1, allowed(0, 10*time.Second)},
			{10 * time.Second, 1, allowed(0, 10*time.Second)},
			{20 * time.Second, 2, allowed(0, 10*time.Second)},
		}},
		{"interval rounds up so the limit is never looser", apikey.RateLimit{Requests: 3, Window: time.Second}, []call{
			{0, 3, allowed(0, 3*333333334)},
			{time.Second, 3, refused(2, 2)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := limit.NewLocal(limit.LocalOptions{})
			for i, c := range tt.calls {
				got := l.Allow("key-a", tt.rate, c.cost, t0.Add(c.at))
				assert.Equal(t, c.want, got, "call %d at %s cost %d", i, c.at, c.cost)
			}
		})
	}
}

func TestLocalBucketsAreSeparate(t *testing.T) {
	l := limit.NewLocal(limit.LocalOptions{})
	rate := apikey.RateLimit{Requests: 1, Window: time.Hour}
	require.True(t, l.Allow("a", rate, 1, t0).Allowed)
	require.False(t, l.Allow("a", rate, 1, t0).Allowed)
	require.True(t, l.Allow("b", rate, 1, t0).Allowed)
	require.True(t, l.Allow("owner\x00a", rate, 1, t0).Allowed)
}

// TestLocalConcurrent spends one bucket from many goroutines at one
// instant, by its name and through handles of it: exactly the burst is
// admitted, whatever the interleaving.
func TestLocalConcurrent(t *testing.T) {
	l := limit.NewLocal(limit.LocalOptions{MaxBuckets: 1024})
	rate := apikey.RateLimit{Requests: 1000, Window: time.Hour, Burst: 500}
	shared := l.Handle("shared")
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			own := l.Handle("shared")
			for i := range 200 {
				var d limit.Decision
				switch i % 3 {
				case 0:
					d = l.Allow("shared", rate, 1, t0)
				case 1:
					d = shared.Allow(rate, 1, t0)
				default:
					d = own.Allow(rate, 1, t0)
				}
				if d.Allowed {
					admitted.Add(1)
				}
				l.Allow(fmt.Sprintf("own-%d-%d", g, i%16), rate, 1, t0)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(500), admitted.Load())
	assert.Equal(t, 1+8*16, l.Len())
}

// TestLocalHandle: handles of a name spend from the bucket that Allow of
// the name spends from, also once the Local has forgotten the bucket a
// handle held.
func TestLocalHandle(t *testing.T) {
	rate := apikey.RateLimit{Requests: 1, Window: time.Hour, Burst: 3}
	t.Run("one bucket per name", func(t *testing.T) {
		l := limit.NewLocal(limit.LocalOptions{})
		h1, h2 := l.Handle("k"), l.Handle("k")
		assert.Equal(t, 2, h1.Allow(rate, 1, t0).Remaining)
		assert.Equal(t, 1, l.Allow("k", rate, 1, t0).Remaining)
		assert.Equal(t, 0, h2.Allow(rate, 1, t0).Remaining)
		assert.False(t, h1.Allow(rate, 1, t0).Allowed)
		assert.True(t, l.Handle("other").Allow(rate, 1, t0).Allowed)
		assert.Equal(t, 2, l.Len())
	})
	t.Run("forgotten bucket", func(t *testing.T) {
		// One bucket in all: each new name makes the Local forget the
		// other's.
		l := limit.NewLocal(limit.LocalOptions{MaxBuckets: 1})
		h := l.Handle("k")
		require.Equal(t, 1, h.Allow(rate, 2, t0).Remaining)
		require.True(t, l.Allow("other", rate, 1, t0).Allowed) // forgets k's bucket
		require.Equal(t, 2, l.Allow("k", rate, 1, t0).Remaining, "a new bucket for k")
		assert.Equal(t, 1, h.Allow(rate, 1, t0).Remaining, "the handle spends from k's new bucket")
		assert.Equal(t, 0, l.Allow("k", rate, 1, t0).Remaining)
		assert.False(t, h.Allow(rate, 1, t0).Allowed)
		assert.Equal(t, 1, l.Len())
	})
}

func TestLocalMaxBuckets(t *testing.T) {
	rate := apikey.RateLimit{Requests: 10, Window: time.Minute}
	for _, max := range []int{1, 7, 100, 1000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			l := limit.NewLocal(limit.LocalOptions{MaxBuckets: max})
			for i := range 20 * max {
				require.True(t, l.Allow(fmt.Sprint("k", i), rate, 1, t0).Allowed)
				require.LessOrEqual(t, l.Len(), max)
			}
		})
	}
	t.Run("full buckets are forgotten first", func(t *testing.T) {
		l := limit.NewLocal(limit.LocalOptions{MaxBuckets: 1024})
		hot := apikey.RateLimit{Requests: 1, Window: 24 * time.Hour}
		require.True(t, l.Allow("hot", hot, 1, t0).Allowed)
		// Each bucket is full again 6s after it was spent: when a shard
		// is full, only those go.
		for i := range 4 * 1024 {
			require.True(t, l.Allow(fmt.Sprint("k", i), rate, 1, t0.Add(time.Duration(i)*7*time.Second)).Allowed)
		}
		require.LessOrEqual(t, l.Len(), 1024)
		assert.False(t, l.Allow("hot", hot, 1, t0.Add(9*time.Hour)).Allowed, "the spent bucket was forgotten")
	})
	assert.Panics(t, func() { limit.NewLocal(limit.LocalOptions{MaxBuckets: -1}) })
}

// TestLocalBucketBytes measures the memory per remembered bucket that
// BucketBytes documents, with 24-byte bucket names.
func TestLocalBucketBytes(t *testing.T) {
	const n = 1 << 16
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("key_%020d", i)
	}
	rate := apikey.RateLimit{Requests: 10, Window: time.Minute}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := limit.NewLocal(limit.LocalOptions{MaxBuckets: 4 * n})
	for _, name := range names {
		l.Allow(name, rate, 1, t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.1f bytes per bucket (%d buckets)", per, l.Len())
	assert.LessOrEqual(t, per, float64(limit.BucketBytes))
	runtime.KeepAlive(l)
	runtime.KeepAlive(names)
}

func BenchmarkLocalAllow(b *testing.B) {
	rate := apikey.RateLimit{Requests: 1_000_000, Window: time.Second}
	b.Run("seen", func(b *testing.B) {
		l := limit.NewLocal(limit.LocalOptions{})
		l.Allow("key_0123456789abcdef", rate, 1, t0)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			l.Allow("key_0123456789abcdef", rate, 1, t0.Add(time.Duration(i)*time.Microsecond))
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l := limit.NewLocal(limit.LocalOptions{})
		keys := make([]string, 1024)
		for i := range keys {
			keys[i] = fmt.Sprintf("key_%016d", i)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			now := t0
			for i := 0; pb.Next(); i++ {
				now = now.Add(time.Microsecond)
				l.Allow(keys[i&1023], rate, 1, now)
			}
		})
	})
}

func TestStepEdges(t *testing.T) {
	d, debt := limit.Step(apikey.RateLimit{}, 0, 1)
	assert.True(t, d.Allowed, "a zero rate limits nothing")
	assert.Zero(t, debt)

	perSec := apikey.RateLimit{Requests: 1, Window: time.Second}
	d, debt = limit.Step(perSec, -time.Hour, 0)
	assert.Equal(t, limit.Decision{Allowed: true, Reset: time.Second}, d, "negative debt is none, cost 0 is 1")
	assert.Equal(t, time.Second, debt)

	// A billion at once, then one a day: the tolerance is clamped, not
	// overflowed.
	absurd := apikey.RateLimit{Requests: 1, Window: 24 * time.Hour, Burst: apikey.MaxRateRequests}
	d, debt = limit.Step(absurd, 0, 1)
	assert.True(t, d.Allowed)
	assert.Positive(t, d.Remaining)
	assert.Equal(t, 24*time.Hour, debt)
	d, _ = limit.Step(absurd, time.Duration(1<<62), 1)
	assert.False(t, d.Allowed)
	assert.Positive(t, d.RetryAfter)

	// The fastest rate: one request per nanosecond.
	fastest := apikey.RateLimit{Requests: apikey.MaxRateRequests, Window: time.Second}
	assert.Equal(t, time.Nanosecond, limit.Interval(fastest))
	d, _ = limit.Step(fastest, 0, apikey.MaxRateRequests)
	assert.Equal(t, limit.Decision{Allowed: true, Reset: time.Second}, d)
}

// TestLocalRateChange: a bucket spent under a slow rate is spent, not
// blocked for the old window, under a faster one; a debt run up under a
// limit that was lowered counts as one bucket of the new limit.
func TestLocalRateChange(t *testing.T) {
	l := limit.NewLocal(limit.LocalOptions{})
	now := time.Unix(1_700_000_000, 0)
	daily := apikey.RateLimit{Requests: 1, Window: 24 * time.Hour}
	require.True(t, l.Allow("k", daily, 1, now).Allowed)
	require.False(t, l.Allow("k", daily, 1, now.Add(time.Second)).Allowed)

	fast := apikey.RateLimit{Requests: 1000, Window: time.Second}
	d := l.Allow("k", fast, 1, now.Add(2*time.Second))
	assert.False(t, d.Allowed, "the bucket is spent under the new rate too")
	assert.Equal(t, time.Millisecond, d.RetryAfter, "one interval of the new rate, not the old day")
	assert.True(t, l.Allow("k", fast, 1, now.Add(2*time.Second+time.Millisecond)).Allowed)
}
