package middleware

import (
	"net/http"

	"github.com/keystile/keystile/middleware/problem"
)

// challenge is the WWW-Authenticate header of the 401 responses.
const challenge = `APIKey header="X-API-Key"`

// The reasons a request is refused, each a sentinel error of type
// *problem.Reason with a stable code: check one with errors.Is, or find the
// reason behind an error with problem.Of.
var (
	// ErrMissingKey: the request carries no key.
	ErrMissingKey = problem.Unauthorized("missing_key", "missing API key", challenge)
	// ErrMalformedKey: not a keystile key (length, prefix, alphabet or
	// checksum), or sent twice. Nothing was read or hashed.
	ErrMalformedKey = problem.Unauthorized("malformed_key", "malformed API key", challenge)
	// ErrInvalidKey: no such key, or a wrong secret (not told apart).
	ErrInvalidKey = problem.Unauthorized("invalid_key", "invalid API key", challenge)
	// ErrExpiredKey: the key is past its expiry.
	ErrExpiredKey = problem.Unauthorized("expired_key", "expired API key", challenge)
	// ErrRevokedKey: the key, or its account, was revoked or closed.
	ErrRevokedKey = problem.Unauthorized("revoked_key", "revoked API key", challenge)
	// ErrDisabledKey: the key is disabled (apikey.Manager.Disable) and
	// works again once enabled. A disabled key that is also revoked or
	// expired is refused as such.
	ErrDisabledKey = problem.Unauthorized("key_disabled", "disabled API key", challenge)

	// ErrKeyType: the route does not accept keys of this type.
	ErrKeyType = problem.New("key_type_not_allowed", http.StatusForbidden, "key type not allowed here")
	// ErrScope: the key lacks the scope the route requires.
	ErrScope = problem.New("insufficient_scope", http.StatusForbidden, "key lacks the required scope")
	// ErrEnvironment: the route does not accept keys of this environment.
	ErrEnvironment = problem.New("environment_not_allowed", http.StatusForbidden, "key environment not allowed here")
	// ErrOrigin: the Origin is not allowed for the publishable key.
	ErrOrigin = problem.New("origin_not_allowed", http.StatusForbidden, "origin not allowed for this key")
	// ErrAccountSuspended: the key is valid but its account is suspended
	// (apikey.Manager.SuspendAccount); it works again once the account is
	// resumed. A key of a closed account is ErrRevokedKey.
	ErrAccountSuspended = problem.New("account_suspended", http.StatusForbidden, "account suspended")
	// ErrServerKeyFromBrowser: a server key came from a web browser.
	ErrServerKeyFromBrowser = problem.New("server_key_from_browser", http.StatusForbidden, "server key used from a browser")

	// ErrAddressNotAllowed: the client address is not in the key's
	// allowlist (apikey.Limits.AllowedIPs; see LimitOptions.TrustedProxies).
	ErrAddressNotAllowed = problem.New("address_not_allowed", http.StatusForbidden, "client address not allowed for this key")
	// ErrRateLimited: the key's rate limit is spent. The response carries
	// Retry-After and the RateLimit fields (limit.SetHeaders).
	ErrRateLimited = problem.New("rate_limited", http.StatusTooManyRequests, "rate limit exceeded")
	// ErrQuotaExhausted: the key's quota holds fewer uses than the route
	// costs. The response carries Retry-After, until the next refill,
	// when the quota refills.
	ErrQuotaExhausted = problem.New("quota_exhausted", http.StatusTooManyRequests, "quota exhausted")

	// ErrThrottled: too many failed verifications for this key id, or for
	// all suspect key ids together; see Options.ThrottleFailures.
	ErrThrottled = problem.New("too_many_failures", http.StatusTooManyRequests, "too many failed attempts for this key")

	// ErrUnavailable: storage failed, the settings are not loaded yet, or
	// the Validator is closed (fail closed).
	ErrUnavailable = problem.New("unavailable", http.StatusServiceUnavailable, "key validation unavailable")
	// ErrBusy: the request's context ended while it waited for a verification.
	ErrBusy = problem.New("busy", http.StatusServiceUnavailable, "key verification did not finish in time")
)
