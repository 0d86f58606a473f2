package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/storage/memory"
)

// receiver is a local webhook endpoint that verifies each request and
// refuses a share of them at random.
type receiver struct {
	verifier webhook.Verifier
	failRate float64

	mu        sync.Mutex
	delivered map[string]int // by webhook-id: accepted requests
	order     []string       // ids in the order first accepted
	attempts  int
	bad       int // requests that did not verify
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	msg, err := r.verifier.Verify(req.Header, body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if err != nil {
		r.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var p events.Payload
	if json.Unmarshal(body, &p) != nil || p.Data.ID() != msg.ID {
		r.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if rand.Float64() < r.failRate {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.delivered[msg.ID] == 0 {
		r.order = append(r.order, msg.ID)
	}
	r.delivered[msg.ID]++
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.delivered)
}

// loopbackSender admits the test's local receiver, explicitly.
func loopbackSender(t *testing.T) *webhook.Sender {
	t.Helper()
	sender, err := webhook.NewSender(webhook.Options{Policy: webhook.Policy{AllowHTTP: true,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, Timeout: 5 * time.Second})
	require.NoError(t, err)
	return sender
}

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
	rcv := &receiver{verifier: webhook.Verifier{Secrets: []webhook.Secret{secret}}, failRate: 0.2, delivered: map[string]int{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sender := loopbackSender(t)
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
	for rcv.count() < total && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	all, _, err := store.EventsAfter(context.Background(), 0, 0)
	require.NoError(t, err)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	assert.Zero(t, rcv.bad, "every request verifies")
	require.Len(t, rcv.order, total, "every event delivered")
	for i, se := range all {
		assert.Equal(t, se.Event.ID(), rcv.order[i], "stream order")
		assert.Equal(t, 1, rcv.delivered[se.Event.ID()], "accepted once")
	}
	assert.Greater(t, rcv.attempts, total, "some attempts failed and were retried")
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
		Store: store, Sender: loopbackSender(t),
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
	d, err := events.NewDeliverer(events.DelivererOptions{Store: store, Sender: loopbackSender(t),
		Endpoints: []events.Endpoint{{Name: "ops", Webhook: webhook.Endpoint{URL: srv.URL, Secrets: []webhook.Secret{webhook.GenerateSecret()}}}}})
	require.NoError(t, err)
	n, err := d.Step(ctx, "ops")
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Zero(t, sent)
}
