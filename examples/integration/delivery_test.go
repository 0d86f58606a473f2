package integration_test

import (
	"context"
	"fmt"
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
		rcv := webhooktest.NewReceiver(secret, 0.2)
		srv := httptest.NewServer(rcv)
		defer srv.Close()
		sender := webhooktest.LoopbackSender(t)

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
		for rcv.Count() < total && runCtx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		wg.Wait()

		all, _, err := first.EventsAfter(ctx, 0, 0)
		require.NoError(t, err)
		require.Len(t, all, total)
		rcv.AssertDelivered(t, all)
		dead, err := first.DeadLetters(ctx, "ops", 0, 10)
		require.NoError(t, err)
		assert.Empty(t, dead)
	})
}
