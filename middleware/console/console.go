package console

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage"
)

//go:embed static
var static embed.FS

// ReasonCrossOrigin refuses a state-changing request that a browser sent
// from another origin (see the package documentation): 403 with code
// "cross_origin_refused".
var ReasonCrossOrigin = problem.New("cross_origin_refused", http.StatusForbidden, "cross-origin request refused")

// csp allows the page its own script, style sheet and API, and nothing
// else: no inline script or style, no framing, no form posts.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Options configure the console.
type Options struct {
	// Manager carries out every action. Required.
	Manager *apikey.Manager
	// Actor says who is signed in, from the service's own session: its id
	// is recorded in audit events and its role decides what the page shows
	// and the API allows. Required. It is called for every request to
	// /session and /api/ but /api/openapi.json (the API's OpenAPI
	// document, the same for everyone); an error refuses the request (one
	// with a problem.Reason keeps its status and code, any other
	// error is 403 role_not_allowed), and so does a role that is not one of
	// the three.
	Actor func(r *http.Request) (apikey.Actor, error)
	// Audit, if set, serves the audit log at /api/audit. Nil answers it
	// with 501.
	Audit storage.AuditLog
	// Policy bounds the grace period of rotations and grace changes. The
	// zero value is apikey.ConsolePolicy (0 to 7 days); the page offers the
	// choices Now, 1 hour, 24 hours, 3 days and 7 days that it allows.
	Policy apikey.GracePolicy
	// RevealServerKeys shows owners a Reveal action on server keys too.
	// Set it when the Manager keeps recoverable copies of server keys
	// (apikey.ManagerOptions.Sealer); without one a server key is shown
	// only once, and the API refuses to reveal it (409 not_revealable).
	// Publishable keys can always be revealed.
	RevealServerKeys bool
	// SingleAccount puts an actor that names no account (Actor.Account
	// empty) in apikey.DefaultAccount, for a single-tenant service. False
	// (the zero value) refuses such an actor (403 role_not_allowed), so that
	// a multi-tenant service whose Actor function forgets the account never
	// shows or changes the default one. An Actor.Account of
	// apikey.AnyAccount is always refused: the console acts in one account.
	SingleAccount bool
	// CloseAccount lets owners close their account from the page: it shows
	// them a Close account action that asks them to type the account's id
	// before it sends the request, and serves the API's POST
	// /api/account/close (admin.Options.CloseAccounts), which asks for the
	// same id again. False (the zero value) shows no such action and
	// refuses the route (403): closing revokes every key of the account for
	// good.
	CloseAccount bool
	// TrustedOrigins are origins ("https://admin.example.com") whose
	// cross-origin requests are allowed to change state, for a page served
	// from another origin than the console. Nil trusts none: only the
	// console's own page may change anything.
	TrustedOrigins []string
	// ServiceName is the service's name as its users know it ("Acme
	// Payments"): the page's heading and title read "<ServiceName> API
	// keys". Empty shows "API keys" alone.
	ServiceName string
	// AccountName returns the display name of the account the console acts
	// in ("Globex Corporation"), for the signed-in user's request r; the
	// page shows it where it would otherwise show the account's id. It is
	// called for every request to /session, with the account that the
	// actor names (apikey.DefaultAccount under SingleAccount). Nil, or an
	// empty answer, shows the account's id. It must not block for long:
	// the page waits for it.
	AccountName func(r *http.Request, account string) string
	// Scopes is the catalogue of scopes the service's API checks, with
	// what each allows: the page offers them as a list to choose from when
	// a server key is created or its scopes are edited, instead of a text
	// field. Nil (or empty) keeps the text field, where any valid scope
	// may be typed. Each name must be a valid scope (apikey.ValidateScope)
	// and appear once. The catalogue only shapes the page: the management
	// API still takes any valid scope.
	Scopes []Scope
}

// Scope is a scope of the service's catalogue (Options.Scopes).
type Scope struct {
	Name        string `json:"name"`        // "invoices:write"
	Description string `json:"description"` // "Create, change and void invoices"
}

// Grace is one of the grace periods the page offers for a rotation.
type Grace struct {
	Label string `json:"label"` // "1 hour"
	Grace string `json:"grace"` // "1h", as the API takes it
}

// graces are the console's grace choices, as a platform's console offers
// them; each is offered if the policy allows it.
var graces = []struct {
	label string
	d     time.Duration
}{
	{"Now", 0},
	{"1 hour", time.Hour},
	{"24 hours", 24 * time.Hour},
	{"3 days", 3 * 24 * time.Hour},
	{"7 days", 7 * 24 * time.Hour},
}

// manageActions are the actions the page offers, each to the roles that
// apikey.Role.Permits permits, in production environments and in others.
var manageActions = []apikey.Action{
	apikey.ActionCreate, apikey.ActionRotate, apikey.ActionChangeGrace, apikey.ActionRevoke,
	apikey.ActionSetScopes, apikey.ActionSetOrigins, apikey.ActionReveal, apikey.ActionSetLimits,
	apikey.ActionRename, apikey.ActionSetLifetime, apikey.ActionBootstrap, apikey.ActionDisable, apikey.ActionEnable,
	apikey.ActionRevokeOwner, apikey.ActionCreateEndpoint, apikey.ActionUpdateEndpoint,
	apikey.ActionRotateEndpointSecret, apikey.ActionDeleteEndpoint, apikey.ActionReplay,
}

// Session is the answer of GET /session: who is signed in, and what the
// page may offer them.
type Session struct {
	Actor apikey.Actor `json:"actor"`
	// Actions are the actions the actor's role allows in the environments
	// that are not production, such as "create", "rotate", "set_limits",
	// "rename", "set_lifetime", "bootstrap" (create an environment),
	// "disable", "enable", "revoke_owner" (revoke every key of an owner)
	// and the webhook endpoint actions "create_endpoint",
	// "update_endpoint", "rotate_endpoint_secret", "delete_endpoint" and
	// "replay_dead_letters" (see apikey.Role.Permits): every action for owners, the key
	// actions and "reveal" for members, none for read-only users, who only
	// view (keys, their limits and usage, the lifetime policy).
	Actions []apikey.Action `json:"actions"`
	// ProductionActions are the actions the actor's role allows in the
	// production environments (each environment of GET /api/environments
	// says whether it is one): every action for owners, "reveal" (of
	// publishable keys) for members, none for read-only users.
	ProductionActions []apikey.Action `json:"production_actions"`
	// Graces are the rotation choices within Policy.
	Graces []Grace `json:"graces"`
	Policy struct {
		Name string `json:"name"`
		Max  string `json:"max"`
	} `json:"policy"`
	// Audit says whether /api/audit serves an audit log.
	Audit bool `json:"audit"`
	// RevealServerKeys says whether the actor may reveal server keys: the
	// service set Options.RevealServerKeys and the actor's role reveals
	// server keys (owners). Publishable keys can be revealed wherever
	// "reveal" is among the actions.
	RevealServerKeys bool `json:"reveal_server_keys"`
	// Account is the account the console acts in for the actor, which the
	// page asks the actor to type before it closes the account.
	Account string `json:"account"`
	// CloseAccount says whether the page offers to close the account: the
	// service enabled it (Options.CloseAccount) and the actor's role allows
	// it.
	CloseAccount bool `json:"close_account"`
	// ServiceName is Options.ServiceName.
	ServiceName string `json:"service_name"`
	// AccountName is the account's display name (Options.AccountName), or
	// its id when the service gives none.
	AccountName string `json:"account_name"`
	// Scopes is the service's scope catalogue (Options.Scopes); empty
	// when it gives none, and the page takes scopes as typed text.
	Scopes []Scope `json:"scopes"`
}

// Console is the console's http.Handler. It is safe for concurrent use.
type Console struct {
	opts    Options
	graces  []Grace
	handler http.Handler
}

// New returns the console, or an error if a required option is missing,
// the policy is negative or a trusted origin is malformed.
func New(opts Options) (*Console, error) {
	switch {
	case opts.Manager == nil:
		return nil, errors.New("console: Options.Manager is required")
	case opts.Actor == nil:
		return nil, errors.New("console: Options.Actor is required")
	case opts.Policy.Max < 0:
		return nil, errors.New("console: Options.Policy.Max must not be negative")
	case opts.Policy.Max == 0:
		opts.Policy = apikey.ConsolePolicy
	}
	seen := make(map[string]bool, len(opts.Scopes))
	for i, sc := range opts.Scopes {
		if err := apikey.ValidateScope(sc.Name); err != nil {
			return nil, fmt.Errorf("console: Options.Scopes[%d]: %w", i, err)
		}
		if seen[sc.Name] {
			return nil, fmt.Errorf("console: Options.Scopes[%d]: %q appears twice", i, sc.Name)
		}
		seen[sc.Name] = true
	}
	opts.Scopes = append([]Scope(nil), opts.Scopes...)
	protection := http.NewCrossOriginProtection()
	for _, o := range opts.TrustedOrigins {
		if err := protection.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("console: Options.TrustedOrigins: %w", err)
		}
	}
	protection.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.Refuse(ReasonCrossOrigin, "a page on another origin may not change keys"))
	}))

	c := &Console{opts: opts}
	for _, g := range graces {
		if g.d <= opts.Policy.Max {
			c.graces = append(c.graces, Grace{Label: g.label, Grace: formatDuration(g.d)})
		}
	}
	api, err := admin.New(admin.Options{
		Manager:       opts.Manager,
		Audit:         opts.Audit,
		Policy:        opts.Policy,
		Authorize:     c.caller,
		CloseAccounts: opts.CloseAccount,
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	assets, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(assets)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, assets, "index.html")
	})
	mux.Handle("GET /app.js", files)
	mux.Handle("GET /style.css", files)
	mux.HandleFunc("GET /session", c.session)
	mux.Handle("/api/", http.StripPrefix("/api", api))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.Refuse(admin.ReasonNoRoute, ""))
	})
	c.handler = protection.Handler(mux)
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.handler.ServeHTTP(w, r)
}

// actor returns the signed-in actor and the account the console acts in
// for it, or a refusal.
func (c *Console) actor(r *http.Request) (apikey.Actor, string, error) {
	a, err := c.opts.Actor(r)
	switch {
	case err != nil && problem.Of(err) != nil:
		return apikey.Actor{}, "", err
	case err != nil:
		return apikey.Actor{}, "", problem.Refuse(admin.ReasonForbidden, "not signed in to the console")
	case !a.Role.Valid():
		return apikey.Actor{}, "", problem.Refuse(admin.ReasonForbidden, "no role in the console")
	case a.Account == apikey.AnyAccount:
		return apikey.Actor{}, "", problem.Refuse(admin.ReasonForbidden, `Actor.Account "*" is not an account: the console acts in one`)
	case a.Account == "" && !c.opts.SingleAccount:
		return apikey.Actor{}, "", problem.Refuse(admin.ReasonForbidden,
			"Options.Actor named no account: set Actor.Account (or console.Options.SingleAccount for a service with one account)")
	case a.Account == "":
		return a, apikey.DefaultAccount, nil
	}
	return a, a.Account, nil
}

// caller is the management API's Authorize: the signed-in actor, in its
// account, with no bound on environments or scopes.
func (c *Console) caller(r *http.Request) (admin.Caller, error) {
	a, account, err := c.actor(r)
	return admin.Caller{Actor: a, Account: account}, err
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	a, account, err := c.actor(r)
	if err != nil {
		problem.Write(w, r, err)
		return
	}
	s := Session{
		Actor: a, Actions: []apikey.Action{}, ProductionActions: []apikey.Action{}, Graces: c.graces,
		Audit: c.opts.Audit != nil,
		RevealServerKeys: c.opts.RevealServerKeys &&
			a.Role.Permits(apikey.ActionReveal, apikey.Target{Type: apikey.Server}) == nil,
		Account:      account,
		CloseAccount: c.opts.CloseAccount && a.Role.Allowed(apikey.ActionClose),
		ServiceName:  c.opts.ServiceName,
		AccountName:  account,
		Scopes:       c.opts.Scopes,
	}
	if s.Scopes == nil {
		s.Scopes = []Scope{}
	}
	if c.opts.AccountName != nil {
		if name := c.opts.AccountName(r, account); name != "" {
			s.AccountName = name
		}
	}
	for _, action := range manageActions {
		if a.Role.Permits(action, apikey.Target{}) == nil {
			s.Actions = append(s.Actions, action)
		}
		if a.Role.Permits(action, apikey.Target{Production: true}) == nil {
			s.ProductionActions = append(s.ProductionActions, action)
		}
	}
	s.Policy.Name, s.Policy.Max = c.opts.Policy.Name, formatDuration(c.opts.Policy.Max)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s) // the client went away
}

// formatDuration writes whole hours as "24h", zero as "0s", anything else
// as time.Duration does.
func formatDuration(d time.Duration) string {
	if d != 0 && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}
