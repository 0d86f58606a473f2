// Package fakeclock is a settable clock for tests, safe for concurrent use.
// Pass its Now method wherever the library takes a clock.
package fakeclock

import (
	"sync"
	"time"
)

// Clock reads a time that moves only when Advance is called.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock that reads start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
