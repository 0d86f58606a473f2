package limit

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
)

// DefaultMaxBuckets is the number of buckets a Local remembers when
// LocalOptions.MaxBuckets is 0.
const DefaultMaxBuckets = 1 << 20

// BucketBytes bounds the measured memory of one remembered bucket of a
// Local with a 24-byte bucket name (its map slot, its bucket and its copy
// of the name; about 93 bytes on amd64 with Go 1.26, each byte of a
// longer name adding about one), as TestLocalBucketBytes measures it. A
// Local at DefaultMaxBuckets holds at most about 96 MiB.
const BucketBytes = 96

// maxShards is the most shards a Local spreads its buckets over; each has
// its own mutex.
const maxShards = 64

// LocalOptions configures NewLocal. The zero LocalOptions is valid.
type LocalOptions struct {
	// MaxBuckets bounds how many buckets the limiter remembers; 0 means
	// DefaultMaxBuckets. A bucket whose theoretical arrival time has
	// passed is full and is forgotten first at no cost in accuracy; when
	// more than MaxBuckets buckets are partly spent at once, some of them
	// are forgotten at random, and each forgotten bucket may admit up to
	// its burst again.
	MaxBuckets int
}

// Local is a per-process Limiter: the generic cell rate algorithm (GCRA,
// see Step) with one theoretical arrival time per bucket, kept in memory.
// It does no I/O, does not allocate for a bucket it remembers, and is safe
// for concurrent use. Its memory is bounded by LocalOptions.MaxBuckets,
// about BucketBytes per bucket.
type Local struct {
	seed     maphash.Seed
	mask     uint64
	perShard int
	shards   []shard
}

// shard is one part of a Local's buckets, by name. The values are
// pointers so that a request does one map look-up, not a look-up and an
// assignment, and so that a Handle can hold one.
type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	// last is the rate of the shard's last request, in the algorithm's
	// terms: most requests reuse it instead of dividing again.
	last gcra
}

// bucket is one bucket of a shard, guarded by the shard's mutex.
type bucket struct {
	tat int64 // theoretical arrival time, Unix nanoseconds
	// forgotten is set when the shard forgets the bucket: a Handle that
	// holds it looks its name up again, so that one name never spends
	// from two buckets.
	forgotten bool
}

var _ Limiter = (*Local)(nil)

// NewLocal returns a Local configured by opts. It panics if
// opts.MaxBuckets is negative.
func NewLocal(opts LocalOptions) *Local {
	if opts.MaxBuckets < 0 {
		panic(fmt.Sprintf("limit: LocalOptions.MaxBuckets is %d, must be 0 or more", opts.MaxBuckets))
	}
	size := opts.MaxBuckets
	if size == 0 {
		size = DefaultMaxBuckets
	}
	n := 1
	for n*2 <= maxShards && n*2 <= size {
		n *= 2
	}
	l := &Local{
		seed:     maphash.MakeSeed(),
		mask:     uint64(n - 1),
		perShard: size / n,
		shards:   make([]shard, n),
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// Allow decides whether bucket may spend cost requests under rate at now
// (see Step for the arithmetic and the Decision's fields).
func (l *Local) Allow(bucket string, rate apikey.RateLimit, cost int, now time.Time) Decision {
	s := l.shardOf(bucket)
	s.mu.Lock()
	d, _ := s.allow(s.buckets[bucket], bucket, rate, cost, now.UnixNano(), l.perShard)
	s.mu.Unlock()
	return d
}

// Handle returns a handle on the bucket named bucket, for a caller that
// keeps it to spend from that bucket many times (the middleware keeps one
// with each cached key that has a rate limit). Handle.Allow is Allow on
// the same bucket without looking its name up. A Handle holds at most one
// bucket that l has forgotten, until its next Allow.
func (l *Local) Handle(bucket string) *Handle {
	return &Handle{local: l, shard: l.shardOf(bucket), name: strings.Clone(bucket)}
}

// Handle is one named bucket of a Local; see Local.Handle. It is safe for
// concurrent use.
type Handle struct {
	local *Local
	shard *shard
	held  *bucket // the bucket of name; nil until known. Guarded by shard.mu
	name  string
}

// Allow is Local.Allow of h's bucket: both spend from the same bucket,
// whichever handles of its name a caller uses.
func (h *Handle) Allow(rate apikey.RateLimit, cost int, now time.Time) Decision {
	s := h.shard
	s.mu.Lock()
	if h.held == nil || h.held.forgotten {
		h.held = s.buckets[h.name]
	}
	var d Decision
	d, h.held = s.allow(h.held, h.name, rate, cost, now.UnixNano(), h.local.perShard)
	s.mu.Unlock()
	return d
}

// shardOf returns the shard of the bucket named bucket.
func (l *Local) shardOf(bucket string) *shard {
	return &l.shards[maphash.String(l.seed, bucket)&l.mask]
}

// allow spends cost requests under rate at t (Unix nanoseconds) from b,
// the bucket named name (nil: a full bucket that s does not hold), and
// returns the decision and the bucket s holds for name afterwards (nil
// when refused and not held). The caller holds s.mu; size bounds s.
func (s *shard) allow(b *bucket, name string, rate apikey.RateLimit, cost int, t int64, size int) (Decision, *bucket) {
	if s.last.rate != rate {
		s.last = newGCRA(rate)
	}
	if b == nil {
		d, debt := s.last.step(0, cost)
		if d.Allowed {
			b = &bucket{tat: t + int64(debt)}
			s.insert(strings.Clone(name), b, t, size)
		}
		return d, b
	}
	d, debt := s.last.step(time.Duration(b.tat-t), cost)
	b.tat = t + int64(debt) // on a refusal, the debt as step bounded it
	return d, b
}

// Len returns how many buckets l remembers.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// insert adds a bucket to a full or non-full shard. A full shard first
// forgets every full bucket (TAT at or before now), then random partly
// spent ones until an eighth of its room is free, so that the scan costs
// O(1) per insert amortised.
func (s *shard) insert(name string, b *bucket, now int64, size int) {
	if len(s.buckets) >= size {
		for k, v := range s.buckets {
			if v.tat <= now {
				s.forget(k, v)
			}
		}
		keep := size - size/8 - 1
		for k, v := range s.buckets {
			if len(s.buckets) <= keep {
				break
			}
			s.forget(k, v)
		}
	}
	s.buckets[name] = b
}

// forget removes the bucket b of name from s.
func (s *shard) forget(name string, b *bucket) {
	b.forgotten = true
	delete(s.buckets, name)
}
