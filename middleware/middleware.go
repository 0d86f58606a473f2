package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/cors"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/callers"
	"github.com/keystile/keystile/middleware/internal/envsettings"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/middleware/limit"
)

// startupTimeout bounds the store calls of New, Invalidate and Close.
const startupTimeout = 5 * time.Second

// Validator checks the API keys of HTTP requests. Create it with New. It
// is safe for concurrent use.
type Validator struct {
	cfg      Options          // with defaults applied
	now      func() time.Time // the request path's clock: Options.Now, or clock.Now
	clock    *requestClock    // nil with Options.Now
	cache    *keycache.Cache[*Identity]
	verifier *verifier
	settings *envsettings.Table
	follower *follower
	limiter  *limiter
	tasks    tasks
	vary     []string // the headers a key is read from, as one Vary line
	cors     *cors.Cors
	stats    stats
}

// New validates opts and returns a running Validator. It loads every
// environment's settings, waiting up to 5 seconds; if the store does not
// answer, it reports the error to OnBackgroundError and keeps trying in the
// background (meanwhile every key gets ErrUnavailable: neither its account's
// suspension nor its environment's allowed origins are known). With a
// change feed and a storage.InstanceLog, it also writes this Validator's
// first report (one write) before returning; until a report is stored,
// nothing is served from the cache (see Options.Store).
func New(opts Options) (*Validator, error) {
	cfg, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := keycache.New[*Identity](cfg.CacheSize, cfg.FailureTTL >= 0)
	if err != nil {
		return nil, fmt.Errorf("middleware: %w", err)
	}
	remembered := cfg.CacheSize // keys remembered as verified, also without a cache
	if remembered < 0 {
		remembered = DefaultCacheSize
	}
	v := &Validator{cfg: cfg, cache: c, vary: varyLine(cfg.Keys.AllowBearer)}
	report := func(err error) {
		v.stats.backgroundErrs.Add(1)
		cfg.OnBackgroundError(err)
	}
	v.cfg.OnBackgroundError = report
	store := newSafeStore(cfg.Store)
	if v.limiter, err = newLimiter(cfg.Limits, store, cfg.Now, report); err != nil {
		return nil, err
	}
	// Nothing fails after this: the tasks started below end at Close.
	v.tasks.ctx, v.tasks.cancel = context.WithCancel(context.Background())
	v.now = cfg.Now
	if opts.Now == nil {
		v.clock = newRequestClock()
		v.now = v.clock.Now
		v.tasks.start(v.clock.run)
	}
	v.settings = envsettings.New(store, report)
	v.verifier = &verifier{
		issuer: v, store: store, hasher: safeHasher{cfg.Hasher}, now: cfg.Now,
		ttl: cfg.CacheTTL, failureTTL: cfg.FailureTTL, cache: c,
		verified: keycache.NewVerified(remembered),
		throttle: newThrottle(cfg.ThrottleFailures, cfg.ThrottleWindow, cfg.MaxConcurrentHashes),
		stats:    &v.stats, report: report, background: v.tasks.start,
		slots: newSlots(cfg.MaxConcurrentHashes), usage: v.limiter.usage, buckets: v.limiter.local,
	}
	if store.callers != nil {
		v.verifier.callers = callers.New(callers.DefaultMaxKeys, redactKeys)
	}
	f := &follower{
		cache: c, verifier: v.verifier, settings: v.settings, stats: &v.stats, limiter: v.limiter,
		now: cfg.Now, ttl: cfg.CacheTTL, report: report, settingsEvery: cfg.CacheTTL, clock: v.clock,
	}
	if store.feed != nil {
		f.feed, f.wake, f.feedEvery, f.settingsEvery = store, cfg.FeedWake, cfg.FeedInterval, 0
		if store.instances != nil {
			f.instance = newInstance(store, cfg.CacheTTL, report)
			v.verifier.instance = f.instance
		}
	}
	if store.recorder != nil {
		f.recorder, f.flushEvery = store, cfg.LastUsedInterval
	}
	if store.callers != nil {
		f.callerLog, f.flushEvery = store, cfg.LastUsedInterval
	}
	if store.usage != nil {
		f.usage, f.flushEvery, f.retention = store, cfg.LastUsedInterval, max(cfg.Limits.UsageRetention, 0)
	}

	v.follower = f
	v.cors = newCORS(cfg, v.settings)

	ctx, cancel := context.WithTimeout(v.tasks.ctx, startupTimeout)
	defer cancel()
	f.start(ctx)          // first, so that no change made during the load is missed
	f.instance.first(ctx) // before anything is served from the cache (see instance)
	if err := v.settings.Load(ctx); err != nil {
		report(err)
	}
	v.tasks.start(f.run)
	if f.instance != nil {
		v.tasks.start(f.instance.run)
	}
	if v.limiter.quota != nil {
		v.tasks.start(v.limiter.returnIdleLoop(cfg.Now, report))
	}
	return v, nil
}

// Check authenticates r and authorizes it under policy p as Require does,
// without writing a response (a request that this Validator authenticated
// further out is only authorized). It returns the key's identity, or an
// error whose Reason (problem.Of) says why the request is refused.
func (v *Validator) Check(r *http.Request, p Policy) (Identity, error) {
	if err := p.Validate(); err != nil {
		return Identity{}, err
	}
	var vd verdict
	outer := verifiedBy(r, v)
	err := v.check(r, &p, outer, &vd)
	v.limiter.record(r, outer, &vd, err)
	if err != nil {
		return Identity{}, err
	}
	return vd.id.clone(), nil
}

// Authenticate returns next wrapped so that it runs only for requests with
// a valid key of either type, whose Identity it puts in the context. It
// authorizes nothing: each route needs its own Require (or Handler), which
// then checks only its Policy. It panics if next is nil.
func (v *Validator) Authenticate(next http.Handler) http.Handler {
	return guard(v, nil, next)
}

// Handler returns next wrapped with key validation under the zero Policy
// (any valid server key): Require(Policy{})(next).
func (v *Validator) Handler(next http.Handler) http.Handler {
	return v.Require(Policy{})(next)
}

// Require returns middleware that lets a request through only with a valid
// key that p accepts, and puts its Identity in the context. A request that
// this Validator authenticated further out is only checked against p. A
// refused request is answered by Options.ErrorHandler; a key in its grace
// period adds the HeaderKeyExpires header. Require panics if p is invalid
// (see Policy.Validate) or next is nil.
func (v *Validator) Require(p Policy) func(http.Handler) http.Handler {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	p = Policy{Types: slices.Clone(p.Types), Scope: p.Scope, Environments: slices.Clone(p.Environments), Cost: p.Cost}
	return func(next http.Handler) http.Handler { return guard(v, &p, next) }
}

// guard is the handler of Authenticate (p nil) and Require.
func guard(v *Validator, p *Policy, next http.Handler) http.Handler {
	if next == nil {
		panic("middleware: nil handler")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outer := verifiedBy(r, v)
		if outer == nil {
			addVary(w.Header(), v.vary)
		}
		var vd verdict
		err := v.check(r, p, outer, &vd)
		if vd.limited {
			limit.SetHeaders(w.Header(), vd.rateLimit(), vd.rate)
		}
		if err != nil {
			v.limiter.record(r, outer, &vd, err)
			v.cfg.ErrorHandler(w, r, err)
			return
		}
		if outer != nil {
			next.ServeHTTP(w, r)
			return
		}
		if vd.id.expires && vd.id.Expiring {
			w.Header().Set(HeaderKeyExpires, vd.id.expiresHeader)
		}
		c := &requestContext{Context: r.Context(), id: vd.id}
		defer func() { v.limiter.count(vd.id, c.finalOutcome(), vd.now) }() // also when next panics
		next.ServeHTTP(w, r.WithContext(c))
	})
}

// Invalidate evicts what the cache holds about the key of event e and,
// when an environment's settings changed, reloads them (at most 5 seconds).
// Pass it as apikey.ManagerOptions.OnEvent so that changes made through the
// Manager apply in this process before the call returns.
func (v *Validator) Invalidate(e apikey.Event) {
	v.clock.advance() // a key expired by the change is refused from now on
	account := cmp.Or(e.Account, apikey.DefaultAccount)
	switch e.Action {
	case apikey.ActionView, apikey.ActionReveal:
		return // nothing changed
	case apikey.ActionSetOrigins, apikey.ActionClose, apikey.ActionBootstrap, apikey.ActionSuspend, apikey.ActionResume:
		// A bootstrap sends one event per new key: reload once.
		if e.Action != apikey.ActionBootstrap || !v.settings.Has(account, e.Environment) {
			ctx, cancel := context.WithTimeout(v.tasks.ctx, startupTimeout)
			if err := v.settings.Reload(ctx, account, e.Environment); err != nil {
				v.cfg.OnBackgroundError(err)
			}
			cancel()
		}
	}
	if e.KeyID != "" {
		v.cache.Evict(e.KeyID)
	}
}

// Close stops the background work, returns unspent quota leases, and
// writes the usage counts and last-used times not yet written, and removes
// the Validator from the store's storage.InstanceLog; then every
// check fails with ErrUnavailable. Call it after the server's Shutdown:
// requests still in flight are not counted. Later calls return nil.
func (v *Validator) Close() error {
	if !v.tasks.close() {
		return nil
	}
	// Each write has its own time: unspent quota first, then usage and
	// last-used times.
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	leases := v.limiter.close(ctx)
	ctx, cancel = context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	return errors.Join(leases, v.follower.flush(ctx, false), v.follower.instance.leave(ctx))
}

// tasks are the goroutines of a Validator, which Close ends and waits for.
type tasks struct {
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	mu     sync.Mutex // orders every wg.Add before close's Wait
	wg     sync.WaitGroup
}

// start runs fn in a goroutine until Close; after Close it does nothing.
func (t *tasks) start(fn func(ctx context.Context)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() == nil {
		t.wg.Go(func() { fn(t.ctx) })
	}
}

// close ends the tasks and waits for them; false if they had ended.
func (t *tasks) close() bool {
	t.mu.Lock()
	first := t.ctx.Err() == nil
	t.cancel()
	t.mu.Unlock()
	if first {
		t.wg.Wait()
	}
	return first
}

// varyLine returns, as one Vary line shared by every response, the request
// headers that a key's check reads.
func varyLine(bearer bool) []string {
	line := "Origin, Sec-Fetch-Site, " + HeaderAPIKey
	if bearer {
		line += ", Authorization"
	}
	return []string{line}
}

// addVary adds the shared values to h's Vary header, capped so that a later
// Add copies instead of writing into the shared array.
func addVary(h http.Header, values []string) {
	if vary, ok := h["Vary"]; ok {
		h["Vary"] = append(vary, values...)
	} else {
		h["Vary"] = values[:len(values):len(values)]
	}
}

// HeaderKeyExpires is the response header that a key in its grace period
// adds: its expiry in RFC 3339, exposed to cross-origin scripts.
const HeaderKeyExpires = "Keystile-Key-Expires"

// CORS returns next (a whole router, as in v.CORS(mux)) wrapped with the
// CORS layer of the Validator's keys. It answers preflights itself (never
// passing them to next) for the origins that some environment allows, and
// adds the CORS headers to requests from them; the routes still check each
// key against its own environment's origins. CORS panics if next is nil.
func (v *Validator) CORS(next http.Handler) http.Handler {
	if next == nil {
		panic("middleware: CORS: nil handler")
	}
	h := v.cors.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			addVary(w.Header(), v.vary) // the answer would differ with a key header allowed or not
		}
		h.ServeHTTP(w, r)
	})
}

// newCORS returns the rs/cors handler of the Validator.
func newCORS(cfg Options, settings *envsettings.Table) *cors.Cors {
	headers := []string{HeaderAPIKey, "Content-Type"}
	if cfg.Keys.AllowBearer {
		headers = append(headers, "Authorization")
	}
	return cors.New(cors.Options{
		AllowOriginRequestFunc: func(_ *http.Request, origin string) bool {
			return origin != "" && (cfg.AllowServerKeyFromBrowser || settings.AnyAllows(origin))
		},
		AllowedMethods: cfg.CORS.AllowedMethods,
		AllowedHeaders: headers,
		ExposedHeaders: []string{HeaderKeyExpires, "RateLimit", "RateLimit-Policy", "Retry-After"},
		MaxAge:         int(cfg.CORS.PreflightMaxAge.Seconds()),
	})
}

// clockTick is how often the request clock reads the system clock: the
// time a request sees is at most clockTick behind it.
const clockTick = 10 * time.Millisecond

// requestClock is the clock of the request path when Options.Now is nil:
// the system clock, read by a ticker every clockTick, so that a request
// reads the time with one atomic load rather than a clock read (about
// 50 ns, an eighth of a cached request, on a virtual machine;
// docs/design.md). It never goes back. A change that ends a key now (a
// grace of 0) advances it, both in the process that made the change
// (Invalidate) and in those that read it from the change feed, so that
// the key is refused from then on.
type requestClock struct {
	unixNano atomic.Int64
}

// newRequestClock returns a clock set to the system clock's time.
func newRequestClock() *requestClock {
	c := &requestClock{}
	c.advance()
	return c
}

// Now returns the time of the clock's latest reading, in UTC.
func (c *requestClock) Now() time.Time { return time.Unix(0, c.unixNano.Load()).UTC() }

// advance reads the system clock, unless c is nil.
func (c *requestClock) advance() {
	if c == nil {
		return
	}
	now := time.Now().UnixNano()
	for old := c.unixNano.Load(); now > old && !c.unixNano.CompareAndSwap(old, now); old = c.unixNano.Load() {
	}
}

// run advances the clock every clockTick until ctx is done.
func (c *requestClock) run(ctx context.Context) {
	tick := time.NewTicker(clockTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.advance()
		}
	}
}
