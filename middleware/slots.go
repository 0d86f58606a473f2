package middleware

import (
	"context"
	"slices"
	"sync"
)

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
