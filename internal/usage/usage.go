// Package usage counts the requests of each key per hour and outcome in
// memory, for the middleware to write in batches (storage.UsageRecorder).
package usage

import (
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
// each taking about 100 bytes plus 8 per outcome, and at most maxPending
// counts wait to be written.
type Tally struct {
	outcomes []string
	perShard int
	shards   [shards]shard
	dropped  atomic.Uint64

	mu      sync.Mutex // guards pending
	pending []storage.UsageCount
}

type shard struct {
	mu   sync.Mutex
	keys map[string]*counts
	_    [40]byte // one shard per cache line
}

// counts are one key's requests in one hour, by outcome.
type counts struct {
	account, environment string
	hour                 int64 // Unix hours
	n                    []uint64
	idle                 bool // nothing counted since the last Take
}

// New returns a Tally of the given outcomes (Add names one by its index)
// and at most maxKeys keys (at least shards).
func New(outcomes []string, maxKeys int) *Tally {
	t := &Tally{outcomes: outcomes, perShard: max(1, maxKeys/shards)}
	for i := range t.shards {
		t.shards[i].keys = map[string]*counts{}
	}
	return t
}

// Add counts one request of key keyID (of account and environment) with
// outcome o (an index into New's outcomes) at now. It allocates only for a
// key's first request since the last Take that found it idle.
func (t *Tally) Add(account, environment, keyID string, o int, now time.Time) {
	hour := now.Unix() / 3600
	s := &t.shards[shardOf(keyID)]
	s.mu.Lock()
	c := s.keys[keyID]
	switch {
	case c == nil:
		if len(s.keys) >= t.perShard {
			s.mu.Unlock()
			t.dropped.Add(1)
			return
		}
		c = &counts{account: account, environment: environment, hour: hour, n: make([]uint64, len(t.outcomes))}
		s.keys[keyID] = c
	case hour < c.hour:
		// A request that started before the key's latest hour (it ends
		// after a newer one began) is kept on its own: the key's counts
		// stay on the newer hour.
		s.mu.Unlock()
		t.keep([]storage.UsageCount{{Account: account, Environment: environment, KeyID: keyID,
			Hour: time.Unix(hour*3600, 0).UTC(), Outcome: t.outcomes[o], Count: 1}})
		return
	case hour > c.hour:
		t.keep(c.appendTo(nil, keyID, t.outcomes))
		clear(c.n)
		c.hour = hour
	}
	c.n[o]++
	c.idle = false
	s.mu.Unlock()
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
		for id, c := range s.keys {
			if c.idle {
				delete(s.keys, id)
				continue
			}
			out = c.appendTo(out, id, t.outcomes)
			clear(c.n)
			c.idle = true
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

// appendTo appends c's non-zero counts to out.
func (c *counts) appendTo(out []storage.UsageCount, keyID string, outcomes []string) []storage.UsageCount {
	hour := time.Unix(c.hour*3600, 0).UTC()
	for o, n := range c.n {
		if n > 0 {
			out = append(out, storage.UsageCount{
				Account: c.account, Environment: c.environment, KeyID: keyID,
				Hour: hour, Outcome: outcomes[o], Count: int64(n),
			})
		}
	}
	return out
}
