package apikey_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// fixedLog is a memory store whose InstanceLog holds the instances given,
// with a clock of its own: the store's, which Propagation must use.
type fixedLog struct {
	*memory.Store
	mu        sync.Mutex
	now       time.Time
	instances []apikey.Instance
}

func (l *fixedLog) set(now time.Time, instances ...apikey.Instance) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now, l.instances = now, instances
}

func (l *fixedLog) Instances(context.Context) ([]apikey.Instance, time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]apikey.Instance(nil), l.instances...), l.now, nil
}

// propagationSetup returns a Manager over a fixedLog whose clock is a
// year from the Manager's (the Manager's clock must not matter), and the
// id and revision of a bootstrapped key.
func propagationSetup(t *testing.T) (*apikey.Manager, *fixedLog, string, int64) {
	t.Helper()
	store := &fixedLog{Store: memory.New()}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: func() time.Time { return time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC) }})
	require.NoError(t, err)
	keys, err := m.Bootstrap(context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}, apikey.Production)
	require.NoError(t, err)
	p, err := m.Propagation(context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}, keys[0].View.ID)
	require.NoError(t, err)
	require.Positive(t, p.Revision)
	return m, store, keys[0].View.ID, p.Revision
}

// TestPropagationClassification: by the store's clock, a live instance
// counts as applied or pending (ahead of the store's revision: pending);
// one not heard from that has not applied the change blocks it as
// unreachable until its ServesUntil, then is stopped; one not heard from
// that had applied it is stopped at once; with no live instance and none
// unreachable, nothing is confirmed.
func TestPropagationClassification(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) // the store's clock
	ttl := time.Minute
	const (
		behind = iota
		applied
		ahead
	)
	type inst struct {
		applied  int
		reported time.Duration // before now
	}
	tests := map[string]struct {
		instances                           []inst
		applied, live, unreachable, stopped int
		pending                             int
		reason                              apikey.PropagationReason
	}{
		"none":                            {reason: apikey.PropagationNoInstances},
		"live, applied":                   {instances: []inst{{applied, time.Second}}, applied: 1, live: 1},
		"live, pending":                   {instances: []inst{{behind, time.Second}}, live: 1, pending: 1, reason: apikey.PropagationPending},
		"live, ahead of the store":        {instances: []inst{{ahead, time.Second}}, live: 1, pending: 1, reason: apikey.PropagationPending},
		"live at the bound":               {instances: []inst{{behind, apikey.InstanceStaleAfter}}, live: 1, pending: 1, reason: apikey.PropagationPending},
		"unreachable, within ServesUntil": {instances: []inst{{behind, apikey.InstanceStaleAfter + time.Second}}, unreachable: 1, reason: apikey.PropagationUnreachable},
		"unreachable, ahead":              {instances: []inst{{ahead, apikey.InstanceStaleAfter + time.Second}}, unreachable: 1, reason: apikey.PropagationUnreachable},
		"unreachable with one live applied": {
			instances: []inst{{applied, 0}, {behind, ttl / 2}}, applied: 1, live: 1, unreachable: 1, reason: apikey.PropagationUnreachable},
		"pending and unreachable": {
			instances: []inst{{behind, 0}, {behind, ttl / 2}}, live: 1, pending: 1, unreachable: 1, reason: apikey.PropagationPending},
		"stopped once ServesUntil passed": {instances: []inst{{behind, ttl + time.Second}}, stopped: 1, reason: apikey.PropagationNoInstances},
		"stopped at ServesUntil":          {instances: []inst{{behind, ttl}}, stopped: 1, reason: apikey.PropagationNoInstances},
		"not heard from, had applied":     {instances: []inst{{applied, ttl / 2}}, stopped: 1, reason: apikey.PropagationNoInstances},
		"live applied, one stopped": {
			instances: []inst{{applied, 0}, {behind, 2 * ttl}}, applied: 1, live: 1, stopped: 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			m, store, id, rev := propagationSetup(t)
			current, err := store.Revision(context.Background())
			require.NoError(t, err)
			var until time.Time
			var list []apikey.Instance
			for i, in := range tt.instances {
				applied := map[int]int64{behind: rev - 1, applied: rev, ahead: current + 1}[in.applied]
				reported := at.Add(-in.reported)
				serves := reported.Add(ttl)
				if in.applied != 1 && in.reported > apikey.InstanceStaleAfter && serves.After(at) && serves.After(until) {
					until = serves
				}
				list = append(list, apikey.Instance{ID: string(rune('a' + i)), Applied: applied, AppliedAt: reported,
					ReportedAt: reported, ServesUntil: serves})
			}
			store.set(at, list...)
			p, err := m.Propagation(context.Background(), apikey.Actor{ID: "carol", Role: apikey.ReadOnly}, id)
			require.NoError(t, err)
			assert.Equal(t, tt.applied, p.Applied, "applied")
			assert.Equal(t, tt.live, p.Live, "live")
			assert.Equal(t, tt.unreachable, p.Unreachable, "unreachable")
			assert.Equal(t, tt.stopped, p.Stopped, "stopped")
			assert.Equal(t, tt.pending, p.Pending, "pending")
			assert.Nil(t, p.PendingInstances, "not an operator")
			assert.Equal(t, tt.reason, p.Reason)
			assert.Equal(t, tt.reason == "", p.Confirmed)
			assert.True(t, at.Equal(p.CheckedAt), "checked by the store's clock")
			assert.True(t, until.Equal(p.UnreachableUntil), "UnreachableUntil: want %v, got %v", until, p.UnreachableUntil)
			if !p.Confirmed {
				assert.Zero(t, p.ConfirmedBy)
			}
		})
	}
}

// TestPropagationOperatorList: an actor acting across accounts gets the
// pending instances listed, by ID; an owner of the account does not.
func TestPropagationOperatorList(t *testing.T) {
	m, store, id, rev := propagationSetup(t)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	store.set(at, apikey.Instance{ID: "b", Label: "host-b:2", Applied: rev - 1, ReportedAt: at, ServesUntil: at.Add(time.Minute)},
		apikey.Instance{ID: "a", Label: "host-a:1", Applied: rev - 1, ReportedAt: at, ServesUntil: at.Add(time.Minute)})
	ctx := context.Background()
	p, err := m.Propagation(ctx, apikey.Actor{ID: "alice", Role: apikey.Owner}, id)
	require.NoError(t, err)
	assert.Equal(t, 2, p.Pending)
	assert.Nil(t, p.PendingInstances)
	p, err = m.Propagation(ctx, apikey.Actor{ID: "ops", Role: apikey.ReadOnly, Account: apikey.AnyAccount}, id)
	require.NoError(t, err)
	assert.Equal(t, 2, p.Pending)
	if assert.Len(t, p.PendingInstances, 2) {
		assert.Equal(t, "a", p.PendingInstances[0].ID)
		assert.Equal(t, "host-a:1", p.PendingInstances[0].Label)
	}
}

// TestWaitPropagatedUnreachable: WaitPropagated waits through an
// unreachable instance and returns confirmed once its ServesUntil has
// passed by the store's clock, not before, and only once an instance is
// live.
func TestWaitPropagatedUnreachable(t *testing.T) {
	m, store, id, rev := propagationSetup(t)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	crashed := apikey.Instance{ID: "crashed", Applied: rev - 1, ReportedAt: at.Add(-2 * apikey.InstanceStaleAfter), ServesUntil: at.Add(time.Second)}
	live := apikey.Instance{ID: "live", Applied: rev, AppliedAt: at, ReportedAt: at, ServesUntil: at.Add(time.Minute)}
	store.set(at, crashed, live)
	owner := apikey.Actor{ID: "alice", Role: apikey.Owner}
	ctx := context.Background()
	p, err := m.Propagation(ctx, owner, id)
	require.NoError(t, err)
	require.False(t, p.Confirmed, "unreachable and still serving")
	require.Equal(t, 1, p.Unreachable)

	go func() {
		time.Sleep(30 * time.Millisecond)
		live.ReportedAt = at.Add(2 * time.Second)
		store.set(at.Add(2*time.Second), crashed, live) // past the crashed one's ServesUntil
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err = m.WaitPropagated(ctx, owner, id)
	require.NoError(t, err)
	assert.True(t, p.Confirmed)
	assert.Equal(t, 0, p.Unreachable)
	assert.Equal(t, 1, p.Stopped)
	assert.Equal(t, 1, p.Applied)
	assert.False(t, p.CheckedAt.Before(crashed.ServesUntil), "confirmed at %v, before ServesUntil %v", p.CheckedAt, crashed.ServesUntil)
}
