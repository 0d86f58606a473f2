// Package app is keystile's example API: the program that
// "go run ./examples/server" starts, as a package that tests (the browser
// end-to-end test among them) can start in-process.
//
// New binds the listener first, so that a busy address fails before
// anything else happens; then it opens the store (a SQLite file, or
// PostgreSQL for a postgres:// URL), bootstraps the built-in environments on
// first start and writes their keys once, and seeds the allowed origins.
// Run serves until its context ends and then shuts down gracefully.
// While it runs, it delivers each account's events to the webhook endpoints
// its tenants register through the management API (an
// events.TenantDeliverer; http:// and loopback targets only with
// Config.TenantWebhooks.AllowLoopback) and writes the time-based events
// (an events.Scanner). With Config.Webhook, it also delivers the store's
// events to the service's own endpoint as Standard Webhooks. With
// Config.Telemetry, it traces requests and key verifications and exports
// the Validator's Stats with OpenTelemetry (package
// middleware/otelkeystile) to the stdout exporters.
//
// Routes:
//
//	GET  /healthz     no key; 200 "ok" while the database answers
//	GET  /v1/whoami   any valid key, server or publishable: the key's
//	                  identity as JSON
//	POST /v1/echo     server keys only: echoes a JSON body (at most 64 KiB)
//	     /admin/...   the management API (package middleware/admin); server
//	                  keys with api_keys:write or full access act as owners
//	                  of their own environment; the webhook routes
//	                  (/admin/webhooks...) take a production key with full
//	                  access ("*"), acting for the whole account
//
// The validator's CORS wrapper answers browsers' CORS preflights (OPTIONS)
// for the whole router: a page may call /v1/whoami with a publishable key
// from an origin that its environment allows.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/middleware/otelkeystile"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/sqlstore"
)

// Defaults of the Config fields whose zero value means "default".
const (
	DefaultAddr = "127.0.0.1:8080"
	DefaultDB   = "keystile.db"
)

// MaxEchoBytes bounds the body of POST /v1/echo.
const MaxEchoBytes = 64 << 10

// shutdownTimeout bounds how long Run waits for requests in flight.
const shutdownTimeout = 10 * time.Second

// Actor is who the server acts as when it bootstraps environments and seeds
// allowed origins: an owner, recorded in the audit log.
var Actor = apikey.Actor{ID: "example-server", Role: apikey.Owner}

// Config configures the example API. Every field's zero value is usable.
type Config struct {
	// Addr is the listen address. Empty means DefaultAddr; port 0 picks a
	// free port (see App.Addr).
	Addr string
	// DB is a SQLite file (created if missing) or a postgres:// URL. Empty
	// means DefaultDB, in the working directory.
	DB string
	// AllowedOrigins seeds, per environment, the web origins allowed to use
	// its publishable keys. Each environment named here has its list
	// replaced by the one given (not merged); environments not named keep
	// the list they have. The environments must exist (the built-ins do).
	AllowedOrigins map[string][]string
	// Stdout receives each new key of the first start, one line each:
	// "<environment> <server|client> <key>". Nil discards them.
	Stdout io.Writer
	// Logger receives the log lines. Nil means slog.Default().
	Logger *slog.Logger
	// Webhook, if set, delivers the store's events to the service's own
	// endpoint while the App runs (an events.Deliverer). Nil delivers
	// nothing to the service.
	Webhook *Webhook
	// TenantWebhooks configures the delivery to the endpoints that tenants
	// register (an events.TenantDeliverer, beside an events.Scanner that
	// writes the time-based events), which runs while the App runs.
	TenantWebhooks TenantWebhooks
	// Telemetry, if set, traces each request and key verification and
	// exports the Validator's Stats as metrics with OpenTelemetry (package
	// middleware/otelkeystile), written by the stdout exporters. Nil wires
	// no OpenTelemetry at all.
	Telemetry *Telemetry
}

// App is the running example API. Create it with New and serve with Run.
type App struct {
	cfg       Config
	log       *slog.Logger
	store     *sqlstore.Store
	manager   *apikey.Manager
	validator *middleware.Validator
	issued    []apikey.Issued
	handler   http.Handler
	server    *http.Server
	listener  net.Listener
	webhooks  *webhooks
	telemetry *telemetry // nil without Config.Telemetry
}

// New binds the listen address, checks Config.Webhook's URL, then opens and
// migrates the store,
// bootstraps the built-in environments that do not exist yet (writing their
// keys to cfg.Stdout) and seeds cfg.AllowedOrigins. It listens first so
// that an address in use (the error wraps syscall.EADDRINUSE) fails before
// the store is opened: no database is created and no key is made or
// written. On error everything opened is closed again.
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.DB == "" {
		cfg.DB = DefaultDB
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	a := &App{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	defer func() {
		if err != nil {
			if a.listener != nil {
				a.listener.Close()
			}
			a.close()
		}
	}()

	if a.listener, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, err
	}
	var (
		hookSender   *webhook.Sender
		hookEndpoint webhook.Endpoint
	)
	if cfg.Webhook != nil {
		if hookSender, hookEndpoint, err = checkWebhook(ctx, *cfg.Webhook); err != nil {
			return nil, err
		}
	}
	if a.store, err = exampledb.Open(ctx, cfg.DB); err != nil {
		return nil, err
	}
	// Set-up runs before the Validator exists, so its Manager needs no
	// OnEvent: middleware.New below loads the settings it wrote.
	setup, err := apikey.NewManager(apikey.ManagerOptions{Store: a.store})
	if err != nil {
		return nil, err
	}
	if err := a.bootstrap(ctx, setup); err != nil {
		return nil, err
	}
	if err := a.seedOrigins(ctx, setup); err != nil {
		return nil, err
	}

	var onVerification func(context.Context, middleware.Verification)
	if cfg.Telemetry != nil {
		if a.telemetry, err = newTelemetry(*cfg.Telemetry); err != nil {
			return nil, err
		}
		onVerification = otelkeystile.Tracing(a.telemetry.tp)
	}
	a.validator, err = middleware.New(middleware.Options{
		Store: a.store, // the zero Hasher: apikey.DefaultParams, as the Manager
		OnRejected: func(_ context.Context, at middleware.Attempt, err error) {
			if errors.Is(err, middleware.ErrServerKeyFromBrowser) {
				a.log.Warn("server key used from a browser: refused; rotate it", "key", at.Prefix, "origin", at.Origin, "fetch_site", at.FetchSite)
			}
		},
		OnAuthenticated: func(_ context.Context, _ middleware.Attempt, id middleware.Identity) {
			if id.Expiring {
				a.log.Info("key in its grace period used", "key", id.Prefix, "expires", id.ExpiresAt)
			}
		},
		OnBackgroundError: func(err error) { a.log.Warn("keystile middleware", "error", err) },
		OnVerification:    onVerification,
	})
	if err != nil {
		return nil, err
	}
	if a.telemetry != nil {
		if err := a.telemetry.register(a.validator); err != nil {
			return nil, err
		}
	}
	// Changes made through the management API evict this process's cache
	// at once; other processes (keyctl, other instances) reach it through
	// the store's change feed.
	a.manager, err = apikey.NewManager(apikey.ManagerOptions{Store: a.store, OnEvent: a.validator.Invalidate,
		AllowInternalEndpoints: cfg.TenantWebhooks.AllowLoopback})
	if err != nil {
		return nil, err
	}
	if a.handler, err = a.routes(); err != nil {
		return nil, err
	}
	if a.webhooks, err = a.newWebhooks(hookSender, hookEndpoint); err != nil {
		return nil, err
	}
	a.server = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	return a, nil
}

// bootstrap creates the built-in environments that do not exist yet and
// writes their new keys, the only time they are shown.
func (a *App) bootstrap(ctx context.Context, m *apikey.Manager) error {
	for _, env := range apikey.BuiltinEnvironments {
		issued, err := m.Bootstrap(ctx, Actor, env)
		if errors.Is(err, apikey.ErrAlreadyBootstrapped) {
			continue
		}
		if err != nil {
			return err
		}
		for _, k := range issued {
			if _, err := fmt.Fprintln(a.cfg.Stdout, env, k.Key.Type(), k.Key.Reveal()); err != nil {
				return err
			}
		}
		a.issued = append(a.issued, issued...)
	}
	if len(a.issued) > 0 {
		a.log.Info("bootstrapped environments: their keys were printed once, on stdout; keep them safe",
			"db", a.cfg.DB, "keys", len(a.issued))
		return nil
	}
	keyctl := "go run ./examples/keyctl "
	if a.cfg.DB != DefaultDB {
		keyctl += "-db " + a.cfg.DB + " "
	}
	a.log.Info("environments already bootstrapped: no key printed; to get a new key, rotate the old one",
		"keyctl", keyctl+"rotate production server --grace 24h",
		"api", "POST /admin/keys/{id}/rotate {\"grace\":\"24h\"} with a server key of the environment")
	return nil
}

// seedOrigins replaces the allowed origins of each environment in
// cfg.AllowedOrigins.
func (a *App) seedOrigins(ctx context.Context, m *apikey.Manager) error {
	envs := make([]string, 0, len(a.cfg.AllowedOrigins))
	for env := range a.cfg.AllowedOrigins {
		envs = append(envs, env)
	}
	sort.Strings(envs)
	for _, env := range envs {
		s, err := m.SetAllowedOrigins(ctx, Actor, env, a.cfg.AllowedOrigins[env])
		if err != nil {
			return fmt.Errorf("allowed origins of %s: %w", env, err)
		}
		a.log.Info("allowed origins set", "environment", env, "origins", strings.Join(s.AllowedOrigins, " "))
	}
	return nil
}

// Addr returns the address the App listens on, with the port chosen when
// Config.Addr asked for port 0.
func (a *App) Addr() net.Addr { return a.listener.Addr() }

// URL returns the App's base URL, "http://" and Addr.
func (a *App) URL() string { return "http://" + a.Addr().String() }

// Issued returns the keys that this start bootstrapped, server then
// publishable key for each new environment; nil on later starts.
func (a *App) Issued() []apikey.Issued { return a.issued }

// Manager returns the Manager behind the management API. Its OnEvent
// invalidates the App's validation cache.
func (a *App) Manager() *apikey.Manager { return a.manager }

// Handler returns the App's routes, for tests that serve them themselves.
func (a *App) Handler() http.Handler { return a.handler }

// Run serves until ctx ends (and delivers events meanwhile), then shuts
// down gracefully: it stops accepting connections
// and waits up to 10 seconds for requests in flight, stops the webhook
// loops, closes the Validator (which writes the last-used times it still holds), and closes
// the database. It returns nil after a clean shutdown. Call Run once.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("listening", "url", a.URL(), "db", a.cfg.DB)
	if a.webhooks != nil {
		a.webhooks.start(context.WithoutCancel(ctx))
	}
	served := make(chan error, 1)
	go func() { served <- a.server.Serve(a.listener) }()
	var err error
	select {
	case err = <-served: // the listener failed
	case <-ctx.Done():
		a.log.Info("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		err = a.server.Shutdown(shutdownCtx)
		cancel()
		if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
	}
	err = errors.Join(err, a.close())
	if err == nil {
		a.log.Info("stopped")
	}
	return err
}

// close releases what New opened, but for the listener (Serve or Shutdown
// closes it; New closes it if it fails): the webhook loops, the telemetry
// (writing the last metrics), the Validator, then the database.
func (a *App) close() error {
	if a.webhooks != nil {
		a.webhooks.stop()
	}
	var errs []error
	if a.telemetry != nil {
		if err := a.telemetry.shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: %w", err))
		}
	}
	if a.validator != nil {
		if err := a.validator.Close(); err != nil {
			errs = append(errs, fmt.Errorf("writing last-used times: %w", err))
		}
	}
	if a.store != nil {
		errs = append(errs, a.store.DB().Close())
	}
	return errors.Join(errs...)
}

// routes returns the App's handler.
func (a *App) routes() (http.Handler, error) {
	api, err := admin.New(admin.Options{Manager: a.manager, Audit: a.store, Authorize: authorize})
	if err != nil {
		return nil, err
	}
	serverOnly := a.validator.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Server}})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	// Publishable keys are admitted only where a route names them.
	anyKey := a.validator.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Server, apikey.Client}})
	mux.Handle("GET /v1/whoami", anyKey(http.HandlerFunc(whoami)))
	mux.Handle("POST /v1/echo", serverOnly(http.HandlerFunc(echo)))
	// A report is dear: it spends ReportCost uses of a key's quota, when the
	// key has one (PUT /admin/keys/{id}/limits sets it).
	reports := a.validator.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Server}, Cost: ReportCost})
	mux.Handle("POST /v1/reports", reports(http.HandlerFunc(report)))
	mux.Handle("/admin/", serverOnly(http.StripPrefix("/admin", api)))
	// The routes match on the method, so the mux would answer a browser's
	// CORS preflight (OPTIONS) with 405: the validator answers them for the
	// whole router.
	if a.telemetry != nil {
		return a.telemetry.handler(a.validator.CORS(mux)), nil
	}
	return a.validator.CORS(mux), nil
}

// authorize is admin.KeyScopes, but for the webhook routes. A tenant's
// endpoint receives the events of every environment of its account, so
// the routes refuse a caller confined to one environment, as KeyScopes
// confines every key: there, a production key with full access ("*"), which
// the Manager requires of a key that changes endpoints anyway, acts for the
// whole account. Every other key stays confined, and is refused.
func authorize(r *http.Request) (admin.Caller, error) {
	c, err := admin.KeyScopes(r)
	if err != nil {
		return c, err
	}
	webhooks := r.URL.Path == "/webhooks" || strings.HasPrefix(r.URL.Path, "/webhooks/")
	if webhooks && c.Environment == apikey.Production && apikey.HasScope(c.Actor.Scopes, apikey.AllScopes) {
		c.Environment = ""
	}
	return c, nil
}

func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Cache-Control", "no-store")
	if err := a.store.DB().PingContext(ctx); err != nil {
		a.log.Warn("health check: database unavailable", "error", err)
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// Whoami is the body of GET /v1/whoami: what the middleware learned about
// the request's key. It never holds the secret.
type Whoami struct {
	KeyID       string         `json:"key_id"`
	Prefix      string         `json:"prefix"`
	Type        apikey.KeyType `json:"type"`
	Environment string         `json:"environment"`
	// Scopes of a server key ("*" is full access); empty for a publishable
	// key, which is read-only.
	Scopes []string `json:"scopes"`
	// ExpiresAt is when the key stops working; null for no expiry.
	ExpiresAt *time.Time `json:"expires_at"`
	// Expiring reports that the key was rotated out and works only until
	// ExpiresAt.
	Expiring bool `json:"expiring"`
	// Limits are the key's rate limit, quota and address allowlist; absent
	// when it has none.
	Limits *apikey.Limits `json:"limits,omitempty"`
}

// ReportCost is how many uses of a key's quota POST /v1/reports spends.
const ReportCost = 10

// report answers POST /v1/reports: a stand-in for an expensive operation.
func report(w http.ResponseWriter, r *http.Request) {
	id, _ := middleware.FromContext(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"report": "ready", "key_id": id.KeyID, "cost": ReportCost})
}

func whoami(w http.ResponseWriter, r *http.Request) {
	id, _ := middleware.FromContext(r.Context()) // behind the middleware: always there
	body := Whoami{
		KeyID: id.KeyID, Prefix: id.Prefix, Type: id.Type, Environment: id.Environment,
		Scopes: id.Scopes, Expiring: id.Expiring,
	}
	if body.Scopes == nil {
		body.Scopes = []string{}
	}
	if !id.ExpiresAt.IsZero() {
		body.ExpiresAt = &id.ExpiresAt
	}
	if !id.Limits.IsZero() {
		body.Limits = &id.Limits
	}
	writeJSON(w, http.StatusOK, body)
}

// The refusals of POST /v1/echo, as problem responses like the middleware's.
var (
	errNotJSON  = problem.New("invalid_json", http.StatusBadRequest, "the body is not JSON")
	errTooLarge = problem.New("body_too_large", http.StatusRequestEntityTooLarge, "the body is too large")
)

func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEchoBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		problem.Write(w, r, problem.Refuse(errTooLarge, fmt.Sprintf("at most %d bytes", MaxEchoBytes)))
		return
	case err != nil:
		problem.Write(w, r, problem.Refuse(errNotJSON, "reading the body failed"))
		return
	case !json.Valid(body):
		problem.Write(w, r, problem.Refuse(errNotJSON, "send one JSON value"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away
}
