package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestReplayingIndex: an endpoint's index of replaying letters holds the
// cursors of exactly its replaying letters, in order, after every write
// that changes a letter's state, and Replaying reads its letters from
// there: a letter the index does not name is never returned, however many
// letters the endpoint has.
func TestReplayingIndex(t *testing.T) {
	s, ctx := New(), context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const endpoint, n = "ops", 500
	_, ok, err := s.LeaseDelivery(ctx, endpoint, "a", now, now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	for i := int64(1); i <= n; i++ {
		require.NoError(t, s.AdvanceDelivery(ctx, endpoint, "a", now, i, &apikey.DeadLetter{Cursor: i,
			EventID: fmt.Sprintf("evt_acme_%d", i), Attempts: 1, Reason: "server error", At: now}))
	}
	d := s.deliveries[endpoint]
	inStep := func(msg string) {
		t.Helper()
		var want []int64
		for _, l := range d.dead {
			if l.State == apikey.DeadLetterReplaying {
				want = append(want, l.Cursor)
			}
		}
		assert.Equal(t, want, d.replaying, msg)
	}
	inStep("nothing replaying")
	for _, c := range []int64{400, 7, 250} {
		_, err := s.ReplayDeadLetters(ctx, endpoint, c, nil)
		require.NoError(t, err)
	}
	inStep("three replayed")
	assert.Equal(t, []int64{7, 250, 400}, d.replaying)
	require.NoError(t, s.ResolveReplay(ctx, endpoint, "a", now, 250, nil))
	require.NoError(t, s.ResolveReplay(ctx, endpoint, "a", now, 7, &apikey.DeadLetter{Attempts: 2, Reason: "x", At: now}))
	inStep("one delivered, one dead again")
	assert.Equal(t, []int64{400}, d.replaying)

	// A letter marked replaying behind the index's back is not read:
	// Replaying does not look at the endpoint's other letters.
	d.dead[0].State = apikey.DeadLetterReplaying
	letters, err := s.Replaying(ctx, endpoint, 10)
	require.NoError(t, err)
	require.Len(t, letters, 1)
	assert.Equal(t, int64(400), letters[0].Cursor)
	d.dead[0].State = apikey.DeadLetterDead

	_, err = s.ReplayDeadLetters(ctx, endpoint, 0, nil)
	require.NoError(t, err)
	inStep("all replayed")
	assert.Len(t, d.replaying, n)
}
