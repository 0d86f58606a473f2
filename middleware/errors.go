package middleware

import (
	"net/http"

	"github.com/keystile/keystile/middleware/problem"
)

// challenge is the WWW-Authenticate header of the middleware's 401
// responses.
const challenge = `APIKey header="X-API-Key"`

// The reasons a request is refused, each a sentinel error of type
// *problem.Reason: check one with errors.Is, or find the reason behind an
// error of Check or of an ErrorHandler with problem.Of (and its detail and
// Retry-After with problem.Detail and problem.RetryAfter). Their codes are
// stable: clients may branch on them. The 401s carry the challenge
// `APIKey header="X-API-Key"` (WWW-Authenticate).
var (
	// ErrMissingKey (401, "missing_key"): the request carries no key.
	ErrMissingKey = problem.Unauthorized("missing_key", "missing API key", challenge)
	// ErrMalformedKey (401, "malformed_key"): the key is not a keystile key
	// (length, prefix, alphabet or checksum), or it was sent twice. No
	// storage call and no hash were made.
	ErrMalformedKey = problem.Unauthorized("malformed_key", "malformed API key", challenge)
	// ErrInvalidKey (401, "invalid_key"): no such key, or a wrong secret.
	// The two are not told apart.
	ErrInvalidKey = problem.Unauthorized("invalid_key", "invalid API key", challenge)
	// ErrExpiredKey (401, "expired_key"): the key is past its expiry.
	ErrExpiredKey = problem.Unauthorized("expired_key", "expired API key", challenge)
	// ErrRevokedKey (401, "revoked_key"): the key was revoked.
	ErrRevokedKey = problem.Unauthorized("revoked_key", "revoked API key", challenge)

	// ErrKeyType (403, "key_type_not_allowed"): the route does not accept
	// keys of this type.
	ErrKeyType = problem.New("key_type_not_allowed", http.StatusForbidden, "key type not allowed here")
	// ErrScope (403, "insufficient_scope"): the key lacks the scope the route
	// requires.
	ErrScope = problem.New("insufficient_scope", http.StatusForbidden, "key lacks the required scope")
	// ErrEnvironment (403, "environment_not_allowed"): the route does not
	// accept keys of this environment.
	ErrEnvironment = problem.New("environment_not_allowed", http.StatusForbidden, "key environment not allowed here")
	// ErrOrigin (403, "origin_not_allowed"): the request's Origin is not
	// among the allowed origins of the publishable key's environment.
	ErrOrigin = problem.New("origin_not_allowed", http.StatusForbidden, "origin not allowed for this key")
	// ErrServerKeyFromBrowser (403, "server_key_from_browser"): a server key
	// arrived from a web browser (with an Origin or a Sec-Fetch-Site
	// header), so it is exposed there. See Options.AllowServerKeyFromBrowser.
	ErrServerKeyFromBrowser = problem.New("server_key_from_browser", http.StatusForbidden, "server key used from a browser")

	// ErrThrottled (429, "too_many_failures"): too many failed verifications
	// for this key id or, for a key id with recent failures, for all key
	// ids together; see Options.ThrottleFailures. The response carries
	// Retry-After.
	ErrThrottled = problem.New("too_many_failures", http.StatusTooManyRequests, "too many failed attempts for this key")

	// ErrUnavailable (503, "unavailable"): the key could not be checked
	// because storage failed, the settings are not loaded yet, or the
	// Validator is closed. The request is refused (fail closed) and the
	// response carries Retry-After.
	ErrUnavailable = problem.New("unavailable", http.StatusServiceUnavailable, "key validation unavailable")
	// ErrBusy (503, "busy"): the request's context ended while it waited
	// for a key verification (the argon2 concurrency cap, or another
	// request's verification of the same key). The response carries
	// Retry-After.
	ErrBusy = problem.New("busy", http.StatusServiceUnavailable, "key verification did not finish in time")
)
