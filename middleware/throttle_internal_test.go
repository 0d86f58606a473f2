package middleware

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waiting returns how many acquire calls wait on s.
func (s *slots) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}

// TestSlotsServeTheNewestWaiterFirst: a released slot goes to the request
// that started waiting last, so that a key arriving during a flood of
// first verifications waits for the hashes in progress only.
func TestSlotsServeTheNewestWaiterFirst(t *testing.T) {
	s := newSlots(1)
	require.NoError(t, s.acquire(context.Background()))
	got := make(chan int, 3)
	for i := range 3 {
		go func() {
			if s.acquire(context.Background()) == nil {
				got <- i
			}
		}()
		require.Eventually(t, func() bool { return s.waiting() == i+1 }, 5*time.Second, time.Millisecond)
	}
	for _, want := range []int{2, 1, 0} {
		s.release()
		assert.Equal(t, want, <-got)
	}
	s.release()
	require.NoError(t, s.acquire(context.Background()), "the last release freed the slot")
}

// TestSlotsGiveUpWithTheContext: a waiter whose context ends leaves the
// queue holding nothing, and the slot count stays whole.
func TestSlotsGiveUpWithTheContext(t *testing.T) {
	s := newSlots(2)
	require.NoError(t, s.acquire(context.Background()))
	require.NoError(t, s.acquire(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.acquire(ctx), context.DeadlineExceeded)
	assert.Zero(t, s.waiting())
	s.release()
	s.release()
	for range 2 {
		require.NoError(t, s.acquire(context.Background()))
	}
	assert.Zero(t, s.free)
}
