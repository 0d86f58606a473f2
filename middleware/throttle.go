package middleware

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// throttleSize bounds the key ids whose failures are counted. Under a flood
// of more distinct ids the oldest counters are dropped: memory stays
// bounded, at the price of forgetting some failures.
const throttleSize = 10_000

// throttle limits verifications of key ids that keep failing: each key id
// has a budget of failed or in-flight verifications per fixed window. It is
// consulted only on cache misses, so a cached valid key is never throttled.
//
// Key ids are public (a publishable key's is in every web page), so anyone
// can spend an id's budget. To keep that from locking the real key out, a
// presented key that verified in this process before (it is in the
// validation cache, or in verifiedKeys) bypasses the throttle altogether
// (Validator.load): whatever the budget, and without a counter in ids, so
// that many keys re-validating cannot push the counters of ids under
// attack out of the table either. Only a successful verification adds to
// the cache's verified keys and to verifiedKeys, so junk cannot flush
// them. A key that has not yet verified in this process since its id's
// budget was spent waits for the window to end: the residual risk is
// documented on Options.ThrottleFailures.
type throttle struct {
	budget int
	window time.Duration

	mu  sync.Mutex
	ids *simplelru.LRU[string, *throttleState]
}

type throttleState struct {
	start    time.Time // start of the current window
	failures int       // failed verifications in the window
	pending  int       // verifications in flight
}

func newThrottle(budget int, window time.Duration) *throttle {
	ids, _ := simplelru.NewLRU[string, *throttleState](throttleSize, nil) // size > 0: no error
	return &throttle{budget: budget, window: window, ids: ids}
}

// acquire reserves a verification of key id at now. It fails, with the
// time left in the window, once failures and in-flight verifications reach
// the budget. Every successful acquire must be followed by a release.
func (t *throttle) acquire(id string, now time.Time) (ok bool, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, found := t.ids.Get(id)
	if !found {
		s = &throttleState{start: now}
		t.ids.Add(id, s)
	}
	if now.Sub(s.start) >= t.window {
		s.start, s.failures = now, 0
	}
	if s.failures+s.pending >= t.budget {
		return false, s.start.Add(t.window).Sub(now)
	}
	s.pending++
	return true, 0
}

// release ends a verification of key id: failed counts it against the
// budget; otherwise (verified, a storage error, a cancelled request) it just
// frees the slot.
func (t *throttle) release(id string, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, found := t.ids.Peek(id)
	if !found {
		return
	}
	if s.pending > 0 {
		s.pending--
	}
	if failed {
		s.failures++
	}
}

// verifiedKeys remembers the presented keys (by cache key) that verified in
// this process, each with a fingerprint of the stored hash it verified
// against and whether that hash was outdated. Only a successful argon2
// check adds an entry, so nothing an attacker sends without real keys can
// add to it. The throttle lets these keys through; a verification whose
// record still holds the same hash needs no argon2 run (the outcome is
// known).
//
// It is a fixed-size, direct-mapped table rather than an LRU: a new entry
// replaces whatever sat in its slot, and the slot is chosen by a keyed
// SHA-256 of the cache key under the table's own random secret. Real keys
// could flush an LRU in order (publishable keys are public, and a tenant
// may create keys), but here nobody can aim at a victim's slot: pushing
// one entry out takes, on average, as many distinct valid keys as the
// table has slots, each verified with argon2. (The cache key alone is no
// secret's hash: anyone holding a publishable key can compute it.)
type verifiedKeys struct {
	secret [16]byte // from crypto/rand: slot positions mean nothing outside the process
	mu     sync.Mutex
	slots  []verifiedSlot
	mask   uint64
}

type verifiedSlot struct {
	tag      [16]byte // of the cache key (verifiedRef)
	hash     uint64   // fingerprint of the stored hash that verified
	outdated bool     // that hash was weaker than the hasher's parameters
	used     bool     // false for an empty slot
}

// minVerifiedSlots is the smallest table: 65,536 slots of 32 bytes (2 MiB).
const minVerifiedSlots = 1 << 16

// newVerifiedKeys returns a table of at least four slots per cached key
// (cacheSize; DefaultCacheSize when caching is off), and at least
// minVerifiedSlots, rounded up to a power of two.
func newVerifiedKeys(cacheSize int) *verifiedKeys {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	n := minVerifiedSlots
	for n < 4*cacheSize && n < 1<<30 {
		n <<= 1
	}
	s := &verifiedKeys{slots: make([]verifiedSlot, n), mask: uint64(n - 1)}
	rand.Read(s.secret[:]) // never fails: it crashes the program rather than return an error
	return s
}

// verifiedRef is where a cache key sits in the table, and the tag that
// tells it from the other keys of its slot.
type verifiedRef struct {
	slot uint64
	tag  [16]byte
}

// ref returns k's place in the table: SHA-256(secret || k), one SHA-256
// block, whose first 8 bytes choose the slot and the next 16 are the tag.
// Two cache keys share a tag with probability 2^-128. It runs before s.mu
// is taken.
func (s *verifiedKeys) ref(k cacheKey) verifiedRef {
	var in [len(s.secret) + len(k.sum) + len(k.head)]byte
	n := copy(in[:], s.secret[:])
	n += copy(in[n:], k.sum[:])
	copy(in[n:], k.head[:])
	sum := sha256.Sum256(in[:])
	r := verifiedRef{slot: binary.LittleEndian.Uint64(sum[:8]) & s.mask}
	copy(r.tag[:], sum[8:])
	return r
}

// add remembers that k verified against the stored hash with fingerprint
// hashPrint.
func (s *verifiedKeys) add(k cacheKey, hashPrint uint64, outdated bool) {
	r := s.ref(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slots[r.slot] = verifiedSlot{tag: r.tag, hash: hashPrint, outdated: outdated, used: true}
}

// contains reports whether k verified in this process (and was not pushed
// out since).
func (s *verifiedKeys) contains(k cacheKey) bool {
	r := s.ref(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := s.slots[r.slot]
	return slot.used && slot.tag == r.tag
}

// matches reports whether k verified before against the stored hash with
// fingerprint hashPrint, and whether that hash was outdated then.
func (s *verifiedKeys) matches(k cacheKey, hashPrint uint64) (match, outdated bool) {
	r := s.ref(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := s.slots[r.slot]
	if !slot.used || slot.tag != r.tag || slot.hash != hashPrint {
		return false, false
	}
	return true, slot.outdated
}

// fingerprint returns 64 bits of SHA-256 of a stored hash.
func fingerprint(hash string) uint64 {
	sum := sha256.Sum256([]byte(hash))
	return binary.LittleEndian.Uint64(sum[:8])
}
