package redislimit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/limit"
)

// Defaults of Options.
const (
	// DefaultPrefix is the prefix of the Redis keys when Options.Prefix is
	// empty.
	DefaultPrefix = "keystile:rate:"
	// MaxBatch caps the batch derived from a rate when Options.Batch is 0.
	MaxBatch = 1000
	// DefaultTimeout bounds one call to Redis when Options.Timeout is 0.
	DefaultTimeout = time.Second
	// DefaultRetryInterval is Options.RetryInterval when it is 0.
	DefaultRetryInterval = time.Second
)

// maxInflight bounds the calls to Redis in flight at once; a batch that
// finds no room is asked for by a later request.
const maxInflight = 32

// maxShards is the most shards the bucket states are spread over.
const maxShards = 64

// maxTolerance bounds a bucket's burst tolerance (burst·T) in nanoseconds,
// as limit.Step does: it only matters for absurd limits.
const maxTolerance = int64(1) << 61

// Options configures New.
type Options struct {
	// Client is the Redis client (a single node, a failover group or a
	// cluster: each bucket is one key); required. The Limiter does not
	// close it.
	Client redis.UniversalClient
	// Prefix is put before each bucket's name to make its Redis key;
	// empty means DefaultPrefix. Instances that share limits use the same
	// prefix.
	Prefix string
	// Batch is how many requests an instance takes from Redis at once,
	// never more than a rate's burst; 0 derives it from each rate:
	// Requests/100, at least 1 and at most MaxBatch. A larger batch means
	// fewer calls and a looser bound (see the package doc).
	Batch int
	// MaxBuckets bounds the buckets an instance remembers, here and in
	// its fallback limiter; 0 means limit.DefaultMaxBuckets. A bucket
	// with nothing owed is forgotten first.
	MaxBuckets int
	// Timeout bounds one call to Redis through its context; 0 means
	// DefaultTimeout. The client applies it to reads and writes only when
	// its ContextTimeoutEnabled is set; otherwise its own ReadTimeout and
	// WriteTimeout apply (waiting for a pooled connection always honours
	// it).
	Timeout time.Duration
	// RetryInterval is how long the Limiter decides per process after a
	// failed call before it tries Redis again; 0 means
	// DefaultRetryInterval.
	RetryInterval time.Duration
}

// Stats counts a Limiter's calls to Redis.
type Stats struct {
	// Calls is how many times the script ran (each one round trip, two
	// when Redis has to load the script first).
	Calls int64
	// Batches is how many calls granted a batch.
	Batches int64
	// Refused is how many calls found the shared bucket spent.
	Refused int64
	// Errors is how many calls failed.
	Errors int64
}

// Limiter is a limit.Limiter shared across instances through Redis. It is
// safe for concurrent use; Close stops its background calls.
type Limiter struct {
	client        redis.UniversalClient
	prefix        string
	batch         int
	timeout       time.Duration
	retryInterval time.Duration

	fallback *limit.Local
	report   atomic.Pointer[func(error)]

	healthy atomic.Bool  // the last call to Redis succeeded
	probing atomic.Bool  // a call is testing whether Redis is back
	retryAt atomic.Int64 // Unix ns before which no probe is sent

	seed     maphash.Seed
	mask     uint64
	perShard int
	shards   []shard

	ctx     context.Context
	cancel  context.CancelCauseFunc
	sem     chan struct{}
	closeMu sync.RWMutex // orders wg.Add in start before wg.Wait in Close
	wg      sync.WaitGroup
	closed  atomic.Bool

	calls, batches, refused, errs atomic.Int64
}

// shard is one part of the bucket states, with its own mutex.
type shard struct {
	mu sync.Mutex
	m  map[string]*state
	_  [40]byte
}

// state is an instance's share of one bucket.
type state struct {
	// balance is the requests taken from Redis and not yet admitted;
	// negative when requests were admitted on credit.
	balance int64
	// inflight is set while a call for this bucket is on its way.
	inflight bool
	// blocked is the Unix ns before which Redis cannot grant a batch: no
	// credit and no call until then.
	blocked int64
	// remaining and fullAt describe the shared bucket after the last
	// call: the requests it could still admit at once, and the Unix ns at
	// which it is full again.
	remaining int64
	fullAt    int64
}

var (
	_ limit.Limiter       = (*Limiter)(nil)
	_ limit.ErrorReporter = (*Limiter)(nil)
)

// errClosed is the cause of the calls that Close cuts short; they are not
// reported.
var errClosed = errors.New("redislimit: closed")

// New returns a Limiter configured by opts. It makes no call to Redis:
// the first batch of each bucket is taken when it is first used.
func New(opts Options) (*Limiter, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("redislimit: Options.Client is required")
	case opts.Batch < 0:
		return nil, fmt.Errorf("redislimit: Options.Batch is %d, must be 0 or more", opts.Batch)
	case opts.MaxBuckets < 0:
		return nil, fmt.Errorf("redislimit: Options.MaxBuckets is %d, must be 0 or more", opts.MaxBuckets)
	case opts.Timeout < 0:
		return nil, fmt.Errorf("redislimit: Options.Timeout is %s, must be 0 or more", opts.Timeout)
	case opts.RetryInterval < 0:
		return nil, fmt.Errorf("redislimit: Options.RetryInterval is %s, must be 0 or more", opts.RetryInterval)
	}
	l := &Limiter{
		client:        opts.Client,
		prefix:        cmp.Or(opts.Prefix, DefaultPrefix),
		batch:         opts.Batch,
		timeout:       cmp.Or(opts.Timeout, DefaultTimeout),
		retryInterval: cmp.Or(opts.RetryInterval, DefaultRetryInterval),
		fallback:      limit.NewLocal(limit.LocalOptions{MaxBuckets: opts.MaxBuckets}),
		seed:          maphash.MakeSeed(),
		sem:           make(chan struct{}, maxInflight),
	}
	l.healthy.Store(true)
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	size := cmp.Or(opts.MaxBuckets, limit.DefaultMaxBuckets)
	n := 1
	for n*2 <= maxShards && n*2 <= size {
		n *= 2
	}
	l.mask, l.perShard, l.shards = uint64(n-1), size/n, make([]shard, n)
	for i := range l.shards {
		l.shards[i].m = make(map[string]*state)
	}
	return l, nil
}

// ReportErrors sets the function that receives the errors of calls to
// Redis (each failure that switches the Limiter to per-process decisions,
// and each failed probe after it). It implements limit.ErrorReporter.
func (l *Limiter) ReportErrors(f func(error)) {
	if f == nil {
		l.report.Store(nil)
		return
	}
	l.report.Store(&f)
}

// Stats returns the Limiter's counts of calls to Redis.
func (l *Limiter) Stats() Stats {
	return Stats{Calls: l.calls.Load(), Batches: l.batches.Load(), Refused: l.refused.Load(), Errors: l.errs.Load()}
}

// Close stops the Limiter's calls to Redis and waits for those in flight.
// Later requests are decided per process. It does not close the client.
func (l *Limiter) Close() error {
	l.closeMu.Lock()
	done := l.closed.Swap(true)
	l.closeMu.Unlock()
	if done {
		return nil
	}
	l.cancel(errClosed)
	l.wg.Wait()
	return nil
}

// BatchFor returns the batch the Limiter takes from Redis for rate.
func (l *Limiter) BatchFor(rate apikey.RateLimit) int {
	b := l.batch
	if b == 0 {
		b = min(max(rate.Requests/100, 1), MaxBatch)
	}
	return max(min(b, rate.BurstSize()), 1)
}

// Allow decides whether bucket may spend cost requests under rate at now,
// from the instance's batch of the bucket (see the package doc). The
// Decision's Remaining and Reset describe the shared bucket as of the last
// call to Redis, less what this instance has admitted since.
func (l *Limiter) Allow(bucket string, rate apikey.RateLimit, cost int, now time.Time) limit.Decision {
	t := now.UnixNano()
	if l.closed.Load() || !l.healthy.Load() {
		l.probe(bucket, rate, t)
		return l.fallback.Allow(bucket, rate, cost, now)
	}
	if cost < 1 {
		cost = 1
	}
	if cost > rate.BurstSize() {
		d, _ := limit.Step(rate, 0, cost) // never admitted
		return d
	}
	batch := int64(l.BatchFor(rate))
	c := int64(cost)
	s := &l.shards[maphash.String(l.seed, bucket)&l.mask]
	s.mu.Lock()
	st := s.m[bucket]
	if st == nil {
		if st = s.add(bucket, l.perShard); st == nil {
			s.mu.Unlock()
			return l.fallback.Allow(bucket, rate, cost, now)
		}
	}
	if t < st.blocked {
		// A wait set under a slower rate is at most one batch's refill
		// under this one; Redis bounds its own state likewise.
		if wait := int64(limit.Interval(rate)) * max(batch, c); st.blocked-t > wait {
			st.blocked = t + wait
		}
	}
	var d limit.Decision
	switch {
	case st.balance >= c, t >= st.blocked && st.balance-c >= -batch:
		st.balance -= c
		d.Allowed = true
		d.Remaining = int(max(st.remaining+st.balance, 0))
	case t < st.blocked:
		d.RetryAfter = time.Duration(st.blocked - t)
	default: // the credit is spent and a batch is on its way
		d.RetryAfter = limit.Interval(rate) * time.Duration(cost)
	}
	d.Reset = time.Duration(max(st.fullAt-t, 0))
	if (st.balance <= 0 || !d.Allowed) && !st.inflight && t >= st.blocked {
		l.start(bucket, st, rate, max(batch, c), t, false)
	}
	s.mu.Unlock()
	return d
}

// probe sends, at most once per RetryInterval, a call for bucket that
// tests whether Redis is back.
func (l *Limiter) probe(bucket string, rate apikey.RateLimit, t int64) {
	if l.closed.Load() || t < l.retryAt.Load() || !l.probing.CompareAndSwap(false, true) {
		return
	}
	s := &l.shards[maphash.String(l.seed, bucket)&l.mask]
	s.mu.Lock()
	st := s.m[bucket]
	if st == nil {
		st = s.add(bucket, l.perShard)
	}
	if st == nil || st.inflight || !l.start(bucket, st, rate, int64(l.BatchFor(rate)), t, true) {
		l.probing.Store(false)
	}
	s.mu.Unlock()
}

// add remembers a bucket in a shard, forgetting others if it is full:
// first those that owe nothing and have no call in flight, then any
// without a call in flight until an eighth of the room is free. It returns
// nil when every state has a call in flight.
func (s *shard) add(bucket string, size int) *state {
	if len(s.m) >= size {
		for k, st := range s.m {
			if !st.inflight && st.balance >= 0 {
				delete(s.m, k)
			}
		}
		keep := size - size/8 - 1
		for k, st := range s.m {
			if len(s.m) <= keep {
				break
			}
			if !st.inflight {
				delete(s.m, k)
			}
		}
		if len(s.m) >= size {
			return nil
		}
	}
	st := &state{}
	s.m[strings.Clone(bucket)] = st
	return st
}

// start sends the call for a batch of bucket in the background, with its
// shard locked; it reports false when too many calls are in flight. probe
// marks the call that tests whether Redis is back.
func (l *Limiter) start(bucket string, st *state, rate apikey.RateLimit, batch, t int64, probe bool) bool {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed.Load() {
		return false
	}
	select {
	case l.sem <- struct{}{}:
	default:
		return false
	}
	st.inflight = true
	l.wg.Add(1)
	go l.take(bucket, st, rate, batch, t, probe)
	return true
}

// script spends batch requests of a bucket's theoretical arrival time
// (TAT, Unix microseconds) if the bucket can afford them all. KEYS[1] is
// the bucket; ARGV are now, the batch's cost (batch·T) and the burst
// tolerance (burst·T), in microseconds. It returns {1, 0, reset} when it
// granted the batch and {0, retry, reset} when not, where reset is how
// long until the bucket is full and retry how long until the batch fits,
// in microseconds.
var script = redis.NewScript(`
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat > now + tolerance then
  -- run up under another rate: the bucket is spent under this one, not for longer
  tat = now + tolerance
  redis.call('SET', KEYS[1], tat, 'PX', math.max(1, math.ceil(tolerance / 1000)))
end
local nxt = tat + cost
if nxt - now > tolerance then
  return {0, nxt - now - tolerance, tat - now}
end
redis.call('SET', KEYS[1], nxt, 'PX', math.max(1, math.ceil((nxt - now) / 1000)))
return {1, 0, nxt - now}
`)

// take calls Redis for a batch of bucket and records the answer.
func (l *Limiter) take(bucket string, st *state, rate apikey.RateLimit, batch, t int64, probe bool) {
	defer func() { <-l.sem; l.wg.Done() }()
	interval := max(int64(limit.Interval(rate)), 1)
	burst := max(int64(rate.BurstSize()), batch)
	if burst > maxTolerance/interval {
		burst = maxTolerance / interval
	}
	cost := (min(batch, burst)*interval + 999) / 1000
	tolerance := burst * interval / 1000
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	res, err := script.Run(ctx, l.client, []string{l.prefix + bucket}, t/1000, cost, tolerance).Int64Slice()
	cancel()
	l.calls.Add(1)
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	s := &l.shards[maphash.String(l.seed, bucket)&l.mask]
	s.mu.Lock()
	st.inflight = false
	if err == nil {
		reset := res[2] * 1000
		st.fullAt = t + reset
		if res[0] == 1 {
			st.balance += batch
			st.blocked = 0
			st.remaining = max(tolerance*1000-reset, 0) / interval
			l.batches.Add(1)
		} else {
			// Wait for the batch to fit, and at least the time a batch
			// takes to return: at most one refused call per Batch·T.
			st.blocked = t + max(res[1]*1000, cost*1000)
			st.remaining = 0
			l.refused.Add(1)
		}
	}
	s.mu.Unlock()
	if probe {
		l.probing.Store(false)
	}
	if err == nil {
		l.healthy.Store(true)
		return
	}
	l.errs.Add(1)
	if errors.Is(context.Cause(l.ctx), errClosed) {
		return
	}
	l.retryAt.Store(t + int64(l.retryInterval))
	if l.healthy.Swap(false) || probe {
		if f := l.report.Load(); f != nil {
			(*f)(fmt.Errorf("redislimit: taking a batch from Redis (deciding per process until it answers): %w", err))
		}
	}
}
