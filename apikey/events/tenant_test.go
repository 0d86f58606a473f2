package events_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
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

var (
	acmeOwner   = apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
	globexOwner = apikey.Actor{ID: "bob", Role: apikey.Owner, Account: "globex"}
)

// tenantManager returns a Manager whose tenants may register internal
// endpoints (the tests' receivers listen on loopback), sealing secrets.
func tenantManager(t *testing.T, store apikey.Store) (*apikey.Manager, apikey.Sealer) {
	t.Helper()
	sealer, err := apikey.NewAESGCMSealer(make([]byte, 32))
	require.NoError(t, err)
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Sealer: sealer, AllowInternalEndpoints: true})
	require.NoError(t, err)
	return m, sealer
}

// TestTenantDelivererDelivers runs two TenantDeliverers on one store: an
// account's endpoint receives, verified with its secret, every event of its
// account appended after it was created, once, in stream order, and no
// event of another account; a filtered endpoint receives only the actions
// it names.
func TestTenantDelivererDelivers(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	m, sealer := tenantManager(t, store)
	_, err := m.Bootstrap(ctx, acmeOwner, apikey.Production) // before the endpoint: not delivered
	require.NoError(t, err)

	all := &receiverServer{}
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: all.start(t)})
	require.NoError(t, err)
	secret, err := webhook.ParseSecret(issued.Secret.Reveal())
	require.NoError(t, err)
	all.rcv = webhooktest.NewReceiver(secret, 0.2)

	revokes := &receiverServer{}
	issued2, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: revokes.start(t),
		Actions: []apikey.Action{apikey.ActionRevoke}})
	require.NoError(t, err)
	secret2, err := webhook.ParseSecret(issued2.Secret.Reveal())
	require.NoError(t, err)
	revokes.rcv = webhooktest.NewReceiver(secret2, 0)

	_, err = m.Bootstrap(ctx, globexOwner, apikey.Production) // another account's events
	require.NoError(t, err)
	for range 5 {
		k, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
		require.NoError(t, err)
		_, err = m.Revoke(ctx, acmeOwner, k.View.ID)
		require.NoError(t, err)
	}

	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 2 {
		d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t),
			Sealer: sealer, Holder: string(rune('a' + i)), Poll: 5 * time.Millisecond, Refresh: 50 * time.Millisecond,
			Retry: webhook.RetryPolicy{Schedule: webhook.Exponential(time.Millisecond, 5*time.Millisecond, 12)}})
		require.NoError(t, err)
		wg.Go(func() { _ = d.Run(runCtx) })
	}

	stored, err := store.Endpoint(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	want, _, err := store.AccountEventsAfter(ctx, "acme", stored.Start, 0)
	require.NoError(t, err)
	require.Len(t, want, 11, "the second endpoint's creation, five creations, five revocations")
	var wantRevokes []apikey.StreamEvent
	for _, se := range want {
		if se.Event.Action == apikey.ActionRevoke {
			wantRevokes = append(wantRevokes, se)
		}
	}
	for (all.rcv.Count() < len(want) || revokes.rcv.Count() < len(wantRevokes)) && runCtx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	all.rcv.AssertDelivered(t, want)
	revokes.rcv.AssertDelivered(t, wantRevokes)
	dead, err := store.DeadLetters(ctx, stored.DeliveryName(), 0, 10)
	require.NoError(t, err)
	assert.Empty(t, dead)
}

// receiverServer is a local receiver whose handler is set once its
// endpoint's secret is known.
type receiverServer struct{ rcv *webhooktest.Receiver }

func (s *receiverServer) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.rcv.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// sequenceResolver answers each name from a table, the next answer for
// each query and then the last one: local, no network.
type sequenceResolver struct {
	mu      sync.Mutex
	answers map[string][]string
}

func (r *sequenceResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	answer := list[0]
	if len(list) > 1 {
		r.answers[host] = list[1:]
	}
	var out []netip.Addr
	for _, a := range strings.Split(answer, ",") {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// TestTenantDelivererSSRF: with the Sender's default policy (internal
// addresses refused; http admitted here only because the receiver has no
// TLS), a tenant endpoint at loopback, a private address, the metadata
// address, IPv6 loopback, or a name that resolves to a public address when
// it is checked and to a private one when it is dialed never receives a
// request: each event is dead-lettered, naming the refusal.
func TestTenantDelivererSSRF(t *testing.T) {
	ctx := context.Background()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	resolver := &sequenceResolver{answers: map[string][]string{
		"loopback.test": {"127.0.0.1"},
		"private.test":  {"10.0.0.1"},
		"metadata.test": {"169.254.169.254"},
		"ipv6.test":     {"::1"},
		"rebind.test":   {"93.184.215.14", "10.0.0.1"},
	}}
	sender, err := webhook.NewSender(webhook.Options{Policy: webhook.Policy{AllowHTTP: true}, Resolver: resolver, Timeout: 5 * time.Second})
	require.NoError(t, err)
	_, err = sender.CheckEndpoint(ctx, "http://rebind.test:"+port+"/")
	require.NoError(t, err, "the name resolves to a public address when it is checked")

	hosts := []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "loopback.test", "private.test", "metadata.test",
		"ipv6.test", "rebind.test"}
	for _, host := range hosts {
		t.Run(host, func(t *testing.T) {
			store := memory.New()
			m, sealer := tenantManager(t, store)
			issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: "http://" + host + ":" + port + "/"})
			require.NoError(t, err)
			_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production)
			require.NoError(t, err)
			d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: sender, Sealer: sealer,
				Retry: webhook.RetryPolicy{Schedule: []time.Duration{time.Millisecond}}})
			require.NoError(t, err)
			n, err := d.Step(ctx, issued.Endpoint.ID)
			require.NoError(t, err)
			assert.Equal(t, 2, n)
			dead, err := store.DeadLetters(ctx, issued.Endpoint.DeliveryName(), 0, 10)
			require.NoError(t, err)
			require.Len(t, dead, 2, "both events dead-lettered")
			assert.Regexp(t, `forbidden address|is (loopback|private|link-local)`, dead[0].Reason, "the reason names the refusal")
		})
	}
	assert.Zero(t, hits.Load(), "a forbidden target received a request")
}

// TestTenantDelivererSkipsUnknownAndDisabled: Step delivers nothing for an
// endpoint that does not exist or is disabled, and a disabled endpoint
// receives what it missed once enabled.
func TestTenantDelivererSkipsUnknownAndDisabled(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	m, sealer := tenantManager(t, store)
	rs := &receiverServer{}
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: rs.start(t), Disabled: true})
	require.NoError(t, err)
	secret, err := webhook.ParseSecret(issued.Secret.Reveal())
	require.NoError(t, err)
	rs.rcv = webhooktest.NewReceiver(secret, 0)
	_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production)
	require.NoError(t, err)
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t), Sealer: sealer})
	require.NoError(t, err)
	n, err := d.Step(ctx, "ep_000000000000000000000000")
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Zero(t, n, "disabled")
	on := true
	_, err = m.UpdateEndpoint(ctx, acmeOwner, issued.Endpoint.ID, apikey.EndpointUpdate{Enabled: &on})
	require.NoError(t, err)
	n, err = d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "the bootstrap's two events and the update's")
	assert.Equal(t, 3, rs.rcv.Count())
}

func TestNewTenantDelivererOptions(t *testing.T) {
	_, err := events.NewTenantDeliverer(events.TenantDelivererOptions{})
	require.Error(t, err)
	_, err = events.NewTenantDeliverer(events.TenantDelivererOptions{Store: storeOnly{memory.New()}, Sender: webhooktest.LoopbackSender(t)})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = events.NewDeliverer(events.DelivererOptions{Store: memory.New(), Sender: webhooktest.LoopbackSender(t),
		Endpoints: []events.Endpoint{{Name: "tenant/x"}}})
	require.ErrorContains(t, err, "tenant/")
}

type storeOnly struct{ apikey.Store }

// TestTenantDelivererGoneDisables: an endpoint that answers 410 Gone has
// that event dead-lettered and is disabled, by the system, with an audit
// event; enabled again by its owner, it receives the events it missed.
func TestTenantDelivererGoneDisables(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	m, sealer := tenantManager(t, store)
	var gone atomic.Bool
	gone.Store(true)
	var delivered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone.Load() {
			w.WriteHeader(http.StatusGone)
			return
		}
		delivered.Add(1)
	}))
	defer srv.Close()
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: srv.URL})
	require.NoError(t, err)
	id := issued.Endpoint.ID
	_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production) // two events
	require.NoError(t, err)
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t), Sealer: sealer})
	require.NoError(t, err)
	n, err := d.Step(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the endpoint is disabled after the first event")
	e, err := m.Endpoint(ctx, acmeOwner, id)
	require.NoError(t, err)
	assert.False(t, e.Enabled)
	audit, err := store.Events(ctx, storageQuery("acme"))
	require.NoError(t, err)
	assert.Equal(t, apikey.ActionUpdateEndpoint, audit[0].Action)
	assert.Equal(t, apikey.SystemActor.ID, audit[0].Actor.ID)
	assert.Contains(t, audit[0].Detail, "410 Gone")
	dead, err := store.DeadLetters(ctx, e.DeliveryName(), 0, 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)

	gone.Store(false)
	on := true
	_, err = m.UpdateEndpoint(ctx, acmeOwner, id, apikey.EndpointUpdate{Enabled: &on})
	require.NoError(t, err)
	n, err = d.Step(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "the bootstrap's second event, the system's update and the owner's")
	assert.EqualValues(t, 3, delivered.Load())
}
