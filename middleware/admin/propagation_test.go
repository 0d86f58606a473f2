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
// a store that keeps no instances is 501 instances_unavailable.
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
	report := func(id string, applied int64, at time.Time) {
		require.NoError(t, f.store.ReportInstance(ctx, apikey.Instance{ID: id, Label: "host:" + id, Applied: applied, ReportedAt: at,
			ServesUntil: at.Add(time.Minute)}))
	}
	path := "/keys/" + extra.Key.Prefix() + "/propagation"
	f.caller = readOnly
	tests := []struct {
		name        string
		report      func()
		applied     float64
		live        float64
		stopped     float64
		pending     float64
		unreachable float64
		confirmed   bool
	}{
		{"no instance: 0 of 0", func() {}, 0, 0, 0, 0, 0, true},
		{"one behind, one stopped", func() {
			report("a", rev-1, time.Now())
			report("z", rev-1, time.Now().Add(-time.Hour))
		}, 0, 1, 1, 1, 0, false},
		{"applied", func() { report("a", rev, time.Now()) }, 1, 1, 1, 0, 0, true},
		{"one unreachable, still serving", func() { report("m", rev-1, time.Now().Add(-time.Minute/2)) }, 1, 1, 1, 0, 1, false},
		{"unreachable no more", func() { report("m", rev-1, time.Now().Add(-2*time.Minute)) }, 1, 1, 2, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.report()
			status, body, _ := f.do(t, "GET", path, "")
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
			assert.Equal(t, tt.confirmed && tt.live > 0, by, "confirmed_by once confirmed with an instance live")
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
