package events_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/internal/webhooktest"
	"github.com/keystile/keystile/storage/memory"
)

// TestDelivererThreeInstances delivers 300 events from three Deliverers
// sharing one store to a receiver that fails 20 % of attempts: every event
// arrives, verified, once, in stream order; nothing is dead-lettered.
func TestDelivererThreeInstances(t *testing.T) {
	const total = 300
	store := memory.New()
	for i := range total {
		account := []string{"acme", "globex", "initech"}[i%3]
		require.NoError(t, store.Apply(context.Background(), apikey.Change{Events: []apikey.Event{{Time: start,
			Actor: owner, Action: apikey.ActionCreate, Account: account, Environment: apikey.Production,
			Detail: fmt.Sprint(i)}}}))
	}
	secret := webhook.GenerateSecret()
	rcv := webhooktest.NewReceiver(secret, 0.2)
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sender := webhooktest.LoopbackSender(t)
	var wg sync.WaitGroup
	for i := range 3 {
		d, err := events.NewDeliverer(events.DelivererOptions{
			Store: store, Sender: sender, Holder: fmt.Sprintf("instance-%d", i),
			Endpoints: []events.Endpoint{{Name: "ops", Webhook: webhook.Endpoint{URL: srv.URL, Secrets: []webhook.Secret{secret}}}},
			Retry:     webhook.RetryPolicy{Schedule: webhook.Exponential(time.Millisecond, 10*time.Millisecond, 12)},
			Lease:     10 * time.Second, Poll: 5 * time.Millisecond, Batch: 25,
		})
		require.NoError(t, err)
		wg.Go(func() { _ = d.Run(ctx) })
	}
	for rcv.Count() < total && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	all, _, err := store.EventsAfter(context.Background(), 0, 0)
	require.NoError(t, err)
	require.Len(t, all, total)
	assert.Greater(t, rcv.AssertDelivered(t, all), total, "some attempts failed and were retried")
	dead, err := store.DeadLetters(context.Background(), "ops", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, dead)
}

// TestDelivererDeadLetters: an endpoint that always fails gets each event
// the policy's attempts, then the event is dead-lettered, visible, and
// delivery goes on; an event the endpoint does not accept is passed over.
func TestDelivererDeadLetters(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	for _, a := range []apikey.Action{apikey.ActionCreate, apikey.ActionRevoke, apikey.ActionCreate} {
		require.NoError(t, store.Apply(ctx, apikey.Change{Events: []apikey.Event{{Time: start, Actor: owner, Action: a,
			Account: "acme", Environment: apikey.Production}}}))
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts[r.Header.Get(webhook.HeaderID)]++
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	d, err := events.NewDeliverer(events.DelivererOptions{
		Store: store, Sender: webhooktest.LoopbackSender(t),
		Endpoints: []events.Endpoint{{Name: "ops", Webhook: webhook.Endpoint{URL: srv.URL, Secrets: []webhook.Secret{webhook.GenerateSecret()}},
			Accept: func(e apikey.Event) bool { return e.Action == apikey.ActionCreate }}},
		Retry: webhook.RetryPolicy{Schedule: []time.Duration{time.Millisecond, time.Millisecond}},
	})
	require.NoError(t, err)
	n, err := d.Step(ctx, "ops")
	require.NoError(t, err)
	assert.Equal(t, 3, n, "every event moved past")
	assert.Equal(t, map[string]int{"evt_acme_1": 3, "evt_acme_3": 3}, attempts, "three attempts each; the revocation not sent")
	dead, err := store.DeadLetters(ctx, "ops", 0, 10)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	assert.Equal(t, "evt_acme_1", dead[0].EventID)
	assert.Equal(t, 3, dead[0].Attempts)
	assert.Equal(t, apikey.ActionCreate, dead[0].Type, "the letter records its event's type")
	n, err = d.Step(ctx, "ops")
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left")
}

// TestDelivererLeaseExcludes: while one instance holds an endpoint's lease,
// another's Step delivers nothing.
func TestDelivererLeaseExcludes(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	require.NoError(t, store.Apply(ctx, apikey.Change{Events: []apikey.Event{{Time: start, Actor: owner,
		Action: apikey.ActionCreate, Account: "acme", Environment: apikey.Production}}}))
	_, ok, err := store.LeaseDelivery(ctx, "ops", "other", time.Now(), time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	sent := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent++ }))
	defer srv.Close()
	d, err := events.NewDeliverer(events.DelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
		Endpoints: []events.Endpoint{{Name: "ops", Webhook: webhook.Endpoint{URL: srv.URL, Secrets: []webhook.Secret{webhook.GenerateSecret()}}}}})
	require.NoError(t, err)
	n, err := d.Step(ctx, "ops")
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Zero(t, sent)
}
