package middleware

import (
	"crypto/sha256"
	"fmt"
	"maps"
	mathrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/keystile/keystile/apikey"
)

// cacheKey identifies a presented key string without holding its secret:
// the key's public head as presented, "server-<id>_" or "client-<id>_",
// and the first 128 bits of SHA-256 of the rest, the secret and the
// checksum. The cache never holds a presented key. Two strings have the
// same cacheKey only if their heads are equal and the rest of one is a
// second preimage of the other's truncated digest: 2^128 tries for whoever
// wants to pass for a key they hold the cacheKey of (a core dump), and not
// one offline test for anyone else, who does not have it.
//
// Why the rest alone is hashed: it is 49 bytes, and SHA-256 processes a
// message of up to 55 bytes in one 64-byte block, where the whole key (69
// bytes) takes two: 116 ns against 158 in one set of interleaved runs
// (BenchmarkCacheKey, BenchmarkCacheKeyWhole), on every request.
//
// Why no key: an earlier version used SHA-256(secret || key) under a
// per-process random secret, so that cache keys meant nothing outside the
// process. With 256 random bits in every key's secret that adds nothing
// against a forger, and a secret prefix of any length pushes the input
// past one block. Where an unpredictable position matters (the table of
// verified keys, whose slots an attacker must not aim at), that table
// hashes the cacheKey under its own secret, on cache misses only.
//
// Why not HMAC-SHA256 or AES CBC-MAC (BenchmarkCacheKeyHMAC,
// BenchmarkCacheKeyCBCMAC): HMAC costs two blocks more. CBC-MAC is faster
// but a PRF only while its key is secret: a hit skips the key's format and
// checksum checks (see Validator.resolve), so whoever read the process's
// memory once could make up a string with the MAC of any cached key and be
// served as that key. With SHA-256 that would be a second preimage.
type cacheKey struct {
	sum  [16]byte         // SHA-256(key[headLength:]), truncated
	head [headLength]byte // key[:headLength], public
}

// headLength is the length of a key's public head, its displayable prefix
// and the underscore before the secret.
const headLength = apikey.PrefixLength + 1

// cacheKeyOf returns the cache key of key, which must be apikey.KeyLength
// bytes long (the callers check). It allocates nothing.
func cacheKeyOf(key string) cacheKey {
	if len(key) != apikey.KeyLength {
		panic("middleware: cache key of a string of the wrong length")
	}
	var k cacheKey
	var rest [apikey.KeyLength - headLength]byte // on the stack: a []byte(key[...]) conversion would allocate
	copy(rest[:], key[headLength:])
	sum := sha256.Sum256(rest[:])
	copy(k.sum[:], sum[:])
	copy(k.head[:], key)
	return k
}

// entry is the cached outcome of verifying one presented key: a valid key
// (ident set) or a failure (fail set). An entry is immutable once cached,
// apart from its atomics.
type entry struct {
	keyID     string
	ident     *Identity // the key's identity, for a valid key
	revokedAt time.Time // of a valid key (its expiry is in ident)
	fail      error     // the refusal, for a failure
	until     time.Time // the entry is not served from this time on
	renewAt   time.Time // of a valid key: from this time on, a request queues its renewal

	// The stored hash that a valid key verified against (its fingerprint),
	// and whether it was outdated: once until has passed, a verification
	// of the same key whose record still holds that hash needs no argon2.
	hashPrint uint64
	outdated  bool
	revision  int64 // the record's revision: the feed never applies an older one

	dead    atomic.Bool  // evicted by Invalidate, the change feed or a purge
	queued  atomic.Bool  // its key id was queued for renewal (renew.go)
	used    atomic.Int64 // last use, Unix seconds
	flushed atomic.Int64 // last use written to the store, Unix seconds

	// openAt is the generation of closed environments (settingsState.
	// closedGen) at which the key's environment was last seen open; see
	// checkClosed.
	openAt atomic.Uint64
}

// newValidEntry returns the entry of a key that v verified against the
// stored hash with fingerprint hashPrint, from rec, read at now.
func newValidEntry(v *Validator, k cacheKey, rec apikey.Record, hashPrint uint64, outdated bool, now time.Time) *entry {
	id := &Identity{
		issuer:      v,
		presented:   k,
		KeyID:       rec.ID,
		Prefix:      rec.Prefix(),
		Type:        rec.Type,
		Account:     rec.Account,
		Environment: rec.Environment,
		Name:        rec.Name,
		Owner:       rec.Owner,
		Metadata:    maps.Clone(rec.Metadata),
		Scopes:      append([]string(nil), rec.Scopes...),
		ExpiresAt:   rec.ExpiresAt,
		Expiring:    !rec.RotatedAt.IsZero(),
	}
	if !rec.ExpiresAt.IsZero() {
		id.expiresHeader = rec.ExpiresAt.UTC().Format(time.RFC3339)
	}
	renewAt, until := v.cache.lifetime(now)
	return &entry{
		keyID:     rec.ID,
		ident:     id,
		revokedAt: rec.RevokedAt,
		until:     until,
		renewAt:   renewAt,

		hashPrint: hashPrint,
		outdated:  outdated,
		revision:  rec.Revision,
	}
}

// status returns the status at now of the key of a valid entry. An entry
// keeps only the fields of its record that the status depends on, rather
// than the record (BenchmarkManyKeys, heap-B/key); rotation, which only
// tells Active from Expiring, is in ident.Expiring.
//
// A key with no expiry that is not revoked is active whatever the time:
// the usual case skips building a record (BenchmarkCachedKeyCheck).
func (e *entry) status(now time.Time) apikey.Status {
	if e.ident.ExpiresAt.IsZero() && e.revokedAt.IsZero() {
		return apikey.Active
	}
	return apikey.Record{ExpiresAt: e.ident.ExpiresAt, RevokedAt: e.revokedAt}.Status(now)
}

// touch records a use of e at now: in the entry, at most one atomic write
// per second, or straight into pending when caching is off. The request
// that makes that write also moves e's key to the front of the LRU, which
// get leaves as it is.
func (c *cache) touch(e *entry, now time.Time) {
	s := now.Unix()
	if c.valid == nil {
		c.mu.Lock()
		c.pending[e.keyID] = max(c.pending[e.keyID], s)
		c.mu.Unlock()
		return
	}
	for {
		used := e.used.Load()
		if used >= s {
			return
		}
		if e.used.CompareAndSwap(used, s) {
			c.valid.Get(e.ident.presented)
			return
		}
	}
}

// cache is the validation cache: an LRU of verified keys and an LRU of
// failures, each entry with its own deadline on the Validator's clock.
//
// The LRUs are golang-lru's fixed-size Cache rather than its expirable LRU:
// expirable.NewLRU (v2.0.7) starts a cleanup goroutine that can never be
// stopped, and reads the wall clock rather than Options.Now. Entries here
// carry their deadline. A failure is dropped when a lookup finds it stale.
// A verified key whose deadline has passed, or that was evicted, stays, no
// longer served, until the verification that the next request starts
// replaces it, or the LRU pushes it out: the entry remembers which stored
// hash the key verified against, so that this verification is one store
// read, without argon2 (verifiedBefore). A cache that holds every key in
// use therefore runs argon2 once per key per process while its hash is
// unchanged (BenchmarkManyKeys).
type cache struct {
	valid      *lru.Cache[cacheKey, *entry] // nil when caching is off
	failed     *lru.Cache[cacheKey, *entry] // nil when failures are not cached
	ttl        time.Duration
	failureTTL time.Duration

	mu sync.Mutex
	// seq counts evictions. A verification notes seq when it starts (a
	// start token) and does not cache its (possibly stale) result if its key
	// id was evicted since, or the whole cache was purged since (floor).
	seq       uint64
	evictedAt map[string]uint64 // key id -> seq of its last eviction
	floor     uint64            // tokens below floor are stale
	// index finds the valid entries of a key id, for eviction: one, unless
	// a custom Hasher accepts more than one string for a stored hash.
	index map[string][]*entry
	// pending holds the last uses of evicted entries not yet written.
	pending map[string]int64
}

func newCache(cfg config) (*cache, error) {
	c := &cache{
		ttl:        cfg.CacheTTL,
		failureTTL: cfg.FailureTTL,
		index:      map[string][]*entry{},
		evictedAt:  map[string]uint64{},
		pending:    map[string]int64{},
	}
	var err error
	if cfg.cacheEnabled {
		if c.valid, err = lru.NewWithEvict(cfg.CacheSize, c.onEvict); err != nil {
			return nil, fmt.Errorf("middleware: %w", err)
		}
	}
	if cfg.failureEnabled {
		if c.failed, err = lru.New[cacheKey, *entry](cfg.CacheSize); err != nil {
			return nil, fmt.Errorf("middleware: %w", err)
		}
	}
	return c, nil
}

// lifetime returns when a verified key's entry made at now from a record
// read at now is due for renewal, and when it ends: renewal is due after
// CacheTTL minus up to a fifth of it, at random, and the entry ends after
// CacheTTL. Keys verified together (a burst of new clients, a restart, a
// full re-validation) would otherwise all be renewed together, every
// CacheTTL, for as long as they are in use: with 10,000 keys that was a
// burst of 10,000 store reads each minute that stalled a load test. A
// request served between the two queues the key for renewal (renew.go);
// a request after the end re-validates it.
func (c *cache) lifetime(now time.Time) (renewAt, until time.Time) {
	until = now.Add(c.ttl)
	return until.Add(-1 - mathrand.N(c.ttl/5+1)), until // never until itself: always a moment to renew
}

// get returns the live entry for k, or nil. It leaves a verified key that
// is past its deadline or evicted (dead) in place (see cache and evict).
// It finds verified keys without reordering the LRU (Peek: a read lock,
// and no writes to the LRU's list, whose elements are cold in memory when
// many keys are in use); touch promotes the keys that requests use, once a
// second. The LRU's order is therefore that of each key's first use in its
// latest second (of Options.Now): a key used again within the second of a
// newer key's first use can be pushed out before it, which takes a cache
// that fills up within a second.
func (c *cache) get(k cacheKey, now time.Time) *entry {
	if c.valid != nil {
		if e, ok := c.valid.Peek(k); ok && !e.dead.Load() && now.Before(e.until) {
			return e
		}
	}
	if c.failed != nil {
		if e, ok := c.failed.Get(k); ok {
			if !e.dead.Load() && now.Before(e.until) {
				return e
			}
			c.failed.Remove(k)
		}
	}
	return nil
}

// verifiedBefore reports whether the presented key k verified in this
// process against the stored hash with fingerprint hashPrint, according to
// its entry in the cache (live, past its deadline, or even evicted: what
// it says about k and that hash stays true), and whether that hash was
// outdated then.
func (c *cache) verifiedBefore(k cacheKey, hashPrint uint64) (match, outdated bool) {
	if c.valid == nil {
		return false, false
	}
	e, ok := c.valid.Peek(k)
	if !ok || e.hashPrint != hashPrint {
		return false, false
	}
	return true, e.outdated
}

// holds reports whether the cache holds an entry of k as a verified key,
// live or not: k verified in this process.
func (c *cache) holds(k cacheKey) bool {
	return c.valid != nil && c.valid.Contains(k)
}

// sizes returns how many verified keys and failures the cache holds.
func (c *cache) sizes() (valid, failed int) {
	if c.valid != nil {
		valid = c.valid.Len()
	}
	if c.failed != nil {
		failed = c.failed.Len()
	}
	return valid, failed
}

// maxEvictedIDs bounds evictedAt. When it is full, the cache forgets the
// ids evicted before the last maxEvictedIDs/2 evictions, and treats every
// verification that started before those as stale, which costs at most one
// more verification each. Recent tokens stay valid: a renewal of 1,000
// keys, which evicts each of them, never makes its own later keys stale.
const maxEvictedIDs = 10_000

// startToken returns the token a verification passes to addValid or
// addFailed when it ends.
func (c *cache) startToken() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// generation returns the sequence number of the last eviction that applies
// to keyID: its own, or the last purge (or forgetting of evicted ids). A
// verification that starts later reads data at least as new as it.
func (c *cache) generation(keyID string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(c.floor, c.evictedAt[keyID])
}

// stale reports whether a verification of keyID that started with token
// may have read data older than an eviction (see staleLocked).
func (c *cache) stale(keyID string, token uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.staleLocked(keyID, token)
}

// staleLocked reports whether a verification of keyID that started with
// token may have read data older than an eviction; c.mu is held. Only
// evictions of keyID itself (or a purge) count, so that changes to other
// keys never stop results from being cached.
func (c *cache) staleLocked(keyID string, token uint64) bool {
	return token < c.floor || c.evictedAt[keyID] > token
}

// addValid caches a verified key unless it went stale (see staleLocked).
func (c *cache) addValid(k cacheKey, e *entry, token uint64) {
	if c.valid == nil {
		return
	}
	c.mu.Lock()
	if c.staleLocked(e.keyID, token) {
		c.mu.Unlock()
		return
	}
	entries := c.index[e.keyID]
	if i := slices.IndexFunc(entries, func(old *entry) bool { return old.ident.presented == k }); i >= 0 {
		// Replaced below, without onEvict. An entry that leaves the index
		// is never served again: no eviction could reach it.
		entries[i].dead.Store(true)
		c.keepUse(entries[i])
		entries[i] = e
	} else {
		c.index[e.keyID] = append(entries, e)
	}
	c.mu.Unlock()
	// Outside c.mu: Add may evict, and onEvict takes c.mu. An eviction that
	// runs in between marks e dead, so it is never served.
	c.valid.Add(k, e)
}

// addFailed caches a failure unless it went stale (see staleLocked).
func (c *cache) addFailed(k cacheKey, e *entry, token uint64) {
	if c.failed == nil {
		return
	}
	c.mu.Lock()
	stale := c.staleLocked(e.keyID, token)
	c.mu.Unlock()
	if !stale {
		c.failed.Add(k, e)
	}
}

// evict ends every cached entry of a key id at once: they are marked dead,
// never served again, and left in the LRU until a verification of the
// same key replaces them or the LRU pushes them out, so that the
// verification after a change that kept the key's hash (scopes, grace)
// needs no argon2 (see verifiedBefore).
func (c *cache) evict(keyID string) {
	c.mu.Lock()
	c.evictLocked(keyID)
	c.mu.Unlock()
}

// evictLocked is evict with c.mu held.
func (c *cache) evictLocked(keyID string) {
	c.seq++
	if len(c.evictedAt) >= maxEvictedIDs {
		cut := c.seq - maxEvictedIDs/2
		maps.DeleteFunc(c.evictedAt, func(_ string, seq uint64) bool { return seq <= cut })
		c.floor = max(c.floor, cut)
	}
	c.evictedAt[keyID] = c.seq
	for _, e := range c.index[keyID] {
		e.dead.Store(true)
		c.keepUse(e)
	}
	delete(c.index, keyID)
}

// update replaces the cached entries of a key id, in one step, with the
// entries remake builds from them (nil: none), from the key's record at
// revision rev as read after token. Verifications in flight are discarded
// as after evict, unless every entry was made from revision rev, and is
// remade: then nothing they could have read is older (a renewal of an
// unchanged key), and counting it as an eviction would, with many keys,
// make slow verifications of other keys stale (see maxEvictedIDs). If the
// key id was evicted after token, what was read may be older than that
// change: the entries are only evicted.
func (c *cache) update(keyID string, token uint64, rev int64, remake func(old *entry) *entry) {
	if c.valid == nil {
		c.evict(keyID) // verifications in flight must still end
		return
	}
	c.mu.Lock()
	stale := c.staleLocked(keyID, token)
	old := c.index[keyID]
	var made []*entry
	if !stale {
		for _, e := range old {
			if e := remake(e); e != nil {
				made = append(made, e)
			}
		}
	}
	unchanged := len(made) == len(old) && len(old) > 0 && !slices.ContainsFunc(old, func(e *entry) bool { return e.revision != rev })
	if unchanged {
		for _, e := range old { // they leave the index: never served again
			e.dead.Store(true)
			c.keepUse(e)
		}
	} else {
		c.evictLocked(keyID)
	}
	if len(made) > 0 {
		c.index[keyID] = slices.Clone(made)
	}
	c.mu.Unlock()
	// Outside c.mu, as in addValid: an eviction in between marks the new
	// entries dead, since they are in the index.
	for _, e := range made {
		c.valid.Add(e.ident.presented, e)
	}
}

// purge drops every entry, valid or failed.
func (c *cache) purge() {
	c.mu.Lock()
	c.seq++
	c.floor = c.seq
	clear(c.evictedAt)
	for _, entries := range c.index {
		for _, e := range entries {
			e.dead.Store(true)
			c.keepUse(e)
		}
	}
	clear(c.index)
	c.mu.Unlock()
	if c.valid != nil {
		c.valid.Purge()
	}
	if c.failed != nil {
		c.failed.Purge()
	}
}

// onEvict keeps the index and the unwritten last use of an entry that
// leaves the valid LRU.
func (c *cache) onEvict(_ cacheKey, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries := c.index[e.keyID]
	if i := slices.Index(entries, e); i >= 0 {
		if len(entries) == 1 {
			delete(c.index, e.keyID)
		} else {
			c.index[e.keyID] = slices.Delete(entries, i, i+1)
		}
	}
	c.keepUse(e)
}

// keepUse moves an entry's unwritten last use to pending; c.mu is held.
func (c *cache) keepUse(e *entry) {
	if u := e.used.Load(); u > e.flushed.Load() {
		e.flushed.Store(u)
		c.pending[e.keyID] = max(c.pending[e.keyID], u)
	}
}

// takeUsed returns the last uses not yet written, and marks them written.
func (c *cache) takeUsed() map[string]time.Time {
	out := map[string]time.Time{}
	if c.valid != nil {
		for _, e := range c.valid.Values() {
			if u := e.used.Load(); u > e.flushed.Load() {
				e.flushed.Store(u)
				out[e.keyID] = laterUnix(out[e.keyID], u)
			}
		}
	}
	c.mu.Lock()
	for id, u := range c.pending {
		out[id] = laterUnix(out[id], u)
	}
	clear(c.pending)
	c.mu.Unlock()
	return out
}

// restoreUsed puts back last uses that could not be written.
func (c *cache) restoreUsed(used map[string]time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, t := range used {
		c.pending[id] = max(c.pending[id], t.Unix())
	}
}

func laterUnix(t time.Time, u int64) time.Time {
	if t.IsZero() || u > t.Unix() {
		return time.Unix(u, 0).UTC()
	}
	return t
}
