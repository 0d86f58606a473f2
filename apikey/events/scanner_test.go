package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/internal/fakeclock"
	"github.com/keystile/keystile/storage/memory"
)

var start = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

var owner = apikey.Actor{ID: "owner", Role: apikey.Owner}

// streamActions reads the stream after cursor and returns, by key id,
// the time-based actions it holds, and the cursor after them.
func streamActions(t *testing.T, s *memory.Store, cursor int64) (map[string][]apikey.Action, int64) {
	t.Helper()
	page, next, err := s.EventsAfter(context.Background(), cursor, 0)
	require.NoError(t, err)
	out := map[string][]apikey.Action{}
	for _, se := range page {
		switch e := se.Event; e.Action {
		case apikey.ActionExpiring, apikey.ActionExpired, apikey.ActionGraceEnded:
			out[e.KeyID] = append(out[e.KeyID], e.Action)
			assert.Equal(t, apikey.SystemActor, e.Actor)
		}
	}
	return out, next
}

func TestScannerStep(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New(start)
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clock.Now})
	require.NoError(t, err)
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	create := func(expires time.Duration) string {
		t.Helper()
		k, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}, ExpiresAt: start.Add(expires)})
		require.NoError(t, err)
		return k.View.ID
	}
	soon, later, revoked := create(2*time.Hour), create(10*24*time.Hour), create(time.Hour)
	_, err = m.Revoke(ctx, owner, revoked)
	require.NoError(t, err)
	rotated, err := m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, Grace: time.Hour})
	require.NoError(t, err)
	old, err := store.DefaultKey(ctx, apikey.DefaultAccount, apikey.Production, apikey.Client)
	require.NoError(t, err)
	require.Equal(t, rotated.View.ID, old.ID)
	page, err := m.List(ctx, owner, apikey.Production, apikey.Page{Limit: 100})
	require.NoError(t, err)
	var graceKey string
	for _, v := range page.Keys {
		if v.Status == apikey.Expiring {
			graceKey = v.ID
		}
	}
	require.NotEmpty(t, graceKey)

	sc, err := events.NewScanner(events.ScannerOptions{Store: store, Window: 72 * time.Hour, Now: clock.Now, Batch: 1})
	require.NoError(t, err)
	_, cursor, err := store.EventsAfter(ctx, 0, 0)
	require.NoError(t, err)

	steps := []struct {
		name    string
		advance time.Duration
		written int
		want    map[string][]apikey.Action
	}{
		{"expiring within the window", 0, 2, map[string][]apikey.Action{
			soon: {apikey.ActionExpiring}, graceKey: {apikey.ActionExpiring}}},
		{"again: nothing new", time.Minute, 0, map[string][]apikey.Action{}},
		{"expired and grace ended", 3 * time.Hour, 2, map[string][]apikey.Action{
			soon: {apikey.ActionExpired}, graceKey: {apikey.ActionGraceEnded}}},
		{"again: nothing new", time.Minute, 0, map[string][]apikey.Action{}},
		{"the later key enters the window", 8 * 24 * time.Hour, 1, map[string][]apikey.Action{later: {apikey.ActionExpiring}}},
	}
	for _, step := range steps {
		clock.Advance(step.advance)
		n, err := sc.Step(ctx)
		require.NoError(t, err, step.name)
		assert.Equal(t, step.written, n, step.name)
		var got map[string][]apikey.Action
		got, cursor = streamActions(t, store, cursor)
		assert.Equal(t, step.want, got, step.name)
	}
}

func TestScannerGraceChangedGetsNewEvents(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New(start)
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clock.Now})
	require.NoError(t, err)
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	old, err := store.DefaultKey(ctx, apikey.DefaultAccount, apikey.Production, apikey.Server)
	require.NoError(t, err)
	_, err = m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: 48 * time.Hour})
	require.NoError(t, err)
	sc, err := events.NewScanner(events.ScannerOptions{Store: store, Window: 72 * time.Hour, Now: clock.Now})
	require.NoError(t, err)
	n, err := sc.Step(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the grace ends within the window")
	_, err = m.ChangeGrace(ctx, owner, old.ID, 24*time.Hour, apikey.APIPolicy)
	require.NoError(t, err)
	n, err = sc.Step(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a new expiry is a new fact")
	got, _ := streamActions(t, store, 0)
	assert.Equal(t, []apikey.Action{apikey.ActionExpiring, apikey.ActionExpiring}, got[old.ID])
}

func TestNewScannerValidates(t *testing.T) {
	_, err := events.NewScanner(events.ScannerOptions{})
	assert.Error(t, err)
	_, err = events.NewScanner(events.ScannerOptions{Store: struct{ apikey.Store }{memory.New()}})
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = events.NewScanner(events.ScannerOptions{Store: memory.New(), Lookback: -time.Second})
	assert.Error(t, err)
}

func TestScannerRunStopsWithContext(t *testing.T) {
	store := memory.New()
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	sc, err := events.NewScanner(events.ScannerOptions{Store: store, Interval: time.Millisecond, Now: func() time.Time {
		steps++
		if steps == 3 {
			cancel()
		}
		return start
	}})
	require.NoError(t, err)
	require.ErrorIs(t, sc.Run(ctx), context.Canceled)
	assert.GreaterOrEqual(t, steps, 3, "Run steps until the context is done")
}
