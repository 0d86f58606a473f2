package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage"
)

// Defaults of the Options fields.
const (
	DefaultCacheSize        = 100_000
	DefaultCacheTTL         = time.Minute
	DefaultFailureTTL       = 5 * time.Second
	DefaultThrottleFailures = 10
	DefaultThrottleWindow   = time.Minute
	DefaultFeedInterval     = time.Second
	DefaultLastUsedInterval = time.Minute
)

// MaxWriteDelay bounds Options.LastUsedInterval, and Options.CacheTTL of
// a store without a change feed: half of apikey.MinSilence, so that a
// request of a key rotated out is written well within the shortest silence
// apikey.Manager.EndGraceIfSilent accepts.
const MaxWriteDelay = apikey.MinSilence / 2

// DefaultAllowedMethods are the default of CORSOptions.AllowedMethods.
var DefaultAllowedMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost,
	http.MethodPut, http.MethodPatch, http.MethodDelete,
}

// Options configure a Validator. Only Store is required. New rejects
// negative durations and counts except where a field says otherwise.
type Options struct {
	// Store holds the keys and settings. A storage.ChangeFeed is followed; a
	// storage.LastUsedRecorder records last-used times. While the feed is
	// followed, a storage.InstanceLog is told the revision the Validator
	// has applied, after each feed read that moved it and every
	// apikey.InstanceHeartbeat, so that apikey.Manager.Propagation can
	// confirm a change on every running Validator (docs/consistency.md);
	// New writes the first report, and the Validator serves nothing from
	// its cache (each request reads the store) until a report is stored.
	Store apikey.Store
	// Hasher verifies presented keys (use the Manager's), and upgrades
	// weaker hashes in the background. Nil means apikey.Argon2id{}.
	Hasher apikey.Hasher
	// Now is the clock of expiry, grace, cache lifetimes, throttling,
	// rate limits, quotas and usage. Nil means the system clock, which
	// requests read as of its latest tick, every 10 ms, except for rate
	// limits, which read it at each request (docs/design.md, The request
	// clock).
	Now func() time.Time

	// Keys configure where keys are read from and which key strings,
	// besides keystile's, are looked up.
	Keys KeyOptions
	// AllowServerKeyFromBrowser accepts a server key from a web browser
	// (see Attempt.Browser) instead of refusing it with
	// ErrServerKeyFromBrowser, and makes the CORS layer admit every origin.
	AllowServerKeyFromBrowser bool

	// CacheSize is the number of verified keys, and of failures, the
	// caches hold. Zero means DefaultCacheSize; negative disables both
	// caches. New also allocates 128 to 256 bytes per CacheSize (at least
	// 2 MiB) for the memory of verified keys.
	CacheSize int
	// CacheTTL bounds how long a cached key is served on what this process
	// last read: with a change feed, while the feed was read within
	// CacheTTL; without one, for CacheTTL after the key's read, and
	// settings are reloaded every CacheTTL. Zero means DefaultCacheTTL.
	// Without a change feed it is at most MaxWriteDelay (New fails
	// otherwise): a key rotated out is known as such, and its callers
	// recorded, at most CacheTTL after its rotation.
	CacheTTL time.Duration
	// FailureTTL is how long an unknown key or a wrong secret is cached.
	// Zero means DefaultFailureTTL; negative disables the failure cache.
	FailureTTL time.Duration

	// MaxConcurrentHashes caps the argon2 computations running at once; a
	// request waiting for one gives up with ErrBusy when its context ends.
	// Zero means runtime.NumCPU().
	MaxConcurrentHashes int
	// ThrottleFailures is the budget of failed or in-flight verifications
	// per key id per ThrottleWindow, after which uncached attempts with
	// that id, but a key that verified in this process, get ErrThrottled
	// until the window ends (docs/security.md). Zero means
	// DefaultThrottleFailures.
	ThrottleFailures int
	// ThrottleWindow is the window of ThrottleFailures. Zero means
	// DefaultThrottleWindow.
	ThrottleWindow time.Duration

	// FeedInterval is how often the change feed is read. Zero means
	// DefaultFeedInterval. Ignored without a change feed.
	FeedInterval time.Duration
	// FeedWake, when it delivers, makes the Validator read the change feed
	// at once (as the Wake channel of storage/sqlstore/pgnotify does). Nil:
	// FeedInterval only. Ignored without a change feed.
	FeedWake <-chan struct{}
	// LastUsedInterval is how often last-used times, the callers of keys
	// rotated out and usage counts are written (and at Close). Zero means
	// DefaultLastUsedInterval; at most MaxWriteDelay (New fails
	// otherwise).
	LastUsedInterval time.Duration

	// CORS configures the CORS layer (Validator.CORS).
	CORS CORSOptions
	// Limits configure the enforcement of keys' limits and the counting of
	// their use (docs/limits.md).
	Limits LimitOptions

	// ErrorHandler writes the response of a refused request (see
	// problem.Of). Nil means problem.Write.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// OnAuthenticated, if set, is called on the request path for every
	// authenticated request. Keep it fast.
	OnAuthenticated func(ctx context.Context, a Attempt, id Identity)
	// OnRejected, if set, is called for every refused request.
	OnRejected func(ctx context.Context, a Attempt, err error)
	// OnVerification, if set, is called on the request path once for every
	// request that the Validator authenticates (not for one it authenticated
	// further out), when its outcome is known and before OnAuthenticated or
	// OnRejected, with what the check did and when (see Verification): what
	// a tracer needs for a span, as package otelkeystile makes. Keep it
	// fast. Nil costs a nil check: no clock read, no allocation.
	OnVerification func(ctx context.Context, v Verification)
	// OnBackgroundError receives the errors of background work and of a
	// panicking store or hasher. Nil logs them with slog at level Warn.
	OnBackgroundError func(err error)
}

// CORSOptions configure the CORS layer of a Validator.
type CORSOptions struct {
	// AllowedMethods are the methods allowed in preflights. Empty means
	// DefaultAllowedMethods.
	AllowedMethods []string
	// PreflightMaxAge is how long a browser may cache a preflight answer.
	// Zero sends no Access-Control-Max-Age.
	PreflightMaxAge time.Duration
}

// KeyOptions configure which key strings a Validator reads, and where.
type KeyOptions struct {
	// AllowBearer also reads the key from "Authorization: Bearer <key>";
	// a request carrying both is refused as malformed. Keys are never read
	// from URLs.
	AllowBearer bool
	// Imported are the formats of the keys that the service issued before
	// it adopted keystile and imported (apikey.Manager.Import). A string
	// of one of them is looked up by its SHA-256 digest: one read by id on
	// a cache miss, never argon2, its failures cached and throttled as
	// every key's (docs/lifecycle.md, Imported keys). Any other string
	// that is not a keystile key is malformed, as without formats: no
	// storage call, no hash. Each must be valid (apikey.ImportFormat.Validate).
	// Empty: no imported key is accepted.
	Imported []apikey.ImportFormat
}

// match returns the prefix of the declared format that s matches, and
// whether it matches one.
func (o KeyOptions) match(s string) (prefix string, ok bool) {
	for _, f := range o.Imported {
		if f.Match(s) {
			return f.Prefix, true
		}
	}
	return "", false
}

// Attempt describes a request to the hooks. It never holds a secret.
type Attempt struct {
	Method     string
	Path       string
	RemoteAddr string
	Origin     string // the request's Origin header, "" if none
	// FetchSite is the request's Sec-Fetch-Site header: "cross-site",
	// "same-site", "same-origin" or "none"; "" if none, "other" otherwise.
	FetchSite string
	Browser   bool   // the request carries an Origin or a Sec-Fetch-Site header
	Prefix    string // the displayable prefix of a well-formed key, or ""
}

// withDefaults returns o validated, with every default applied.
func (o Options) withDefaults() (Options, error) {
	if o.Store == nil {
		return Options{}, errors.New("middleware: Options.Store is required")
	}
	for _, d := range []struct {
		name string
		v    int64
	}{
		{"CacheTTL", int64(o.CacheTTL)}, {"ThrottleWindow", int64(o.ThrottleWindow)},
		{"FeedInterval", int64(o.FeedInterval)}, {"LastUsedInterval", int64(o.LastUsedInterval)},
		{"CORS.PreflightMaxAge", int64(o.CORS.PreflightMaxAge)},
		{"MaxConcurrentHashes", int64(o.MaxConcurrentHashes)}, {"ThrottleFailures", int64(o.ThrottleFailures)},
	} {
		if d.v < 0 {
			return Options{}, errors.New("middleware: Options." + d.name + " must not be negative")
		}
	}
	if o.LastUsedInterval > MaxWriteDelay {
		return Options{}, fmt.Errorf("middleware: Options.LastUsedInterval must be at most %s (MaxWriteDelay), got %s", MaxWriteDelay, o.LastUsedInterval)
	}
	if _, feed := o.Store.(storage.ChangeFeed); !feed && o.CacheTTL > MaxWriteDelay {
		return Options{}, fmt.Errorf("middleware: Options.CacheTTL must be at most %s (MaxWriteDelay) without a change feed, got %s", MaxWriteDelay, o.CacheTTL)
	}
	if slices.Contains(o.CORS.AllowedMethods, "") {
		return Options{}, errors.New("middleware: Options.CORS.AllowedMethods holds an empty method")
	}
	for i, f := range o.Keys.Imported {
		if err := f.Validate(); err != nil {
			return Options{}, fmt.Errorf("middleware: Options.Keys.Imported[%d]: %w", i, err)
		}
	}
	o.Keys.Imported = slices.Clone(o.Keys.Imported)
	if o.Hasher == nil {
		o.Hasher = apikey.Argon2id{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ErrorHandler == nil {
		o.ErrorHandler = problem.Write
	}
	if o.OnBackgroundError == nil {
		o.OnBackgroundError = func(err error) { slog.Default().Warn("keystile middleware", "error", err) }
	}
	if len(o.CORS.AllowedMethods) == 0 {
		o.CORS.AllowedMethods = DefaultAllowedMethods
	}
	o.CacheSize = cmp.Or(o.CacheSize, DefaultCacheSize)
	o.CacheTTL = cmp.Or(o.CacheTTL, DefaultCacheTTL)
	o.FailureTTL = cmp.Or(o.FailureTTL, DefaultFailureTTL)
	o.MaxConcurrentHashes = cmp.Or(o.MaxConcurrentHashes, runtime.NumCPU())
	o.ThrottleFailures = cmp.Or(o.ThrottleFailures, DefaultThrottleFailures)
	o.ThrottleWindow = cmp.Or(o.ThrottleWindow, DefaultThrottleWindow)
	o.FeedInterval = cmp.Or(o.FeedInterval, DefaultFeedInterval)
	o.LastUsedInterval = cmp.Or(o.LastUsedInterval, DefaultLastUsedInterval)
	o.Limits.UsageRetention = cmp.Or(o.Limits.UsageRetention, DefaultUsageRetention)
	return o, nil
}
