package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/webhook"
)

// DefaultRefresh is how often a TenantDeliverer reads the list of every
// endpoint when TenantDelivererOptions.Refresh is zero.
const DefaultRefresh = 30 * time.Second

// TenantDelivererOptions configure a TenantDeliverer. Store and Sender are
// required.
type TenantDelivererOptions struct {
	// Store must implement apikey.EventStream, apikey.DeliveryLog and
	// apikey.EndpointStore (memory and sqlstore do).
	Store apikey.Store
	// Sender makes each attempt. Its Policy decides which addresses
	// tenants' URLs may reach, checked on the address dialed: keep the
	// zero Policy (loopback, private, link-local, metadata and every other
	// special-purpose range refused, https only) unless the service means
	// to let tenants reach internal targets.
	Sender *webhook.Sender
	// Sealer opens endpoint secrets sealed by the Manager
	// (ManagerOptions.Sealer); nil when the Manager has none.
	Sealer apikey.Sealer
	// Holder names this instance in the leases; empty means a random name.
	Holder string
	// Retry, Lease, Poll, Batch, Now and OnError are as in
	// DelivererOptions (Lease longer than the Sender's Timeout). OnError
	// names the endpoint by its DeliveryName.
	Retry   webhook.RetryPolicy
	Lease   time.Duration
	Poll    time.Duration
	Batch   int
	Now     func() time.Time
	OnError func(endpoint string, err error)
	// Refresh is how often Run reads the list of every endpoint (and
	// tries each enabled one once), beside the endpoints it wakes when
	// their account has new events. Zero means DefaultRefresh.
	Refresh time.Duration
}

// TenantDeliverer delivers each account's events to the webhook endpoints
// its tenant registered (apikey.WebhookEndpoint, through the Manager), with
// the guarantees of Deliverer: at least once, in stream order, signed as
// Standard Webhooks specify with the event's id as webhook-id, retried with
// backoff and dead-lettered after the last attempt, one instance at a
// time per endpoint (its lease in apikey.DeliveryLog, under the name
// WebhookEndpoint.DeliveryName). An endpoint receives the events of its
// own account only, that its filters accept, appended after it was
// created; a disabled endpoint's cursor waits, and it receives what it
// missed once enabled again. An endpoint that answers 410 Gone, to an
// event or to a replayed dead letter, is disabled (an ActionUpdateEndpoint
// event by apikey.SystemActor) after that event is dead-lettered. The
// endpoint's secrets (both while a rotated one overlaps) sign each attempt.
//
// The endpoints of a suspended account (apikey.Manager.SuspendAccount)
// receive nothing while it is suspended: their events, and dead letters
// being replayed, wait with their cursors, and are delivered once the
// account is resumed (the resume's events wake its endpoints). The
// endpoints of a closed account (apikey.Manager.CloseAccount) receive
// nothing more, not even the events that were waiting when it closed: they
// are kept, with their cursors and dead letters, until their owner deletes
// them (Manager.DeleteEndpoint still may). An account counts as suspended
// or closed as soon as one of its environments is (apikey.Settings
// SuspendedAt, ClosedAt), as the store's OpenAccount check counts it.
//
// Before each attempt but a step's first, the endpoint is read again
// (retries span hours, webhook.DefaultSchedule, and a page of events many
// attempts): an attempt goes to the endpoint's URL and is signed with its
// secrets as they are then, so that a URL replaced or a secret rotated
// without overlap receives or signs nothing more; an endpoint deleted or
// disabled meanwhile receives no further attempt, and a disabled one's
// event waits with its cursor; so does the event of an endpoint whose
// account is suspended or closed meanwhile. An attempt already in flight
// when the endpoint changes still completes.
//
// Cost: Run reads the stream's new events once per Poll per instance
// (from the newest endpoint's start; while there is no endpoint at all it
// reads nothing, and the first endpoint is found by the next Refresh),
// only to learn which accounts have new events (and which changed their
// endpoints); an endpoint is stepped only when its account has new events,
// at each Refresh, or after a failed step. A step reads the endpoint's
// account's events after its cursor by index
// (apikey.EndpointStore.AccountEventsAfter), so each event is read once by
// the wake-up reader and once for each endpoint of its own account (at
// most apikey.MaxEndpoints): O(events × endpoints per account), never
// O(events × every endpoint); each attempt but a step's first reads its
// endpoint (by id) and its account's environments (one page, by index).
// Idle endpoints cost one listing per Refresh; a step also reads the
// account's environments.
//
// Each endpoint with events is delivered in a goroutine of its own: a slow,
// hanging or failing endpoint delays only its own events. A
// TenantDeliverer is safe for concurrent use.
type TenantDeliverer struct {
	core      *Deliverer
	store     apikey.Store
	endpoints apikey.EndpointStore
	sealer    apikey.Sealer
	refresh   time.Duration
}

// NewTenantDeliverer returns a TenantDeliverer, or an error naming the
// option that is missing or invalid (a store without the capabilities: an
// error wrapping errors.ErrUnsupported).
func NewTenantDeliverer(opts TenantDelivererOptions) (*TenantDeliverer, error) {
	if opts.Store == nil || opts.Sender == nil {
		return nil, errors.New("events: TenantDelivererOptions.Store and Sender are required")
	}
	stream, ok := opts.Store.(apikey.EventStream)
	log, ok2 := opts.Store.(apikey.DeliveryLog)
	es, ok3 := opts.Store.(apikey.EndpointStore)
	if !ok || !ok2 || !ok3 {
		return nil, fmt.Errorf("events: the store needs apikey.EventStream, apikey.DeliveryLog and apikey.EndpointStore: %w",
			errors.ErrUnsupported)
	}
	if opts.Lease < 0 || opts.Poll < 0 || opts.Batch < 0 || opts.Refresh < 0 {
		return nil, errors.New("events: TenantDelivererOptions.Lease, Poll, Batch and Refresh may not be negative")
	}
	replay, _ := opts.Store.(apikey.ReplayLog)
	core := &Deliverer{stream: stream, log: log, replay: replay, sender: opts.Sender, holder: opts.Holder, retry: opts.Retry,
		lease: opts.Lease, poll: opts.Poll, batch: opts.Batch, now: opts.Now, onError: opts.OnError}
	core.fillDefaults()
	if err := core.checkLease("TenantDelivererOptions"); err != nil {
		return nil, err
	}
	t := &TenantDeliverer{core: core, store: opts.Store, endpoints: es, sealer: opts.Sealer, refresh: opts.Refresh}
	if t.refresh == 0 {
		t.refresh = DefaultRefresh
	}
	return t, nil
}

// Step takes the lease of the endpoint with the given id, if no other
// instance holds it, and delivers the endpoint's dead letters being
// replayed (a page of them, with a store that is an apikey.ReplayLog), or
// else delivers (or dead-letters) the events of one page of its account's
// events after its cursor; it returns how many letters or events it
// resolved. It returns 0 and no error when another instance holds the
// lease, and when the endpoint does not exist (deleted) or is disabled,
// or its account is suspended or closed (see TenantDeliverer).
func (t *TenantDeliverer) Step(ctx context.Context, id string) (int, error) {
	d := t.core
	e, err := t.endpoints.Endpoint(ctx, id)
	if errors.Is(err, apikey.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("events: endpoint %s: %w", id, err)
	}
	if !e.Enabled {
		return 0, nil
	}
	if open, err := t.accountOpen(ctx, e.Account); err != nil || !open {
		return 0, err
	}
	name := e.DeliveryName()
	cursor, ok, err := d.renew(ctx, name)
	if err != nil || !ok {
		return 0, err
	}
	cursor = max(cursor, e.Start)
	target, err := t.target(e)
	if err != nil {
		return 0, fmt.Errorf("events: %s: %w", name, err)
	}
	refresh := t.refresher(&e, target)
	replayed, gone, err := d.replays(ctx, name, target, refresh)
	switch {
	case errors.Is(err, errStopped), errors.Is(err, apikey.ErrLeaseLost) && t.deleted(ctx, id):
		return replayed, nil // disabled or deleted during the replay
	case err != nil:
		return replayed, err
	case gone:
		return replayed, t.disable(ctx, e)
	case replayed > 0:
		return replayed, nil
	}
	page, _, err := t.endpoints.AccountEventsAfter(ctx, e.Account, cursor, d.batch)
	if err != nil {
		return 0, fmt.Errorf("events: %s: reading the account's events: %w", name, err)
	}
	for i, se := range page {
		var (
			dead *apikey.DeadLetter
			gone bool
		)
		if e.Accepts(se.Event) {
			if dead, gone, err = d.deliverOrGone(ctx, name, target, se, refresh); errors.Is(err, errStopped) {
				return i, nil // the event waits with the cursor: for the endpoint enabled again, or for nothing
			} else if err != nil {
				return i, err
			}
		}
		if err := d.log.AdvanceDelivery(ctx, name, d.holder, d.now(), se.Cursor, dead); err != nil {
			if errors.Is(err, apikey.ErrLeaseLost) && t.deleted(ctx, id) {
				return i, nil // deleted during the attempt, its lease with it
			}
			return i, fmt.Errorf("events: %s: %w", name, err)
		}
		if gone {
			return i + 1, t.disable(ctx, e)
		}
	}
	return len(page), nil
}

// accountOpen reports whether account is neither suspended nor closed:
// none of its environments (a page of them; an account has few) carries
// SuspendedAt or ClosedAt. An account without environments is open.
func (t *TenantDeliverer) accountOpen(ctx context.Context, account string) (bool, error) {
	envs, err := t.store.Environments(ctx, apikey.EnvironmentQuery{Account: account, Limit: apikey.MaxPageSize})
	if err != nil {
		return false, fmt.Errorf("events: reading account %s's environments: %w", account, err)
	}
	for _, env := range envs {
		if !env.SuspendedAt.IsZero() || !env.ClosedAt.IsZero() {
			return false, nil
		}
	}
	return true, nil
}

// deleted reports whether endpoint id is known not to exist.
func (t *TenantDeliverer) deleted(ctx context.Context, id string) bool {
	_, err := t.endpoints.Endpoint(ctx, id)
	return errors.Is(err, apikey.ErrNotFound)
}

// disable turns off endpoint e, as last read, that answered 410 Gone, with
// an ActionUpdateEndpoint event by apikey.SystemActor; its owner enables it
// again (and it then receives the events it missed). A change of the
// endpoint since it was read wins (the 410 was the answer of the endpoint
// before it), as does its deletion: the next event answered 410 disables
// it.
func (t *TenantDeliverer) disable(ctx context.Context, e apikey.WebhookEndpoint) error {
	e.Enabled, e.UpdatedAt = false, t.core.now().UTC().Truncate(time.Microsecond)
	ev := apikey.Event{Time: e.UpdatedAt, Actor: apikey.SystemActor, Action: apikey.ActionUpdateEndpoint, Account: e.Account,
		Detail: "endpoint " + e.ID + ": enabled=false: it answered 410 Gone"}
	if _, err := t.endpoints.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &e, Events: []apikey.Event{ev}}); err != nil &&
		!errors.Is(err, apikey.ErrConflict) && !errors.Is(err, apikey.ErrNotFound) {
		return fmt.Errorf("events: disabling endpoint %s: %w", e.ID, err)
	}
	return nil
}

// refresher gives the target of each attempt of a step: at first target,
// made from *e as the step read it; then *e read again, into *e, before
// each attempt (its URL and secrets as they are now), or ok false when it
// was deleted or disabled, or its account suspended or closed.
func (t *TenantDeliverer) refresher(e *apikey.WebhookEndpoint, target webhook.Endpoint) refresher {
	first := true
	return func(ctx context.Context) (webhook.Endpoint, bool, error) {
		if first {
			first = false
			return target, true, nil
		}
		fresh, err := t.endpoints.Endpoint(ctx, e.ID)
		if errors.Is(err, apikey.ErrNotFound) {
			return webhook.Endpoint{}, false, nil
		} else if err != nil {
			return webhook.Endpoint{}, false, err
		}
		*e = fresh
		if !e.Enabled {
			return webhook.Endpoint{}, false, nil
		}
		if open, err := t.accountOpen(ctx, e.Account); err != nil || !open {
			return webhook.Endpoint{}, false, err
		}
		target, err := t.target(*e)
		return target, err == nil, err
	}
}

// target is where e's events go: its URL, signed with its secrets.
func (t *TenantDeliverer) target(e apikey.WebhookEndpoint) (webhook.Endpoint, error) {
	secrets, err := apikey.EndpointSecrets(e, t.sealer, t.core.now())
	if err != nil {
		return webhook.Endpoint{}, err
	}
	target := webhook.Endpoint{URL: e.URL}
	for _, s := range secrets {
		parsed, err := webhook.ParseSecret(s.Reveal())
		if err != nil {
			return webhook.Endpoint{}, err
		}
		target.Secrets = append(target.Secrets, parsed)
	}
	return target, nil
}

// endpointActions are the actions after which Run reads an account's list
// of endpoints again.
var endpointActions = map[apikey.Action]bool{
	apikey.ActionCreateEndpoint: true, apikey.ActionUpdateEndpoint: true, apikey.ActionDeleteEndpoint: true,
	apikey.ActionRotateEndpointSecret: true, apikey.ActionReplay: true,
}

// Run delivers to every account's endpoints until ctx is done, and returns
// ctx's error. It reads the list of every endpoint at start and each
// Refresh, and the stream's new events each Poll; it steps the endpoints
// of the accounts with new events, each in a goroutine of its own that
// runs while it has events to deliver.
func (t *TenantDeliverer) Run(ctx context.Context) error {
	r := &tenantRun{t: t, byAccount: map[string][]string{}, running: map[string]bool{}, due: map[string]bool{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	lastRefresh := time.Time{}
	for ctx.Err() == nil {
		if time.Since(lastRefresh) >= t.refresh {
			if err := r.list(ctx, ""); err != nil {
				t.core.onError("", err)
			} else {
				lastRefresh = time.Now()
			}
		}
		if err := r.wake(ctx); err != nil && ctx.Err() == nil {
			t.core.onError("", err)
		}
		r.start(ctx, &wg)
		sleep(ctx, t.core.poll)
	}
	return ctx.Err()
}

// tenantRun is the state of one Run.
type tenantRun struct {
	t         *TenantDeliverer
	cursor    int64               // of the wake-up reader, in the stream
	byAccount map[string][]string // endpoint ids by account, as last listed

	mu      sync.Mutex
	running map[string]bool // endpoints with a goroutine
	due     map[string]bool // endpoints to step
}

// list reads the endpoints of account ("" for every account), marks the
// enabled ones due, and moves the wake-up reader to the newest endpoint's
// start at least (no endpoint receives an event from before it).
func (r *tenantRun) list(ctx context.Context, account string) error {
	after := ""
	seen := map[string][]string{}
	for {
		page, err := r.t.endpoints.Endpoints(ctx, apikey.EndpointQuery{Account: account, After: after, Limit: apikey.MaxPageSize})
		if err != nil {
			return fmt.Errorf("events: listing endpoints: %w", err)
		}
		r.mu.Lock()
		for _, e := range page {
			seen[e.Account] = append(seen[e.Account], e.ID)
			if e.Enabled {
				r.due[e.ID] = true
			}
			r.cursor = max(r.cursor, e.Start)
		}
		r.mu.Unlock()
		if len(page) < apikey.MaxPageSize {
			break
		}
		after = page[len(page)-1].ID
	}
	if account == "" {
		r.byAccount = seen
	} else {
		r.byAccount[account] = seen[account]
	}
	return nil
}

// wake reads the stream's new events and marks due the endpoints of the
// accounts they belong to, listing again the endpoints of accounts that
// changed theirs.
func (r *tenantRun) wake(ctx context.Context) error {
	d := r.t.core
	if len(r.byAccount) == 0 {
		return nil // no endpoint to wake: the next listing finds the first one, and its start
	}
	for {
		page, next, err := d.stream.EventsAfter(ctx, r.cursor, d.batch)
		if err != nil {
			return fmt.Errorf("events: reading the stream: %w", err)
		}
		relist := map[string]bool{}
		for _, se := range page {
			if endpointActions[se.Event.Action] {
				relist[se.Event.Account] = true
			}
		}
		for account := range relist {
			if err := r.list(ctx, account); err != nil {
				return err
			}
		}
		r.mu.Lock()
		for _, se := range page {
			for _, id := range r.byAccount[se.Event.Account] {
				r.due[id] = true
			}
		}
		r.mu.Unlock()
		r.cursor = max(r.cursor, next)
		if len(page) < d.batch {
			return nil
		}
	}
}

// start runs a goroutine for each due endpoint that has none.
func (r *tenantRun) start(ctx context.Context, wg *sync.WaitGroup) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.due {
		if r.running[id] {
			continue
		}
		delete(r.due, id)
		r.running[id] = true
		wg.Go(func() {
			failed := false
			for ctx.Err() == nil {
				n, err := r.t.Step(ctx, id)
				if err != nil {
					if ctx.Err() == nil {
						r.t.core.onError(apikey.EndpointDeliveryPrefix+id, err)
					}
					failed = true
					break
				}
				if n == 0 {
					break
				}
			}
			r.mu.Lock()
			delete(r.running, id)
			if failed {
				r.due[id] = true // tried again after a Poll
			}
			r.mu.Unlock()
		})
	}
}
