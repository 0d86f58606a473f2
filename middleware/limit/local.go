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
// Local with a 24-byte bucket name (its map slot, its arrival time and its
// copy of the name; about 85 bytes on amd64 with Go 1.26, each byte of a
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

// shard is one part of a Local's buckets: theoretical arrival times in
// Unix nanoseconds, by bucket name. The values are pointers so that a
// request does one map look-up, not a look-up and an assignment.
type shard struct {
	mu  sync.Mutex
	tat map[string]*int64
	// last is the rate of the shard's last request, in the algorithm's
	// terms: most requests reuse it instead of dividing again.
	last gcra
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
		l.shards[i].tat = make(map[string]*int64)
	}
	return l
}

// Allow decides whether bucket may spend cost requests under rate at now
// (see Step for the arithmetic and the Decision's fields).
func (l *Local) Allow(bucket string, rate apikey.RateLimit, cost int, now time.Time) Decision {
	t := now.UnixNano()
	s := &l.shards[maphash.String(l.seed, bucket)&l.mask]
	s.mu.Lock()
	if s.last.rate != rate {
		s.last = newGCRA(rate)
	}
	tat := s.tat[bucket]
	if tat == nil {
		d, debt := s.last.step(0, cost)
		if d.Allowed {
			v := t + int64(debt)
			s.insert(strings.Clone(bucket), &v, t, l.perShard)
		}
		s.mu.Unlock()
		return d
	}
	d, debt := s.last.step(time.Duration(*tat-t), cost)
	*tat = t + int64(debt) // on a refusal, the debt as step bounded it
	s.mu.Unlock()
	return d
}

// Len returns how many buckets l remembers.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// insert adds a bucket to a full or non-full shard. A full shard first
// forgets every full bucket (TAT at or before now), then random partly
// spent ones until an eighth of its room is free, so that the scan costs
// O(1) per insert amortised.
func (s *shard) insert(bucket string, tat *int64, now int64, size int) {
	if len(s.tat) >= size {
		for k, v := range s.tat {
			if *v <= now {
				delete(s.tat, k)
			}
		}
		keep := size - size/8 - 1
		for k := range s.tat {
			if len(s.tat) <= keep {
				break
			}
			delete(s.tat, k)
		}
	}
	s.tat[bucket] = tat
}
