package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// testDeliveryLease checks storage.DeliveryLog: one holder at a time holds
// an endpoint's lease until it expires, only the holder moves the cursor,
// which never goes back, and dead letters are kept once, in order.
func testDeliveryLease(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	l := as[storage.DeliveryLog](t, s)
	lease := func(endpoint, holder string, now time.Time) (int64, bool) {
		t.Helper()
		cursor, ok, err := l.LeaseDelivery(ctx, endpoint, holder, now, now.Add(time.Minute))
		require.NoError(t, err)
		return cursor, ok
	}
	cursor, ok := lease("billing", "a", base)
	assert.True(t, ok, "a free lease")
	assert.Zero(t, cursor, "a new endpoint starts at the stream's start")
	_, ok = lease("billing", "b", base.Add(30*time.Second))
	assert.False(t, ok, "held by a")
	_, ok = lease("audit", "b", base)
	assert.True(t, ok, "another endpoint has its own lease")
	_, ok = lease("billing", "a", base.Add(30*time.Second))
	assert.True(t, ok, "the holder renews")

	require.ErrorIs(t, l.AdvanceDelivery(ctx, "billing", "b", base.Add(40*time.Second), 9, nil), apikey.ErrLeaseLost)
	require.NoError(t, l.AdvanceDelivery(ctx, "billing", "a", base.Add(40*time.Second), 5, nil))
	require.NoError(t, l.AdvanceDelivery(ctx, "billing", "a", base.Add(41*time.Second), 3, nil), "not back")
	cursor, ok = lease("billing", "a", base.Add(42*time.Second))
	require.True(t, ok)
	assert.Equal(t, int64(5), cursor, "the cursor never goes back")

	// a's lease (renewed at +42s) expires at +102s; b takes it after.
	_, ok = lease("billing", "b", base.Add(100*time.Second))
	assert.False(t, ok, "not expired yet")
	cursor, ok = lease("billing", "b", base.Add(103*time.Second))
	assert.True(t, ok, "an expired lease is taken over")
	assert.Equal(t, int64(5), cursor)
	require.ErrorIs(t, l.AdvanceDelivery(ctx, "billing", "a", base.Add(104*time.Second), 7, nil), apikey.ErrLeaseLost,
		"a lost its lease")

	dead := func(cursor int64) *apikey.DeadLetter {
		return &apikey.DeadLetter{Cursor: cursor, EventID: "evt_acme_1", Attempts: 8, Reason: "server error", At: base}
	}
	for _, cur := range []int64{7, 6, 7} {
		require.NoError(t, l.AdvanceDelivery(ctx, "billing", "b", base.Add(104*time.Second), cur, dead(cur)))
	}
	letters, err := l.DeadLetters(ctx, "billing", 0, 10)
	require.NoError(t, err)
	require.Len(t, letters, 2, "each dead letter once")
	assert.Equal(t, []int64{6, 7}, []int64{letters[0].Cursor, letters[1].Cursor})
	assert.Equal(t, "billing", letters[0].Endpoint)
	assert.Equal(t, 8, letters[0].Attempts)
	assert.Equal(t, "server error", letters[0].Reason)
	assert.True(t, base.Equal(letters[0].At))
	letters, err = l.DeadLetters(ctx, "billing", 6, 10)
	require.NoError(t, err)
	require.Len(t, letters, 1)
	letters, err = l.DeadLetters(ctx, "audit", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, letters)
}

// testDeliveryLeaseRace has many holders, over several handles on the
// store, ask for one free lease at once: exactly one gets it.
func testDeliveryLeaseRace(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	stores := c.peers(t, s, 4)
	for round := range 5 {
		var (
			wg  sync.WaitGroup
			won atomic.Int32
		)
		now := base.Add(time.Duration(round) * time.Hour) // every earlier lease has expired
		for i := range 8 {
			wg.Go(func() {
				l := stores[i%len(stores)].(storage.DeliveryLog)
				_, ok, err := l.LeaseDelivery(ctx, "billing", string(rune('a'+i)), now, now.Add(time.Minute))
				if assert.NoError(t, err) && ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, int32(1), won.Load(), "round %d: one holder", round)
	}
}
