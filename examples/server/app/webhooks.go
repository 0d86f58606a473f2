package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
)

// WebhookEndpointName names the service's endpoint in the store (its
// delivery cursor, lease and dead letters).
const WebhookEndpointName = "service"

// Webhook configures the delivery of the store's events (every lifecycle
// change, and the time-based events a Scanner writes) to one endpoint of
// the service's own, signed as Standard Webhooks specify.
type Webhook struct {
	// URL is the endpoint. Required. It must be https and resolve to
	// public addresses, unless AllowLoopback.
	URL string
	// Secret signs every request; the receiver verifies with it. Required.
	Secret webhook.Secret
	// AllowLoopback admits http and the loopback addresses (127.0.0.0/8,
	// ::1), explicitly: a receiver on the same machine, for development.
	// The zero value keeps webhook's strict default, which refuses both.
	AllowLoopback bool
}

// webhooks are the background loops of Config.Webhook.
type webhooks struct {
	deliverer *events.Deliverer
	scanner   *events.Scanner
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// checkWebhook checks cfg's endpoint against its policy, so that a URL the
// policy refuses fails at start, before the store is opened, and returns
// the Sender and the endpoint.
func checkWebhook(ctx context.Context, cfg Webhook) (*webhook.Sender, webhook.Endpoint, error) {
	if cfg.URL == "" || cfg.Secret.IsZero() {
		return nil, webhook.Endpoint{}, errors.New("webhook: URL and Secret are required")
	}
	policy := webhook.Policy{}
	if cfg.AllowLoopback {
		policy.AllowHTTP = true
		policy.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	sender, err := webhook.NewSender(webhook.Options{Policy: policy})
	if err != nil {
		return nil, webhook.Endpoint{}, err
	}
	u, err := sender.CheckEndpoint(ctx, cfg.URL)
	if err != nil {
		return nil, webhook.Endpoint{}, fmt.Errorf("webhook URL: %w", err)
	}
	return sender, webhook.Endpoint{URL: u.String(), Secrets: []webhook.Secret{cfg.Secret}}, nil
}

// newWebhooks prepares a Deliverer of the store's events to ep, and a
// Scanner.
func (a *App) newWebhooks(sender *webhook.Sender, ep webhook.Endpoint) (*webhooks, error) {
	onError := func(endpoint string, err error) { a.log.Warn("webhook delivery", "endpoint", endpoint, "error", err) }
	d, err := events.NewDeliverer(events.DelivererOptions{Store: a.store, Sender: sender, OnError: onError,
		Endpoints: []events.Endpoint{{Name: WebhookEndpointName, Webhook: ep}},
	})
	if err != nil {
		return nil, err
	}
	sc, err := events.NewScanner(events.ScannerOptions{Store: a.store,
		OnError: func(err error) { a.log.Warn("time-based events", "error", err) }})
	if err != nil {
		return nil, err
	}
	a.log.Info("webhooks: delivering events", "url", ep.URL, "endpoint", WebhookEndpointName)
	return &webhooks{deliverer: d, scanner: sc}, nil
}

// start runs the Deliverer and the Scanner until stop.
func (w *webhooks) start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.wg.Go(func() { _ = w.deliverer.Run(ctx) })
	w.wg.Go(func() { _ = w.scanner.Run(ctx) })
}

// stop ends the loops and waits for them.
func (w *webhooks) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
}
