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

// testDeadLetterIndex checks the reads of storage.ReplayLog by index: an
// endpoint's letters by their events' numbers in their accounts (then by
// cursor), from a number, and one letter by its event id (the first of
// that id), each with its state; another endpoint's letters are never
// returned. It also pages DeadLetters from a cursor that is no letter's.
func testDeadLetterIndex(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	l := as[storage.DeliveryLog](t, s)
	r := as[storage.ReplayLog](t, s)
	tenant := tenantDelivery(t, s, 0)
	for _, endpoint := range []string{"ops", tenant} {
		_, ok, err := l.LeaseDelivery(ctx, endpoint, "a", base, base.Add(time.Minute))
		require.NoError(t, err)
		require.True(t, ok)
	}
	letter := func(endpoint string, cursor int64, eventID string) {
		t.Helper()
		require.NoError(t, l.AdvanceDelivery(ctx, endpoint, "a", base, cursor,
			&apikey.DeadLetter{Cursor: cursor, EventID: eventID, Attempts: int(cursor), Reason: "server error", At: base}))
	}
	// A service endpoint's letters, of two accounts, written out of order;
	// two of them have the same event id, one an id with no number.
	for _, w := range []struct {
		cursor int64
		id     string
	}{{10, "evt_acme_4"}, {3, "evt_acme_2"}, {9, "evt_globex_2"}, {4, "evt_globex_1"}, {6, "evt_acme_3"},
		{13, "evt_acme_3"}, {12, "custom"}} {
		letter("ops", w.cursor, w.id)
	}
	letter(tenant, 5, "evt_acme_1")
	letter(tenant, 11, "evt_acme_5")

	cursors := func(letters []apikey.DeadLetter) []int64 {
		out := []int64{}
		for _, l := range letters {
			out = append(out, l.Cursor)
		}
		return out
	}
	for _, tt := range []struct {
		endpoint     string
		after        int64
		limit        int
		want         []int64
		wantEventIDs []string
	}{
		{"ops", 0, 100, []int64{4, 3, 9, 6, 13, 10}, []string{"evt_globex_1", "evt_acme_2", "evt_globex_2", "evt_acme_3", "evt_acme_3", "evt_acme_4"}},
		{"ops", 0, 2, []int64{4, 3}, nil},
		{"ops", 2, 3, []int64{6, 13, 10}, nil},
		{"ops", 3, 100, []int64{10}, nil},
		{"ops", 4, 100, []int64{}, nil},
		{"ops", 0, 0, []int64{}, nil},
		{tenant, 0, 100, []int64{5, 11}, nil},
		{tenant, 1, 100, []int64{11}, nil},
		{tenant, 4, 1, []int64{11}, nil},
		{"nobody", 0, 100, []int64{}, nil},
	} {
		got, err := r.DeadLettersBySeq(ctx, tt.endpoint, tt.after, tt.limit)
		require.NoError(t, err)
		assert.Equal(t, tt.want, cursors(got), "%s after %d, limit %d", tt.endpoint, tt.after, tt.limit)
		if tt.wantEventIDs != nil && assert.Len(t, got, len(tt.wantEventIDs)) {
			for i, l := range got {
				assert.Equal(t, tt.wantEventIDs[i], l.EventID)
				assert.Equal(t, tt.endpoint, l.Endpoint)
				assert.Equal(t, int(l.Cursor), l.Attempts, "the letter's own fields")
				assert.Equal(t, apikey.DeadLetterDead, l.State)
			}
		}
	}

	got, err := r.DeadLetterByEventID(ctx, "ops", "evt_globex_2")
	require.NoError(t, err)
	assert.Equal(t, int64(9), got.Cursor)
	assert.Equal(t, "evt_globex_2", got.EventID)
	assert.Equal(t, "ops", got.Endpoint)
	assert.Equal(t, 9, got.Attempts)
	assert.Equal(t, "server error", got.Reason)
	assert.True(t, base.Equal(got.At))
	assert.Equal(t, apikey.DeadLetterDead, got.State)
	got, err = r.DeadLetterByEventID(ctx, "ops", "evt_acme_3")
	require.NoError(t, err)
	assert.Equal(t, int64(6), got.Cursor, "the first letter of the id")
	got, err = r.DeadLetterByEventID(ctx, "ops", "custom")
	require.NoError(t, err)
	assert.Equal(t, int64(12), got.Cursor, "an id without a number is found by its id")
	for _, miss := range []struct{ endpoint, id string }{{"ops", "evt_acme_1"}, {tenant, "evt_acme_2"}, {"nobody", "evt_acme_1"},
		{"ops", ""}, {"ops", "evt_acme"}} {
		_, err = r.DeadLetterByEventID(ctx, miss.endpoint, miss.id)
		require.ErrorIs(t, err, apikey.ErrNotFound, "%s %q", miss.endpoint, miss.id)
	}

	n, err := r.ReplayDeadLetters(ctx, "ops", 9, nil)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err = r.DeadLetterByEventID(ctx, "ops", "evt_globex_2")
	require.NoError(t, err)
	assert.Equal(t, apikey.DeadLetterReplaying, got.State, "the letter's state")
	page, err := r.DeadLettersBySeq(ctx, "ops", 1, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, []apikey.DeadLetterState{apikey.DeadLetterDead, apikey.DeadLetterReplaying}, []apikey.DeadLetterState{page[0].State, page[1].State})

	letters, err := l.DeadLetters(ctx, "ops", 5, 2)
	require.NoError(t, err)
	assert.Equal(t, []int64{6, 9}, cursors(letters), "from a cursor that is no letter's")
	letters, err = l.DeadLetters(ctx, "ops", 13, 2)
	require.NoError(t, err)
	assert.Empty(t, letters)
}

// testDeadLetterPages pages a tenant endpoint's many dead letters by their
// events' numbers, a few at a time: every letter once, in order.
func testDeadLetterPages(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	l := as[storage.DeliveryLog](t, s)
	r := as[storage.ReplayLog](t, s)
	const n = 120
	endpoint := tenantDelivery(t, s, 1)
	_, ok, err := l.LeaseDelivery(ctx, endpoint, "a", base, base.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	for i := int64(1); i <= n; i++ {
		require.NoError(t, l.AdvanceDelivery(ctx, endpoint, "a", base, 3*i, &apikey.DeadLetter{Cursor: 3 * i,
			EventID: fmt.Sprintf("evt_acme_%d", 2*i), Attempts: 1, Reason: "server error", At: base}))
	}
	var (
		after int64
		seen  []int64
	)
	for range n {
		page, err := r.DeadLettersBySeq(ctx, endpoint, after, 7)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 7)
		for _, l := range page {
			seen = append(seen, l.Cursor)
		}
		if len(page) < 7 {
			break
		}
		after = apikey.EventIDSeq(page[len(page)-1].EventID)
	}
	require.Len(t, seen, n)
	for i, cursor := range seen {
		require.Equal(t, 3*int64(i+1), cursor)
	}
	page, err := r.DeadLettersBySeq(ctx, endpoint, 2*n-3, 10)
	require.NoError(t, err)
	require.Len(t, page, 2, "after a number that is no letter's")
	assert.Equal(t, []int64{3 * (n - 1), 3 * n}, []int64{page[0].Cursor, page[1].Cursor})
}

// testDeadLetterType checks that a dead letter keeps its event's type: a
// letter written with a Type reads back with it from every read of the
// letters (DeliveryLog.DeadLetters, ReplayLog.DeadLettersBySeq,
// DeadLetterByEventID and Replaying), and keeps it when a replay leaves it
// dead again with a letter that has another (or no) Type; a letter written
// without one has none.
func testDeadLetterType(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	l := as[storage.DeliveryLog](t, s)
	r := as[storage.ReplayLog](t, s)
	const endpoint = "ops"
	_, ok, err := l.LeaseDelivery(ctx, endpoint, "a", base, base.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, l.AdvanceDelivery(ctx, endpoint, "a", base, 4, &apikey.DeadLetter{Cursor: 4, EventID: "evt_acme_1",
		Type: apikey.ActionRevoke, Attempts: 3, Reason: "server error", At: base}))
	require.NoError(t, l.AdvanceDelivery(ctx, endpoint, "a", base, 6, &apikey.DeadLetter{Cursor: 6, EventID: "evt_acme_2",
		Attempts: 3, Reason: "server error", At: base}))

	letters, err := l.DeadLetters(ctx, endpoint, 0, 10)
	require.NoError(t, err)
	require.Len(t, letters, 2)
	assert.Equal(t, apikey.ActionRevoke, letters[0].Type, "DeadLetters")
	assert.Empty(t, letters[1].Type, "a letter written without a type")
	letters, err = r.DeadLettersBySeq(ctx, endpoint, 0, 10)
	require.NoError(t, err)
	require.Len(t, letters, 2)
	assert.Equal(t, apikey.ActionRevoke, letters[0].Type, "DeadLettersBySeq")
	one, err := r.DeadLetterByEventID(ctx, endpoint, "evt_acme_1")
	require.NoError(t, err)
	assert.Equal(t, apikey.ActionRevoke, one.Type, "DeadLetterByEventID")

	n, err := r.ReplayDeadLetters(ctx, endpoint, 4, nil)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	letters, err = r.Replaying(ctx, endpoint, 10)
	require.NoError(t, err)
	require.Len(t, letters, 1)
	assert.Equal(t, apikey.ActionRevoke, letters[0].Type, "Replaying")
	require.NoError(t, r.ResolveReplay(ctx, endpoint, "a", base, 4,
		&apikey.DeadLetter{Type: apikey.ActionCreate, Attempts: 1, Reason: "gone", At: base}))
	one, err = r.DeadLetterByEventID(ctx, endpoint, "evt_acme_1")
	require.NoError(t, err)
	assert.Equal(t, apikey.DeadLetterDead, one.State)
	assert.Equal(t, "gone", one.Reason)
	assert.Equal(t, apikey.ActionRevoke, one.Type, "dead again: the letter keeps its type")
}

// testReplayingIndex checks ReplayLog.Replaying among many letters of an
// endpoint and of another: after replays of single letters, resolutions
// (delivered, dead again) and a replay of them all, it returns exactly the
// endpoint's replaying letters, in cursor order, limit at a time from the
// first. The stores answer it by an index of the replaying letters (see
// the backends' own tests of that).
func testReplayingIndex(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	l := as[storage.DeliveryLog](t, s)
	r := as[storage.ReplayLog](t, s)
	const n = 60
	for _, endpoint := range []string{"ops", "billing"} {
		_, ok, err := l.LeaseDelivery(ctx, endpoint, "a", base, base.Add(time.Hour))
		require.NoError(t, err)
		require.True(t, ok)
		for i := int64(1); i <= n; i++ {
			require.NoError(t, l.AdvanceDelivery(ctx, endpoint, "a", base, 2*i, &apikey.DeadLetter{Cursor: 2 * i,
				EventID: fmt.Sprintf("evt_acme_%d", i), Type: apikey.ActionCreate, Attempts: 1, Reason: "server error", At: base}))
		}
	}
	const endpoint = "ops"
	cursors := func(limit int) []int64 {
		t.Helper()
		letters, err := r.Replaying(ctx, endpoint, limit)
		require.NoError(t, err)
		out := []int64{}
		for _, x := range letters {
			assert.Equal(t, apikey.DeadLetterReplaying, x.State, "cursor %d", x.Cursor)
			assert.Equal(t, endpoint, x.Endpoint)
			out = append(out, x.Cursor)
		}
		return out
	}
	assert.Empty(t, cursors(10), "nothing replaying")
	for _, c := range []int64{90, 14, 60, 2, 120} {
		got, err := r.ReplayDeadLetters(ctx, endpoint, c, nil)
		require.NoError(t, err)
		require.Equal(t, 1, got, "cursor %d", c)
	}
	assert.Equal(t, []int64{2, 14, 60, 90, 120}, cursors(10))
	assert.Equal(t, []int64{2, 14}, cursors(2))
	assert.Empty(t, cursors(0))
	require.NoError(t, r.ResolveReplay(ctx, endpoint, "a", base, 14, nil))
	require.NoError(t, r.ResolveReplay(ctx, endpoint, "a", base, 2,
		&apikey.DeadLetter{Attempts: 2, Reason: "server error", At: base}))
	assert.Equal(t, []int64{60, 90, 120}, cursors(10), "delivered and dead again are not replaying")
	other, err := r.Replaying(ctx, "billing", 10)
	require.NoError(t, err)
	assert.Empty(t, other, "another endpoint's letters")

	got, err := r.ReplayDeadLetters(ctx, endpoint, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, n-3, got, "every letter not replaying, the delivered one included")
	all := cursors(n + 10)
	require.Len(t, all, n)
	for i, c := range all {
		require.Equal(t, 2*int64(i+1), c)
	}
	assert.Equal(t, []int64{2, 4, 6}, cursors(3))
}
