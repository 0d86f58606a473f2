package middleware

import (
	"net/http"
	"strings"
)

// HeaderAPIKey is the header the key is read from. Header names are
// case-insensitive: "x-api-key" works too.
const HeaderAPIKey = "X-API-Key"

// canonicalAPIKey is HeaderAPIKey in the canonical form net/http stores
// header names in, so that the lookup needs no canonicalisation.
var canonicalAPIKey = http.CanonicalHeaderKey(HeaderAPIKey)

// keyFromRequest returns the presented key string: from X-API-Key, or from
// "Authorization: Bearer" if bearer is set. It never reads the URL. A
// request without a key gets ErrMissingKey; one that sends a key twice
// (two X-API-Key values, or X-API-Key and a bearer token) gets
// ErrMalformedKey. The returned string is not yet parsed.
func keyFromRequest(r *http.Request, bearer bool) (string, error) {
	values := r.Header[canonicalAPIKey]
	if len(values) > 1 {
		return "", refuse(ErrMalformedKey, "send exactly one "+HeaderAPIKey+" header")
	}
	key := ""
	if len(values) == 1 {
		key = strings.TrimSpace(values[0])
	}
	if bearer {
		token, err := bearerToken(r.Header["Authorization"])
		if err != nil {
			return "", err
		}
		if token != "" {
			if key != "" {
				return "", refuse(ErrMalformedKey, "send the key in "+HeaderAPIKey+" or Authorization, not both")
			}
			key = token
		}
	}
	if key == "" {
		return "", ErrMissingKey
	}
	return key, nil
}

// bearerToken returns the token of a single "Authorization: Bearer <token>"
// header (the scheme is case-insensitive), or "" if there is none or the
// header uses another scheme, which may be meant for something else.
func bearerToken(values []string) (string, error) {
	if len(values) == 0 {
		return "", nil
	}
	if len(values) > 1 {
		return "", refuse(ErrMalformedKey, "send exactly one Authorization header")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", nil
	}
	return strings.TrimSpace(token), nil
}
