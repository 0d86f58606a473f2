package middleware

import (
	"errors"
	"net/http"
	"time"
)

// Reason is why a request was refused. Every Reason is an error sentinel of
// this package, to be checked with errors.Is, and carries a stable
// machine-readable code and the HTTP status of its problem response. Find
// the Reason behind any error returned by Check or passed to an
// ErrorHandler with ReasonOf.
type Reason struct {
	code   string
	status int
	title  string
}

// Error returns the reason's text, prefixed with the package name.
func (r *Reason) Error() string { return "middleware: " + r.title }

// Code returns the stable machine-readable code, such as "invalid_key".
func (r *Reason) Code() string { return r.code }

// Status returns the HTTP status of the reason: 401, 403, 429 or 503.
func (r *Reason) Status() int { return r.status }

// Title returns a short human-readable summary.
func (r *Reason) Title() string { return r.title }

// The reasons a request is refused. Their codes are stable: clients may
// branch on them.
var (
	// ErrMissingKey (401, "missing_key"): the request carries no key.
	ErrMissingKey = &Reason{"missing_key", http.StatusUnauthorized, "missing API key"}
	// ErrMalformedKey (401, "malformed_key"): the key is not a keystile key
	// (length, prefix, alphabet or checksum), or it was sent twice. No
	// storage call and no hash were made.
	ErrMalformedKey = &Reason{"malformed_key", http.StatusUnauthorized, "malformed API key"}
	// ErrInvalidKey (401, "invalid_key"): no such key, or a wrong secret.
	// The two are not told apart.
	ErrInvalidKey = &Reason{"invalid_key", http.StatusUnauthorized, "invalid API key"}
	// ErrExpiredKey (401, "expired_key"): the key is past its expiry.
	ErrExpiredKey = &Reason{"expired_key", http.StatusUnauthorized, "expired API key"}
	// ErrRevokedKey (401, "revoked_key"): the key was revoked.
	ErrRevokedKey = &Reason{"revoked_key", http.StatusUnauthorized, "revoked API key"}

	// ErrKeyType (403, "key_type_not_allowed"): the route does not accept
	// keys of this type.
	ErrKeyType = &Reason{"key_type_not_allowed", http.StatusForbidden, "key type not allowed here"}
	// ErrScope (403, "insufficient_scope"): the key lacks the scope the route
	// requires.
	ErrScope = &Reason{"insufficient_scope", http.StatusForbidden, "key lacks the required scope"}
	// ErrEnvironment (403, "environment_not_allowed"): the route does not
	// accept keys of this environment.
	ErrEnvironment = &Reason{"environment_not_allowed", http.StatusForbidden, "key environment not allowed here"}
	// ErrOrigin (403, "origin_not_allowed"): the request's Origin is not
	// among the allowed origins of the publishable key's environment.
	ErrOrigin = &Reason{"origin_not_allowed", http.StatusForbidden, "origin not allowed for this key"}
	// ErrServerKeyFromBrowser (403, "server_key_from_browser"): a server key
	// arrived with an Origin header, so it is exposed in a browser. See
	// Options.AllowServerKeyFromBrowser.
	ErrServerKeyFromBrowser = &Reason{"server_key_from_browser", http.StatusForbidden, "server key used from a browser"}

	// ErrThrottled (429, "too_many_failures"): too many failed verifications
	// for this key id; see Options.ThrottleFailures. The response carries
	// Retry-After.
	ErrThrottled = &Reason{"too_many_failures", http.StatusTooManyRequests, "too many failed attempts for this key"}

	// ErrUnavailable (503, "unavailable"): the key could not be checked
	// because storage failed, the settings are not loaded yet, or the
	// Validator is closed. The request is refused (fail closed) and the
	// response carries Retry-After.
	ErrUnavailable = &Reason{"unavailable", http.StatusServiceUnavailable, "key validation unavailable"}
	// ErrBusy (503, "busy"): the request's context ended while it waited
	// for a key verification (the argon2 concurrency cap, or another
	// request's verification of the same key). The response carries
	// Retry-After.
	ErrBusy = &Reason{"busy", http.StatusServiceUnavailable, "key verification did not finish in time"}
)

// refusal is a Reason with request-specific detail. Its text never holds a
// secret: at most a key's displayable prefix.
type refusal struct {
	reason     *Reason
	detail     string
	retryAfter time.Duration
	cause      error // an underlying error (storage), or nil
}

func (e *refusal) Error() string {
	s := e.reason.Error()
	if e.detail != "" {
		s += ": " + e.detail
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrX) hold for a refusal of reason ErrX.
func (e *refusal) Is(target error) bool { return target == e.reason }

// Unwrap returns the reason and the underlying cause.
func (e *refusal) Unwrap() []error {
	if e.cause == nil {
		return []error{e.reason}
	}
	return []error{e.reason, e.cause}
}

func refuse(r *Reason, detail string) error { return &refusal{reason: r, detail: detail} }

// NewReason returns a Reason for refusals of another package that answers
// with WriteProblem, such as the management API. code must be stable and
// unique; title is a short summary.
func NewReason(code string, status int, title string) *Reason {
	return &Reason{code: code, status: status, title: title}
}

// Refuse returns a refusal of reason r with a request-specific detail for
// WriteProblem and ErrorHandlers. detail must hold no secret.
func Refuse(r *Reason, detail string) error { return refuse(r, detail) }

// ReasonOf returns the Reason behind err, or nil if err is not a refusal of
// this package (a programming error such as an invalid Policy passed to
// Check).
func ReasonOf(err error) *Reason {
	var rf *refusal
	if errors.As(err, &rf) {
		return rf.reason
	}
	var r *Reason
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// Detail returns the request-specific explanation carried by err, such as
// the scope a route requires, or "" if there is none. It never holds a
// secret.
func Detail(err error) string {
	var rf *refusal
	if errors.As(err, &rf) {
		return rf.detail
	}
	return ""
}

// RetryAfter returns how long a client should wait before retrying a request
// refused with err: positive for ErrThrottled and for every 503 refusal,
// zero otherwise.
func RetryAfter(err error) time.Duration {
	var rf *refusal
	if errors.As(err, &rf) && rf.retryAfter > 0 {
		return rf.retryAfter
	}
	if r := ReasonOf(err); r != nil && r.status == http.StatusServiceUnavailable {
		return time.Second
	}
	return 0
}
