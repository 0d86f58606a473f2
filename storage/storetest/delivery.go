package storetest

import (
	"context"
	"fmt"
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

// testReplayLog checks storage.ReplayLog: dead letters are marked
// replaying (one, or all) with their event in the same write, listed in
// order, and resolved by the lease's holder only: delivered, or dead again
// with the new attempts and reason.
func testReplayLog(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	l := as[storage.DeliveryLog](t, s)
	r := as[storage.ReplayLog](t, s)
	stream := as[storage.EventStream](t, s)
	_, ok, err := l.LeaseDelivery(ctx, "billing", "a", base, base.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok)
	for _, cur := range []int64{3, 5, 8} {
		require.NoError(t, l.AdvanceDelivery(ctx, "billing", "a", base, cur,
			&apikey.DeadLetter{Cursor: cur, EventID: fmt.Sprintf("evt_acme_%d", cur), Attempts: 8, Reason: "server error", At: base}))
	}
	letters, err := l.DeadLetters(ctx, "billing", 0, 10)
	require.NoError(t, err)
	require.Len(t, letters, 3)
	assert.Equal(t, apikey.DeadLetterDead, letters[0].State)

	event := apikey.Event{Time: base, Actor: operator, Action: apikey.ActionReplay, Account: apikey.AnyAccount, Detail: "billing"}
	n, err := r.ReplayDeadLetters(ctx, "billing", 4, []apikey.Event{event})
	require.NoError(t, err)
	assert.Zero(t, n, "no letter at cursor 4")
	page, _, err := stream.EventsAfter(ctx, 0, 10)
	require.NoError(t, err)
	assert.Empty(t, page, "nothing marked: no event")
	n, err = r.ReplayDeadLetters(ctx, "billing", 5, []apikey.Event{event})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	page, _, err = stream.EventsAfter(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, page, 1, "the replay's event, in the same write")
	assert.Equal(t, apikey.ActionReplay, page[0].Event.Action)
	replaying, err := r.Replaying(ctx, "billing", 10)
	require.NoError(t, err)
	require.Len(t, replaying, 1)
	assert.Equal(t, int64(5), replaying[0].Cursor)
	assert.Equal(t, "evt_acme_5", replaying[0].EventID)
	assert.Equal(t, apikey.DeadLetterReplaying, replaying[0].State)
	n, err = r.ReplayDeadLetters(ctx, "billing", 0, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the other two")
	replaying, err = r.Replaying(ctx, "billing", 2)
	require.NoError(t, err)
	require.Len(t, replaying, 2)
	assert.Equal(t, []int64{3, 5}, []int64{replaying[0].Cursor, replaying[1].Cursor})

	require.ErrorIs(t, r.ResolveReplay(ctx, "billing", "b", base, 3, nil), apikey.ErrLeaseLost)
	require.ErrorIs(t, r.ResolveReplay(ctx, "billing", "a", base.Add(2*time.Minute), 3, nil), apikey.ErrLeaseLost, "expired")
	require.NoError(t, r.ResolveReplay(ctx, "billing", "a", base, 3, nil))
	require.NoError(t, r.ResolveReplay(ctx, "billing", "a", base, 5,
		&apikey.DeadLetter{Attempts: 2, Reason: "gone after 2 attempts", At: base.Add(time.Second)}))
	letters, err = l.DeadLetters(ctx, "billing", 0, 10)
	require.NoError(t, err)
	require.Len(t, letters, 3)
	assert.Equal(t, []apikey.DeadLetterState{apikey.DeadLetterDelivered, apikey.DeadLetterDead, apikey.DeadLetterReplaying},
		[]apikey.DeadLetterState{letters[0].State, letters[1].State, letters[2].State})
	assert.Equal(t, 2, letters[1].Attempts)
	assert.Equal(t, "gone after 2 attempts", letters[1].Reason)
	assert.True(t, base.Add(time.Second).Equal(letters[1].At))
	require.NoError(t, r.ResolveReplay(ctx, "billing", "a", base, 3, &apikey.DeadLetter{Attempts: 9, Reason: "x", At: base}))
	letters, err = l.DeadLetters(ctx, "billing", 0, 1)
	require.NoError(t, err)
	assert.Equal(t, apikey.DeadLetterDelivered, letters[0].State, "a letter that is not replaying is left as it is")
	replaying, err = r.Replaying(ctx, "audit", 10)
	require.NoError(t, err)
	assert.Empty(t, replaying)
}
