// Package usage counts the requests of each key per hour and outcome in
// memory, for the middleware to write in batches (storage.UsageRecorder).
package usage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/storage"
)

// shards spreads keys over locks, so that requests for different keys
// rarely contend.
const shards = 16

// maxPending bounds the counts waiting to be written (of ended hours, or
// restored after a failed write); beyond it counts are dropped and counted
// in Dropped.
const maxPending = 100_000

// Tally counts requests per key, hour and outcome. Create it with New; it
// is safe for concurrent use. Memory is bounded: at most maxKeys keys are
// counted between two Takes (the others' requests are counted in Dropped),
// each taking about 300 bytes, and at most maxPending counts wait to be
// written.
type Tally struct {
	outcomes []string
	perShard int
	shards   [shards]shard
	dropped  atomic.Uint64

	mu      sync.Mutex // guards pending
	pending []storage.UsageCount
}

type shard struct {
	mu       sync.Mutex
	counters map[string]*Counter // by key id: the counters a Take reads
	_        [40]byte            // one shard per cache line
}

// MaxOutcomes is the most outcomes a Tally counts.
const MaxOutcomes = 24

// Counter counts the requests of one key, by outcome, in the key's latest
// hour. Get it with Tally.Counter and keep it (the middleware keeps it
// with its cached key): Add is then three atomic operations, with no lock
// and no lookup, until the hour turns or a Take finds the key idle.
// The fields Add reads come first: hour, listed and the first outcomes'
// counts share a cache line (docs/benchmarks.md, Memory layout).
type Counter struct {
	// hour is the Unix hour that n counts; it changes under shard.mu.
	hour atomic.Int64
	// listed reports that the counter is in shard.counters, where a Take
	// finds it; it changes under shard.mu.
	listed   atomic.Bool
	outcomes uint8                      // len(tally.outcomes), the bound of Add's outcome
	n        [MaxOutcomes]atomic.Uint64 // the first outcomes are counts

	tally                       *Tally
	account, environment, keyID string
	shard                       *shard
}

// New returns a Tally of the given outcomes (Add names one by its index)
// and at most maxKeys keys (at least shards). It panics with more than
// MaxOutcomes outcomes.
func New(outcomes []string, maxKeys int) *Tally {
	if len(outcomes) > MaxOutcomes {
		panic("usage: more than MaxOutcomes outcomes")
	}
	t := &Tally{outcomes: outcomes, perShard: max(1, maxKeys/shards)}
	for i := range t.shards {
		t.shards[i].counters = map[string]*Counter{}
	}
	return t
}

// Counter returns the counter of key keyID (of account and environment):
// the one the Tally holds, else a new one that it holds (within the bound
// of keys; beyond it, the new counter's requests are dropped, counted in
// Dropped, until a Take makes room).
func (t *Tally) Counter(account, environment, keyID string) *Counter {
	s := &t.shards[shardOf(keyID)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.counters[keyID]; c != nil {
		return c
	}
	c := &Counter{tally: t, outcomes: uint8(len(t.outcomes)), account: account, environment: environment, keyID: keyID, shard: s}
	if len(s.counters) < t.perShard {
		s.counters[keyID] = c
		c.listed.Store(true)
	}
	return c
}

// Add counts one request of key keyID (of account and environment) with
// outcome o (an index into New's outcomes) at now: Counter, then its Add.
func (t *Tally) Add(account, environment, keyID string, o int, now time.Time) {
	t.Counter(account, environment, keyID).Add(o, now)
}

// Add counts one request with outcome o (an index into New's outcomes) at
// now. A request counted while another turns the key's hour may be counted
// in the newer hour; none is lost. It panics if o is not an index into
// New's outcomes, as indexing them would.
func (c *Counter) Add(o int, now time.Time) {
	if uint(o) >= uint(c.outcomes) {
		panic(fmt.Sprintf("usage: outcome %d of %d", o, c.outcomes))
	}
	hour := now.Unix() / 3600
	if c.hour.Load() == hour {
		c.n[o].Add(1)
		// After the count: a Take that unlisted c before it sees it when
		// it reads c again, or listed is false here and c is listed again.
		if c.listed.Load() {
			return
		}
		c.addSlow(-1, hour)
		return
	}
	c.addSlow(o, hour)
}

// addSlow lists c in its shard if it is not, then counts outcome o (none if
// o < 0) at hour, under the shard's lock.
func (c *Counter) addSlow(o int, hour int64) {
	t, s := c.tally, c.shard
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.listed.Load() {
		switch held := s.counters[c.keyID]; {
		case held != nil: // a Take unlisted c, and a newer counter of its key is listed
			c.moveTo(held)
			c = held
		case len(s.counters) >= t.perShard:
			for i := range t.outcomes {
				t.dropped.Add(c.n[i].Swap(0))
			}
			if o >= 0 {
				t.dropped.Add(1)
			}
			return
		default:
			s.counters[c.keyID] = c
			c.listed.Store(true)
		}
	}
	if o < 0 {
		return
	}
	switch latest := c.hour.Load(); {
	case hour < latest:
		// A request that started before the key's latest hour (it ends
		// after a newer one began) is kept on its own: the key's counts
		// stay on the newer hour.
		t.keep([]storage.UsageCount{{Account: c.account, Environment: c.environment, KeyID: c.keyID,
			Hour: time.Unix(hour*3600, 0).UTC(), Outcome: t.outcomes[o], Count: 1}})
		return
	case hour > latest:
		t.keep(c.take(t.outcomes))
		c.hour.Store(hour)
	}
	c.n[o].Add(1)
}

// moveTo moves c's counts to held, a counter of the same key listed in
// its place, or to the pending counts if their hours differ.
func (c *Counter) moveTo(held *Counter) {
	if c.hour.Load() != held.hour.Load() {
		c.tally.keep(c.take(c.tally.outcomes))
		return
	}
	for o := range c.tally.outcomes {
		held.n[o].Add(c.n[o].Swap(0))
	}
}

// take returns c's counts and sets them to zero.
func (c *Counter) take(outcomes []string) []storage.UsageCount {
	var out []storage.UsageCount
	hour := time.Unix(c.hour.Load()*3600, 0).UTC()
	for o := range outcomes {
		if n := c.n[o].Swap(0); n > 0 {
			out = append(out, storage.UsageCount{
				Account: c.account, Environment: c.environment, KeyID: c.keyID,
				Hour: hour, Outcome: outcomes[o], Count: int64(n),
			})
		}
	}
	return out
}

// shardOf picks a key id's shard from its last byte: key ids are random.
func shardOf(keyID string) int {
	if keyID == "" {
		return 0
	}
	return int(keyID[len(keyID)-1]) % shards
}

// Take returns every count since the last Take and forgets them; keys with
// no request since the last Take are forgotten too.
func (t *Tally) Take() []storage.UsageCount {
	t.mu.Lock()
	out := t.pending
	t.pending = nil
	t.mu.Unlock()
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for id, c := range s.counters {
			counts := c.take(t.outcomes)
			if len(counts) == 0 { // idle: forgotten, and read once more after
				delete(s.counters, id)
				c.listed.Store(false)
				counts = c.take(t.outcomes)
			}
			out = append(out, counts...)
		}
		s.mu.Unlock()
	}
	return out
}

// Restore puts back counts that could not be written, to be taken again.
func (t *Tally) Restore(counts []storage.UsageCount) { t.keep(counts) }

// keep adds counts to the pending ones, up to maxPending.
func (t *Tally) keep(counts []storage.UsageCount) {
	t.mu.Lock()
	defer t.mu.Unlock()
	room := max(0, maxPending-len(t.pending))
	if len(counts) > room {
		for _, c := range counts[room:] {
			t.dropped.Add(uint64(c.Count))
		}
		counts = counts[:room]
	}
	t.pending = append(t.pending, counts...)
}

// Dropped returns how many requests were not counted because a bound was
// reached.
func (t *Tally) Dropped() uint64 { return t.dropped.Load() }
