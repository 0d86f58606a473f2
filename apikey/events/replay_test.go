package events_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/internal/webhooktest"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/memory"
)

// flakyServer answers 503 until healed, then 204; it counts requests by
// webhook-id.
type flakyServer struct {
	healed atomic.Bool
	hits   atomic.Int32
}

func (f *flakyServer) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if f.healed.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func letterStates(t *testing.T, letters []apikey.DeadLetter) []apikey.DeadLetterState {
	t.Helper()
	var out []apikey.DeadLetterState
	for _, l := range letters {
		out = append(out, l.State)
	}
	return out
}

// TestReplayTenantEndpoint: events dead-lettered for a tenant's endpoint
// are replayed by its owner, one and then all: the deliverer sends each
// again, under its event id, and records it delivered. Members may not
// replay; the replay is an audit event.
func TestReplayTenantEndpoint(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	m, sealer := tenantManager(t, store)
	f := &flakyServer{}
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: f.start(t)})
	require.NoError(t, err)
	id := issued.Endpoint.ID
	_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production)
	require.NoError(t, err)
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
		Sealer: sealer, Retry: webhook.RetryPolicy{Schedule: []time.Duration{time.Millisecond}}})
	require.NoError(t, err)
	n, err := d.Step(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	letters, _, err := m.EndpointDeadLetters(ctx, apikey.Actor{ID: "ro", Role: apikey.ReadOnly, Account: "acme"}, id, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, letters, 2)
	assert.Equal(t, []apikey.DeadLetterState{apikey.DeadLetterDead, apikey.DeadLetterDead}, letterStates(t, letters))
	logged, err := store.Events(ctx, storageQuery("acme"))
	require.NoError(t, err)
	actions := map[int64]apikey.Action{}
	for _, e := range logged {
		actions[e.Seq] = e.Action
	}
	for _, l := range letters {
		assert.NotEmpty(t, l.Type, l.EventID)
		assert.Equal(t, actions[apikey.EventIDSeq(l.EventID)], l.Type, "%s records its event's type", l.EventID)
	}
	page, next, err := m.EndpointDeadLetters(ctx, acmeOwner, id, apikey.Page{Limit: 1})
	require.NoError(t, err)
	require.Len(t, page, 1)
	page, _, err = m.EndpointDeadLetters(ctx, acmeOwner, id, apikey.Page{After: next, Limit: 1})
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, letters[1].EventID, page[0].EventID, "the next page")

	_, err = m.Replay(ctx, apikey.Actor{ID: "mem", Role: apikey.Member, Account: "acme"}, id, "")
	require.ErrorIs(t, err, apikey.ErrForbidden)
	_, err = m.Replay(ctx, acmeOwner, id, "evt_acme_999")
	require.ErrorIs(t, err, apikey.ErrNotFound)
	_, err = m.Replay(ctx, globexOwner, id, "")
	require.ErrorIs(t, err, apikey.ErrNotFound, "another account's endpoint")

	f.healed.Store(true)
	replayed, err := m.Replay(ctx, acmeOwner, id, letters[0].EventID)
	require.NoError(t, err)
	assert.Equal(t, 1, replayed)
	letters, _, err = m.EndpointDeadLetters(ctx, acmeOwner, id, apikey.Page{})
	require.NoError(t, err)
	assert.Equal(t, []apikey.DeadLetterState{apikey.DeadLetterReplaying, apikey.DeadLetterDead}, letterStates(t, letters))
	before := f.hits.Load()
	n, err = d.Step(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the replay")
	assert.Equal(t, before+1, f.hits.Load())
	replayed, err = m.Replay(ctx, acmeOwner, id, "")
	require.NoError(t, err)
	assert.Equal(t, 2, replayed, "every letter, the delivered one again too")
	for {
		n, err = d.Step(ctx, id)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	letters, _, err = m.EndpointDeadLetters(ctx, acmeOwner, id, apikey.Page{})
	require.NoError(t, err)
	assert.Equal(t, []apikey.DeadLetterState{apikey.DeadLetterDelivered, apikey.DeadLetterDelivered}, letterStates(t, letters))

	audit, err := store.Events(ctx, storageQuery("acme"))
	require.NoError(t, err)
	var replays int
	for _, e := range audit {
		if e.Action == apikey.ActionReplay {
			replays++
			assert.Contains(t, e.Detail, id)
		}
	}
	assert.Equal(t, 2, replays)
}

// TestReplayServiceEndpoint: an operator replays the dead letters of one
// of the service's endpoints; tenants' owners may not.
func TestReplayServiceEndpoint(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	m, _ := tenantManager(t, store)
	_, err := m.Bootstrap(ctx, acmeOwner, apikey.Production)
	require.NoError(t, err)
	f := &flakyServer{}
	url := f.start(t)
	d, err := events.NewDeliverer(events.DelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
		Endpoints: []events.Endpoint{{Name: "ops", Webhook: webhook.Endpoint{URL: url, Secrets: []webhook.Secret{webhook.GenerateSecret()}}}},
		Retry:     webhook.RetryPolicy{Schedule: []time.Duration{time.Millisecond}}})
	require.NoError(t, err)
	n, err := d.Step(ctx, "ops")
	require.NoError(t, err)
	require.Equal(t, 2, n)

	_, err = m.ReplayService(ctx, acmeOwner, "ops", "")
	require.ErrorIs(t, err, apikey.ErrForbidden)
	operator := apikey.Actor{ID: "ops-team", Role: apikey.Owner, Account: apikey.AnyAccount}
	_, err = m.ReplayService(ctx, operator, "tenant/ep_000000000000000000000000", "")
	require.ErrorIs(t, err, apikey.ErrInvalidEndpoint, "tenants' endpoints are replayed by their owners")
	f.healed.Store(true)
	replayed, err := m.ReplayService(ctx, operator, "ops", "")
	require.NoError(t, err)
	assert.Equal(t, 2, replayed)
	n, err = d.Step(ctx, "ops")
	require.NoError(t, err)
	assert.Equal(t, 2, n, "both replays")
	letters, err := store.DeadLetters(ctx, "ops", 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []apikey.DeadLetterState{apikey.DeadLetterDelivered, apikey.DeadLetterDelivered}, letterStates(t, letters))
	audit, err := store.Events(ctx, storageQuery(apikey.AnyAccount))
	require.NoError(t, err)
	require.Len(t, audit, 1)
	assert.Equal(t, apikey.ActionReplay, audit[0].Action)
	assert.Equal(t, "evt_-2a_1", audit[0].ID())
}

func storageQuery(account string) storage.EventQuery {
	return storage.EventQuery{Account: account, Limit: 100}
}
