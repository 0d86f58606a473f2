package middleware

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/callers"
	"github.com/keystile/keystile/internal/usage"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/middleware/limit"
)

// Identity is what the middleware learned about the key of an authenticated
// request. It never holds the secret.
type Identity struct {
	// What every cached request reads comes first, within the first 64
	// bytes (docs/benchmarks.md, Memory layout); tracked and ended repeat
	// facts held further on, so that a key that is live and not rotated
	// out never reads their lines.
	limited     bool           // Limits or OwnerLimits is not zero
	allowlisted bool           // Limits.AllowedIPs is not empty
	expires     bool           // ExpiresAt is not zero
	tracked     bool           // callers is not nil
	ended       bool           // RevokedAt or DisabledAt of its cache entry (made with it, in newEntry) is set
	usage       *usage.Counter // counts the key's requests; nil if usage is not counted
	Type        apikey.KeyType // the key type
	Account     string         // the key's account (apikey.DefaultAccount if single-tenant)
	Environment string         // the key's environment, within its Account

	callers   *callers.Key      // records the callers of a key rotated out; nil otherwise
	KeyID     string            // the key's public id, its index in the store
	Prefix    string            // the displayable prefix, "server-<id>" or "client-<id>"
	Name      string            // the key's label for people, "" if none
	Owner     string            // whom the key was issued to, "" if nobody was named
	Metadata  map[string]string // what the service attached to the key; nil if none
	Scopes    []string          // a server key's scopes ("*": full access); nil otherwise
	ExpiresAt time.Time         // when the key stops working; zero means no expiry
	Expiring  bool              // the key was rotated out: it is in its grace period
	// Imported reports a key issued before keystile (apikey.Manager.Import),
	// presented in a declared format (KeyOptions.Imported): rotate it to a
	// keystile key.
	Imported bool

	rateBucket *limit.Handle // the bucket of Limits.Rate, on the line of Limits.Rate; nil unless the Limiter is a *limit.Local
	Limits     apikey.Limits // the key's rate limit, quota and address allowlist; zero if none
	// OwnerLimits are the rate limit and quota that the key shares with
	// every key of its Owner in its Account (apikey.Manager.SetOwnerLimits),
	// enforced besides Limits on one budget for all of them; zero if none.
	// A refusal's detail says whose limit it was.
	OwnerLimits apikey.Limits

	ownerBudget   string       // apikey.OwnerBalanceID of Owner when OwnerLimits is not zero, else ""
	expiresHeader string       // ExpiresAt as the HeaderKeyExpires value
	issuer        *Validator   // the Validator that verified the key; nil in copies
	presented     keycache.Key // of the key string that verified; zero in copies
}

// HasScope reports whether the key holds scope: "*" grants everything,
// "resource:write" grants "resource:read", and publishable keys hold every
// read scope and no write scope.
func (id Identity) HasScope(scope string) bool {
	if id.Type == apikey.Client {
		return scope == "" || strings.HasSuffix(scope, ":read")
	}
	return apikey.HasScope(id.Scopes, scope)
}

// contextKey is the type of the context key of the Identity.
type contextKey struct{ name string }

var identityKey = &contextKey{"keystile identity"}

// NewContext returns a copy of ctx that carries id for FromContext, for
// tests and custom authenticators. Validators do not trust it.
func NewContext(ctx context.Context, id Identity) context.Context {
	c := id.clone()
	if !c.ExpiresAt.IsZero() {
		c.expiresHeader = c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return context.WithValue(ctx, identityKey, &c)
}

// requestContext is the context a guard that authenticated a request
// hands on: it carries the Identity, and the refusal of an inner guard
// (Require under Authenticate), so that the outer guard counts the
// request's usage once, with its final outcome.
type requestContext struct {
	context.Context
	id *Identity // shared and immutable
	// outcome is 1 + the index in outcomes of the first refusal of an
	// inner guard; 0 if none. Inner guards may run on other goroutines
	// (http.TimeoutHandler, sub-requests with the same context).
	outcome atomic.Int32
}

func (c *requestContext) Value(key any) any {
	switch key {
	case identityKey:
		return c.id
	case requestKey:
		return c
	}
	return c.Context.Value(key)
}

var requestKey = &contextKey{"keystile request"}

// noteRefusal records an inner guard's refusal err of r for the guard
// that authenticated r; the first refusal is the request's outcome.
func noteRefusal(r *http.Request, err error) {
	if c, ok := r.Context().Value(requestKey).(*requestContext); ok {
		c.outcome.CompareAndSwap(0, int32(1+outcomeOf(err)))
	}
}

// finalOutcome returns the index in outcomes of the request's outcome:
// admitted, or the first refusal an inner guard noted.
func (c *requestContext) finalOutcome() int {
	if o := c.outcome.Load(); o > 0 {
		return int(o - 1)
	}
	return 0
}

// verifiedBy returns the Identity in r's context if v put it there for the
// very key r carries, else nil.
func verifiedBy(r *http.Request, v *Validator) *Identity {
	id, ok := r.Context().Value(identityKey).(*Identity)
	if !ok || id == nil || id.issuer != v {
		return nil
	}
	raw, err := keyFromRequest(r, v.cfg.Keys.AllowBearer)
	if err != nil {
		return nil
	}
	if id.Imported {
		if _, ok := v.cfg.Keys.match(raw); !ok {
			return nil
		}
		if _, k := importedKey(raw); k != id.presented {
			return nil
		}
		return id
	}
	if len(raw) != apikey.KeyLength || keycache.KeyOf(raw) != id.presented {
		return nil
	}
	return id
}

// FromContext returns a copy of the Identity that the middleware stored in
// the request's context, and true; otherwise the zero Identity and false.
func FromContext(ctx context.Context) (Identity, bool) {
	var id *Identity
	if ctx != nil {
		id, _ = ctx.Value(identityKey).(*Identity)
	}
	if id == nil {
		return Identity{}, false
	}
	return id.clone(), true
}

// clone returns a copy of the shared id that its receiver may modify.
func (id *Identity) clone() Identity {
	out := *id
	out.Scopes = slices.Clone(id.Scopes)
	out.Metadata = maps.Clone(id.Metadata)
	out.Limits = id.Limits.Clone()
	out.OwnerLimits = id.OwnerLimits.Clone()
	out.issuer, out.presented, out.usage, out.callers, out.rateBucket = nil, keycache.Key{}, nil, nil, nil
	out.tracked, out.ended = false, false
	return out
}
