package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

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

// TenantWebhooks configures the delivery of each account's events to the
// webhook endpoints that its tenants register through the management API
// (POST /admin/webhooks), which runs while the App runs. Its zero value is
// the strict policy.
type TenantWebhooks struct {
	// AllowLoopback lets tenants register http:// URLs and internal
	// addresses (apikey.ManagerOptions.AllowInternalEndpoints), and lets
	// deliveries reach the loopback addresses (127.0.0.0/8, ::1), and no
	// other internal address: a receiver on the same machine, for
	// development. The zero value refuses http and every internal address,
	// at registration and again on the address each delivery dials.
	AllowLoopback bool
	// Refresh is how often the list of every endpoint is read: the first
	// endpoint registered is found then, later ones as the event of their
	// registration arrives. Zero means events.DefaultRefresh (30 seconds).
	Refresh time.Duration
}

// loopback are the addresses that AllowLoopback admits.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// webhooks are the background loops: the delivery to tenants' endpoints
// and the Scanner of time-based events always, the delivery to the
// service's own endpoint with Config.Webhook.
type webhooks struct {
	deliverer *events.Deliverer // nil without Config.Webhook
	tenants   *events.TenantDeliverer
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
		policy.Allow = loopback
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

// newWebhooks prepares a TenantDeliverer of each account's events to its
// tenants' endpoints, a Scanner, and, with sender, a Deliverer of the
// store's events to the service's endpoint ep.
func (a *App) newWebhooks(sender *webhook.Sender, ep webhook.Endpoint) (*webhooks, error) {
	w := &webhooks{}
	onError := func(endpoint string, err error) { a.log.Warn("webhook delivery", "endpoint", endpoint, "error", err) }
	if sender != nil {
		d, err := events.NewDeliverer(events.DelivererOptions{Store: a.store, Sender: sender, OnError: onError,
			Endpoints: []events.Endpoint{{Name: WebhookEndpointName, Webhook: ep}},
		})
		if err != nil {
			return nil, err
		}
		w.deliverer = d
		a.log.Info("webhooks: delivering events", "url", ep.URL, "endpoint", WebhookEndpointName)
	}
	tenantPolicy := webhook.Policy{} // https, public addresses only
	if a.cfg.TenantWebhooks.AllowLoopback {
		tenantPolicy = webhook.Policy{AllowHTTP: true, Allow: loopback}
	}
	tenantSender, err := webhook.NewSender(webhook.Options{Policy: tenantPolicy})
	if err != nil {
		return nil, err
	}
	if w.tenants, err = events.NewTenantDeliverer(events.TenantDelivererOptions{Store: a.store, Sender: tenantSender,
		OnError: onError, Refresh: a.cfg.TenantWebhooks.Refresh}); err != nil {
		return nil, err
	}
	a.log.Info("webhooks: delivering to the endpoints tenants register (POST /admin/webhooks)",
		"allow_loopback", a.cfg.TenantWebhooks.AllowLoopback)
	if w.scanner, err = events.NewScanner(events.ScannerOptions{Store: a.store,
		OnError: func(err error) { a.log.Warn("time-based events", "error", err) }}); err != nil {
		return nil, err
	}
	return w, nil
}

// start runs the deliverers and the Scanner until stop.
func (w *webhooks) start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	if w.deliverer != nil {
		w.wg.Go(func() { _ = w.deliverer.Run(ctx) })
	}
	w.wg.Go(func() { _ = w.tenants.Run(ctx) })
	w.wg.Go(func() { _ = w.scanner.Run(ctx) })
}

// stop ends the loops and waits for them.
func (w *webhooks) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
}
