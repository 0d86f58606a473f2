package integration_test

import (
	"context"
	"fmt"
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
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestTenantDeliveryThreeInstances runs three TenantDeliverers, each on a
// pool of its own, on both engines: acme's endpoint, whose receiver fails
// 20 % of attempts, receives every acme event appended after it was
// created, once, in stream order, each verified with the Standard Webhooks
// reference library and its own secret (sealed in the store), and no
// event of globex, whose endpoint never answers and delays nothing.
func TestTenantDeliveryThreeInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		sealer, err := apikey.NewAESGCMSealer(make([]byte, 32))
		require.NoError(t, err)
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher, Sealer: sealer, AllowInternalEndpoints: true})
		require.NoError(t, err)
		acme := apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
		globex := apikey.Actor{ID: "bob", Role: apikey.Owner, Account: "globex"}
		before := apikey.Event{Time: fixtureNow, Actor: acme, Action: apikey.ActionCreate, Account: "acme", Detail: "before"}
		require.NoError(t, s.Apply(ctx, apikey.Change{Events: []apikey.Event{before}}))

		var rcv *stdReceiver
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rcv.ServeHTTP(w, r) }))
		defer srv.Close()
		issued, err := m.CreateEndpoint(ctx, acme, apikey.EndpointRequest{URL: srv.URL})
		require.NoError(t, err)
		secret, err := webhook.ParseSecret(issued.Secret.Reveal())
		require.NoError(t, err)
		rcv = newStdReceiver(t, secret, 0.2)
		var hang hangingReceiver
		hangSrv := httptest.NewServer(&hang)
		defer hangSrv.Close()
		_, err = m.CreateEndpoint(ctx, globex, apikey.EndpointRequest{URL: hangSrv.URL})
		require.NoError(t, err)

		for i := range 60 {
			account, actor := "acme", acme
			if i%2 == 1 {
				account, actor = "globex", globex
			}
			require.NoError(t, s.Apply(ctx, apikey.Change{Events: []apikey.Event{{Time: fixtureNow, Actor: actor,
				Action: apikey.ActionCreate, Account: account, Environment: apikey.Production, Detail: fmt.Sprint(i)}}}))
		}
		stored, err := s.Endpoint(ctx, issued.Endpoint.ID)
		require.NoError(t, err)
		want, _, err := s.AccountEventsAfter(ctx, "acme", stored.Start, 0)
		require.NoError(t, err)
		require.Len(t, want, 30, "acme's events after the endpoint's creation")

		sender, err := webhook.NewSender(webhook.Options{Timeout: 5 * time.Minute,
			Policy: webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
		require.NoError(t, err)
		runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		defer wg.Wait()
		for i := range 3 {
			d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: b.store(t, dsn, sqlstore.Options{}),
				Sender: sender, Sealer: sealer, Holder: fmt.Sprintf("process-%d", i), Lease: 10 * time.Minute,
				Poll: 10 * time.Millisecond, Refresh: 100 * time.Millisecond,
				Retry: webhook.RetryPolicy{Schedule: webhook.Exponential(time.Millisecond, 10*time.Millisecond, 12)}})
			require.NoError(t, err)
			wg.Go(func() { _ = d.Run(runCtx) })
		}
		for rcv.Count() < len(want) && runCtx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		assert.EqualValues(t, 1, hang.attempts.Load(), "the hanging endpoint's first attempt, still waiting")
		cancel()
		wg.Wait()

		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		assert.Zero(t, rcv.bad, "every request verifies with the reference library")
		ids := make([]string, len(want))
		for i, se := range want {
			ids[i] = se.Event.ID()
		}
		assert.Equal(t, ids, rcv.order, "acme's events after the endpoint's creation, once each, in stream order")
		dead, err := s.DeadLetters(ctx, stored.DeliveryName(), 0, 10)
		require.NoError(t, err)
		assert.Empty(t, dead)
	})
}
