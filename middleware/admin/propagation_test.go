package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

// TestPropagation: GET /keys/{id}/propagation counts the live instances
// that applied the key's last change, counts those that did not, counts
// the unreachable ones (blocking, with when the last stops serving) and
// sets stopped ones apart, and is confirmed once every live one has
// applied it and none is unreachable;
// with no instance it is not confirmed (reason no_instances); times are
// the store's clock; a store that keeps no instances is 501
// instances_unavailable.
func TestPropagation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	extra, err := f.m.Create(ctx, owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	require.NoError(t, err)
	_, err = f.m.Revoke(ctx, owner.Actor, extra.View.ID)
	require.NoError(t, err)
	p, err := f.m.Propagation(ctx, owner.Actor, extra.View.ID)
	require.NoError(t, err)
	rev := p.Revision
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) // the store's clock
	log := &clockedLog{Store: f.store, now: now, instances: map[string]apikey.Instance{}}
	report := func(id string, applied int64, at time.Time) {
		log.instances[id] = apikey.Instance{ID: id, Label: "host:" + id, Applied: applied, AppliedAt: at, ReportedAt: at, ServesUntil: at.Add(time.Minute)}
	}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: log, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	g := &fixture{caller: readOnly}
	g.api, err = admin.New(admin.Options{Manager: m, SingleAccount: true,
		Authorize: func(*http.Request) (admin.Caller, error) { return g.caller, nil }})
	require.NoError(t, err)
	path := "/keys/" + extra.Key.Prefix() + "/propagation"
	tests := []struct {
		name        string
		report      func()
		applied     float64
		live        float64
		stopped     float64
		pending     float64
		unreachable float64
		confirmed   bool
		reason      string
	}{
		{"no instance", func() {}, 0, 0, 0, 0, 0, false, "no_instances"},
		{"one behind, one stopped", func() {
			report("a", rev-1, now)
			report("z", rev-1, now.Add(-time.Hour))
		}, 0, 1, 1, 1, 0, false, "pending"},
		{"applied", func() { report("a", rev, now) }, 1, 1, 1, 0, 0, true, ""},
		{"one unreachable, still serving", func() { report("m", rev-1, now.Add(-time.Minute/2)) }, 1, 1, 1, 0, 1, false, "unreachable"},
		{"unreachable no more", func() { report("m", rev-1, now.Add(-2*time.Minute)) }, 1, 1, 2, 0, 0, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.report()
			status, body, _ := g.do(t, "GET", path, "")
			require.Equal(t, http.StatusOK, status, "%v", body)
			assert.Equal(t, extra.View.ID, body["key_id"])
			assert.Equal(t, "revoked", body["status"])
			_, revision := body["revision"]
			assert.False(t, revision, "the store's revision counts every account's writes: not shown")
			assert.Equal(t, tt.applied, body["applied"])
			assert.Equal(t, tt.live, body["live"])
			assert.Equal(t, tt.stopped, body["stopped"])
			assert.Equal(t, tt.confirmed, body["confirmed"])
			assert.Equal(t, tt.pending, body["pending"])
			assert.Equal(t, tt.unreachable, body["unreachable"])
			_, until := body["unreachable_until"]
			assert.Equal(t, tt.unreachable > 0, until, "unreachable_until while one is unreachable")
			assert.NotContains(t, fmt.Sprint(body), "host:", "no instance is named")
			_, by := body["confirmed_by"]
			assert.Equal(t, tt.confirmed, by, "confirmed_by once confirmed")
			reason, _ := body["reason"].(string)
			assert.Equal(t, tt.reason, reason)
			assert.Equal(t, now.Format(time.RFC3339), body["checked_at"], "the store's clock")
		})
	}

	t.Run("a store that keeps no instances", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: noUsage{f.store}})
		require.NoError(t, err)
		api, err := admin.New(admin.Options{Manager: m, SingleAccount: true,
			Authorize: func(*http.Request) (admin.Caller, error) { return readOnly, nil }})
		require.NoError(t, err)
		g := &fixture{api: api}
		status, body, _ := g.do(t, "GET", path, "")
		require.Equal(t, http.StatusNotImplemented, status, "%v", body)
		assert.Equal(t, "instances_unavailable", body["code"])
	})
}

// clockedLog is a store whose InstanceLog holds the instances given, with
// a clock of its own.
type clockedLog struct {
	apikey.Store
	now       time.Time
	instances map[string]apikey.Instance
}

func (l *clockedLog) ReportInstance(context.Context, apikey.InstanceReport) error { return nil }
func (l *clockedLog) RemoveInstance(context.Context, string) error                { return nil }
func (l *clockedLog) ForgetInstances(context.Context, time.Duration) (int, error) { return 0, nil }
func (l *clockedLog) Instances(context.Context) ([]apikey.Instance, time.Time, error) {
	out := make([]apikey.Instance, 0, len(l.instances))
	for _, in := range l.instances {
		out = append(out, in)
	}
	return out, l.now, nil
}
