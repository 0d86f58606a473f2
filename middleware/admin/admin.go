// Package admin is keystile's management API: an http.Handler, JSON in and
// out, over an apikey.Manager. Mount it under a prefix and put an
// authenticating middleware in front of it:
//
//	api, _ := admin.New(admin.Options{Manager: m, Audit: store, Authorize: admin.KeyScopes})
//	mux.Handle("/admin/", validator.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Server}})(
//		http.StripPrefix("/admin", api)))
//
// Routes (relative to the mount point), all within the caller's account
// (Caller.Account, see Options.SingleAccount):
//
//	GET    /environments                        a page of environments and their allowed origins
//	POST   /environments                        create an environment and its default keys:
//	                                            {"environment": "qa"} (owners not confined to an
//	                                            environment); answers {"environment", "issued":
//	                                            [{"full_key", "view"}, ...]}, server key first
//	GET    /environments/{env}/keys             a page of keys (never a secret)
//	POST   /environments/{env}/keys             create a key: {"type", "name", "owner", "metadata",
//	                                            "scopes", "expires_in" | "expires_at", "limits"}
//	                                            (a server key needs scopes: ["*"] for full access)
//	POST   /environments/{env}/keys/{type}/rotate  rotate the default key: {"grace"}
//	GET    /keys/{id}                           one key
//	POST   /keys/{id}/rotate                    rotate a key: {"grace": "24h"} (0s to 8760h; see Options.Policy)
//	PUT    /keys/{id}/grace                     change a rotated key's grace: {"grace"}
//	POST   /keys/{id}/revoke                    revoke a key (a default key is rotated first)
//	PUT    /keys/{id}/scopes                    replace a scoped key's scopes: {"scopes"} (not empty; ["*"] for full access)
//	PUT    /keys/{id}/owner                     name whom the key is issued to: {"owner"} ("" names nobody)
//	PUT    /keys/{id}/name                      rename the key: {"name"} ("" removes it)
//	PUT    /keys/{id}/metadata                  replace the key's metadata: {"metadata": {...}} ({} removes it)
//	PUT    /keys/{id}/limits                    replace the key's limits: {"rate", "quota", "allowed_ips"}
//	                                            ({} removes them; owners, never a key)
//	POST   /keys/{id}/reveal                    the full key, where it can be revealed
//	GET    /keys/{id}/usage?from=&to=           a page of the key's usage counts over [from, to)
//	GET    /keys/{id}/callers                   who still uses a key rotated out: requests since the
//	                                            rotation, last seen, its callers (address, user agent)
//	POST   /keys/{id}/end-grace-if-silent       end a rotated-out key's grace now if no caller was seen
//	                                            for {"silent_for": "2h"} (at least 10m)
//	GET    /environments/{env}/usage?from=&to=  a page of the usage counts of the environment's keys
//	GET    /keys/{id}/propagation               how far the key's last change reached the running
//	                                            validators: "applied" of "live" instances, "pending",
//	                                            "unreachable" (blocking, until "unreachable_until"),
//	                                            "stopped", "confirmed", "confirmed_by" (counts only)
//	GET    /environments/{env}/origins          allowed origins for publishable keys
//	PUT    /environments/{env}/origins          replace them: {"allowed_origins": [...]}
//	PUT    /environments/{env}/lifetime         replace the lifetime policy of its keys:
//	                                            {"default_expiry_seconds", "max_lifetime_seconds"}
//	                                            ({} removes it; owners, never a key)
//	GET    /owners/{owner}/keys                 a page of the keys issued to owner, in every environment
//	POST   /owners/{owner}/revoke               revoke them all at once (default keys are skipped and listed)
//	GET    /owners/{owner}/limits               the rate limit and quota the owner's keys share ({} for none)
//	PUT    /owners/{owner}/limits               replace them: {"rate", "quota"}, on every key of the owner
//	                                            at once ({} removes them; owners, never a key)
//	GET    /keys/expiring?within=72h&environment=  a page of the keys that expire within the window,
//	                                            soonest first (expiries and ends of grace)
//	GET    /webhooks                            a page of the account's webhook endpoints (never a secret)
//	POST   /webhooks                            register one: {"url", "actions", "environment",
//	                                            "enabled"}; answers {"secret", "endpoint"}, the
//	                                            secret ("whsec_...") shown this once (owners)
//	GET    /webhooks/{id}                       one endpoint
//	PUT    /webhooks/{id}                       change it: each of {"url", "actions", "environment",
//	                                            "enabled"} given replaces the endpoint's (owners)
//	DELETE /webhooks/{id}                       delete it (owners)
//	POST   /webhooks/{id}/rotate-secret         a new secret: {"overlap": "24h"} (0s to 168h) keeps the
//	                                            old one signing that long; answers {"secret", "endpoint"}
//	GET    /webhooks/{id}/dead-letters          a page of its dead letters, each dead, replaying or
//	                                            delivered
//	POST   /webhooks/{id}/replay                deliver dead letters again: {"event_id"} for one,
//	                                            no body for all (owners)
//	                                            (the webhook routes refuse callers confined to an
//	                                            environment)
//	GET    /audit?environment=&before=&limit=   a page of audit events, newest first
//	POST   /account/close                       close the caller's own account: {"confirm":
//	                                            "<the account>"} (owners not confined to an
//	                                            environment; see Options.CloseAccounts)
//
// and, for operators only (Caller.Operator, acting across accounts; never
// a key-authenticated caller):
//
//	GET    /accounts                            a page of account ids
//	POST   /accounts/{account}/close            close an account: {"confirm": "<{account}>"}
//	POST   /accounts/{account}/suspend          suspend an account; /resume ends it
//	POST   /keys/import                         import a key issued before keystile into an account:
//	                                            {"account", "environment", "type", "digest"
//	                                            (SHA-256, hex) | "key", and the fields of a create}
//
// and, for anyone who reaches the handler:
//
//	GET    /openapi.json                        this API's OpenAPI 3.1 document
//
// The OpenAPI document (openapi.json, embedded) is the API's contract: every
// route, its parameters, request and response schemas, statuses and problem
// codes, and the X-API-Key security scheme. It is served without calling
// Authorize, since it is the same for every caller and names no account,
// key or environment. The middleware a service mounts in front of the API
// still applies; to publish the document to anyone, route its path around
// that middleware:
//
//	mux.Handle("GET /admin/openapi.json", http.StripPrefix("/admin", api))
//
// Every route but the account routes acts in the one account that the
// caller names (Caller.Account, or else Caller.Actor.Account); KeyScopes
// names its key's. A custom Authorize of a multi-tenant service must name
// it: a caller that names none is refused (403 role_not_allowed), so that a
// forgotten account never becomes the default one. A single-tenant service
// whose callers name no account sets Options.SingleAccount, which puts them
// in apikey.DefaultAccount:
//
//	api, _ := admin.New(admin.Options{Manager: m, SingleAccount: true,
//		Authorize: func(r *http.Request) (admin.Caller, error) {
//			return admin.Caller{Actor: apikey.Actor{ID: user(r), Role: apikey.Owner}}, nil
//		}})
//
// {id} is a key id or a displayable prefix, "server-<id>" or "client-<id>"
// (apikey.ParseKeyID). A prefix of the other type is 404 not_found, like a
// key that does not exist or a key of another account; anything else, a
// full key included, is 422 invalid_key_id.
//
// Lists are paged: ?limit=N (1 to 1000, 100 by default) and ?after=<the
// "next" of the previous page>; a response carries "next" while more
// follow. The audit log's cursor is the seq of the last event of a page,
// also accepted as ?before=. A cursor that no page returned is 422
// invalid_cursor.
//
// Closing an account revokes every key of every environment of it at once
// (defaults included) and refuses new ones: it cannot be undone. Both routes
// that close one are refused (403 role_not_allowed) unless
// Options.CloseAccounts is set, and each asks for the account's id again in
// its body, {"confirm": "acme"}: a missing or different one is refused with
// 422 confirmation_required. A key cannot close its account, even a
// full-access one (KeyScopes confines it to its environment): owners do it
// from a console session, or an operator.
//
// A request body is one JSON object of the route's fields, named exactly as
// above (no case folding, no other member). A field of the wrong type or
// form is refused with 400 invalid_request and a detail that names the
// field and what it takes, never the value given (a key may have been
// pasted there): {"grace":"1d"} is refused with
// `grace: want a duration such as "24h" or "90m"`.
//
// A key's limits (apikey.Limits: a rate limit, a quota, the address ranges
// a server key may be used from) are written as the key's view shows them,
//
//	{"rate": {"requests": 100, "window_seconds": 60, "burst": 20},
//	 "quota": {"limit": 10000, "refill": 10000, "period": "month"},
//	 "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"]}
//
// and PUT /keys/{id}/limits replaces them all: a member left out sets no
// bound of its kind, and {} removes every bound. A member given must set
// one ({"quota": {"limit": 0}} is refused, never read as "no quota").
// Limits out of range (apikey.ValidateLimits), a number with a fraction or
// an exponent and a range that is not CIDR are refused with 422
// invalid_limits and a detail that names the field within the limits,
// such as `rate.window_seconds` or `allowed_ips[2]`. Owners change a key's
// limits, and members those of keys outside production environments
// (apikey.Role.Permits); no key-authenticated caller does (403
// role_not_allowed, apikey.ErrBeyondActor), not even its own key's.
//
// Usage is counted per key, hour and outcome ("admitted", or the code of a
// refusal such as "rate_limited"), and read over a range of hours: ?from=
// and ?to=, RFC 3339 times, both required, at most MaxUsageRange apart
// (from rounds down to its hour, to up to the next), else 422
// invalid_time_range. A page holds counts ordered by hour, then key id,
// then outcome, and pages like any list (?limit=, ?after=). Every role
// reads its account's usage; a key-authenticated caller reads only its own
// key's (403 role_not_allowed otherwise). A store that keeps no usage is
// 501 usage_unavailable.
//
// A key rotated out reports who still uses it (GET /keys/{id}/callers,
// apikey.Manager.Callers), to every role that may get the key (a caller
// authenticated by a key: its own key's only, else 403, as its usage):
// what the validators wrote with their last-used times. A store that
// keeps no callers (it is not an apikey.CallerLog) is 501
// callers_unavailable. POST /keys/{id}/end-grace-if-silent ends the key's
// grace at once if it was not used for silent_for
// (apikey.Manager.EndGraceIfSilent, the roles of a grace change), else 409
// still_in_use; silent_for is required (422 silence_required), 10m to
// 8760h (422 silence_out_of_range).
//
// A key's propagation (apikey.Propagation) says whether its last change, a
// revocation say, is confirmed: applied by every live validator that
// reports to the store (storage.InstanceLog), N of N, by "confirmed_by".
// Validators not heard from for apikey.InstanceStaleAfter that had not
// applied the change and may still serve their cache (until their
// ServesUntil) count as "unreachable", until "unreachable_until" at the
// latest, and block it; after that they count as "stopped" and do not.
// With no validator live or unreachable nothing is confirmed ("reason":
// "no_instances"). Times are the store's clock. Suspensions and allowed
// origins are settings, which this does not cover.
// Validators are counted, never named: no
// caller learns the service's host names. A store that keeps no instances
// is 501 instances_unavailable.
//
// The grace of rotate and grace changes is required: a missing grace (or
// an empty body) is refused with 422 grace_required, never read as zero;
// {"grace":"0s"} ends the old key at once.
//
// An environment's lifetime policy (apikey.LifetimePolicy) bounds its
// non-default keys: a key created without an expiry gets the default
// expiry, an expiry (or a grace) beyond the maximum lifetime is refused
// with 422 beyond_lifetime, whose detail names the maximum. The settings
// show it as "lifetime", written as PUT /environments/{env}/lifetime takes
// it, in whole seconds; an environment without one shows none. A policy
// out of range is 422 invalid_lifetime, the detail naming the field.
//
// Create, rotate and reveal answer {"full_key": "<the full key>", "view":
// {...}}, as keyctl prints them, and creating an environment its two
// default keys so; a full key appears in no other response.
// Every refusal is an application/problem+json response with a stable code
// (or what Options.ErrorHandler writes): Reasons lists them, each an
// exported, documented Reason. Every response carries Cache-Control:
// no-store and X-Content-Type-Options: nosniff.
package admin

import (
	"errors"
	"net/http"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage"
)

// Caller is who makes a management request.
type Caller struct {
	// Actor is recorded in audit events; its role decides what is allowed.
	// Its Account is set from Account (it may be left empty).
	Actor apikey.Actor
	// Account is the account the caller acts in: every route reads and
	// changes only that account's environments, keys and audit events, and
	// a key of another account is not found (404). Empty means
	// Actor.Account; when both are empty the caller names no account, which
	// is refused (403 role_not_allowed) unless Options.SingleAccount puts
	// it in apikey.DefaultAccount. It names one account: apikey.AnyAccount
	// is refused on every route, even for an Operator.
	Account string
	// Operator lets the caller use the account routes (GET /accounts,
	// POST /accounts/{account}/close, /suspend and /resume) and POST
	// /keys/import, which act across accounts (apikey.AnyAccount). The other routes still act in Account. Only the
	// embedding service's own back office should set it; KeyScopes never
	// does. An Actor.Account of apikey.AnyAccount without Operator is
	// refused on every route.
	Operator bool
	// Environment, if set, confines the caller to one environment of its
	// account: keys and settings of others are invisible to it (404). A
	// key-authenticated caller is confined to its key's account and
	// environment, because both are hard boundaries.
	Environment string
}

// account returns the account the caller names: Account, or else
// Actor.Account unless it is apikey.AnyAccount; "" if none. API.wrap fills
// Account in for the routes that act in one, so that their handlers always
// find one here.
func (c Caller) account() string {
	if c.Account != "" {
		return c.Account
	}
	if c.Actor.Account != apikey.AnyAccount {
		return c.Actor.Account
	}
	return ""
}

// actor returns the Actor of the caller's Manager calls: in its account.
func (c Caller) actor() apikey.Actor {
	a := c.Actor
	a.Account = c.account()
	return a
}

// operator returns the Actor of an operator's calls across accounts.
func (c Caller) operator() (apikey.Actor, error) {
	if !c.Operator {
		return apikey.Actor{}, problem.Refuse(ReasonForbidden, "this route is for operators only (Caller.Operator)")
	}
	a := c.Actor
	a.Account = apikey.AnyAccount
	return a, nil
}

// check refuses a Caller whose Actor names another account than Account,
// that gives apikey.AnyAccount as its Account, or whose Actor acts across
// accounts without Operator: an Authorize function's mistakes, never
// widened silently.
func (c Caller) check() error {
	switch {
	case c.Account == apikey.AnyAccount:
		return problem.Refuse(ReasonForbidden, `Caller.Account "*" is not an account: name one (operators act across accounts on the account routes, with Caller.Operator)`)
	case c.Actor.Account == apikey.AnyAccount && !c.Operator:
		return problem.Refuse(ReasonForbidden, `acting across accounts (Caller.Actor.Account "*") needs Caller.Operator`)
	case c.Actor.Account != "" && c.Actor.Account != apikey.AnyAccount && c.Account != "" && c.Actor.Account != c.Account:
		return problem.Refuse(ReasonForbidden, "the caller's actor and account differ")
	}
	return nil
}

// errNoAccount refuses a caller that names no account on a route that acts
// in one, unless Options.SingleAccount.
var errNoAccount = problem.Refuse(ReasonForbidden,
	"Authorize named no account: set Caller.Account (or admin.Options.SingleAccount for a service with one account)")

// Options configure the management API.
type Options struct {
	// Manager carries out every action. Required.
	Manager *apikey.Manager
	// Authorize says who is calling, or returns an error (one with a
	// problem.Reason keeps it, any other is 403). Required; KeyScopes is a
	// ready one for key-authenticated callers.
	Authorize func(r *http.Request) (Caller, error)
	// Audit, if set, serves GET /audit. Nil answers it with 501.
	Audit storage.AuditLog
	// MaxBodyBytes bounds request bodies. Zero means 64 KiB.
	MaxBodyBytes int64
	// Policy bounds the grace of rotations and grace changes. The zero
	// value is apikey.APIPolicy (0 to 365 days); a console passes
	// apikey.ConsolePolicy (0 to 7 days).
	Policy apikey.GracePolicy
	// SingleAccount puts a caller that names no account (Caller.Account and
	// Caller.Actor.Account both empty) in apikey.DefaultAccount, for a
	// single-tenant service. False (the zero value) refuses such a caller
	// with 403 role_not_allowed on every route that acts in an account, so
	// that a multi-tenant service whose Authorize forgets the account never
	// acts in the default one.
	SingleAccount bool
	// CloseAccounts serves the routes that close an account (POST
	// /account/close, POST /accounts/{account}/close), each of which still
	// asks for the account's id again in its body. False (the zero value)
	// refuses them with 403 role_not_allowed: closing revokes every key of
	// the account for good.
	CloseAccounts bool
	// ErrorHandler writes every refusal, for a service that answers errors
	// in a format of its own. err always has a problem.Reason:
	// problem.Of(err) is one of Reasons, or the one Authorize returned
	// (such as package middleware's); problem.Detail(err) says what was
	// wrong and problem.RetryAfter(err) how long to wait (503); none of
	// them holds a secret. A refusal by a rule of package apikey wraps its error
	// (errors.Is(err, apikey.ErrNotFound)); a storage failure arrives as
	// ReasonUnavailable and wraps the storage error for errors.Is and
	// errors.As, but its text (err.Error()) is the refusal's alone.
	// Cache-Control: no-store is already set. Nil means problem.Write:
	// application/problem+json with the reason's status and code, and
	// WWW-Authenticate on the 401s of package middleware.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// API is the management API handler. It is safe for concurrent use.
type API struct {
	opts Options
	mux  *http.ServeMux
}

// New returns the management API, or an error if a required option is
// missing or MaxBodyBytes is negative.
func New(opts Options) (*API, error) {
	if opts.Manager == nil {
		return nil, errors.New("admin: Options.Manager is required")
	}
	if opts.Authorize == nil {
		return nil, errors.New("admin: Options.Authorize is required")
	}
	switch {
	case opts.MaxBodyBytes < 0:
		return nil, errors.New("admin: Options.MaxBodyBytes must not be negative")
	case opts.MaxBodyBytes == 0:
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.Policy.Max < 0 {
		return nil, errors.New("admin: Options.Policy.Max must not be negative")
	}
	if opts.Policy.Max == 0 {
		opts.Policy = apikey.APIPolicy
	}
	if opts.ErrorHandler == nil {
		opts.ErrorHandler = problem.Write
	}
	a := &API{opts: opts, mux: http.NewServeMux()}
	for pattern, h := range a.routes() {
		a.mux.Handle(pattern, a.wrap(h, !acrossAccounts[pattern]))
	}
	a.mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, errNoRoute)
	})
	return a, nil
}

// routes maps each route's pattern to its handler. openapi.json describes
// each of them, and GET /openapi.json.
func (a *API) routes() map[string]handler {
	return map[string]handler{
		"GET /environments":                           a.environments,
		"GET /environments/{env}/keys":                a.listKeys,
		"POST /environments/{env}/keys":               a.createKey,
		"POST /environments/{env}/keys/{type}/rotate": a.rotateDefault,
		"POST /keys/import":                           a.importKey,
		"GET /keys/{id}":                              a.getKey,
		"POST /keys/{id}/rotate":                      a.rotateKey,
		"PUT /keys/{id}/grace":                        a.changeGrace,
		"POST /keys/{id}/revoke":                      a.revokeKey,
		"PUT /keys/{id}/scopes":                       a.setScopes,
		"PUT /keys/{id}/owner":                        a.setOwner,
		"PUT /keys/{id}/metadata":                     a.setMetadata,
		"PUT /keys/{id}/limits":                       a.setLimits,
		"GET /keys/{id}/usage":                        a.keyUsage,
		"GET /keys/{id}/callers":                      a.keyCallers,
		"POST /keys/{id}/end-grace-if-silent":         a.endGraceIfSilent,
		"GET /keys/{id}/propagation":                  a.keyPropagation,
		"GET /environments/{env}/usage":               a.environmentUsage,
		"POST /keys/{id}/reveal":                      a.revealKey,
		"GET /environments/{env}/origins":             a.getOrigins,
		"PUT /environments/{env}/origins":             a.setOrigins,
		"GET /audit":                                  a.audit,
		"POST /account/close":                         a.closeOwnAccount,
		"GET /accounts":                               a.accounts,
		"POST /accounts/{account}/close":              a.closeAccount,
		"PUT /environments/{env}/lifetime":            a.setLifetime,
		"PUT /keys/{id}/name":                         a.renameKey,
		"POST /environments":                          a.createEnvironment,
		"POST /keys/{id}/disable":                     a.disableKey,
		"POST /keys/{id}/enable":                      a.enableKey,
		"POST /accounts/{account}/suspend":            a.suspendAccount,
		"POST /accounts/{account}/resume":             a.resumeAccount,
		"GET /owners/{owner}/keys":                    a.ownerKeys,
		"POST /owners/{owner}/revoke":                 a.revokeOwner,
		"GET /owners/{owner}/limits":                  a.ownerLimits,
		"PUT /owners/{owner}/limits":                  a.setOwnerLimits,
		"GET /keys/expiring":                          a.expiringKeys,
		"GET /webhooks":                               a.listEndpoints,
		"POST /webhooks":                              a.createEndpoint,
		"GET /webhooks/{id}":                          a.getEndpoint,
		"PUT /webhooks/{id}":                          a.updateEndpoint,
		"DELETE /webhooks/{id}":                       a.deleteEndpoint,
		"POST /webhooks/{id}/rotate-secret":           a.rotateEndpointSecret,
		"GET /webhooks/{id}/dead-letters":             a.endpointDeadLetters,
		"POST /webhooks/{id}/replay":                  a.replayEndpoint,
	}
}

// acrossAccounts are the routes that act across accounts, for operators:
// every other route acts in the caller's account.
var acrossAccounts = map[string]bool{
	"GET /accounts":                    true,
	"POST /accounts/{account}/close":   true,
	"POST /accounts/{account}/suspend": true,
	"POST /accounts/{account}/resume":  true,
	"POST /keys/import":                true, // the service's act, never a tenant's: see apikey.Manager.Import
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	a.mux.ServeHTTP(w, r)
}

// handler serves one route for an authorised caller and returns the
// response status and body, or an error.
type handler func(r *http.Request, c Caller) (int, any, error)

// wrap serves a route with h for the caller that Authorize returns, once
// checked; inAccount says that the route acts in the caller's account,
// which it then must name (or Options.SingleAccount supply).
func (a *API) wrap(h handler, inAccount bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, err := a.opts.Authorize(r)
		if err != nil {
			a.writeError(w, r, forbidden(err))
			return
		}
		if err := caller.check(); err != nil {
			a.writeError(w, r, err)
			return
		}
		if inAccount && caller.account() == "" {
			if !a.opts.SingleAccount {
				a.writeError(w, r, errNoAccount)
				return
			}
			caller.Account = apikey.DefaultAccount
		}
		caller.Account = caller.account()
		r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes)
		status, body, err := h(r, caller)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		writeJSON(w, status, body)
	})
}
