package apikey

import (
	"fmt"
	"slices"
	"strings"
)

// AllScopes is the scope of a full-access key: it grants every other scope.
// Default server keys carry it.
const AllScopes = "*"

// Limits of a key's scopes, which travel with every request's Identity and
// every cached key.
const (
	// MaxScopes is the most scopes a key may be given, counted as given
	// (duplicates included).
	MaxScopes = 32
	// MaxScopeResourceLength bounds the resource of a scope, in bytes.
	MaxScopeResourceLength = 64
	// MaxScopeLength bounds a scope, in bytes: a resource of
	// MaxScopeResourceLength and ":write".
	MaxScopeLength = MaxScopeResourceLength + len(":write")
)

// ValidateScopes checks scopes for a key of type t and returns them sorted
// without duplicates. A server key's scopes are AllScopes or
// "resource:read" / "resource:write" (resource: 1 to MaxScopeResourceLength
// characters of [a-z0-9_.-]), at most MaxScopes of them; it needs at least
// one: an empty list fails with ErrScopesRequired, because full access is
// never implicit. Publishable keys carry no scopes. Other errors wrap
// ErrInvalidScope, name the bound or the scope's position, and never repeat
// the input.
func ValidateScopes(t KeyType, scopes []string) ([]string, error) {
	if t == Client {
		if len(scopes) > 0 {
			return nil, fmt.Errorf("%w: publishable keys carry no scopes", ErrInvalidScope)
		}
		return nil, nil
	}
	if len(scopes) == 0 {
		return nil, ErrScopesRequired
	}
	if len(scopes) > MaxScopes {
		return nil, fmt.Errorf("%w: scopes: %d given, at most %d", ErrInvalidScope, len(scopes), MaxScopes)
	}
	out := make([]string, 0, len(scopes))
	for i, s := range scopes {
		if len(s) > MaxScopeLength {
			return nil, fmt.Errorf("%w: scope %d is longer than %d bytes", ErrInvalidScope, i+1, MaxScopeLength)
		}
		if !validScope(s) {
			return nil, fmt.Errorf("%w: scope %d: want %q or resource:read or resource:write (resource: 1-%d of [a-z0-9_.-])",
				ErrInvalidScope, i+1, AllScopes, MaxScopeResourceLength)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if slices.Contains(out, AllScopes) {
		return []string{AllScopes}, nil
	}
	return out, nil
}

// ValidateScope checks one scope as a route would require it:
// "resource:read" or "resource:write".
func ValidateScope(scope string) error {
	if scope == AllScopes || !validScope(scope) {
		return fmt.Errorf("%w: want resource:read or resource:write", ErrInvalidScope)
	}
	return nil
}

func validScope(s string) bool {
	if s == AllScopes {
		return true
	}
	resource, action, ok := strings.Cut(s, ":")
	if !ok || (action != "read" && action != "write") || resource == "" || len(resource) > MaxScopeResourceLength {
		return false
	}
	for i := 0; i < len(resource); i++ {
		c := resource[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// HasScope reports whether a key holding scopes may do what required names.
// AllScopes grants everything, and "resource:write" grants "resource:read".
// An empty required scope is always granted.
func HasScope(scopes []string, required string) bool {
	if required == "" {
		return true
	}
	resource, action, _ := strings.Cut(required, ":")
	for _, s := range scopes {
		if s == AllScopes || s == required {
			return true
		}
		if action == "read" && len(s) == len(resource)+6 && strings.HasPrefix(s, resource) && strings.HasSuffix(s, ":write") {
			return true
		}
	}
	return false
}
