package admin

import (
	"net/http"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
)

// The key-management scopes that KeyScopes maps to roles.
const (
	ScopeRead  = "api_keys:read"
	ScopeWrite = "api_keys:write"
)

// KeyScopes is a ready Authorize function for callers authenticated by the
// middleware with a server key, like a platform's own key-management
// scope: a key holding "api_keys:write" (or full access, "*") acts as an
// owner, one holding only "api_keys:read" as read-only. Publishable keys and
// keys with neither scope are refused. The caller is confined to its key's
// account and environment (never an operator) and its actor id is the key's
// displayable prefix. The Actor carries the key's scopes and expiry
// (apikey.Actor.Scopes, Expires), so the Manager lets it create, rotate,
// reveal or extend nothing that holds a scope the key lacks or outlives
// the key: "api_keys:write" alone cannot mint a full-access key. It carries
// the key's id too (Actor.KeyID): of usage, the key reads its own only.
//
// A key that was rotated out (Identity.Expiring, in its grace period) may
// not manage keys, whatever its scopes: it is at most read-only, and every
// request that is not a GET or HEAD is refused with 403 role_not_allowed.
// Otherwise a leaked old key could extend its own grace or rotate its
// replacement; its owner manages keys with the replacement.
func KeyScopes(r *http.Request) (Caller, error) {
	id, ok := middleware.FromContext(r.Context())
	if !ok {
		return Caller{}, problem.Refuse(middleware.ErrMissingKey, "the management API needs an authenticated key")
	}
	if id.Type != apikey.Server {
		return Caller{}, problem.Refuse(middleware.ErrKeyType, "the management API needs a server key")
	}
	role := apikey.Role("")
	switch {
	case apikey.HasScope(id.Scopes, ScopeWrite):
		role = apikey.Owner
	case apikey.HasScope(id.Scopes, ScopeRead):
		role = apikey.ReadOnly
	default:
		return Caller{}, problem.Refuse(middleware.ErrScope, "the management API needs scope "+ScopeRead+" or "+ScopeWrite)
	}
	if id.Expiring {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return Caller{}, problem.Refuse(ReasonForbidden, "this key was rotated out: it may read keys but not manage them; use its replacement")
		}
		role = apikey.ReadOnly
	}
	return Caller{
		Actor: apikey.Actor{
			ID: id.Prefix, Role: role, Account: id.Account,
			// never mints more than the key holds
			Scopes: id.Scopes, Expires: id.ExpiresAt, Limits: id.Limits,
			KeyID: id.KeyID, // reads its own key's usage only
		},
		Account: id.Account, Environment: id.Environment,
	}, nil
}
