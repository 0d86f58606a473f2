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
// Key ids are public, so anyone can spend an id's budget: the verifier lets
// a presented key that verified in this process (keycache.Verified) bypass
// the throttle, without a counter, so that keys re-validating cannot push
// the counters of ids under attack out of the table either.
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
