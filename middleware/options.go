package middleware

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/keystile/keystile/apikey"
)

// Default values of the Options fields whose zero value means "default".
const (
	DefaultCacheSize        = 100_000
	DefaultCacheTTL         = time.Minute
	DefaultFailureTTL       = 5 * time.Second
	DefaultThrottleFailures = 10
	DefaultThrottleWindow   = time.Minute
	DefaultFeedInterval     = time.Second
	DefaultLastUsedInterval = time.Minute
)

// DefaultAllowedMethods are the methods a cross-origin request may use when
// Options.AllowedMethods is empty.
var DefaultAllowedMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost,
	http.MethodPut, http.MethodPatch, http.MethodDelete,
}

// Options configure a Validator. Only Store is required; every other field
// documents what its zero value means. New rejects negative durations and
// counts except where a field says otherwise.
type Options struct {
	// Store holds the keys and environment settings. Required. If it also
	// implements storage.ChangeFeed, the Validator follows the feed; if it
	// implements storage.LastUsedRecorder, last-used times are recorded.
	Store apikey.Store

	// Hasher verifies presented keys against stored hashes; use the
	// Manager's. A stored hash weaker than its parameters is re-hashed in
	// the background after it verifies; a stronger or incomparable one is
	// left as it is. Nil means apikey.Argon2id{} (DefaultParams).
	Hasher apikey.Hasher

	// Now is the clock of expiry, grace, cache lifetimes and throttling.
	// Nil means time.Now.
	Now func() time.Time

	// AllowBearer also reads the key from "Authorization: Bearer <key>".
	// False reads only the X-API-Key header. A request carrying both is
	// refused as malformed. Keys are never read from URLs.
	AllowBearer bool

	// AllowServerKeyFromBrowser accepts a valid server key that arrives
	// with an Origin header (a secret exposed in a browser), and makes the
	// CORS layer admit every origin. False refuses such a request with
	// ErrServerKeyFromBrowser, which OnRejected receives; an accepted one
	// reaches OnAuthenticated with a server key and a non-empty
	// Attempt.Origin.
	AllowServerKeyFromBrowser bool

	// CacheSize is the number of verified keys the cache holds, and of
	// failures the failure cache holds. Size it to the keys in use: a key
	// pushed out may run argon2 again. Zero means DefaultCacheSize; a
	// negative value disables both caches, so that every request runs
	// argon2. The table of verified keys takes 128 bytes per CacheSize
	// (DefaultCacheSize when the cache is disabled; at least 2 MiB),
	// allocated by New.
	CacheSize int
	// CacheTTL bounds how long a cached key is served on what this process
	// last read of it. With a change feed, a cached key is served while the
	// feed was read successfully within CacheTTL (or within CacheTTL of its
	// own read); without one, for CacheTTL after its record was read, and
	// every environment's settings are reloaded every CacheTTL. Then the
	// key is read again: one store read, and no argon2 while its stored
	// hash is unchanged. Zero means DefaultCacheTTL.
	CacheTTL time.Duration
	// FailureTTL is how long an unknown key or a wrong secret is
	// remembered, so that repeating it costs no store read. Storage errors
	// are never cached. Zero means DefaultFailureTTL; a negative value
	// disables the failure cache.
	FailureTTL time.Duration

	// MaxConcurrentHashes caps the argon2 computations running at once. A
	// request waiting for a slot gives up when its context ends (ErrBusy).
	// Key ids with a recent failure (see ThrottleFailures) hold at most
	// half of the slots (at least one), so that a key never seen before
	// finds a slot behind at most that many hashes. Zero means
	// runtime.NumCPU().
	MaxConcurrentHashes int

	// ThrottleFailures is the budget of failed or in-flight verifications
	// per key id per ThrottleWindow; once spent, uncached attempts with
	// that id get ErrThrottled without a store read or a hash until the
	// window ends. A key id is suspect while it has a verification in
	// flight, or a wrong secret or a refusal within the last 10
	// ThrottleWindows. Once 10 x ThrottleFailures x MaxConcurrentHashes
	// verifications of all key ids failed in a window, suspect ids get
	// ErrThrottled without a hash until the window ends: wrong secrets
	// cost at most that many argon2 runs per window, plus one for each key
	// id not yet suspect. A key that verified in this process is never
	// throttled. Zero means DefaultThrottleFailures.
	ThrottleFailures int
	// ThrottleWindow is the window of ThrottleFailures. Zero means
	// DefaultThrottleWindow.
	ThrottleWindow time.Duration

	// FeedInterval is how often the store's change feed is read: the bound
	// within which a change made in another process reaches this one.
	// Zero means DefaultFeedInterval. Ignored without a change feed.
	FeedInterval time.Duration
	// FeedWake, when it delivers, makes the Validator read the change feed
	// at once (the Wake channel of package storage/sqlstore/pgnotify);
	// reads every FeedInterval go on. Nil means reads every FeedInterval
	// only. Ignored without a change feed.
	FeedWake <-chan struct{}
	// LastUsedInterval is how often last-used times are written, one entry
	// per key used since the last write; Close writes the rest. Zero means
	// DefaultLastUsedInterval. Ignored if the store is no
	// storage.LastUsedRecorder.
	LastUsedInterval time.Duration

	// AllowedMethods are the methods the CORS layer allows in preflights.
	// Empty means DefaultAllowedMethods.
	AllowedMethods []string
	// PreflightMaxAge is how long a browser may cache a preflight answer.
	// Zero sends no Access-Control-Max-Age (browsers use their own
	// default).
	PreflightMaxAge time.Duration

	// ErrorHandler writes the response of a refused request; problem.Of,
	// problem.Detail and problem.RetryAfter describe err. Nil means
	// problem.Write (application/problem+json).
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// OnAuthenticated, if set, is called on the request path for every
	// request whose key is authenticated (Identity.Expiring tells a key in
	// its grace period). Keep it fast.
	OnAuthenticated func(ctx context.Context, a Attempt, id Identity)
	// OnRejected, if set, is called for every refused request with the
	// refusal (see problem.Of).
	OnRejected func(ctx context.Context, a Attempt, err error)
	// OnBackgroundError, if set, receives the errors of background work
	// (change feed, settings loads, last-used writes, hash upgrades) and of
	// a panicking store or hasher. Nil logs them with slog.Default at level
	// Warn. Errors never hold a secret.
	OnBackgroundError func(err error)
}

// Attempt describes a request to the hooks. It never holds the key's
// secret: only the displayable prefix, and only once the key is well-formed.
type Attempt struct {
	Method     string
	Path       string
	RemoteAddr string
	// Origin is the request's Origin header, "" if none.
	Origin string
	// Prefix is the key's displayable prefix ("server-<id>"), or "" when the
	// request has no well-formed key.
	Prefix string
}

// config is Options with every default applied.
type config struct {
	Options
	cacheEnabled   bool
	failureEnabled bool
}

func (o Options) withDefaults() (config, error) {
	if o.Store == nil {
		return config{}, errors.New("middleware: Options.Store is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"CacheTTL", o.CacheTTL}, {"ThrottleWindow", o.ThrottleWindow},
		{"FeedInterval", o.FeedInterval},
		{"LastUsedInterval", o.LastUsedInterval}, {"PreflightMaxAge", o.PreflightMaxAge},
	} {
		if d.v < 0 {
			return config{}, errors.New("middleware: Options." + d.name + " must not be negative")
		}
	}
	if o.MaxConcurrentHashes < 0 {
		return config{}, errors.New("middleware: Options.MaxConcurrentHashes must not be negative")
	}
	if o.ThrottleFailures < 0 {
		return config{}, errors.New("middleware: Options.ThrottleFailures must not be negative")
	}
	for _, m := range o.AllowedMethods {
		if m == "" {
			return config{}, errors.New("middleware: Options.AllowedMethods holds an empty method")
		}
	}
	c := config{Options: o, cacheEnabled: o.CacheSize >= 0}
	c.failureEnabled = c.cacheEnabled && o.FailureTTL >= 0
	if c.Hasher == nil {
		c.Hasher = apikey.Argon2id{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ErrorHandler == nil {
		c.ErrorHandler = writeProblem
	}
	if c.OnBackgroundError == nil {
		c.OnBackgroundError = func(err error) { slog.Default().Warn("keystile middleware", "error", err) }
	}
	if len(c.AllowedMethods) == 0 {
		c.AllowedMethods = DefaultAllowedMethods
	}
	orDefault(&c.CacheSize, DefaultCacheSize)
	orDefault(&c.CacheTTL, DefaultCacheTTL)
	orDefault(&c.FailureTTL, DefaultFailureTTL)
	orDefault(&c.MaxConcurrentHashes, runtime.NumCPU())
	orDefault(&c.ThrottleFailures, DefaultThrottleFailures)
	orDefault(&c.ThrottleWindow, DefaultThrottleWindow)
	orDefault(&c.FeedInterval, DefaultFeedInterval)
	orDefault(&c.LastUsedInterval, DefaultLastUsedInterval)
	return c, nil
}

// orDefault sets *p to def if *p is zero.
func orDefault[T int | time.Duration](p *T, def T) {
	if *p == 0 {
		*p = def
	}
}
