// Package keycache is the validation cache of the middleware (Cache) and
// its memory of verified keys (Verified), both safe for concurrent use.
package keycache

import (
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/keystile/keystile/apikey"
)

const headLength = apikey.PrefixLength + 1 // a key's public head: its prefix and "_"

// Key identifies a presented key string without holding its secret.
type Key struct {
	sum  [16]byte         // the first 128 bits of SHA-256 of the rest
	head [headLength]byte // as presented
}

// KeyOf returns the Key of key, which must be apikey.KeyLength bytes long
// (it panics otherwise). It allocates nothing.
func KeyOf(key string) Key {
	if len(key) != apikey.KeyLength {
		panic("keycache: key of a string of the wrong length")
	}
	var k Key
	var rest [apikey.KeyLength - headLength]byte // a []byte(key[...]) conversion would allocate
	copy(rest[:], key[headLength:])
	sum := sha256.Sum256(rest[:])
	copy(k.sum[:], sum[:])
	copy(k.head[:], key)
	return k
}

// Shard returns a number in [0, 16) that spreads keys evenly.
func (k Key) Shard() int { return int(k.sum[0] & 15) }

// String returns the Key's bytes, for use as a map key. It holds no secret.
func (k Key) String() string { return string(k.sum[:]) + string(k.head[:]) }

// Entry is the cached outcome of verifying one presented key: a valid key
// or a failure (Fail set). Its exported fields never change once cached.
// The fields that Get and a cached request read come first, so that they
// span two cache lines (docs/benchmarks.md, Memory layout).
type Entry[V any] struct {
	Value      V            // of a valid key
	Fail       error        // the refusal, for a failure
	Until      time.Time    // end of its lifetime; a valid entry also lives until SetFresh's deadline
	dead       atomic.Bool  // evicted: never served again
	slot       int32        // of an entry noted in the current use epoch: its index in Cache.noted (guarded by usedMu)
	touched    atomic.Int64 // last use, Unix seconds
	RevokedAt  time.Time    // of a valid key
	DisabledAt time.Time    // of a valid key; zero while it is enabled
	Key        Key
	bucket     uint8 // of a failure: its key id's element of Cache.evictions (in Key's padding)
	KeyID      string
	Revision   int64         // of the record it was made from
	checked    atomic.Uint64 // of a failure: a token after which no eviction of KeyID is known
	noted      atomic.Uint64 // of a valid entry: the use epoch in which Touch last noted it
}

const maxEvictedIDs = 10_000 // key ids whose last eviction is kept; beyond, older tokens are stale

// evictionBuckets is the number of elements of Cache.evictions: key ids
// share one at random, so that a failure is checked under the lock only
// after an eviction of a key id of its bucket.
const evictionBuckets = 256

// Cache holds verified keys and failures in two fixed-size LRUs, never a
// verification read before an eviction of its key id, and last uses.
//
// Last uses are kept to the second (Touch). A cached entry is noted for
// TakeUsed, and its recency in the LRU refreshed, at its first use in a
// use epoch: a last-used period (from one TakeUsed to the next), cut short
// when more entries than the cache holds are noted within it. Later uses
// in the epoch only store the entry's second. An entry that leaves the
// cache leaves the noted entries too, its last use kept by key id, so
// that the cache never keeps the memory of more entries than it holds.
type Cache[V any] struct {
	valid, failed     *lru.Cache[Key, *Entry[V]]     // of one entry, never added to, when disabled
	enabled, failures bool                           // valid, failed are added to
	fresh             atomic.Int64                   // Unix nanoseconds: valid entries are served before it
	mu                sync.Mutex                     // guards seq to index; never held while calling into the LRUs
	seq               uint64                         // evictions so far; a token is a value of seq
	evictedAt         map[string]uint64              // key id -> seq of its last eviction
	floor             uint64                         // tokens below floor are stale
	index             map[string][]*Entry[V]         // key id -> its valid entries
	evictions         [evictionBuckets]atomic.Uint64 // bucket of key ids -> seq of the last eviction of one of them
	seed              maphash.Seed                   // of buckets
	usedMu            sync.Mutex                     // guards used and noted; epoch is stored under it
	used              map[string]int64               // key id -> last use, Unix seconds, of uses not in noted (restored, uncached, folded)
	noted             []*Entry[V]                    // cached entries used in this epoch, each once
	maxNoted          int                            // the size of valid; noted beyond it is folded into used
	epoch             atomic.Uint64                  // the use epoch, from 1; advanced by TakeUsed and folds
}

// New returns a cache of size valid keys and, if failures, as many
// failures. size 0 is an error; a negative size disables the cache.
func New[V any](size int, failures bool) (*Cache[V], error) {
	c := &Cache[V]{enabled: size > 0, failures: size > 0 && failures, seed: maphash.MakeSeed(),
		index: map[string][]*Entry[V]{}, evictedAt: map[string]uint64{}, used: map[string]int64{}}
	if size < 0 {
		size = 1
	}
	c.maxNoted = size
	c.epoch.Store(1) // an entry's noted starts at 0: not noted
	var err error
	if c.valid, err = lru.NewWithEvict(size, c.onEvict); err != nil {
		return nil, fmt.Errorf("keycache: %w", err)
	}
	c.failed, _ = lru.New[Key, *Entry[V]](size) // size > 0: no error
	return c, nil
}

// Enabled reports whether the cache holds verified keys.
func (c *Cache[V]) Enabled() bool { return c.enabled }

// SetFresh lets valid entries be served before t, whatever their own Until.
func (c *Cache[V]) SetFresh(t time.Time) { c.fresh.Store(t.UnixNano()) }

// Get returns the entry of k that may be served at now, or nil. A failure
// is not served after an eviction of its key id (Evict, Update, Purge):
// the key may have come into being since (an imported key, say).
func (c *Cache[V]) Get(k Key, now time.Time) *Entry[V] {
	if e, ok := c.valid.Peek(k); ok && !e.dead.Load() && (now.Before(e.Until) || now.UnixNano() < c.fresh.Load()) {
		return e
	}
	if e, ok := c.failed.Get(k); ok {
		if !e.dead.Load() && now.Before(e.Until) && c.current(e) {
			return e
		}
		c.failed.Remove(k)
	}
	return nil
}

// current reports whether no eviction of the failure e's key id came after
// the token it was read after. Without an eviction in its bucket since it
// was last checked, it reads one atomic; else it looks under the lock and,
// if current, notes the check.
func (c *Cache[V]) current(e *Entry[V]) bool {
	checked := e.checked.Load()
	if c.evictions[e.bucket].Load() <= checked {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.staleLocked(e.KeyID, checked) {
		return false
	}
	e.checked.Store(c.seq) // c.seq only grows, and is stored under c.mu
	return true
}

// bucketOf returns the element of c.evictions of a key id.
func (c *Cache[V]) bucketOf(keyID string) uint8 {
	return uint8(maphash.String(c.seed, keyID))
}

// Touch records a use of the valid entry e at now. It keeps e's last use
// to the second, storing it at most once a second. The first Touch of a
// cached entry in a use epoch (see Cache) also refreshes the entry's
// recency in the LRU and notes the entry for TakeUsed, which reads its
// last second; so the LRU evicts by each entry's first use in its latest
// epoch. An entry not in the cache (a disabled cache, a verification gone
// stale, an entry replaced since) is noted by key id each second it is
// used.
//
// A Touch racing TakeUsed is never lost: Touch stores e's second before it
// reads the epoch, and TakeUsed (or a fold) advances the epoch before it
// reads the seconds of the entries it took; Go's atomics are sequentially
// consistent. e is noted, under usedMu, together with its epoch's list. A
// Touch that reads the epoch in which e was noted therefore read it before
// the advance, and TakeUsed reads its second; a Touch that reads the
// advanced epoch notes e in the new one.
func (c *Cache[V]) Touch(e *Entry[V], now time.Time) {
	s := now.Unix()
	if t := e.touched.Load(); t >= s || !e.touched.CompareAndSwap(t, s) {
		return // touched within this second, or by a concurrent Touch
	}
	if e.noted.Load() == c.epoch.Load() && !e.dead.Load() {
		return // noted in this epoch, and not yet dead (see unnoteLocked): TakeUsed reads e.touched
	}
	if !c.enabled || e.dead.Load() {
		c.note(e.KeyID, s)
		return
	}
	if cached, ok := c.valid.Get(e.Key); !ok || cached != e {
		c.note(e.KeyID, s) // only cached entries are listed, so that noted stays within the cache size
		return
	}
	c.usedMu.Lock()
	switch epoch := c.epoch.Load(); {
	case e.dead.Load(): // ended: unnoteLocked ran, or will find e unlisted; note it by key id
		c.used[e.KeyID] = max(c.used[e.KeyID], s)
	case e.noted.Load() != epoch: // else a concurrent Touch noted e
		e.noted.Store(epoch)
		e.slot = int32(len(c.noted))
		c.noted = append(c.noted, e)
		if len(c.noted) > c.maxNoted { // more entries than the cache holds: it churned
			c.foldLocked()
		}
	}
	c.usedMu.Unlock()
}

// unnoteLocked drops e, which has just died, from the entries noted in
// this use epoch, keeping its last use by key id. The caller set e.dead
// before and holds c.mu. A Touch of e that saw e alive stored its second
// before, so it is read here; a later Touch sees e dead and notes by key
// id.
func (c *Cache[V]) unnoteLocked(e *Entry[V]) {
	c.usedMu.Lock()
	if int(e.slot) < len(c.noted) && c.noted[e.slot] == e { // listed in this epoch: an earlier epoch's list is gone
		c.used[e.KeyID] = max(c.used[e.KeyID], e.touched.Load())
		c.noted[e.slot] = nil
	}
	c.usedMu.Unlock()
}

// foldLocked moves the last uses of the noted entries into used and starts
// a use epoch, so that noted holds at most maxNoted entries also when uses
// churn through the cache within a period or nothing calls TakeUsed.
func (c *Cache[V]) foldLocked() {
	lastUses(c.used, c.endEpochLocked())
}

// endEpochLocked starts a use epoch and returns the entries noted in the
// one it ends. Their seconds are to be read after it returns: see Touch.
func (c *Cache[V]) endEpochLocked() []*Entry[V] {
	noted := c.noted
	c.noted = nil
	c.epoch.Add(1)
	return noted
}

// lastUses adds the last second of use of entries to used, by key id.
func lastUses[V any](used map[string]int64, entries []*Entry[V]) {
	for _, e := range entries {
		if e != nil { // nil: dropped by unnoteLocked
			used[e.KeyID] = max(used[e.KeyID], e.touched.Load())
		}
	}
}

// Sizes returns how many verified keys and failures the cache holds.
func (c *Cache[V]) Sizes() (valid, failed int) { return c.valid.Len(), c.failed.Len() }

// Token returns the token that a verification notes before it reads.
func (c *Cache[V]) Token() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// Generation returns the last eviction that applies to keyID.
func (c *Cache[V]) Generation(keyID string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(c.floor, c.evictedAt[keyID])
}

// Stale reports whether keyID was evicted after token.
func (c *Cache[V]) Stale(keyID string, token uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.staleLocked(keyID, token)
}

func (c *Cache[V]) staleLocked(keyID string, token uint64) bool {
	return token < c.floor || c.evictedAt[keyID] > token
}

// AddValid caches the valid entry e unless it went stale since token.
func (c *Cache[V]) AddValid(e *Entry[V], token uint64) {
	if !c.enabled {
		return
	}
	c.mu.Lock()
	if c.staleLocked(e.KeyID, token) {
		c.mu.Unlock()
		return
	}
	entries := c.index[e.KeyID]
	if i := slices.IndexFunc(entries, func(old *Entry[V]) bool { return old.Key == e.Key }); i >= 0 {
		c.endLocked(entries[i]) // replaced below, without onEvict
		entries[i] = e
	} else {
		c.index[e.KeyID] = append(entries, e)
	}
	c.mu.Unlock()
	c.valid.Add(e.Key, e) // an eviction in between marks e dead: e is in the index
}

// AddFailed caches the failure e unless it went stale since token. Get
// serves it until an eviction of its key id.
func (c *Cache[V]) AddFailed(e *Entry[V], token uint64) {
	if c.failures && !c.Stale(e.KeyID, token) {
		e.bucket = c.bucketOf(e.KeyID)
		e.checked.Store(token)
		c.failed.Add(e.Key, e) // an eviction in between is after token: Get drops e
	}
}

// Evict ends every entry of a key id, failures included, and makes its
// verifications in flight stale.
func (c *Cache[V]) Evict(keyID string) {
	c.mu.Lock()
	c.evictLocked(keyID)
	c.mu.Unlock()
}

func (c *Cache[V]) evictLocked(keyID string) {
	c.seq++
	if len(c.evictedAt) >= maxEvictedIDs {
		cut := c.seq - maxEvictedIDs/2
		maps.DeleteFunc(c.evictedAt, func(_ string, seq uint64) bool { return seq <= cut })
		c.floor = max(c.floor, cut)
	}
	c.evictedAt[keyID] = c.seq
	c.evictions[c.bucketOf(keyID)].Store(c.seq)
	c.killLocked(c.index[keyID])
	delete(c.index, keyID)
}

// killLocked ends entries (endLocked).
func (c *Cache[V]) killLocked(entries []*Entry[V]) {
	for _, e := range entries {
		c.endLocked(e)
	}
}

// endLocked marks e dead and drops it from the noted entries.
func (c *Cache[V]) endLocked(e *Entry[V]) {
	e.dead.Store(true)
	c.unnoteLocked(e)
}

// Update replaces the valid entries of a key id with those remake builds
// from them (nil drops one) from its record at revision rev, read after
// token. Unless every entry is remade at rev, it is also an eviction.
func (c *Cache[V]) Update(keyID string, token uint64, rev int64, remake func(old *Entry[V]) *Entry[V]) {
	c.mu.Lock() // a disabled cache has no entries: Update evicts
	old := c.index[keyID]
	var made []*Entry[V]
	if !c.staleLocked(keyID, token) {
		for _, e := range old {
			if e := remake(e); e != nil {
				made = append(made, e)
			}
		}
	}
	if len(made) == len(old) && len(old) > 0 && !slices.ContainsFunc(old, func(e *Entry[V]) bool { return e.Revision != rev }) {
		c.killLocked(old)
	} else {
		c.evictLocked(keyID)
	}
	if len(made) > 0 {
		c.index[keyID] = made
	}
	c.mu.Unlock()
	for _, e := range made { // outside c.mu, as in AddValid
		c.valid.Add(e.Key, e)
	}
}

// Purge drops every entry and makes every verification in flight stale.
func (c *Cache[V]) Purge() {
	c.mu.Lock()
	c.seq++
	c.floor = c.seq
	clear(c.evictedAt)
	for i := range c.evictions { // a failure added after the purge below is dropped by Get
		c.evictions[i].Store(c.seq)
	}
	for _, entries := range c.index {
		c.killLocked(entries)
	}
	clear(c.index)
	c.mu.Unlock()
	c.valid.Purge()
	c.failed.Purge()
}

// onEvict keeps the index in step with the valid LRU and ends e, which
// the LRU no longer holds.
func (c *Cache[V]) onEvict(_ Key, e *Entry[V]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(e)
	entries := c.index[e.KeyID]
	if i := slices.Index(entries, e); i >= 0 {
		if len(entries) == 1 {
			delete(c.index, e.KeyID)
		} else {
			c.index[e.KeyID] = slices.Delete(entries, i, i+1)
		}
	}
}

// note records a use of key id at Unix second s.
func (c *Cache[V]) note(id string, s int64) {
	c.usedMu.Lock()
	c.used[id] = max(c.used[id], s)
	c.usedMu.Unlock()
}

// TakeUsed returns, by key id, the last use to the second of the uses
// recorded (Touch, RestoreUsed) since the previous call, and starts a
// last-used period. A use racing it is in its result or the next one's.
func (c *Cache[V]) TakeUsed() map[string]time.Time {
	c.usedMu.Lock()
	ids, noted := c.used, c.endEpochLocked()
	c.used = map[string]int64{}
	c.usedMu.Unlock()
	lastUses(ids, noted) // outside usedMu, which each entry's first Touch in the new epoch takes
	out := make(map[string]time.Time, len(ids))
	for id, s := range ids {
		out[id] = time.Unix(s, 0).UTC()
	}
	return out
}

// RestoreUsed puts back last uses that could not be written: the next
// TakeUsed returns each, unless a later use of its key id replaces it.
func (c *Cache[V]) RestoreUsed(used map[string]time.Time) {
	for id, t := range used {
		c.note(id, t.Unix())
	}
}
