// Command server is keystile's example API, storing keys in a SQLite file.
//
//	go run ./examples/server [-addr 127.0.0.1:8080] [-db keystile.db] [-allow-origin ENV=ORIGIN]...
//	    [-webhook-url URL [-webhook-allow-loopback]] [-tenant-webhook-allow-loopback] [-otel stdout]
//
// On first start it bootstraps the production, staging and development
// environments and prints each new key once on stdout, one line each:
// "<environment> <server|client> <key>". Later starts print no key; rotate
// one to get a new one (go run ./examples/keyctl rotate production server
// --grace 24h, or the management API). Log lines go to stderr. The server
// binds its address before it opens the database: if the address is in
// use, it exits with status 1 and says so, having created no database and
// no key.
//
// Flags:
//
//	-addr          listen address (default 127.0.0.1:8080)
//	-db            SQLite file, or a postgres:// URL (default keystile.db)
//	-allow-origin  ENV=ORIGIN, repeatable: the web origins allowed to use
//	               ENV's publishable keys, such as
//	               development=http://127.0.0.1:8081. The origins given for an
//	               environment replace its list at start; environments not
//	               named keep theirs.
//	-webhook-url   deliver every event (key created, rotated, revoked, ...,
//	               and the time-based ones: expiring, expired, grace ended)
//	               to URL as Standard Webhooks, signed with the secret in
//	               the environment variable KEYSTILE_WEBHOOK_SECRET
//	               ("whsec_..."; go run ./examples/webhookreceiver
//	               -new-secret makes one). The server never prints it.
//	-webhook-allow-loopback
//	               admit an http:// URL on the loopback addresses (127.0.0.0/8, ::1)
//	               for -webhook-url, such as the webhookreceiver example;
//	               without it the URL must be https and public, as for any
//	               endpoint
//	-tenant-webhook-allow-loopback
//	               let tenants register http:// and internal URLs as their
//	               webhook endpoints (POST /admin/webhooks), and deliver to
//	               the loopback addresses, no other internal one (development).
//	               Without it a tenant's URL must be https and reach public
//	               addresses only, checked at registration and on every
//	               address dialed. Tenants' endpoints receive their account's
//	               events whether or not -webhook-url is set
//	-otel stdout   trace each request, with a "keystile.verify" span per
//	               key verification (key prefix, account, environment,
//	               cache hit or miss, store read, argon2, outcome, refusal
//	               code; never a secret), and export the Validator's Stats
//	               as metrics (every 30 seconds, and at shutdown), with
//	               OpenTelemetry's stdout exporters: one JSON document a
//	               line on stdout. Off by default: no OpenTelemetry is wired
//
// Routes: GET /healthz (no key), GET /v1/whoami (any key), POST /v1/echo
// (server keys), and the management API under /admin/ (see package
// examples/server/app). SIGINT or SIGTERM shuts the server down gracefully
// and writes the keys' last-used times.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/examples/server/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// run parses args, starts the App and serves until ctx ends. started, if
// set, is called with the App once it listens.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, started func(*app.App)) error {
	cfg := app.Config{Stdout: stdout, Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	origins := originsFlag{}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", app.DefaultAddr, "listen address")
	fs.StringVar(&cfg.DB, "db", app.DefaultDB, "SQLite file, or a postgres:// URL")
	fs.Var(origins, "allow-origin", "ENV=ORIGIN: allow ORIGIN to use ENV's publishable keys (repeatable; replaces ENV's list)")
	var hook app.Webhook
	fs.StringVar(&hook.URL, "webhook-url", "", "deliver events to URL, signed with $"+WebhookSecretEnv)
	fs.BoolVar(&hook.AllowLoopback, "webhook-allow-loopback", false, "admit http:// and loopback addresses for -webhook-url (development)")
	fs.BoolVar(&cfg.TenantWebhooks.AllowLoopback, "tenant-webhook-allow-loopback", false,
		"let tenants register http:// and internal webhook URLs, delivered to loopback only (development)")
	otel := fs.String("otel", "", `"stdout": trace requests and key verifications and export metrics with OpenTelemetry, to stdout`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "server: unexpected arguments:", strings.Join(fs.Args(), " "))
		return usageError{errors.New("unexpected arguments")}
	}
	cfg.AllowedOrigins = origins
	switch *otel {
	case "":
	case "stdout":
		cfg.Telemetry = &app.Telemetry{Out: stdout}
	default:
		fmt.Fprintf(stderr, "server: -otel %q: the only exporter is stdout\n", *otel)
		return usageError{errors.New("unknown -otel exporter")}
	}
	if hook.URL != "" {
		secret, err := webhook.ParseSecret(os.Getenv(WebhookSecretEnv))
		if err != nil {
			fmt.Fprintf(stderr, "server: -webhook-url needs a signing secret in %s (go run ./examples/webhookreceiver -new-secret makes one): %v\n",
				WebhookSecretEnv, err)
			return usageError{err}
		}
		hook.Secret = secret
		cfg.Webhook = &hook
	} else if hook.AllowLoopback {
		fmt.Fprintln(stderr, "server: -webhook-allow-loopback needs -webhook-url")
		return usageError{errors.New("-webhook-allow-loopback without -webhook-url")}
	}
	a, err := app.New(ctx, cfg)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: is the server running already? Stop it, or choose another address with -addr", err)
	}
	if err != nil {
		return err
	}
	if started != nil {
		started(a)
	}
	return a.Run(ctx)
}

// WebhookSecretEnv names the environment variable that holds the webhook
// signing secret of -webhook-url.
const WebhookSecretEnv = "KEYSTILE_WEBHOOK_SECRET"

// usageError is a mistake on the command line, already reported.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

// originsFlag collects -allow-origin ENV=ORIGIN values per environment.
type originsFlag map[string][]string

func (f originsFlag) String() string { return "" }

func (f originsFlag) Set(v string) error {
	env, origin, ok := strings.Cut(v, "=")
	if !ok {
		return errors.New("want ENV=ORIGIN, such as development=http://127.0.0.1:8081")
	}
	if err := apikey.ValidateEnvironment(env); err != nil {
		return err
	}
	if _, err := apikey.ParseOrigin(origin); err != nil {
		return err
	}
	f[env] = append(f[env], origin)
	return nil
}
