// Package console is keystile's embeddable web console: one page, with its
// script and style sheet embedded in the binary (no build step, no CDN, no
// external asset), that lists environments and their keys, creates keys,
// rotates them with the console's grace choices (Now, 1 hour, 24 hours,
// 3 days, 7 days), changes a rotated key's grace, disables keys (after a
// confirmation; never a default key, which is rotated first) and enables
// them again, revokes keys, edits a
// scoped key's scopes and the web origins allowed to use publishable keys,
// shows and sets the environment's key lifetime policy (a default expiry
// and a maximum lifetime, in days or hours), creates environments (showing
// their two default keys once), shows the environment's recent activity
// (Options.Audit: each action in words, and the events keystile writes
// itself, such as a quota used up or a key expiring soon, marked
// automatic), and shows a full key to owners (once when it is issued;
// again, where it can be revealed, on request). A refusal that concerns one
// field (a name too long, a lifetime out of bounds, an expiry beyond the
// environment's maximum lifetime) is shown next to that field.
//
// Keys imported from a service's earlier key store (apikey.Manager.Import)
// are marked "imported" in the list and, in their view, "imported — rotate
// to a keystile key", with a Rotate to a keystile key action for owners.
//
// At the top of the page, an Expiring soon list shows the keys of every
// environment that stop working within 7 days (their expiry, or the end of
// a rotated key's grace), soonest first; it stays hidden where the store
// cannot list them (apikey.ExpiryIndex). The keys issued to one owner, in
// every environment, have a view of their own (#owner=<owner>), linked
// from the owner's name and reached by a search by owner; there owners can
// revoke every one of them at once, after a confirmation (default keys are
// left as they are).
//
// A suspended account (apikey.Manager.SuspendAccount) is shown to every
// role as a notice that its keys are refused; while it lasts the page
// offers no action but revocation, which the Manager still allows. A
// suspension that happens while the page is open shows at the first
// refusal it causes.
//
// Each key has a view of its own (the page's location #env=<env>&key=<prefix>,
// linked from the key's prefix in the list): its details, the actions the
// list offers for it, a form that renames it, its limits (rate limit,
// quota, allowed IP ranges), a form, filled with them, that changes or
// removes them (both forms for owners, and for members outside
// production), and its usage of the last 24 hours per hour and of the last
// 30 days per day, admitted and refused requests stacked in charts that the
// script draws as inline SVG, each summed up in words and listed in a
// table. Where the Manager's store keeps no usage, the view says so.
//
// After a key is revoked, and in a revoked key's view, the page says how
// far the revocation has reached the running validators (GET
// /keys/{id}/propagation of package admin): "Reaching instances: 1 of 2
// applied" (and, while some cannot be reached, "1 instance unreachable,
// confirmed by <time> at the latest") until it is confirmed, then
// "Revoked everywhere at <time> — 2 of 2 instances". It reads it again
// every second for at most 30 seconds, then offers a Refresh button; the
// status is a polite live region, which screen readers announce as it
// changes. Where the store keeps no validator instances, it says the
// confirmation is not available.
//
// The console has no login of its own. A service mounts it behind its own
// session middleware and says, per request, who is signed in and with which
// role (Options.Actor):
//
//	c, err := console.New(console.Options{
//		Manager: manager,
//		Audit:   store,
//		Actor: func(r *http.Request) (apikey.Actor, error) {
//			u, ok := sessionUser(r) // the service's own login
//			if !ok {
//				return apikey.Actor{}, errors.New("not signed in")
//			}
//			return apikey.Actor{ID: u.Email, Role: u.KeyRole, Account: u.TenantID}, nil
//		},
//	})
//	if err != nil {
//		return err
//	}
//	mux.Handle("/console/", requireLogin(http.StripPrefix("/console", c)))
//
// The page names the service and the account as the service's users know
// them (Options.ServiceName, Options.AccountName), marks each environment
// as production or not (apikey.ManagerOptions.Production), and tells
// read-only users, and members in a production environment, what they can
// do and who changes keys. Server keys are chosen scopes from the
// service's catalogue (Options.Scopes), each with its description, where
// the service gives one; without one they are typed.
//
// The key list shows the keys that still work (active, expiring, disabled)
// first and hides revoked and expired ones until its filter asks for them;
// it searches the keys by name, prefix or owner and sorts them by
// creation, name, expiry or last use. Search, filter and sort act on the
// keys the page has read: every page of the listing up to 20, and more
// when the user loads more. Times read in words ("in 3 days", "3 minutes
// ago"), with the exact time (UTC) shown on hover and on keyboard focus.
// The page works at a phone's width: below 1100 pixels each key is a card
// of labelled values with its actions, and on wider screens the actions
// column stays at the table's right edge.
//
// Every actor acts in one account, Actor.Account; a single-tenant service
// whose actors name none sets Options.SingleAccount to put them in
// apikey.DefaultAccount, and without it such an actor is refused.
//
// Closing the account is off unless the service sets Options.CloseAccount:
// then owners see a Close account action, which asks them to type the
// account's id before the page sends the request, and the API checks the
// typed id again.
//
// The console must be mounted at a path that ends in "/" (the page loads
// its files by relative URLs). Relative to that path it serves:
//
//	GET  /            the page (HTML)
//	GET  /app.js      its script
//	GET  /style.css   its style sheet
//	GET  /session     {"actor": {"id", "role", "account"}, "account", "account_name",
//	                   "service_name", "actions": [...], "production_actions": [...],
//	                   "scopes": [...], "graces": [...], "policy": {...}, "close_account", ...} (Session)
//	     /api/...     the management API of package admin, for the actor
//	GET  /api/openapi.json  its OpenAPI 3.1 document (no actor needed)
//
// The API under /api/ is an admin.API whose callers are the actors that
// Options.Actor returns, with Options.Policy bounding grace periods: the
// console adds no route of its own that changes anything. Everyone with a
// role may list keys and settings; owners may change everything; members
// change the keys of environments that are not production
// (apikey.ManagerOptions.Production) and reveal publishable keys; read-only
// users only view (apikey.Role.Permits). The page offers each role, in the
// environment shown, the actions it may perform and no other (the roles
// are enforced by the API, not by the page).
//
// Its Webhooks view (#webhooks) lists the account's webhook endpoints and
// each one's dead letters to every role, and offers owners to add, edit,
// disable and delete endpoints, rotate a signing secret (with an overlap of
// 0 to 7 days) and replay dead letters. A signing secret reaches the page
// only in the response that creates or rotates it, and is shown once, as a
// full key is. Where the store keeps no endpoints (501
// endpoints_unavailable) the view says webhooks are not available.
//
// # Security
//
// The console's requests carry the service's login cookie, so another site
// must not be able to make the browser send them. Every request that
// changes state (any method but GET, HEAD and OPTIONS) passes
// net/http's CrossOriginProtection, which refuses a cross-origin browser
// request (by its Sec-Fetch-Site header, or its Origin header against Host)
// with 403 before the request reaches the API. A page on another origin,
// even another port of the same host where SameSite cookies are still sent,
// therefore cannot ride the service's session to create, rotate, revoke or
// reveal keys; no CSRF token is needed. Requests without either header are
// not from a browser and are passed on (they carry whatever credentials
// their client chose). GET requests never change anything.
//
// Every response carries a Content-Security-Policy that allows only the
// console's own script, style sheet and API ("default-src 'none'", no
// inline script or style, "frame-ancestors 'none'" against clickjacking),
// X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and
// Cache-Control: no-store (a full key is never cached). The page writes
// every value as text, never as HTML.
//
// A full key reaches the page only in the response that creates, rotates
// or reveals it; the page shows it once, with a copy button and a warning,
// and forgets it when the dialog closes.
package console
