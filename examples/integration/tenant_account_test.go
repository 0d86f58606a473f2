package integration_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestTenantDeliveryFollowsAccountState, on both engines: a suspended
// account's endpoint receives nothing and keeps its events waiting (no
// dead letter) until the account is resumed, then receives them; a closed
// account's endpoint receives nothing more, and is kept.
func TestTenantDeliveryFollowsAccountState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher, AllowInternalEndpoints: true})
		require.NoError(t, err)
		acme := apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
		operator := apikey.Actor{ID: "op", Role: apikey.Owner, Account: apikey.AnyAccount}
		var received atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { received.Add(1) }))
		defer srv.Close()
		issued, err := m.CreateEndpoint(ctx, acme, apikey.EndpointRequest{URL: srv.URL})
		require.NoError(t, err)
		id := issued.Endpoint.ID
		_, err = m.Bootstrap(ctx, acme, apikey.Production)
		require.NoError(t, err)
		sender, err := webhook.NewSender(webhook.Options{Timeout: 30 * time.Second,
			Policy: webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
		require.NoError(t, err)
		d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: s, Sender: sender, Holder: "h"})
		require.NoError(t, err)
		appendAcme := func() {
			require.NoError(t, s.Apply(ctx, apikey.Change{Events: []apikey.Event{{Time: fixtureNow, Actor: apikey.SystemActor,
				Action: apikey.ActionExpired, Account: "acme", Environment: apikey.Production}}}))
		}
		n, err := d.Step(ctx, id)
		require.NoError(t, err)
		require.Equal(t, 2, n, "the bootstrap's two events")

		require.NoError(t, m.SuspendAccount(ctx, operator, "acme"))
		appendAcme()
		n, err = d.Step(ctx, id)
		require.NoError(t, err)
		assert.Zero(t, n, "suspended")
		assert.EqualValues(t, 2, received.Load())
		dead, err := s.DeadLetters(ctx, issued.Endpoint.DeliveryName(), 0, 10)
		require.NoError(t, err)
		assert.Empty(t, dead)

		require.NoError(t, m.ResumeAccount(ctx, operator, "acme"))
		n, err = d.Step(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, 3, n, "the suspension's event, the one appended meanwhile and the resumption's")
		assert.EqualValues(t, 5, received.Load())

		appendAcme()
		_, err = m.CloseAccount(ctx, acme, "acme")
		require.NoError(t, err)
		n, err = d.Step(ctx, id)
		require.NoError(t, err)
		assert.Zero(t, n, "closed")
		assert.EqualValues(t, 5, received.Load(), "nothing after the close, not even what waited")
		_, err = s.Endpoint(ctx, id)
		require.NoError(t, err, "kept")
	})
}
