package redislimit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/limit"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// quietLogger drops go-redis's log lines: the fault tests dial closed
// ports on purpose, and the Limiter reports what matters.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietLogger{}) }

// redisAddr returns the Redis server of the tests; it skips the test only
// when KEYSTILE_REDIS_ADDR and CI are both unset.
func redisAddr(t testing.TB) string {
	addr := os.Getenv("KEYSTILE_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KEYSTILE_REDIS_ADDR is unset in CI")
		}
		t.Skip("needs a Redis server: set KEYSTILE_REDIS_ADDR or run ./scripts/test.sh")
	}
	return addr
}

// commandCounter counts the scripts a client runs (EVALSHA and EVAL; not
// the commands that set up a connection).
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// newClient returns a client of the test server that counts its commands.
func newClient(t testing.TB, addr string) (*redis.Client, *commandCounter) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	n := &commandCounter{}
	c.AddHook(n)
	t.Cleanup(func() { c.Close() })
	return c, n
}

// testPrefix returns a key prefix of its own for a test, and deletes its
// keys when the test ends.
func testPrefix(t testing.TB, c *redis.Client) string {
	p := fmt.Sprintf("keystile-test:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := c.Keys(ctx, p+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return p
}

func newLimiter(t testing.TB, opts Options) *Limiter {
	l, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// settle waits for l's calls in flight.
func (l *Limiter) settle() { l.wg.Wait() }

func (l *Limiter) buckets() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func TestNewValidates(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, tt := range []struct {
		opts  Options
		field string
	}{
		{Options{}, "Options.Client"},
		{Options{Client: c, Batch: -1}, "Options.Batch"},
		{Options{Client: c, MaxBuckets: -1}, "Options.MaxBuckets"},
		{Options{Client: c, Timeout: -1}, "Options.Timeout"},
		{Options{Client: c, RetryInterval: -1}, "Options.RetryInterval"},
	} {
		_, err := New(tt.opts)
		assert.ErrorContains(t, err, tt.field)
	}
	l, err := New(Options{Client: c})
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

func TestBatchFor(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	derived, _ := New(Options{Client: c})
	fixed, _ := New(Options{Client: c, Batch: 50})
	for _, tt := range []struct {
		rate           apikey.RateLimit
		derived, fixed int
	}{
		{apikey.RateLimit{Requests: 1000, Window: time.Minute}, 10, 50},
		{apikey.RateLimit{Requests: 10, Window: time.Minute}, 1, 10},
		{apikey.RateLimit{Requests: 1_000_000_000, Window: time.Hour}, MaxBatch, 50},
		{apikey.RateLimit{Requests: 100_000, Window: time.Minute, Burst: 20}, 20, 20},
	} {
		assert.Equal(t, tt.derived, derived.BatchFor(tt.rate), "%+v", tt.rate)
		assert.Equal(t, tt.fixed, fixed.BatchFor(tt.rate), "%+v", tt.rate)
	}
}

// TestSharedExact spends one bucket from two limiters, each call to Redis
// answered before the next request: together they admit exactly the
// burst, and each calls Redis once per batch plus once to learn that the
// bucket is spent.
func TestSharedExact(t *testing.T) {
	addr := redisAddr(t)
	c, commands := newClient(t, addr)
	prefix := testPrefix(t, c)
	rate := apikey.RateLimit{Requests: 20, Window: time.Hour}
	ls := []*Limiter{
		newLimiter(t, Options{Client: c, Prefix: prefix, Batch: 5}),
		newLimiter(t, Options{Client: c, Prefix: prefix, Batch: 5}),
	}
	admitted := 0
	var last limit.Decision
	for i := range 60 {
		l := ls[i%2]
		last = l.Allow("key_1", rate, 1, t0)
		if last.Allowed {
			admitted++
		}
		l.settle()
	}
	assert.Equal(t, 20, admitted)
	assert.False(t, last.Allowed)
	assert.Zero(t, last.Remaining)
	// The next batch fits when 5 of the 20 requests per hour are back.
	assert.Equal(t, 15*time.Minute, last.RetryAfter)
	for _, l := range ls {
		assert.Equal(t, Stats{Calls: 3, Batches: 2, Refused: 1}, l.Stats())
	}
	assert.LessOrEqual(t, commands.n.Load(), int64(6+1), "one command per call, and one EVAL to load the script")

	// An hour later the bucket is full again.
	d := ls[0].Allow("key_1", rate, 1, t0.Add(time.Hour))
	assert.True(t, d.Allowed)
}

func TestSharedCost(t *testing.T) {
	addr := redisAddr(t)
	c, _ := newClient(t, addr)
	prefix := testPrefix(t, c)
	rate := apikey.RateLimit{Requests: 100, Window: time.Minute, Burst: 10}
	l := newLimiter(t, Options{Client: c, Prefix: prefix, Batch: 2})
	// A cost above the batch takes its cost from Redis.
	costs, admitted := []int{4, 4, 4}, 0
	for _, cost := range costs {
		for range 3 {
			d := l.Allow("key_1", rate, cost, t0)
			l.settle()
			if d.Allowed {
				admitted += cost
				break
			}
		}
	}
	assert.LessOrEqual(t, admitted, 10+2)
	assert.GreaterOrEqual(t, admitted, 8)
	// A cost above the burst is never admitted, and costs no call.
	calls := l.Stats().Calls
	d := l.Allow("key_2", rate, 11, t0)
	assert.False(t, d.Allowed)
	assert.Equal(t, time.Minute, d.RetryAfter)
	l.settle()
	assert.Equal(t, calls, l.Stats().Calls)
}

// TestDecisionFields checks Remaining and Reset: the shared bucket as of
// the last call, less what this instance has admitted since.
func TestDecisionFields(t *testing.T) {
	addr := redisAddr(t)
	c, _ := newClient(t, addr)
	prefix := testPrefix(t, c)
	rate := apikey.RateLimit{Requests: 100, Window: 100 * time.Second} // T = 1s
	l := newLimiter(t, Options{Client: c, Prefix: prefix, Batch: 10})
	d := l.Allow("key_1", rate, 1, t0) // on credit: nothing known yet
	assert.Equal(t, limit.Decision{Allowed: true}, d)
	l.settle()
	d = l.Allow("key_1", rate, 1, t0)
	assert.Equal(t, limit.Decision{Allowed: true, Remaining: 98, Reset: 10 * time.Second}, d)
	d = l.Allow("key_1", rate, 2, t0.Add(time.Second))
	assert.Equal(t, limit.Decision{Allowed: true, Remaining: 96, Reset: 9 * time.Second}, d)
}

// TestFallback points a limiter at a closed port: requests are decided
// per process, the fault is reported once per failed call, and a probe is
// sent once per RetryInterval.
func TestFallback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()

	l := newLimiter(t, Options{Client: c, RetryInterval: time.Minute})
	var mu sync.Mutex
	var reported []error
	l.ReportErrors(func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	})
	rate := apikey.RateLimit{Requests: 2, Window: time.Hour}

	// The first request is admitted on credit; its call fails.
	start := time.Now()
	assert.True(t, l.Allow("key_1", rate, 1, t0).Allowed)
	assert.Less(t, time.Since(start), 100*time.Millisecond, "Allow does not wait for Redis")
	l.settle()
	mu.Lock()
	require.Len(t, reported, 1)
	var opErr *net.OpError
	assert.True(t, errors.As(reported[0], &opErr), "%v", reported[0])
	assert.ErrorContains(t, reported[0], "redislimit:")
	mu.Unlock()

	// Per process from now on: 2 per hour.
	var got []bool
	for range 3 {
		got = append(got, l.Allow("key_1", rate, 1, t0.Add(time.Second)).Allowed)
	}
	assert.Equal(t, []bool{true, true, false}, got)
	l.settle()
	assert.Equal(t, int64(1), l.Stats().Errors, "no call before RetryInterval")

	// After RetryInterval one probe is sent, and it fails too.
	for range 5 {
		l.Allow("key_2", rate, 1, t0.Add(2*time.Minute))
	}
	l.settle()
	assert.Equal(t, int64(2), l.Stats().Errors)
	mu.Lock()
	assert.Len(t, reported, 2)
	mu.Unlock()
}

// TestRecovers starts a limiter on a failing Redis address and then lets
// it through: the probe brings the limiter back to shared decisions.
func TestRecovers(t *testing.T) {
	addr := redisAddr(t)
	real, _ := newClient(t, addr)
	prefix := testPrefix(t, real)
	var down atomic.Bool
	down.Store(true)
	c := redis.NewClient(&redis.Options{
		Addr: addr,
		Dialer: func(ctx context.Context, network, a string) (net.Conn, error) {
			if down.Load() {
				return nil, errors.New("test: Redis is down")
			}
			return (&net.Dialer{}).DialContext(ctx, network, a)
		},
		MaxRetries: -1,
	})
	defer c.Close()
	l := newLimiter(t, Options{Client: c, Prefix: prefix, RetryInterval: time.Second, Batch: 1})
	errs := make(chan error, 10)
	l.ReportErrors(func(err error) { errs <- err })
	rate := apikey.RateLimit{Requests: 3, Window: time.Hour}

	l.Allow("key_1", rate, 1, t0)
	l.settle()
	require.Len(t, errs, 1)
	down.Store(false)
	l.Allow("key_1", rate, 1, t0.Add(2*time.Second)) // decided per process; sends the probe
	l.settle()
	assert.True(t, l.healthy.Load())
	admitted := 0
	for range 10 {
		if l.Allow("key_1", rate, 1, t0.Add(3*time.Second)).Allowed {
			admitted++
		}
		l.settle()
	}
	// The probe's batch repaid the first request's credit; then 2 batches
	// fit, and one more request is admitted on credit (at most a batch).
	assert.Equal(t, 3, admitted)
	assert.Len(t, errs, 1)
}

func TestMaxBuckets(t *testing.T) {
	addr := redisAddr(t)
	c, _ := newClient(t, addr)
	prefix := testPrefix(t, c)
	l := newLimiter(t, Options{Client: c, Prefix: prefix, MaxBuckets: 100, Batch: 1})
	rate := apikey.RateLimit{Requests: 10, Window: time.Minute}
	for i := range 1000 {
		l.Allow(fmt.Sprint("key_", i), rate, 1, t0)
		if i%50 == 0 {
			l.settle()
		}
		require.LessOrEqual(t, l.buckets(), 100)
	}
	l.settle()
	assert.LessOrEqual(t, l.buckets(), 100)
	assert.LessOrEqual(t, l.fallback.Len(), 100)
}

func TestConcurrent(t *testing.T) {
	addr := redisAddr(t)
	c, _ := newClient(t, addr)
	prefix := testPrefix(t, c)
	l := newLimiter(t, Options{Client: c, Prefix: prefix, Batch: 10})
	rate := apikey.RateLimit{Requests: 500, Window: time.Hour}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 300 {
				if l.Allow("key_1", rate, 1, t0).Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	l.settle()
	assert.LessOrEqual(t, admitted.Load(), int64(500+2*10))
	assert.GreaterOrEqual(t, admitted.Load(), int64(10))
}

func BenchmarkAllow(b *testing.B) {
	addr := redisAddr(b)
	c, _ := newClient(b, addr)
	prefix := testPrefix(b, c)
	l := newLimiter(b, Options{Client: c, Prefix: prefix})
	rate := apikey.RateLimit{Requests: 1_000_000_000, Window: time.Second}
	l.Allow("key_0123456789abcdef", rate, 1, t0)
	l.settle()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Allow("key_0123456789abcdef", rate, 1, t0.Add(time.Duration(i)*time.Microsecond))
	}
}

// TestRateChange: a bucket spent under a slow rate is not blocked for the
// old window once its rate is raised.
func TestRateChange(t *testing.T) {
	addr := redisAddr(t)
	c, _ := newClient(t, addr)
	l := newLimiter(t, Options{Client: c, Prefix: testPrefix(t, c), Batch: 1})
	daily := apikey.RateLimit{Requests: 2, Window: 24 * time.Hour}
	admitted := 0
	for range 6 {
		if l.Allow("key_1", daily, 1, t0).Allowed {
			admitted++
		}
		l.settle()
	}
	require.LessOrEqual(t, admitted, 3, "2, and at most one batch on credit")
	require.False(t, l.Allow("key_1", daily, 1, t0).Allowed)
	l.settle()

	fast := apikey.RateLimit{Requests: 1000, Window: time.Second}
	later := t0.Add(time.Second)
	var ok bool
	for i := range 10 { // a few milliseconds of the new rate
		ok = l.Allow("key_1", fast, 1, later.Add(time.Duration(i)*time.Millisecond)).Allowed || ok
		l.settle()
	}
	assert.True(t, ok, "admitted within milliseconds under the new rate, not a day later")
}
