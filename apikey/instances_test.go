package apikey_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// propagationSetup returns a Manager over a memory store whose clock is
// *now, and the id and revision of a bootstrapped key.
func propagationSetup(t *testing.T, now *time.Time) (*apikey.Manager, *memory.Store, string, int64) {
	t.Helper()
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: func() time.Time { return *now }})
	require.NoError(t, err)
	keys, err := m.Bootstrap(context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}, apikey.Production)
	require.NoError(t, err)
	p, err := m.Propagation(context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}, keys[0].View.ID)
	require.NoError(t, err)
	require.Positive(t, p.Revision)
	return m, store, keys[0].View.ID, p.Revision
}

// TestPropagationClassification: a live instance counts as applied or
// pending; one not heard from that has not applied the change blocks it
// as unreachable until its ServesUntil, then is stopped; one not heard
// from that had applied it is stopped at once.
func TestPropagationClassification(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	ttl := time.Minute
	type inst struct {
		applied  bool
		reported time.Duration // before now
	}
	tests := map[string]struct {
		instances                           []inst
		applied, live, unreachable, stopped int
		pending                             int
		confirmed                           bool
	}{
		"none":                            {confirmed: true},
		"live, applied":                   {instances: []inst{{true, time.Second}}, applied: 1, live: 1, confirmed: true},
		"live, pending":                   {instances: []inst{{false, time.Second}}, live: 1, pending: 1},
		"live at the bound":               {instances: []inst{{false, apikey.InstanceStaleAfter}}, live: 1, pending: 1},
		"unreachable, within ServesUntil": {instances: []inst{{false, apikey.InstanceStaleAfter + time.Second}}, unreachable: 1},
		"unreachable with one live applied": {
			instances: []inst{{true, 0}, {false, ttl / 2}}, applied: 1, live: 1, unreachable: 1},
		"stopped once ServesUntil passed": {instances: []inst{{false, ttl + time.Second}}, stopped: 1, confirmed: true},
		"stopped at ServesUntil":          {instances: []inst{{false, ttl}}, stopped: 1, confirmed: true},
		"not heard from, had applied":     {instances: []inst{{true, ttl / 2}}, stopped: 1, confirmed: true},
		"live applied, one stopped": {
			instances: []inst{{true, 0}, {false, 2 * ttl}}, applied: 1, live: 1, stopped: 1, confirmed: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			now := at
			m, store, id, rev := propagationSetup(t, &now)
			var until time.Time
			for i, in := range tt.instances {
				applied := rev - 1
				if in.applied {
					applied = rev
				}
				reported := at.Add(-in.reported)
				serves := reported.Add(ttl)
				if !in.applied && in.reported > apikey.InstanceStaleAfter && serves.After(at) && serves.After(until) {
					until = serves
				}
				require.NoError(t, store.ReportInstance(context.Background(), apikey.Instance{
					ID: string(rune('a' + i)), Applied: applied, ReportedAt: reported, ServesUntil: serves}))
			}
			p, err := m.Propagation(context.Background(), apikey.Actor{ID: "carol", Role: apikey.ReadOnly}, id)
			require.NoError(t, err)
			assert.Equal(t, tt.applied, p.Applied, "applied")
			assert.Equal(t, tt.live, p.Live, "live")
			assert.Equal(t, tt.unreachable, p.Unreachable, "unreachable")
			assert.Equal(t, tt.stopped, p.Stopped, "stopped")
			assert.Len(t, p.Pending, tt.pending)
			assert.Equal(t, tt.confirmed, p.Confirmed)
			assert.True(t, until.Equal(p.UnreachableUntil), "UnreachableUntil: want %v, got %v", until, p.UnreachableUntil)
			if !tt.confirmed {
				assert.Zero(t, p.ConfirmedBy)
			}
		})
	}
}

// TestWaitPropagatedUnreachable: WaitPropagated waits through an
// unreachable instance and returns confirmed once its ServesUntil has
// passed, not before.
func TestWaitPropagatedUnreachable(t *testing.T) {
	now := time.Now()
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	keys, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	id := keys[0].View.ID
	serves := now.Add(200 * time.Millisecond)
	require.NoError(t, store.ReportInstance(ctx, apikey.Instance{ID: "crashed", Applied: 0,
		ReportedAt: now.Add(-2 * apikey.InstanceStaleAfter), ServesUntil: serves}))
	p, err := m.Propagation(ctx, owner, id)
	require.NoError(t, err)
	require.False(t, p.Confirmed, "unreachable and still serving")
	require.Equal(t, 1, p.Unreachable)

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err = m.WaitPropagated(ctx, owner, id)
	require.NoError(t, err)
	assert.True(t, p.Confirmed)
	assert.Equal(t, 0, p.Unreachable)
	assert.Equal(t, 1, p.Stopped)
	assert.False(t, p.CheckedAt.Before(serves), "confirmed at %v, before ServesUntil %v", p.CheckedAt, serves)
}
