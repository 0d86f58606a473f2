// Package webhooktest holds the local webhook receiver of the delivery
// tests, over memory (apikey/events) and over SQL (examples/integration).
package webhooktest

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
)

// Receiver is a webhook endpoint that verifies each request (signature,
// and a payload whose event has the request's webhook-id) and refuses a
// share of the verified ones at random, with a 500.
type Receiver struct {
	verifier webhook.Verifier
	failRate float64

	mu        sync.Mutex
	delivered map[string]int // by webhook-id: accepted requests
	order     []string       // ids in the order first accepted
	attempts  int
	bad       int // requests that did not verify
}

// NewReceiver returns a Receiver of requests signed with secret that
// refuses the share failRate of them.
func NewReceiver(secret webhook.Secret, failRate float64) *Receiver {
	return &Receiver{verifier: webhook.Verifier{Secrets: []webhook.Secret{secret}}, failRate: failRate,
		delivered: map[string]int{}}
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
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

// Count returns how many distinct events were accepted.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.delivered)
}

// AssertDelivered asserts that every request verified and that the
// events of stream were each accepted once, in stream order. It returns
// how many requests arrived.
func (r *Receiver) AssertDelivered(t testing.TB, stream []apikey.StreamEvent) (attempts int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	assert.Zero(t, r.bad, "every request verifies")
	require.Len(t, r.order, len(stream), "every event delivered")
	for i, se := range stream {
		assert.Equal(t, se.Event.ID(), r.order[i], "stream order")
		assert.Equal(t, 1, r.delivered[se.Event.ID()], "accepted once")
	}
	return r.attempts
}

// LoopbackSender returns a webhook.Sender that admits plain HTTP to
// loopback addresses, explicitly, for a local Receiver.
func LoopbackSender(t testing.TB) *webhook.Sender {
	t.Helper()
	sender, err := webhook.NewSender(webhook.Options{Policy: webhook.Policy{AllowHTTP: true,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, Timeout: 5 * time.Second})
	require.NoError(t, err)
	return sender
}
