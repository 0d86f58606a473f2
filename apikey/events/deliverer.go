package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/webhook"
)

// Defaults of DelivererOptions.
const (
	DefaultLease = time.Minute
	DefaultPoll  = time.Second
)

// Endpoint is one of the service's own webhook endpoints, configured in Go.
type Endpoint struct {
	// Name identifies the endpoint in the store (its cursor, lease and
	// dead letters): 1 to 64 bytes, stable across restarts and the same in
	// every instance, not starting with apikey.EndpointDeliveryPrefix
	// ("tenant/", the names of tenants' endpoints). Required.
	Name string
	// Webhook is where events go and the secrets that sign them.
	Webhook webhook.Endpoint
	// Accept, if set, selects the events sent; the others are passed over.
	// Nil sends every event.
	Accept func(apikey.Event) bool
}

// DelivererOptions configure a Deliverer. Store, Sender and Endpoints are
// required.
type DelivererOptions struct {
	// Store must implement apikey.EventStream and apikey.DeliveryLog
	// (memory and sqlstore do).
	Store apikey.Store
	// Sender makes each attempt, with its SSRF policy, timeout and
	// response bound (see package apikey/webhook).
	Sender *webhook.Sender
	// Endpoints are the service's endpoints; names must be distinct.
	Endpoints []Endpoint
	// Holder names this instance in the leases; empty means a random name.
	Holder string
	// Retry decides when to try an event again and when to dead-letter
	// it. The zero value is webhook's default schedule.
	Retry webhook.RetryPolicy
	// Lease is how long a lease lasts between renewals; it must be longer
	// than the Sender's Timeout (NewDeliverer refuses it otherwise) and
	// than that plus the clocks' disagreement between instances. Zero
	// means DefaultLease.
	Lease time.Duration
	// Poll is how long Run waits when an endpoint has no new event, or
	// another instance holds its lease. Zero means DefaultPoll.
	Poll time.Duration
	// Batch is how many events a Step reads at a time. Zero means
	// DefaultBatch.
	Batch int
	// Now is the clock of leases and messages. Nil means time.Now.
	Now func() time.Time
	// OnError, if set, is told of each step that failed, attempt that
	// failed and event dead-lettered, with the endpoint's name.
	OnError func(endpoint string, err error)
}

// Deliverer delivers the store's event stream to the service's own webhook
// endpoints, at least once, signed as Standard Webhooks specify, with the
// event's id (apikey.Event.ID) as webhook-id on every attempt so that a
// receiver drops duplicates.
//
// Each endpoint is delivered by one instance at a time: the holder of its
// lease in the store (apikey.DeliveryLog), which it renews before each
// attempt and while it waits for a retry. The holder delivers the
// endpoint's events in stream order, one at a time, each until it is
// delivered or its retries are spent (Retry); an event not delivered is
// dead-lettered (apikey.DeadLetter) and delivery goes on with the next.
// The endpoint's cursor moves past an event only once it is delivered or
// dead. An instance that stops mid-event leaves it to the next holder,
// which delivers it again: the receiver may see an id twice, never an id
// skipped. A failing endpoint delays its own events only.
//
// A Deliverer is safe for concurrent use.
type Deliverer struct {
	stream    apikey.EventStream
	log       apikey.DeliveryLog
	replay    apikey.ReplayLog // nil for a store without one
	sender    *webhook.Sender
	endpoints []Endpoint
	holder    string
	retry     webhook.RetryPolicy
	lease     time.Duration
	poll      time.Duration
	batch     int
	now       func() time.Time
	onError   func(string, error)
}

// NewDeliverer returns a Deliverer, or an error naming the option that is
// missing or invalid (a store without the capabilities: an error wrapping
// errors.ErrUnsupported).
func NewDeliverer(opts DelivererOptions) (*Deliverer, error) {
	if opts.Store == nil || opts.Sender == nil {
		return nil, errors.New("events: DelivererOptions.Store and Sender are required")
	}
	stream, ok := opts.Store.(apikey.EventStream)
	log, ok2 := opts.Store.(apikey.DeliveryLog)
	if !ok || !ok2 {
		return nil, fmt.Errorf("events: the store needs apikey.EventStream and apikey.DeliveryLog: %w", errors.ErrUnsupported)
	}
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("events: DelivererOptions.Endpoints is empty")
	}
	names := map[string]bool{}
	for _, e := range opts.Endpoints {
		if e.Name == "" || len(e.Name) > 64 || names[e.Name] {
			return nil, fmt.Errorf("events: endpoint names must be 1 to 64 bytes and distinct, got %q", e.Name)
		}
		if strings.HasPrefix(e.Name, apikey.EndpointDeliveryPrefix) {
			return nil, fmt.Errorf("events: endpoint name %q starts with %q, which names tenants' endpoints", e.Name,
				apikey.EndpointDeliveryPrefix)
		}
		names[e.Name] = true
	}
	if opts.Lease < 0 || opts.Poll < 0 || opts.Batch < 0 {
		return nil, errors.New("events: DelivererOptions.Lease, Poll and Batch may not be negative")
	}
	replay, _ := opts.Store.(apikey.ReplayLog)
	d := &Deliverer{stream: stream, log: log, replay: replay, sender: opts.Sender, endpoints: append([]Endpoint(nil), opts.Endpoints...),
		holder: opts.Holder, retry: opts.Retry, lease: opts.Lease, poll: opts.Poll, batch: opts.Batch, now: opts.Now,
		onError: opts.OnError}
	d.fillDefaults()
	if err := d.checkLease("DelivererOptions"); err != nil {
		return nil, err
	}
	return d, nil
}

// checkLease refuses a lease (after defaults) no longer than the Sender's
// Timeout: an attempt that outlasts its lease lets another instance take
// the endpoint and deliver to it at the same time.
func (d *Deliverer) checkLease(options string) error {
	if d.lease <= d.sender.Timeout() {
		return fmt.Errorf("events: %s.Lease (%s, zero meaning DefaultLease) must be longer than the Sender's Timeout (%s)",
			options, d.lease, d.sender.Timeout())
	}
	return nil
}

// fillDefaults gives every option left at its zero value its default: a
// random holder name, DefaultLease, DefaultPoll, DefaultBatch, time.Now
// and an OnError that ignores errors.
func (d *Deliverer) fillDefaults() {
	if d.holder == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		d.holder = "deliverer-" + hex.EncodeToString(b[:])
	}
	if d.lease == 0 {
		d.lease = DefaultLease
	}
	if d.poll == 0 {
		d.poll = DefaultPoll
	}
	if d.batch == 0 {
		d.batch = DefaultBatch
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.onError == nil {
		d.onError = func(string, error) {}
	}
}

// Payload is the JSON body of each webhook: the Standard Webhooks shape,
// with the event as data.
type Payload struct {
	Type      apikey.Action `json:"type"`
	Timestamp time.Time     `json:"timestamp"`
	Data      apikey.Event  `json:"data"`
}

// Run delivers to every endpoint, each in a goroutine of its own, until
// ctx is done, and returns ctx's error.
func (d *Deliverer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, e := range d.endpoints {
		wg.Go(func() {
			for ctx.Err() == nil {
				n, err := d.Step(ctx, e.Name)
				if err != nil && ctx.Err() == nil {
					d.onError(e.Name, err)
				}
				if n == 0 || err != nil {
					sleep(ctx, d.poll)
				}
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// Step takes the named endpoint's lease, if no other instance holds it,
// and delivers the endpoint's dead letters being replayed (a page of them,
// with a store that is an apikey.ReplayLog; the endpoint's Accept does
// not apply), or else delivers (or dead-letters) the events of one page
// after the endpoint's cursor; it returns how many letters or events it
// resolved. It returns 0 and no error when another instance holds the
// lease.
func (d *Deliverer) Step(ctx context.Context, endpoint string) (int, error) {
	var ep *Endpoint
	for i := range d.endpoints {
		if d.endpoints[i].Name == endpoint {
			ep = &d.endpoints[i]
		}
	}
	if ep == nil {
		return 0, fmt.Errorf("events: no endpoint named %q", endpoint)
	}
	cursor, ok, err := d.renew(ctx, ep.Name)
	if err != nil || !ok {
		return 0, err
	}
	replayed, _, err := d.replays(ctx, ep.Name, ep.Webhook, nil)
	if err != nil || replayed > 0 {
		return replayed, err
	}
	page, _, err := d.stream.EventsAfter(ctx, cursor, d.batch)
	if err != nil {
		return 0, fmt.Errorf("events: reading the stream: %w", err)
	}
	for i, se := range page {
		var dead *apikey.DeadLetter
		if ep.Accept == nil || ep.Accept(se.Event) {
			if dead, err = d.deliver(ctx, ep.Name, ep.Webhook, se, nil); err != nil {
				return i, err
			}
		}
		if err := d.log.AdvanceDelivery(ctx, ep.Name, d.holder, d.now(), se.Cursor, dead); err != nil {
			return i, fmt.Errorf("events: %s: %w", ep.Name, err)
		}
	}
	return len(page), nil
}

// replays delivers up to a page of the endpoint's dead letters that are
// replaying (apikey.ReplayLog), whatever the endpoint's filter, and
// records each outcome; it returns how many it resolved, and whether the
// last one was answered 410 Gone (it stops there). The caller holds the
// endpoint's lease.
func (d *Deliverer) replays(ctx context.Context, name string, target webhook.Endpoint, refresh refresher) (int, bool, error) {
	if d.replay == nil {
		return 0, false, nil
	}
	letters, err := d.replay.Replaying(ctx, name, d.batch)
	if err != nil {
		return 0, false, fmt.Errorf("events: %s: reading replays: %w", name, err)
	}
	for i, l := range letters {
		page, _, err := d.stream.EventsAfter(ctx, l.Cursor-1, 1)
		if err != nil {
			return i, false, fmt.Errorf("events: %s: reading a replayed event: %w", name, err)
		}
		var (
			dead *apikey.DeadLetter
			gone bool
		)
		if len(page) == 1 && page[0].Cursor == l.Cursor {
			if dead, gone, err = d.deliverOrGone(ctx, name, target, page[0], refresh); err != nil {
				return i, false, err
			}
		} else { // not in the stream: nothing to send
			dead = &apikey.DeadLetter{Cursor: l.Cursor, EventID: l.EventID, Type: l.Type, Attempts: 0, Reason: "event not in the stream", At: d.now()}
		}
		if err := d.replay.ResolveReplay(ctx, name, d.holder, d.now(), l.Cursor, dead); err != nil {
			return i, false, fmt.Errorf("events: %s: %w", name, err)
		}
		if gone {
			return i + 1, true, nil
		}
	}
	return len(letters), false, nil
}

// renew takes or renews the endpoint's lease.
func (d *Deliverer) renew(ctx context.Context, endpoint string) (int64, bool, error) {
	now := d.now()
	cursor, ok, err := d.log.LeaseDelivery(ctx, endpoint, d.holder, now, now.Add(d.lease))
	if err != nil {
		return 0, false, fmt.Errorf("events: %s: lease: %w", endpoint, err)
	}
	return cursor, ok, nil
}

// refresher returns an endpoint's target as it stands before an attempt,
// or ok false when the endpoint receives no more events (it was deleted or
// disabled meanwhile).
type refresher func(ctx context.Context) (target webhook.Endpoint, ok bool, err error)

// errStopped is deliver's error when the endpoint's refresher says it
// receives no more events: the event is neither delivered nor dead.
var errStopped = errors.New("events: the endpoint receives no more events")

// deliver attempts an event until it is delivered (nil), or returns its
// dead letter. Before each attempt, refresh (if not nil) gives the target
// the attempt goes to, or stops the delivery with errStopped. It fails when
// the lease is lost or ctx is done.
func (d *Deliverer) deliver(ctx context.Context, name string, target webhook.Endpoint, se apikey.StreamEvent,
	refresh refresher) (*apikey.DeadLetter, error) {
	dead, _, err := d.deliverOrGone(ctx, name, target, se, refresh)
	return dead, err
}

// deliverOrGone is deliver, and reports whether the retry policy said to
// disable the endpoint (it answered 410 Gone).
func (d *Deliverer) deliverOrGone(ctx context.Context, name string, target webhook.Endpoint, se apikey.StreamEvent,
	refresh refresher) (*apikey.DeadLetter, bool, error) {
	id := se.Event.ID()
	body, err := json.Marshal(Payload{Type: se.Event.Action, Timestamp: se.Event.Time, Data: se.Event})
	if err != nil {
		return nil, false, err
	}
	for attempts := 1; ; attempts++ {
		if refresh != nil { // before the lease, which a deleted endpoint no longer has
			current, ok, err := refresh(ctx)
			if err != nil {
				return nil, false, fmt.Errorf("events: %s: reading the endpoint before an attempt: %w", name, err)
			} else if !ok {
				return nil, false, errStopped
			}
			target = current
		}
		if _, ok, err := d.renew(ctx, name); err != nil {
			return nil, false, err
		} else if !ok {
			return nil, false, fmt.Errorf("events: %s: %w", name, apikey.ErrLeaseLost)
		}
		a, err := d.sender.Send(ctx, target, webhook.Message{ID: id, Timestamp: d.now(), Body: body})
		outcome := a.Outcome
		if err != nil { // the endpoint's configuration: no attempt can succeed
			return &apikey.DeadLetter{Cursor: se.Cursor, EventID: id, Type: se.Event.Action, Attempts: attempts, Reason: err.Error(), At: d.now()}, false, nil
		}
		decision := d.retry.Next(outcome, attempts)
		switch decision.Action {
		case webhook.Done:
			return nil, false, nil
		case webhook.RetryLater:
			d.onError(name, fmt.Errorf("events: attempt %d of %s: %s (status %d)", attempts, id, outcome, a.Status))
			if err := d.wait(ctx, name, decision.Wait); err != nil {
				return nil, false, err
			}
		default: // DeadLetter, Disable
			reason := fmt.Sprintf("%s after %d attempts (status %d)", outcome, attempts, a.Status)
			if errors.Is(a.Err, webhook.ErrForbiddenAddress) {
				reason += ": " + webhook.ErrForbiddenAddress.Error()
			}
			d.onError(name, fmt.Errorf("events: %s dead-lettered: %s", id, reason))
			return &apikey.DeadLetter{Cursor: se.Cursor, EventID: id, Type: se.Event.Action, Attempts: attempts, Reason: reason, At: d.now()},
				decision.Action == webhook.Disable, nil
		}
	}
}

// wait waits for wait, renewing the endpoint's lease every third of its
// length.
func (d *Deliverer) wait(ctx context.Context, endpoint string, wait time.Duration) error {
	for wait > 0 {
		chunk := min(wait, d.lease/3)
		if !sleep(ctx, chunk) {
			return ctx.Err()
		}
		wait -= chunk
		if _, ok, err := d.renew(ctx, endpoint); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("events: %s: %w", endpoint, apikey.ErrLeaseLost)
		}
	}
	return nil
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
