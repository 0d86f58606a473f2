// Package limit holds the rate limiter contract of the middleware, its
// per-process implementation (Local, the generic cell rate algorithm) and
// the response fields that tell clients their limit (SetHeaders).
//
// A Limiter answers, for one request, whether a bucket (a key id, or an
// owner's shared bucket) may spend cost requests under a rate limit. The
// middleware calls it after authentication and authorization, before the
// handler, on every request of a key with a rate limit; it must therefore
// not block on I/O. Implementations that share limits across instances
// (see the redislimit module) take capacity in batches in the background.
package limit

import (
	"time"

	"github.com/keystile/keystile/apikey"
)

// Decision is a Limiter's answer for one request.
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Remaining is how many more requests of cost 1 the bucket would admit
	// at once after this one (0 when refused).
	Remaining int
	// Reset is how long until the bucket is full again.
	Reset time.Duration
	// RetryAfter is how long until a refused request of the same cost would
	// be admitted; zero when Allowed.
	RetryAfter time.Duration
}

// Limiter decides whether a request may spend cost requests of bucket's
// capacity under rate. Implementations are safe for concurrent use, never
// block on I/O, and should not allocate for a bucket they have seen.
// bucket is a key id, or for the bucket an owner's keys share
// apikey.OwnerBalanceID (it starts with "owner:"; no key id holds a
// colon); rate is never zero and cost is at least 1.
type Limiter interface {
	Allow(bucket string, rate apikey.RateLimit, cost int, now time.Time) Decision
}

// ErrorReporter is implemented by Limiters that can fail in the background
// (a shared store out of reach). The middleware passes its
// Options.OnBackgroundError to ReportErrors once, before the first Allow.
type ErrorReporter interface {
	ReportErrors(func(error))
}
