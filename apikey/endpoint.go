package apikey

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keystile/keystile/internal/netrange"
)

// Bounds of a tenant's webhook endpoints.
const (
	// MaxEndpoints is the most webhook endpoints an account may have.
	MaxEndpoints = 10
	// MaxEndpointURL is the longest endpoint URL, in bytes.
	MaxEndpointURL = 2048
	// MaxEndpointActions is the most actions an endpoint's filter names.
	MaxEndpointActions = 64
	// EndpointSecretSize is the size in bytes of an endpoint's signing
	// secret, from crypto/rand.
	EndpointSecretSize = 32
	// MaxSecretOverlap is the longest time an endpoint's previous secret
	// keeps signing beside the new one after RotateEndpointSecret.
	MaxSecretOverlap = 7 * 24 * time.Hour
	// EndpointSecretPrefix starts every endpoint secret, as in the
	// Standard Webhooks specification: "whsec_" then the key in standard
	// base64.
	EndpointSecretPrefix = "whsec_"
)

// The audit actions of webhook endpoints. Owners only.
const (
	ActionCreateEndpoint       Action = "create_endpoint"
	ActionUpdateEndpoint       Action = "update_endpoint"
	ActionRotateEndpointSecret Action = "rotate_endpoint_secret"
	ActionDeleteEndpoint       Action = "delete_endpoint"
	// ActionReplay: dead letters re-queued for delivery (Manager.Replay).
	ActionReplay Action = "replay_dead_letters"
)

// Errors of webhook endpoints.
var (
	// ErrInvalidEndpoint means an endpoint's URL, filter or id is not
	// valid; the wrapped error names the field, never a secret.
	ErrInvalidEndpoint = errors.New("apikey: invalid webhook endpoint")
	// ErrTooManyEndpoints means the account has MaxEndpoints endpoints
	// already.
	ErrTooManyEndpoints = errors.New("apikey: too many webhook endpoints")
)

// WebhookEndpoint is a webhook endpoint that a tenant registered: where
// the events of one account go (package apikey/events delivers them),
// which of them, and the secret that signs them.
//
// Its secrets are never printed: they are Opaques (see Opaque), left out of
// JSON, and the Manager returns a secret in the clear only when it makes
// one (CreateEndpoint, RotateEndpointSecret). Stores keep the secrets as
// the Manager gives them: in the clear ("whsec_..."), or sealed by
// ManagerOptions.Sealer when the Manager has one (SecretSealed), so that
// the deliverer can sign with them (see EndpointSecrets).
type WebhookEndpoint struct {
	// ID names the endpoint: "ep_" then 24 hex digits.
	ID string `json:"id"`
	// Account is the account whose events the endpoint receives.
	Account string `json:"account"`
	// URL is where events are posted (see ValidateEndpointURL). The
	// Manager returns it whole only to an actor that may change the
	// endpoint (see Manager.Endpoint); to every other caller it is
	// redacted to its scheme and host, as the audit events name it, and
	// URLRedacted is set.
	URL string `json:"url"`
	// URLRedacted says URL is redacted: its path and query (which may hold
	// a token of the tenant's) are left out.
	URLRedacted bool `json:"url_redacted,omitempty"`
	// Actions, if not empty, are the actions whose events are sent; empty
	// sends every event of the account.
	Actions []Action `json:"actions,omitempty"`
	// Environment, if set, sends only the events of that environment.
	Environment string `json:"environment,omitempty"`
	// Enabled is false for an endpoint that receives nothing; its cursor
	// waits, and it receives the events it missed once enabled again.
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// PreviousSecretUntil, if set, is when the secret replaced by the last
	// rotation stops signing; the Manager drops that secret from the store
	// at the endpoint's first change after it.
	PreviousSecretUntil time.Time `json:"previous_secret_until,omitzero"`

	// Start is the place in the event stream (apikey.EventStream's
	// cursor) where delivery begins: the stream's end when the endpoint
	// was created, set by the store. An endpoint receives no event from
	// before its creation.
	Start int64 `json:"-"`
	// Secret is the signing secret, "whsec_<base64>", or its sealed form
	// when SecretSealed; PreviousSecret the one the last rotation
	// replaced, or nothing. Stores write Bytes() and read back with
	// OpaqueBytes.
	Secret         Opaque `json:"-"`
	PreviousSecret Opaque `json:"-"`
	// SecretSealed says Secret and PreviousSecret are sealed by the
	// Manager's Sealer.
	SecretSealed bool `json:"-"`
	// Revision is the store's version of the endpoint; zero means not
	// stored yet.
	Revision int64 `json:"-"`
}

// Clone returns a deep copy of e.
func (e WebhookEndpoint) Clone() WebhookEndpoint {
	e.Actions = slices.Clone(e.Actions)
	return e
}

// Accepts reports whether the endpoint receives ev: it is enabled and its
// filters admit ev. It does not look at the account.
func (e WebhookEndpoint) Accepts(ev Event) bool {
	if !e.Enabled {
		return false
	}
	if e.Environment != "" && ev.Environment != e.Environment {
		return false
	}
	return len(e.Actions) == 0 || slices.Contains(e.Actions, ev.Action)
}

// DeliveryName is the endpoint's name in a DeliveryLog: "tenant/" + ID
// (package apikey/events refuses service endpoint names that start with
// EndpointDeliveryPrefix).
func (e WebhookEndpoint) DeliveryName() string { return EndpointDeliveryPrefix + e.ID }

// EndpointDeliveryPrefix starts the DeliveryLog name of every tenant
// endpoint (WebhookEndpoint.DeliveryName).
const EndpointDeliveryPrefix = "tenant/"

// EndpointQuery selects a page of endpoints (EndpointStore.Endpoints).
type EndpointQuery struct {
	// Account, if set, selects that account's endpoints; empty selects
	// every account's.
	Account string
	// After is the id of the last endpoint of the previous page ("" for
	// the first).
	After string
	// Limit is the most endpoints to return, at least 1.
	Limit int
}

// EndpointChange is one atomic write of EndpointStore.ApplyEndpoint: one
// endpoint inserted, updated or deleted, and its audit events.
type EndpointChange struct {
	// Put, with Revision 0, inserts an endpoint: ErrConflict when its id
	// exists, ErrTooManyEndpoints when its account has Max endpoints. With
	// a Revision, it replaces the stored endpoint of that id if its
	// Revision is the stored one: else ErrConflict, or ErrNotFound when
	// there is none. Callers never change an endpoint's ID, Account,
	// CreatedAt or Start.
	Put *WebhookEndpoint
	// Delete deletes the endpoint of that id if its Revision is the stored
	// one: else ErrConflict, or ErrNotFound. A store that is a DeliveryLog
	// deletes the endpoint's delivery state (under its DeliveryName: cursor,
	// lease and dead letters) in the same write, and leases a DeliveryName
	// only while its endpoint exists (LeaseDelivery answers ok false for
	// an endpoint that does not), checked in the lease's own atomic write:
	// a lease racing the delete either commits before it, and is deleted
	// with it, or writes nothing, so that no lease outlives its endpoint.
	Delete *WebhookEndpoint
	// Events are the audit events to append, as Change.Events.
	Events []Event
	// Max bounds the endpoints of the account of an inserted endpoint.
	Max int
	// OpenAccount, if set, is an account that must have no closed
	// environment (else ErrAccountClosed) and no suspended one (else
	// ErrAccountSuspended) when the change is applied, as
	// Change.OpenAccount.
	OpenAccount string
}

// EndpointStore is an optional Store capability: the webhook endpoints
// that tenants register, and each account's events read from the event
// stream by index. The Manager's endpoint methods and package
// apikey/events' TenantDeliverer need it, with EventStream.
type EndpointStore interface {
	// Endpoint returns the endpoint with the given id, whatever its
	// account, or ErrNotFound.
	Endpoint(ctx context.Context, id string) (WebhookEndpoint, error)
	// Endpoints returns a page of endpoints ordered by id (as bytes),
	// strictly after q.After, of q.Account only when it is set: q.Limit of
	// them while that many remain. Answered by index.
	Endpoints(ctx context.Context, q EndpointQuery) ([]WebhookEndpoint, error)
	// ApplyEndpoint makes c atomically, all of it or nothing, and returns
	// the endpoint written (Put), with its new Revision (higher than the
	// stored one) and, when inserted, its Start: the cursor of the event
	// stream once c's events are appended, so that the endpoint's first
	// event is the first one appended after c. The count of Max and the
	// Start are part of the atomic write: of racing inserts in one account
	// at most Max succeed, and no event commits with a cursor at most
	// Start after c does.
	ApplyEndpoint(ctx context.Context, c EndpointChange) (WebhookEndpoint, error)
	// AccountEventsAfter is EventStream.EventsAfter for the events of one
	// account: up to limit of account's events whose Cursor is greater
	// than cursor, in ascending Cursor order, and the cursor to pass next
	// time. It is answered by an index on (account, cursor): its time
	// grows with the account's events, never with other accounts'.
	AccountEventsAfter(ctx context.Context, account string, cursor int64, limit int) ([]StreamEvent, int64, error)
}

// endpointActions are the actions an endpoint's filter may name: every
// action that writes an event.
var endpointActions = []Action{
	ActionBootstrap, ActionCreate, ActionRotate, ActionChangeGrace, ActionRevoke, ActionSetScopes, ActionSetOrigins,
	ActionReveal, ActionSetOwner, ActionSetMetadata, ActionSetLimits, ActionClose, ActionImport, ActionDisable,
	ActionEnable, ActionSuspend, ActionResume, ActionSetLifetime, ActionRename, ActionRevokeOwner, ActionPurge,
	ActionSetOwnerLimits, ActionQuotaExhausted, ActionExpiring, ActionGraceEnded, ActionExpired,
	ActionCreateEndpoint, ActionUpdateEndpoint, ActionRotateEndpointSecret, ActionDeleteEndpoint, ActionReplay,
}

// EndpointActions returns the actions an endpoint's filter may name.
func EndpointActions() []Action { return slices.Clone(endpointActions) }

// endpointError is an ErrInvalidEndpoint naming field.
func endpointError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidEndpoint, field, fmt.Sprintf(format, args...))
}

// ValidateEndpointURL checks an endpoint URL as package apikey/webhook's
// Policy.ParseEndpoint does, so that a URL it accepts is one the deliverer
// can send to: absolute, https (http only when allowInternal), at most
// MaxEndpointURL bytes of printable ASCII (percent-encoded; punycode for
// an international name), no user information or fragment, a port of 1 to
// 65535 if any, and a host that is an IP address (IPv6 without a zone) or
// a DNS name whose last label is not a number (resolvers read "2130706433",
// "0x7f.1" and "127.1" as IPv4 addresses). Unless allowInternal, a host
// that is "localhost" (or under it) or an IP address in a range that is
// not globally reachable (webhook.ForbiddenRanges: loopback, private,
// shared, link-local, unspecified, documentation, multicast, reserved,
// and the IPv6 forms that embed such an IPv4 address) is refused here
// already; names are checked on the address they resolve to when a
// delivery connects (package apikey/webhook's policy). Errors wrap
// ErrInvalidEndpoint and name the field "url".
func ValidateEndpointURL(raw string, allowInternal bool) error {
	if raw == "" || len(raw) > MaxEndpointURL {
		return endpointError("url", "must be 1 to %d bytes", MaxEndpointURL)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return endpointError("url", "holds a space, control or non-ASCII byte at %d (percent-encode it; punycode for a host)", i)
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return endpointError("url", "is not an absolute URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowInternal:
	default:
		return endpointError("url", "must use https")
	}
	if u.User != nil {
		return endpointError("url", "may not hold user information")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return endpointError("url", "may not hold a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return endpointError("url", "has no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || port[0] == '0' {
			return endpointError("url", "has a port that is not 1 to 65535")
		}
	}
	ip, ipErr := netip.ParseAddr(host)
	switch {
	case strings.Contains(u.Host, "["):
		if ipErr != nil || !ip.Is6() || ip.Zone() != "" {
			return endpointError("url", "has a host in brackets that is not an IPv6 address without a zone")
		}
	case ipErr == nil:
	case netrange.HostnameProblem(host) != "":
		return endpointError("url", "has a host that is neither an IP address nor a DNS name (letters, digits and '-', punycode for international names; not a number)")
	}
	if allowInternal {
		return nil
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		return endpointError("url", "may not name localhost")
	}
	if ipErr == nil && netrange.Internal(ip) {
		return endpointError("url", "may not name an internal address")
	}
	return nil
}

// validEndpointFilter checks an endpoint's filters: known actions, at most
// MaxEndpointActions, each once; an environment name or "".
func validEndpointFilter(actions []Action, environment string) ([]Action, error) {
	if len(actions) > MaxEndpointActions {
		return nil, endpointError("actions", "may name at most %d actions", MaxEndpointActions)
	}
	var out []Action
	for _, a := range actions {
		if !slices.Contains(endpointActions, a) {
			return nil, endpointError("actions", "names an unknown action %q", truncate(string(a), 64))
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if environment != "" {
		if err := ValidateEnvironment(environment); err != nil {
			return nil, endpointError("environment", "is not a valid environment name")
		}
	}
	return out, nil
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// validEndpointID refuses a string that is not an endpoint id.
func validEndpointID(id string) error {
	rest, ok := strings.CutPrefix(id, "ep_")
	if !ok || len(rest) != 24 {
		return endpointError("id", "is not an endpoint id")
	}
	if _, err := hex.DecodeString(rest); err != nil || strings.ToLower(rest) != rest {
		return endpointError("id", "is not an endpoint id")
	}
	return nil
}

// EndpointRequest describes an endpoint to create (Manager.CreateEndpoint).
type EndpointRequest struct {
	// URL is where events are posted (see ValidateEndpointURL). Required.
	URL string
	// Actions, if not empty, selects the events sent by action (see
	// EndpointActions). Optional.
	Actions []Action
	// Environment, if set, selects the events of one environment.
	// Optional.
	Environment string
	// Disabled creates the endpoint disabled.
	Disabled bool
}

// EndpointUpdate describes changes to an endpoint
// (Manager.UpdateEndpoint): each field that is not nil replaces the
// endpoint's.
type EndpointUpdate struct {
	URL         *string
	Actions     *[]Action
	Environment *string
	Enabled     *bool
}

// IssuedEndpoint is an endpoint and its signing secret, returned when the
// secret is made: by CreateEndpoint and RotateEndpointSecret only.
type IssuedEndpoint struct {
	// Endpoint is the endpoint as stored, without its stored secrets
	// (Secret, PreviousSecret).
	Endpoint WebhookEndpoint
	// Secret is the signing secret, "whsec_<base64>" (Secret.Reveal()), to
	// show the tenant this once. Printing it shows "[redacted]".
	Secret Opaque
}

// endpointStore returns the store's EndpointStore.
func (m *Manager) endpointStore() (EndpointStore, error) {
	es, ok := m.store.(EndpointStore)
	if !ok {
		return nil, fmt.Errorf("apikey: the store has no webhook endpoints (EndpointStore): %w", errors.ErrUnsupported)
	}
	return es, nil
}

// mayChangeEndpoints refuses actors that may not change endpoints: roles
// other than owner, and an actor authenticated by a key that does not hold
// every scope (an endpoint receives every event of the account). An
// endpoint has no expiry: a key with one may not create an endpoint,
// update one or rotate its secret (ErrBeyondActor), all of which would
// outlast it; it may delete one and replay dead letters.
func mayChangeEndpoints(actor Actor, a Action) (string, error) {
	if err := authorize(actor, a); err != nil {
		return "", err
	}
	if err := actor.mayHold([]string{AllScopes}); err != nil {
		return "", err
	}
	if a != ActionDeleteEndpoint && a != ActionReplay {
		if err := actor.mayLast(time.Time{}); err != nil {
			return "", fmt.Errorf("%w (a webhook endpoint does not expire)", err)
		}
	}
	return namedAccount(actor)
}

// newEndpointSecret returns a fresh secret and its stored form (sealed when
// the Manager has a Sealer).
func (m *Manager) newEndpointSecret(id string) (secret, stored Opaque, err error) {
	b := make([]byte, EndpointSecretSize)
	rand.Read(b) // never returns an error (crypto/rand, Go 1.24+)
	plain := EndpointSecretPrefix + base64.StdEncoding.EncodeToString(b)
	secret = NewOpaque(plain)
	if m.sealer == nil {
		return secret, secret, nil
	}
	sealed, err := m.sealer.Seal([]byte(plain), endpointAD(id))
	if err != nil {
		return Opaque{}, Opaque{}, fmt.Errorf("apikey: sealing an endpoint secret: %w", err)
	}
	return secret, OpaqueBytes(sealed), nil
}

// endpointAD binds a sealed endpoint secret to its endpoint.
func endpointAD(id string) []byte { return []byte("keystile-endpoint:" + id) }

// EndpointSecrets returns the secrets that sign e's deliveries at now, in
// the form "whsec_<base64>": its secret, then the previous one while
// PreviousSecretUntil is after now. Sealed secrets are opened with sealer,
// the ManagerOptions.Sealer of the Manager that made them; a sealed secret
// without one, or one that does not open, fails with ErrNotRevealable.
func EndpointSecrets(e WebhookEndpoint, sealer Sealer, now time.Time) ([]Opaque, error) {
	open := func(o Opaque) (Opaque, error) {
		if !e.SecretSealed {
			return o, nil
		}
		if sealer == nil {
			return Opaque{}, fmt.Errorf("%w: endpoint %s's secret is sealed and no sealer was given", ErrNotRevealable, e.ID)
		}
		plain, err := sealer.Open(o.Bytes(), endpointAD(e.ID))
		if err != nil {
			return Opaque{}, err
		}
		return OpaqueBytes(plain), nil
	}
	cur, err := open(e.Secret)
	if err != nil {
		return nil, err
	}
	out := []Opaque{cur}
	if !e.PreviousSecret.IsZero() && e.PreviousSecretUntil.After(now) {
		prev, err := open(e.PreviousSecret)
		if err != nil {
			return nil, err
		}
		out = append(out, prev)
	}
	return out, nil
}

// endpointHost returns the scheme and host (with its port) of an endpoint
// URL, the parts that audit events (the host) and redacted endpoints show:
// never its path or query, which may hold a token of the tenant's. A URL
// that does not parse gives "" for both.
func endpointHost(raw string) (scheme, host string) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", ""
	}
	return u.Scheme, u.Host
}

// endpointEvent is the audit event of an action on an endpoint; its detail
// names the endpoint's id and host (endpointHost), never its path or query
// nor its secret.
func endpointEvent(now time.Time, actor Actor, a Action, e WebhookEndpoint, detail string) Event {
	_, host := endpointHost(e.URL)
	d := "endpoint " + e.ID + " (" + host + ")"
	if detail != "" {
		d += ": " + detail
	}
	return Event{Time: now, Actor: actor.audited(), Action: a, Account: e.Account, Detail: d}
}

// CreateEndpoint registers a webhook endpoint in the actor's account and
// returns it with its signing secret, shown this once (see
// IssuedEndpoint). The URL must pass ValidateEndpointURL (internal
// targets only with ManagerOptions.AllowInternalEndpoints); the filters
// name known actions (EndpointActions) and a valid environment. An account
// has at most MaxEndpoints endpoints (ErrTooManyEndpoints). The endpoint
// receives the events appended after it is created, none from before.
//
// Owners only, and an actor authenticated by a key only if it holds every
// scope and does not expire (ErrBeyondActor); closed and suspended
// accounts refuse it. The call is an ActionCreateEndpoint event, written
// with the endpoint; a write that loses a race with another writer
// (ErrConflict, as a store under a stricter isolation level reports it)
// is tried again. A store without an EndpointStore fails with an error
// wrapping errors.ErrUnsupported.
func (m *Manager) CreateEndpoint(ctx context.Context, actor Actor, req EndpointRequest) (IssuedEndpoint, error) {
	account, err := mayChangeEndpoints(actor, ActionCreateEndpoint)
	if err != nil {
		return IssuedEndpoint{}, err
	}
	if err := ValidateEndpointURL(req.URL, m.allowInternal); err != nil {
		return IssuedEndpoint{}, err
	}
	actions, err := validEndpointFilter(req.Actions, req.Environment)
	if err != nil {
		return IssuedEndpoint{}, err
	}
	es, err := m.endpointStore()
	if err != nil {
		return IssuedEndpoint{}, err
	}
	var issued IssuedEndpoint
	err = m.retry(ctx, func() error { // a lost race (ErrConflict) is tried again, with a new id and secret
		var idb [12]byte
		rand.Read(idb[:])
		id := "ep_" + hex.EncodeToString(idb[:])
		secret, stored, err := m.newEndpointSecret(id)
		if err != nil {
			return err
		}
		now := m.Now()
		e := WebhookEndpoint{ID: id, Account: account, URL: req.URL, Actions: actions, Environment: req.Environment,
			Enabled: !req.Disabled, CreatedAt: now, UpdatedAt: now, Secret: stored, SecretSealed: m.sealer != nil}
		written, err := m.applyEndpoint(ctx, es, EndpointChange{Put: &e, Max: MaxEndpoints, OpenAccount: account,
			Events: []Event{endpointEvent(now, actor, ActionCreateEndpoint, e, "")}})
		if err != nil {
			return err
		}
		issued = IssuedEndpoint{Endpoint: written.withoutSecrets(), Secret: secret}
		return nil
	})
	if err != nil {
		return IssuedEndpoint{}, err
	}
	return issued, nil
}

// applyEndpoint applies c and tells OnEvent of its events.
func (m *Manager) applyEndpoint(ctx context.Context, es EndpointStore, c EndpointChange) (WebhookEndpoint, error) {
	e, err := es.ApplyEndpoint(ctx, c)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	if m.onEvent != nil {
		for _, ev := range c.Events {
			m.onEvent(ev)
		}
	}
	return e, nil
}

// Endpoints returns a page of the webhook endpoints of the actor's
// account, ordered by id, and the cursor of the next page ("" after the
// last). Every role may list them; no secret is in them, and their URLs
// are redacted as Endpoint says for an actor that may not change them.
func (m *Manager) Endpoints(ctx context.Context, actor Actor, p Page) ([]WebhookEndpoint, string, error) {
	if err := authorize(actor, ActionView); err != nil {
		return nil, "", err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return nil, "", err
	}
	limit, err := p.limit()
	if err != nil {
		return nil, "", err
	}
	if p.After != "" {
		if err := validEndpointID(p.After); err != nil {
			return nil, "", fmt.Errorf("%w: not an endpoint id", ErrInvalidCursor)
		}
	}
	es, err := m.endpointStore()
	if err != nil {
		return nil, "", err
	}
	list, err := es.Endpoints(ctx, EndpointQuery{Account: account, After: p.After, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) == limit {
		next = list[len(list)-1].ID
	}
	whole := seesEndpointURL(actor)
	for i := range list {
		list[i] = list[i].viewedBy(whole)
	}
	return list, next, nil
}

// withoutSecrets returns e with its secrets left out, as the Manager
// returns endpoints.
func (e WebhookEndpoint) withoutSecrets() WebhookEndpoint {
	e.Secret, e.PreviousSecret = Opaque{}, Opaque{}
	return e
}

// seesEndpointURL reports whether actor sees endpoint URLs whole: an actor
// that may change endpoints (an owner, and a key only if it holds every
// scope), who could replace the URL anyway. An expiring key counts: it
// may delete an endpoint, and reads what its owner reads.
func seesEndpointURL(actor Actor) bool {
	return authorize(actor, ActionUpdateEndpoint) == nil && actor.holds(AllScopes)
}

// viewedBy returns e as the Manager shows it: without its secrets, and
// unless whole with its URL redacted to scheme and host (URLRedacted).
func (e WebhookEndpoint) viewedBy(whole bool) WebhookEndpoint {
	e = e.withoutSecrets()
	if !whole {
		scheme, host := endpointHost(e.URL)
		e.URL, e.URLRedacted = "", true
		if host != "" {
			e.URL = scheme + "://" + host
		}
	}
	return e
}

// Endpoint returns a webhook endpoint of the actor's account, without its
// secrets; an endpoint of another account is ErrNotFound. Every role may
// read it, and Endpoints list them, but only an actor that may change
// endpoints (an owner; a key only if it holds every scope) reads the whole
// URL: every other caller reads it as the audit events name it, scheme and
// host only (its path and query may hold a token of the tenant's), with
// URLRedacted set.
func (m *Manager) Endpoint(ctx context.Context, actor Actor, id string) (WebhookEndpoint, error) {
	if err := authorize(actor, ActionView); err != nil {
		return WebhookEndpoint{}, err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	es, err := m.endpointStore()
	if err != nil {
		return WebhookEndpoint{}, err
	}
	e, err := m.loadEndpoint(ctx, es, account, id)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	return e.viewedBy(seesEndpointURL(actor)), nil
}

// loadEndpoint reads an endpoint of account, secrets included.
func (m *Manager) loadEndpoint(ctx context.Context, es EndpointStore, account, id string) (WebhookEndpoint, error) {
	if err := validEndpointID(id); err != nil {
		return WebhookEndpoint{}, err
	}
	e, err := es.Endpoint(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return WebhookEndpoint{}, fmt.Errorf("%w: endpoint %s", ErrNotFound, id)
		}
		return WebhookEndpoint{}, err
	}
	if e.Account != account {
		return WebhookEndpoint{}, fmt.Errorf("%w: endpoint %s", ErrNotFound, id)
	}
	return e, nil
}

// changeEndpoint reads endpoint id of the actor's account, lets fn change
// it and writes it with its event, retrying from the read when another
// writer changed it. A previous secret whose overlap has passed is dropped
// in the write.
func (m *Manager) changeEndpoint(ctx context.Context, actor Actor, a Action, id string,
	fn func(e *WebhookEndpoint, now time.Time) (string, error)) (WebhookEndpoint, error) {
	account, err := mayChangeEndpoints(actor, a)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	es, err := m.endpointStore()
	if err != nil {
		return WebhookEndpoint{}, err
	}
	var out WebhookEndpoint
	err = m.retry(ctx, func() error {
		e, err := m.loadEndpoint(ctx, es, account, id)
		if err != nil {
			return err
		}
		now := m.Now()
		detail, err := fn(&e, now)
		if err != nil {
			return err
		}
		e.UpdatedAt = now
		if !e.PreviousSecretUntil.After(now) { // its overlap has passed: it signs nothing, and is not kept
			e.PreviousSecret, e.PreviousSecretUntil = Opaque{}, time.Time{}
		}
		out, err = m.applyEndpoint(ctx, es, EndpointChange{Put: &e, OpenAccount: account,
			Events: []Event{endpointEvent(now, actor, a, e, detail)}})
		return err
	})
	return out, err
}

// UpdateEndpoint changes a webhook endpoint of the actor's account: each
// field of u that is set (see EndpointUpdate), validated as
// CreateEndpoint validates it. It returns the endpoint, without secrets.
// Owners only, as CreateEndpoint; an ActionUpdateEndpoint event.
func (m *Manager) UpdateEndpoint(ctx context.Context, actor Actor, id string, u EndpointUpdate) (WebhookEndpoint, error) {
	if u.URL != nil {
		if err := ValidateEndpointURL(*u.URL, m.allowInternal); err != nil {
			return WebhookEndpoint{}, err
		}
	}
	e, err := m.changeEndpoint(ctx, actor, ActionUpdateEndpoint, id, func(e *WebhookEndpoint, _ time.Time) (string, error) {
		actions, environment := e.Actions, e.Environment
		if u.Actions != nil {
			actions = *u.Actions
		}
		if u.Environment != nil {
			environment = *u.Environment
		}
		actions, err := validEndpointFilter(actions, environment)
		if err != nil {
			return "", err
		}
		var changed []string
		if u.URL != nil && *u.URL != e.URL {
			e.URL = *u.URL
			changed = append(changed, "url")
		}
		if !slices.Equal(actions, e.Actions) {
			e.Actions = actions
			changed = append(changed, "actions")
		}
		if environment != e.Environment {
			e.Environment = environment
			changed = append(changed, "environment")
		}
		if u.Enabled != nil && *u.Enabled != e.Enabled {
			e.Enabled = *u.Enabled
			changed = append(changed, fmt.Sprintf("enabled=%t", e.Enabled))
		}
		return strings.Join(changed, ", "), nil
	})
	return e.withoutSecrets(), err
}

// RotateEndpointSecret gives a webhook endpoint of the actor's account a
// new signing secret and returns it, shown this once. With overlap (0 to
// MaxSecretOverlap), the replaced secret keeps signing beside the new one
// (Standard Webhooks sends both signatures) until overlap has passed, so
// that the tenant can switch its receiver without losing events; zero
// replaces it at once. A secret replaced by the rotation before, still overlapping, is
// dropped. Owners only, as CreateEndpoint; an ActionRotateEndpointSecret
// event.
func (m *Manager) RotateEndpointSecret(ctx context.Context, actor Actor, id string, overlap time.Duration) (IssuedEndpoint, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return IssuedEndpoint{}, endpointError("overlap", "must be 0 to %s", MaxSecretOverlap)
	}
	var secret Opaque
	e, err := m.changeEndpoint(ctx, actor, ActionRotateEndpointSecret, id, func(e *WebhookEndpoint, now time.Time) (string, error) {
		fresh, stored, err := m.newEndpointSecret(e.ID)
		if err != nil {
			return "", err
		}
		if e.SecretSealed != (m.sealer != nil) {
			overlap = 0 // the old secret is stored in the other form: it cannot stay beside the new one
		}
		e.PreviousSecret, e.PreviousSecretUntil = Opaque{}, time.Time{}
		if overlap > 0 {
			e.PreviousSecret, e.PreviousSecretUntil = e.Secret, now.Add(overlap)
		}
		e.Secret, e.SecretSealed, secret = stored, m.sealer != nil, fresh
		return "previous secret signs for " + overlap.String(), nil
	})
	if err != nil {
		return IssuedEndpoint{}, err
	}
	return IssuedEndpoint{Endpoint: e.withoutSecrets(), Secret: secret}, nil
}

// DeleteEndpoint deletes a webhook endpoint of the actor's account: it
// receives nothing more (a delivery in flight may still arrive). Its
// delivery state (cursor, lease and dead letters) is deleted with it, in
// the same write. Owners only, as CreateEndpoint (a key with an expiry
// included); an ActionDeleteEndpoint event.
func (m *Manager) DeleteEndpoint(ctx context.Context, actor Actor, id string) error {
	account, err := mayChangeEndpoints(actor, ActionDeleteEndpoint)
	if err != nil {
		return err
	}
	es, err := m.endpointStore()
	if err != nil {
		return err
	}
	return m.retry(ctx, func() error {
		e, err := m.loadEndpoint(ctx, es, account, id)
		if err != nil {
			return err
		}
		_, err = m.applyEndpoint(ctx, es, EndpointChange{Delete: &e,
			Events: []Event{endpointEvent(m.Now(), actor, ActionDeleteEndpoint, e, "")}})
		return err
	})
}
