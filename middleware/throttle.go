package middleware

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

const (
	throttleSize      = 10_000 // key ids counted, and key ids remembered as suspect
	suspectWindows    = 10     // windows a key id stays suspect after its last wrong secret or refusal
	suspectIDsPerSlot = 10     // the failure budget of all key ids: that of 10 ids per argon2 slot
)

// throttle limits verifications of key ids that keep failing; the
// verifier asks it only on cache misses, and never for a key that verified
// in this process. With B = ThrottleFailures, W = ThrottleWindow and
// N = MaxConcurrentHashes:
//
//   - Per key id: at most B failed or in-flight verifications per window.
//   - A key id is suspect while it has a verification in flight, or for
//     suspectWindows*W after its last wrong secret or refusal since.
//     Suspect ids share at most max(1, N/2) argon2 slots.
//   - Once suspectIDsPerSlot*B*N verifications failed in a window, or
//     failed and are in flight in the suspect lane, suspect ids are refused
//     until the window ends.
//
// docs/security.md states the resulting bound on argon2 work.
type throttle struct {
	budget       int // per key id and window
	window       time.Duration
	globalBudget int           // failures per window of all key ids together
	suspectSlots chan struct{} // the suspect lane's share of the argon2 slots
	mu           sync.Mutex    // guards the fields below
	ids          *simplelru.LRU[string, *windowCount]
	suspects     *simplelru.LRU[string, time.Time] // key id -> its last wrong secret, or refusal since
	global       windowCount                       // of all key ids; pending counts suspect ids only
}

// windowCount counts the verifications of a fixed window.
type windowCount struct {
	start    time.Time // start of the current window
	failures int       // failed verifications in the window
	pending  int       // verifications in flight
}

// roll starts a new window at now if the current one ended.
func (c *windowCount) roll(now time.Time, window time.Duration) {
	if now.Sub(c.start) >= window {
		c.start, c.failures = now, 0
	}
}

// newThrottle returns a throttle of budget failures per key id per window,
// for hashSlots argon2 slots.
func newThrottle(budget int, window time.Duration, hashSlots int) *throttle {
	ids, _ := simplelru.NewLRU[string, *windowCount](throttleSize, nil) // size > 0: no error
	suspects, _ := simplelru.NewLRU[string, time.Time](throttleSize, nil)
	return &throttle{
		budget: budget, window: window,
		globalBudget: suspectIDsPerSlot * budget * hashSlots,
		suspectSlots: make(chan struct{}, max(1, hashSlots/2)),
		ids:          ids, suspects: suspects,
	}
}

// ticket is a verification the throttle let through.
type ticket struct {
	id      string
	suspect bool // runs in the suspect lane
}

// acquire reserves a verification of key id at now, or reports the time
// left in the window that refuses it; unless reserve, it only asks and
// gives id no count. A reserved ticket must be released.
func (t *throttle) acquire(id string, now time.Time, reserve bool) (tk ticket, ok bool, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, found := t.ids.Peek(id)
	if !found {
		s = &windowCount{start: now}
	}
	if reserve {
		t.ids.Add(id, s) // counted, and the most recently used
	}
	suspect, retryAfter, ok := t.decide(id, s, now)
	if !ok || !reserve {
		return ticket{}, ok, retryAfter
	}
	if suspect {
		t.global.pending++
	}
	s.pending++
	return ticket{id: id, suspect: suspect}, true, 0
}

// decide reports whether key id, whose count is s, is suspect and whether
// a verification may start; a refusal renews a suspect mark. t.mu is held.
func (t *throttle) decide(id string, s *windowCount, now time.Time) (suspect bool, retryAfter time.Duration, ok bool) {
	s.roll(now, t.window)
	last, marked := t.suspects.Peek(id)
	suspect = s.pending > 0 || marked && now.Sub(last) < suspectWindows*t.window
	refusing := s // the window that refuses: the id's, or for a suspect all ids'
	if s.failures+s.pending < t.budget {
		if !suspect {
			return false, 0, true
		}
		t.global.roll(now, t.window)
		if t.global.failures+t.global.pending < t.globalBudget {
			return true, 0, true
		}
		refusing = &t.global
	}
	if marked { // only ids that had a wrong secret enter the table
		t.suspects.Add(id, now)
	}
	return suspect, refusing.start.Add(t.window).Sub(now), false
}

// release ends the verification of tk; wrong (argon2 ran and the secret
// did not match) counts against both budgets and makes the id suspect.
func (t *throttle) release(tk ticket, wrong bool, now time.Time) {
	if tk.id == "" {
		return // the zero ticket of a key that bypassed the throttle
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tk.suspect && t.global.pending > 0 {
		t.global.pending--
	}
	if wrong {
		t.global.roll(now, t.window)
		t.global.failures++
		t.suspects.Add(tk.id, now)
	}
	s, found := t.ids.Peek(tk.id)
	if !found {
		return
	}
	if s.pending > 0 {
		s.pending--
	}
	if wrong {
		s.failures++
	}
}

// slots is the argon2 concurrency cap: at most n holders at once, the
// waiters served newest first (docs/design.md, The throttle).
type slots struct {
	mu      sync.Mutex
	free    int
	waiters []chan struct{} // the newest last
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire takes a slot, waiting until one is free or ctx ends (then it
// returns ctx's error, with no slot held).
func (s *slots) acquire(ctx context.Context) error {
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	s.waiters = append(s.waiters, ready)
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		if i := slices.Index(s.waiters, ready); i >= 0 {
			s.waiters = slices.Delete(s.waiters, i, i+1)
			s.mu.Unlock()
			return ctx.Err()
		}
		s.mu.Unlock()
		s.release() // handed a slot as ctx ended: pass it on
		return ctx.Err()
	}
}

// release returns a slot: to the newest waiter, if any.
func (s *slots) release() {
	s.mu.Lock()
	if n := len(s.waiters); n > 0 {
		ready := s.waiters[n-1]
		s.waiters[n-1] = nil
		s.waiters = s.waiters[:n-1]
		s.mu.Unlock()
		close(ready)
		return
	}
	s.free++
	s.mu.Unlock()
}
