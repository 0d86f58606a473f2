package middleware

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/internal/keycache"
)

// Identity is what the middleware learned about the key of an authenticated
// request. It never holds the secret.
type Identity struct {
	// KeyID is the key's public id, its index in the store.
	KeyID string
	// Prefix is the displayable prefix, "server-<id>" or "client-<id>".
	Prefix string
	// Type is the key type.
	Type apikey.KeyType
	// Account is the account the key belongs to (apikey.DefaultAccount in
	// a single-tenant service).
	Account string
	// Environment is the key's environment, within its Account.
	Environment string
	// Name is the key's label for people, "" if it has none.
	Name string
	// Owner names whom the key was issued to, "" if nobody was named.
	Owner string
	// Metadata is the map the service attached to the key; nil if none.
	Metadata map[string]string
	// Scopes are a server key's scopes ("*": full access); nil otherwise.
	Scopes []string
	// ExpiresAt is when the key stops working; zero means no expiry.
	ExpiresAt time.Time
	// Expiring reports that the key was rotated out (its grace period).
	Expiring bool

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

// newContext returns ctx carrying the shared, immutable id.
func newContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey, id)
}

// NewContext returns a copy of ctx that carries id for FromContext, for
// tests and custom authenticators. Validators do not trust it.
func NewContext(ctx context.Context, id Identity) context.Context {
	c := id.clone()
	if !c.ExpiresAt.IsZero() {
		c.expiresHeader = c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return newContext(ctx, &c)
}

// verifiedBy returns the Identity in r's context if v put it there for the
// very key r carries, else nil.
func verifiedBy(r *http.Request, v *Validator) *Identity {
	id, ok := r.Context().Value(identityKey).(*Identity)
	if !ok || id == nil || id.issuer != v {
		return nil
	}
	raw, err := keyFromRequest(r, v.cfg.AllowBearer)
	if err != nil || len(raw) != apikey.KeyLength || keycache.KeyOf(raw) != id.presented {
		return nil
	}
	return id
}

// FromContext returns the Identity that the middleware stored in the
// request's context, and true; otherwise the zero Identity and false. The
// returned Scopes and Metadata are copies.
func FromContext(ctx context.Context) (Identity, bool) {
	if ctx == nil {
		return Identity{}, false
	}
	id, ok := ctx.Value(identityKey).(*Identity)
	if !ok || id == nil {
		return Identity{}, false
	}
	return id.clone(), true
}

// clone returns a copy of the shared id that its receiver may modify.
func (id *Identity) clone() Identity {
	out := *id
	out.Scopes = slices.Clone(id.Scopes)
	out.Metadata = maps.Clone(id.Metadata)
	out.issuer, out.presented = nil, keycache.Key{}
	return out
}
