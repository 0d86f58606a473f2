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
// throttle remembers the cache key of the last presented key that verified
// for each id: that exact key is let through whatever the budget, so a
// valid key whose cache entry expired is verified again as usual. A key that
// has not yet verified in this process since the id's budget was spent
// waits for the window to end: the residual risk is documented on
// Options.ThrottleFailures.
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
	good     cacheKey  // the last presented key that verified
	hasGood  bool
}

func newThrottle(budget int, window time.Duration) *throttle {
	ids, _ := simplelru.NewLRU[string, *throttleState](throttleSize, nil) // size > 0: no error
	return &throttle{budget: budget, window: window, ids: ids}
}

// acquire reserves a verification of the presented key k of key id at now.
// It fails, with the time left in the window, once failures and in-flight
// verifications reach the budget, unless k is the id's last key that
// verified. Every successful acquire must be followed by a release.
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
	if s.failures+s.pending >= t.budget && !(s.hasGood && s.good == k) {
		return false, s.start.Add(t.window).Sub(now)
	}
	s.pending++
	return true, 0
}

// release ends a verification of the presented key k of key id: failed
// counts it against the budget, verified remembers k as the id's good key,
// neither (a storage error, a cancelled request) just frees the slot.
func (t *throttle) release(id string, k cacheKey, failed, verified bool) {
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
	if verified {
		s.good, s.hasGood = k, true
	}
}
