package middleware

import (
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
// can spend an id's budget. To keep that from locking the real key out, the
// throttle lets through, whatever the budget, every presented key that
// verified in this process (see verified). Only a successful verification
// adds to that set, so junk cannot flush it; it is a fixed-size LRU of its
// own, apart from the table of ids that junk fills. A key that has not yet
// verified in this process since its id's budget was spent waits for the
// window to end: the residual risk is documented on
// Options.ThrottleFailures.
type throttle struct {
	budget   int
	window   time.Duration
	verified *verifiedKeys

	mu  sync.Mutex
	ids *simplelru.LRU[string, *throttleState]
}

type throttleState struct {
	start    time.Time // start of the current window
	failures int       // failed verifications in the window
	pending  int       // verifications in flight
}

func newThrottle(budget int, window time.Duration, verified *verifiedKeys) *throttle {
	ids, _ := simplelru.NewLRU[string, *throttleState](throttleSize, nil) // size > 0: no error
	return &throttle{budget: budget, window: window, verified: verified, ids: ids}
}

// acquire reserves a verification of the presented key k of key id at now.
// It fails, with the time left in the window, once failures and in-flight
// verifications reach the budget, unless k verified in this process before.
// Every successful acquire must be followed by a release.
func (t *throttle) acquire(id string, k cacheKey, now time.Time) (ok bool, retryAfter time.Duration) {
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
	if s.failures+s.pending >= t.budget && !t.verified.contains(k) {
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
// this process, each with the stored hash it verified against. Only a
// successful argon2 check adds an entry, so nothing an attacker sends
// without a real key can add to it or flush it. The throttle lets these
// keys through; a verification whose record still holds the same hash needs
// no argon2 run (the outcome is known).
type verifiedKeys struct {
	mu   sync.Mutex
	keys *simplelru.LRU[cacheKey, string]
}

// newVerifiedKeys returns a set of size keys (DefaultCacheSize if size is
// not positive, so that the throttle keeps recognising good keys when
// caching is off).
func newVerifiedKeys(size int) *verifiedKeys {
	if size <= 0 {
		size = DefaultCacheSize
	}
	keys, _ := simplelru.NewLRU[cacheKey, string](size, nil) // size > 0: no error
	return &verifiedKeys{keys: keys}
}

// add remembers that k verified against hash.
func (s *verifiedKeys) add(k cacheKey, hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.Add(k, hash)
}

// contains reports whether k verified in this process.
func (s *verifiedKeys) contains(k cacheKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys.Contains(k)
}

// matches reports whether k verified against exactly hash before.
func (s *verifiedKeys) matches(k cacheKey, hash string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.keys.Get(k)
	return ok && h == hash
}
