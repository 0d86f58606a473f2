package integration_test

import (
	"context"
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
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestDeliveryThreeInstances delivers 200 events from three Deliverers,
// each on its own pool of one database (three processes), to a local
// receiver that fails 20 % of attempts, on both engines: every event is
// accepted exactly once, in stream order, each request verifies, and
// nothing is dead-lettered.
func TestDeliveryThreeInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const total = 200
		ctx := context.Background()
		first := b.store(t, dsn, sqlstore.Options{})
		for i := range total {
			require.NoError(t, first.Apply(ctx, apikey.Change{Events: []apikey.Event{{Time: fixtureNow, Actor: owner,
				Action: apikey.ActionCreate, Account: []string{"acme", "globex"}[i%2], Environment: apikey.Production,
				Detail: fmt.Sprint(i)}}}))
		}
		secret := webhook.GenerateSecret()
		verifier := webhook.Verifier{Secrets: []webhook.Secret{secret}}
		var (
			mu       sync.Mutex
			accepted = map[string]int{}
			order    []string
			bad      int
		)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			msg, err := verifier.Verify(r.Header, body)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				bad++
				w.WriteHeader(http.StatusBadRequest)
			case rand.Float64() < 0.2:
				w.WriteHeader(http.StatusInternalServerError)
			default:
				if accepted[msg.ID] == 0 {
					order = append(order, msg.ID)
				}
				accepted[msg.ID]++
			}
		}))
		defer srv.Close()
		sender, err := webhook.NewSender(webhook.Options{Policy: webhook.Policy{AllowHTTP: true,
			Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
		require.NoError(t, err)

		runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		for i := range 3 {
			d, err := events.NewDeliverer(events.DelivererOptions{
				Store: b.store(t, dsn, sqlstore.Options{}), Sender: sender, Holder: fmt.Sprintf("process-%d", i),
				Endpoints: []events.Endpoint{{Name: "ops", Webhook: webhook.Endpoint{URL: srv.URL, Secrets: []webhook.Secret{secret}}}},
				Retry:     webhook.RetryPolicy{Schedule: webhook.Exponential(time.Millisecond, 10*time.Millisecond, 12)},
				Lease:     20 * time.Second, Poll: 10 * time.Millisecond, Batch: 20,
			})
			require.NoError(t, err)
			wg.Go(func() { _ = d.Run(runCtx) })
		}
		for runCtx.Err() == nil {
			mu.Lock()
			n := len(order)
			mu.Unlock()
			if n == total {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		wg.Wait()

		all, _, err := first.EventsAfter(ctx, 0, 0)
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		assert.Zero(t, bad, "every request verifies")
		require.Len(t, order, total, "every event delivered")
		for i, se := range all {
			assert.Equal(t, se.Event.ID(), order[i], "stream order")
			assert.Equal(t, 1, accepted[se.Event.ID()], "accepted once")
		}
		dead, err := first.DeadLetters(ctx, "ops", 0, 10)
		require.NoError(t, err)
		assert.Empty(t, dead)
	})
}
