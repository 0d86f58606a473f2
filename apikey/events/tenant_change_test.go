package events_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
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

// recorded is a request a test receiver got.
type recorded struct {
	header http.Header
	body   []byte
}

// changingReceiver answers 500 to every request and, on the first one,
// runs change: the owner changes the endpoint while its event is being
// retried.
type changingReceiver struct {
	mu       sync.Mutex
	requests []recorded
	change   func()
}

func (c *changingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.requests = append(c.requests, recorded{header: r.Header.Clone(), body: body})
	first := len(c.requests) == 1
	c.mu.Unlock()
	if first && c.change != nil {
		c.change()
	}
	w.WriteHeader(http.StatusInternalServerError)
}

func (c *changingReceiver) got() []recorded {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]recorded(nil), c.requests...)
}

// retryingEndpoint creates an endpoint of acme at a changingReceiver, then
// the bootstrap's events for it, and returns a TenantDeliverer that steps
// one event at a time and retries each twice, at once, before
// dead-lettering it.
func retryingEndpoint(t *testing.T) (*apikey.Manager, *memory.Store, *changingReceiver, apikey.IssuedEndpoint, *events.TenantDeliverer) {
	t.Helper()
	ctx := context.Background()
	store := memory.New()
	m, sealer := tenantManager(t, store)
	rcv := &changingReceiver{}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: srv.URL,
		Actions: []apikey.Action{apikey.ActionBootstrap}})
	require.NoError(t, err)
	_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production)
	require.NoError(t, err)
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
		Sealer: sealer, Holder: "h", Batch: 1, Retry: webhook.RetryPolicy{Schedule: []time.Duration{0, 0}}})
	require.NoError(t, err)
	return m, store, rcv, issued, d
}

// TestTenantDelivererRetryStopsWhenEndpointDeleted: an endpoint deleted
// while its event is being retried receives no further attempt (the
// default schedule retries for over a day).
func TestTenantDelivererRetryStopsWhenEndpointDeleted(t *testing.T) {
	ctx := context.Background()
	m, _, rcv, issued, d := retryingEndpoint(t)
	rcv.change = func() { assert.NoError(t, m.DeleteEndpoint(ctx, acmeOwner, issued.Endpoint.ID)) }
	_, err := d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, len(rcv.got()), "no attempt after the endpoint was deleted")
}

// TestTenantDelivererRetryStopsWhenEndpointDisabled: an endpoint disabled
// while its event is being retried receives no further attempt, and the
// event waits with its cursor: enabled again, the endpoint receives it.
func TestTenantDelivererRetryStopsWhenEndpointDisabled(t *testing.T) {
	ctx := context.Background()
	m, store, rcv, issued, d := retryingEndpoint(t)
	off := false
	rcv.change = func() {
		_, err := m.UpdateEndpoint(ctx, acmeOwner, issued.Endpoint.ID, apikey.EndpointUpdate{Enabled: &off})
		assert.NoError(t, err)
	}
	_, err := d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, len(rcv.got()), "no attempt after the endpoint was disabled")
	dead, err := store.DeadLetters(ctx, issued.Endpoint.DeliveryName(), 0, 10)
	require.NoError(t, err)
	assert.Empty(t, dead, "the event waits for the endpoint to be enabled, not dead-lettered")

	on := true
	rcv.change = nil
	_, err = m.UpdateEndpoint(ctx, acmeOwner, issued.Endpoint.ID, apikey.EndpointUpdate{Enabled: &on})
	require.NoError(t, err)
	_, err = d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	got := rcv.got()
	require.Equal(t, 4, len(got), "the event's three attempts once enabled again")
	assert.Equal(t, got[0].header.Get(webhook.HeaderID), got[1].header.Get(webhook.HeaderID), "the same event")
}

// TestTenantDelivererRetryGoesToUpdatedURL: an endpoint whose URL the
// owner changes while its event is being retried (a domain given up, a
// receiver moved) has the next attempts sent to the new URL only.
func TestTenantDelivererRetryGoesToUpdatedURL(t *testing.T) {
	ctx := context.Background()
	m, _, rcv, issued, d := retryingEndpoint(t)
	moved := &changingReceiver{}
	srv := httptest.NewServer(moved)
	defer srv.Close()
	rcv.change = func() {
		_, err := m.UpdateEndpoint(ctx, acmeOwner, issued.Endpoint.ID, apikey.EndpointUpdate{URL: &srv.URL})
		assert.NoError(t, err)
	}
	_, err := d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, len(rcv.got()), "no attempt at the URL the owner replaced")
	assert.Equal(t, 2, len(moved.got()), "the retries go to the new URL")
}

// TestTenantDelivererRetrySignsWithRotatedSecret: a secret rotated with no
// overlap (because it leaked) signs none of the retries after the
// rotation; the new secret signs them.
func TestTenantDelivererRetrySignsWithRotatedSecret(t *testing.T) {
	ctx := context.Background()
	m, _, rcv, issued, d := retryingEndpoint(t)
	var rotated apikey.IssuedEndpoint
	rcv.change = func() {
		var err error
		rotated, err = m.RotateEndpointSecret(ctx, acmeOwner, issued.Endpoint.ID, 0)
		assert.NoError(t, err)
	}
	_, err := d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	got := rcv.got()
	require.Equal(t, 3, len(got))
	oldSecret, err := webhook.ParseSecret(issued.Secret.Reveal())
	require.NoError(t, err)
	newSecret, err := webhook.ParseSecret(rotated.Secret.Reveal())
	require.NoError(t, err)
	old, fresh := &webhook.Verifier{Secrets: []webhook.Secret{oldSecret}}, &webhook.Verifier{Secrets: []webhook.Secret{newSecret}}
	_, err = old.Verify(got[0].header, got[0].body)
	require.NoError(t, err, "the first attempt, before the rotation")
	for _, r := range got[1:] {
		_, err = old.Verify(r.header, r.body)
		assert.ErrorIs(t, err, webhook.ErrNoMatchingSignature, "the replaced secret signs nothing after the rotation")
		_, err = fresh.Verify(r.header, r.body)
		assert.NoError(t, err)
	}
}

// TestTenantDelivererGoneYieldsToConcurrentChange: an owner who changes an
// endpoint (here, its URL) while an attempt is answered 410 Gone keeps the
// endpoint as changed: the 410 was the old endpoint's answer, and the
// deliverer does not disable the endpoint over the owner's change.
func TestTenantDelivererGoneYieldsToConcurrentChange(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	m, sealer := tenantManager(t, store)
	moved := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer moved.Close()
	var id string
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, err := m.UpdateEndpoint(ctx, acmeOwner, id, apikey.EndpointUpdate{URL: &moved.URL})
		assert.NoError(t, err)
		w.WriteHeader(http.StatusGone)
	}))
	defer gone.Close()
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: gone.URL,
		Actions: []apikey.Action{apikey.ActionBootstrap}})
	require.NoError(t, err)
	id = issued.Endpoint.ID
	_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production)
	require.NoError(t, err)
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
		Sealer: sealer, Batch: 1})
	require.NoError(t, err)
	_, err = d.Step(ctx, id)
	require.NoError(t, err)
	e, err := m.Endpoint(ctx, acmeOwner, id)
	require.NoError(t, err)
	assert.True(t, e.Enabled, "the owner's change after the 410 wins")
	assert.Equal(t, moved.URL, e.URL)
}

// TestDeliverersRefuseLeaseShorterThanAttempt: a lease no longer than the
// Sender's Timeout is refused, naming Lease: an attempt that outlasts its
// lease lets another instance take the endpoint and deliver to it at the
// same time, which the lease exists to prevent.
func TestDeliverersRefuseLeaseShorterThanAttempt(t *testing.T) {
	slow, err := webhook.NewSender(webhook.Options{Timeout: 2 * time.Minute})
	require.NoError(t, err)
	for _, lease := range []time.Duration{0, time.Minute, 2 * time.Minute} { // 0: DefaultLease, one minute
		_, err = events.NewTenantDeliverer(events.TenantDelivererOptions{Store: memory.New(), Sender: slow, Lease: lease})
		require.ErrorContains(t, err, "Lease", "lease %s", lease)
		_, err = events.NewDeliverer(events.DelivererOptions{Store: memory.New(), Sender: slow, Lease: lease,
			Endpoints: []events.Endpoint{{Name: "ops"}}})
		require.ErrorContains(t, err, "Lease", "lease %s", lease)
	}
	_, err = events.NewTenantDeliverer(events.TenantDelivererOptions{Store: memory.New(), Sender: slow, Lease: 3 * time.Minute})
	require.NoError(t, err)
	_, err = events.NewDeliverer(events.DelivererOptions{Store: memory.New(), Sender: slow, Lease: 3 * time.Minute,
		Endpoints: []events.Endpoint{{Name: "ops"}}})
	require.NoError(t, err)
}

// TestTenantDelivererStopsMidPageWhenEndpointChanges: within one step's
// page of events, each attempt goes to the endpoint as it is then: deleted
// after the page's first event, it receives none of the others; with its
// secret rotated without overlap, the others are signed with the new
// secret only.
func TestTenantDelivererStopsMidPageWhenEndpointChanges(t *testing.T) {
	ctx := context.Background()
	for _, change := range []string{"delete", "rotate"} {
		t.Run(change, func(t *testing.T) {
			store := memory.New()
			m, sealer := tenantManager(t, store)
			rcv := &changingReceiver{}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: srv.URL,
				Actions: []apikey.Action{apikey.ActionBootstrap}})
			require.NoError(t, err)
			id := issued.Endpoint.ID
			_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production) // two events, one page
			require.NoError(t, err)
			var rotated apikey.IssuedEndpoint
			rcv.change = func() {
				if change == "delete" {
					assert.NoError(t, m.DeleteEndpoint(ctx, acmeOwner, id))
					return
				}
				var rerr error
				rotated, rerr = m.RotateEndpointSecret(ctx, acmeOwner, id, 0)
				assert.NoError(t, rerr)
			}
			d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
				Sealer: sealer, Retry: webhook.RetryPolicy{Schedule: []time.Duration{}}}) // one attempt per event
			require.NoError(t, err)
			_, err = d.Step(ctx, id)
			require.NoError(t, err)
			got := rcv.got()
			if change == "delete" {
				assert.Equal(t, 1, len(got), "no event after the endpoint was deleted")
				return
			}
			require.Equal(t, 2, len(got))
			newSecret, err := webhook.ParseSecret(rotated.Secret.Reveal())
			require.NoError(t, err)
			assert.Equal(t, newSecret.Sign(got[1].header.Get(webhook.HeaderID), timestampOf(t, got[1].header), got[1].body),
				got[1].header.Get(webhook.HeaderSignature), "the new secret's signature only")
		})
	}
}

// timestampOf returns a request's webhook-timestamp.
func timestampOf(t *testing.T, h http.Header) time.Time {
	t.Helper()
	sec, err := strconv.ParseInt(h.Get(webhook.HeaderTimestamp), 10, 64)
	require.NoError(t, err)
	return time.Unix(sec, 0)
}

// TestTenantDelivererGoneDuringReplayDisables: a replayed dead letter
// answered 410 Gone disables the endpoint, as a first delivery answered 410
// does, and the letter is dead again.
func TestTenantDelivererGoneDuringReplayDisables(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	m, sealer := tenantManager(t, store)
	var status atomic.Int32
	status.Store(http.StatusInternalServerError)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) }))
	defer srv.Close()
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: srv.URL,
		Actions: []apikey.Action{apikey.ActionBootstrap}})
	require.NoError(t, err)
	id := issued.Endpoint.ID
	_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production)
	require.NoError(t, err)
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
		Sealer: sealer, Retry: webhook.RetryPolicy{Schedule: []time.Duration{}}})
	require.NoError(t, err)
	_, err = d.Step(ctx, id)
	require.NoError(t, err)
	letters, _, err := m.EndpointDeadLetters(ctx, acmeOwner, id, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, letters, 2, "the bootstrap's two events, dead")

	status.Store(http.StatusGone)
	n, err := m.Replay(ctx, acmeOwner, id, letters[0].EventID)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = d.Step(ctx, id)
	require.NoError(t, err)
	e, err := m.Endpoint(ctx, acmeOwner, id)
	require.NoError(t, err)
	assert.False(t, e.Enabled, "a 410 disables the endpoint, replayed or not")
	letters, _, err = m.EndpointDeadLetters(ctx, acmeOwner, id, apikey.Page{})
	require.NoError(t, err)
	assert.Equal(t, apikey.DeadLetterDead, letters[0].State)
}

// TestTenantDelivererEndpointDeletedDuringReplay: an endpoint deleted while
// one of its dead letters is being replayed ends the step without an
// error (its lease went with it) and receives nothing more.
func TestTenantDelivererEndpointDeletedDuringReplay(t *testing.T) {
	ctx := context.Background()
	m, store, rcv, issued, d := retryingEndpoint(t)
	id := issued.Endpoint.ID
	_, err := d.Step(ctx, id) // the first event: three attempts, dead
	require.NoError(t, err)
	n, err := m.Replay(ctx, acmeOwner, id, "")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	before := len(rcv.got())
	rcv.mu.Lock()
	rcv.requests = nil // the next request is the first again: it deletes the endpoint
	rcv.mu.Unlock()
	rcv.change = func() { assert.NoError(t, m.DeleteEndpoint(ctx, acmeOwner, id)) }
	once, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
		Sealer: sealerOf(t), Holder: "h", Batch: 1, Retry: webhook.RetryPolicy{Schedule: []time.Duration{}}}) // one attempt
	require.NoError(t, err)
	_, err = once.Step(ctx, id)
	require.NoError(t, err, "the endpoint is gone, not the deliverer's lease")
	assert.Equal(t, 3, before)
	assert.Equal(t, 1, len(rcv.got()), "no attempt after the deletion")
	letters, err := store.DeadLetters(ctx, issued.Endpoint.DeliveryName(), 0, 10)
	require.NoError(t, err)
	assert.Empty(t, letters)
}

// sealerOf returns the sealer of tenantManager's Managers (a fixed key).
func sealerOf(t *testing.T) apikey.Sealer {
	t.Helper()
	sealer, err := apikey.NewAESGCMSealer(make([]byte, 32))
	require.NoError(t, err)
	return sealer
}
