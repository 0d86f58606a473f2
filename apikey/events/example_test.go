package events_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/storage/memory"
)

// A Scanner writes the time-based events of every account's keys into the
// store's event stream, which any process reads with a cursor.
func ExampleScanner() {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	store := memory.New()
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: func() time.Time { return now }})
	_, _ = m.Bootstrap(ctx, apikey.Actor{ID: "ana", Role: apikey.Owner}, apikey.Production)
	_, _ = m.Create(ctx, apikey.Actor{ID: "ana", Role: apikey.Owner}, apikey.CreateRequest{Environment: apikey.Production,
		Type: apikey.Server, Scopes: []string{"orders:read"}, ExpiresAt: now.Add(48 * time.Hour)})

	sc, _ := events.NewScanner(events.ScannerOptions{Store: store, Window: 72 * time.Hour, Now: func() time.Time { return now }})
	n, _ := sc.Step(ctx) // Run(ctx) steps every minute
	fmt.Println("written:", n)

	page, next, _ := store.EventsAfter(ctx, 0, 100) // from the start of the stream
	for _, se := range page {
		fmt.Println(se.Event.ID(), se.Event.Action, se.Event.Actor.ID)
	}
	_ = next // read from here next time; keep it durably to resume after a restart
	// Output:
	// written: 1
	// evt_default_1 bootstrap ana
	// evt_default_2 bootstrap ana
	// evt_default_3 create ana
	// evt_default_4 key_expiring keystile
}

// A TenantDeliverer delivers each account's events to the endpoints its
// tenant registered through the Manager, signed with each endpoint's own
// secret. Run it in every instance beside the service's own Deliverer.
func ExampleTenantDeliverer() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	store := memory.New()
	sender, _ := webhook.NewSender(webhook.Options{}) // tenants' URLs: https, no internal address
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: sender})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Run(ctx))
	// Output:
	// context deadline exceeded
}

// An owner replays the dead letters of one of the account's endpoints; the
// endpoint's deliverer sends each again, under its event id, before the
// endpoint's next events, and records it delivered.
func ExampleTenantDeliverer_replay() {
	ctx := context.Background()
	store := memory.New()
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		AllowInternalEndpoints: true}) // the receiver below listens on loopback
	owner := apikey.Actor{ID: "ana", Role: apikey.Owner, Account: "acme"}
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ep, _ := m.CreateEndpoint(ctx, owner, apikey.EndpointRequest{URL: srv.URL})
	_, _ = m.Bootstrap(ctx, owner, apikey.Production) // two events

	sender, _ := webhook.NewSender(webhook.Options{Policy: webhook.Policy{AllowHTTP: true,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	d, _ := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: sender,
		Retry: webhook.RetryPolicy{Schedule: []time.Duration{time.Millisecond}}})
	n, _ := d.Step(ctx, ep.Endpoint.ID) // Run steps every endpoint with events
	letters, _, _ := m.EndpointDeadLetters(ctx, owner, ep.Endpoint.ID, apikey.Page{})
	fmt.Println(n, len(letters), letters[0].EventID, letters[0].State)

	healthy.Store(true)
	replayed, _ := m.Replay(ctx, owner, ep.Endpoint.ID, "") // every dead letter
	n, _ = d.Step(ctx, ep.Endpoint.ID)
	letters, _, _ = m.EndpointDeadLetters(ctx, owner, ep.Endpoint.ID, apikey.Page{})
	fmt.Println(replayed, n, letters[0].State, letters[1].State)
	// Output:
	// 2 2 evt_acme_2 dead
	// 2 2 delivered delivered
}
