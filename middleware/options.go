package middleware

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// Default values of the Options fields whose zero value means "default".
const (
	DefaultCacheSize        = 100_000
	DefaultCacheTTL         = time.Minute
	DefaultFailureTTL       = 5 * time.Second
	DefaultThrottleFailures = 10
	DefaultThrottleWindow   = time.Minute
	DefaultFeedInterval     = time.Second
	DefaultSettingsInterval = time.Minute // for stores without a change feed
	DefaultLastUsedInterval = time.Minute
)

// DefaultAllowedMethods are the methods a cross-origin request may use when
// Options.AllowedMethods is empty.
var DefaultAllowedMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost,
	http.MethodPut, http.MethodPatch, http.MethodDelete,
}

// Options configure a Validator. Only Store is required; every other field
// documents what its zero value means.
type Options struct {
	// Store holds the keys and environment settings. Required. If it also
	// implements storage.ChangeFeed, the Validator follows the feed; if it
	// implements storage.LastUsedRecorder, last-used times are recorded.
	Store apikey.Store

	// Hasher verifies presented keys against stored hashes. Use the same
	// hasher as the apikey.Manager: a stored hash weaker than this hasher's
	// parameters is re-hashed, in the background, after it verifies; a
	// stronger or incomparable one is left as it is. Nil means
	// apikey.Argon2id{} (DefaultParams).
	Hasher apikey.Hasher

	// Now is the clock, for expiry, grace, cache lifetimes and throttling.
	// Nil means time.Now.
	Now func() time.Time

	// AllowBearer makes the middleware also read the key from
	// "Authorization: Bearer <key>". False (the zero value) reads only the
	// X-API-Key header. A request carrying both is refused as malformed.
	// Keys are never read from URLs.
	AllowBearer bool

	// AllowServerKeyFromBrowser lets a server key that arrives with an
	// Origin header through (it is still reported to OnLeakedServerKey).
	// False (the zero value) refuses it with ErrServerKeyFromBrowser.
	AllowServerKeyFromBrowser bool

	// CacheSize is the number of verified keys the validation cache holds;
	// failed keys get a second cache of the same size. Zero means
	// DefaultCacheSize (100,000); a negative value disables both caches, so
	// that every request verifies its key with argon2.
	//
	// Size it to at least the number of keys in use: a key in the cache
	// runs argon2 once per process, and is re-validated every CacheTTL by
	// one store read; a key that a full cache pushed out may run argon2
	// again. The cache takes memory only for the keys it holds: about 730
	// bytes of heap per verified key and 470 per failure
	// (BenchmarkManyKeys, on amd64), so 73 MB for 100,000 keys in use, and
	// at most 47 MB more under a flood of well-formed unknown keys. The
	// table of keys that verified (see ThrottleFailures) is allocated at
	// New: four 32-byte slots per cached key, 16 MiB for the default size.
	CacheSize int
	// CacheTTL is how long, at most, a verified key is served from the cache
	// after its record was read; then it is loaded again. A key whose stored
	// hash has not changed since it verified in this process is
	// re-validated by that read alone, without argon2 (unless caching is
	// off: see CacheSize). Each entry is due for renewal CacheTTL minus up
	// to a fifth after the read, at random, so that keys verified together
	// are not all re-validated together; a request served between then and
	// the end queues the key, and a goroutine renews the queued keys every
	// second from a new read (see BatchRenewals), so that a key in steady
	// use never waits for its re-validation. CacheTTL bounds how long a key
	// revoked in another process stays usable when no change feed reaches
	// this one. Zero means DefaultCacheTTL (1 minute).
	CacheTTL time.Duration
	// BatchRenewals lets the renewals of cached keys (see CacheTTL) read up
	// to 1,000 keys in one call, through the store's
	// storage.KeyBatchReader, rather than one Key call per key. Set it
	// when the store's KeysByID returns what its Key would: a wrapper that
	// embeds a store and overrides Key would otherwise be bypassed by the
	// KeysByID it inherits. Ignored when the store has no KeysByID.
	BatchRenewals bool
	// FailureTTL is how long an unknown key or a wrong secret is remembered,
	// so that repeating it costs no storage call. Zero means
	// DefaultFailureTTL (5 seconds); a negative value disables it. Storage
	// errors are never cached.
	FailureTTL time.Duration

	// MaxConcurrentHashes caps the argon2 computations running at once, so
	// that a flood cannot exhaust memory (about 19 MiB each with
	// DefaultParams). A request waiting for a slot gives up when its context
	// ends (ErrBusy). Zero means runtime.NumCPU().
	MaxConcurrentHashes int

	// ThrottleFailures is the budget of failed or in-flight verifications
	// per key id per ThrottleWindow. Once it is spent, further uncached
	// attempts with that key id are refused with ErrThrottled (429) without
	// a storage call or a hash until the window ends. A valid key that is
	// cached keeps working, and so does one that verified in this process
	// before: keys that verified are remembered in a table of their own
	// (four slots per CacheSize, at least 65,536), which junk cannot touch
	// and real keys push an entry out of only by chance, in a slot nobody
	// can aim at (see the package's threat model). Key ids are public, so whoever sends wrong secrets for an
	// id can delay the first verification in a process of the real key
	// until the window ends: rate-limit clients upstream if that matters.
	// Zero means DefaultThrottleFailures (10).
	ThrottleFailures int
	// ThrottleWindow is the window of ThrottleFailures. Zero means
	// DefaultThrottleWindow (1 minute).
	ThrottleWindow time.Duration

	// FeedInterval is how often the Validator polls the store's change feed
	// (storage.ChangeFeed), so that every process sees a revocation,
	// rotation, scope or origin change made elsewhere within about this
	// bound. Zero means DefaultFeedInterval (1 second). Ignored if the store
	// has no change feed.
	FeedInterval time.Duration
	// FeedWake, if set, signals that the store's change feed has news: the
	// Validator reads the feed at once instead of at its next poll, so a
	// revocation reaches this process in milliseconds. Pass the Wake channel
	// of package github.com/keystile/keystile/storage/sqlstore/pgnotify
	// (PostgreSQL LISTEN/NOTIFY). Polling every FeedInterval goes on as the
	// fallback for lost notifications. Nil means polling only.
	FeedWake <-chan struct{}
	// SettingsInterval is how often every account's environments' settings
	// (allowed origins, closed accounts) are reloaded in full, a page at a
	// time. With a change feed no periodic reload is needed: a settings
	// change reaches this process as a feed entry, which reloads that one
	// environment's settings (one read), and only a gap in the feed
	// (storage.ErrFeedGap) reloads them all; so zero means never for a
	// store with a change feed. A full reload reads every environment (at
	// 300,000 environments, a second or two of store reads), so set it
	// only as a safety net, in hours. For a store without a change feed,
	// reloading is the only way to see changes made by other processes:
	// zero means DefaultSettingsInterval (1 minute).
	SettingsInterval time.Duration
	// LastUsedInterval is how often last-used times are written, at most one
	// write per key per interval, through storage.LastUsedRecorder; the
	// rest are written by Close. Zero means DefaultLastUsedInterval
	// (1 minute). Ignored if the store cannot record last-used times.
	LastUsedInterval time.Duration

	// AllowedMethods are the methods a cross-origin request may use
	// (answered in preflight). Empty means DefaultAllowedMethods.
	AllowedMethods []string
	// PreflightMaxAge is how long a browser may cache a preflight answer.
	// Zero sends no Access-Control-Max-Age header (browsers then use their
	// own default of a few seconds).
	PreflightMaxAge time.Duration

	// ErrorHandler writes the response of a refused request. err is a
	// refusal: ReasonOf, Detail and RetryAfter describe it. Nil means
	// WriteProblem (application/problem+json).
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// OnAuthenticated, if set, is called for every request whose key is
	// accepted. It runs on the request path: keep it fast.
	OnAuthenticated func(ctx context.Context, a Attempt, id Identity)
	// OnRejected, if set, is called for every refused request with the
	// refusal (see ReasonOf).
	OnRejected func(ctx context.Context, a Attempt, err error)
	// OnLeakedServerKey, if set, is called when a valid server key arrives
	// with an Origin header: the secret is exposed in a browser and should
	// be rotated.
	OnLeakedServerKey func(ctx context.Context, a Attempt, id Identity)
	// OnGrace, if set, is called for every accepted request whose key was
	// rotated out and works only until its grace period ends.
	OnGrace func(ctx context.Context, a Attempt, id Identity)
	// OnBackgroundError, if set, receives the errors of background work:
	// following the change feed, reloading settings, writing last-used
	// times, upgrading outdated hashes. Nil means they are logged with
	// slog.Default at level Warn. Errors never hold a secret.
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
		{"FeedInterval", o.FeedInterval}, {"SettingsInterval", o.SettingsInterval},
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
	if _, feed := o.Store.(storage.ChangeFeed); !feed {
		orDefault(&c.SettingsInterval, DefaultSettingsInterval)
	}
	orDefault(&c.LastUsedInterval, DefaultLastUsedInterval)
	return c, nil
}

// orDefault sets *p to def if *p is zero.
func orDefault[T int | time.Duration](p *T, def T) {
	if *p == 0 {
		*p = def
	}
}
