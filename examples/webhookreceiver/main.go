// Command webhookreceiver is a webhook endpoint for the example server's
// events: it verifies each request with the Standard Webhooks reference
// library (github.com/standard-webhooks/standard-webhooks/libraries/go)
// and logs the event's type and id.
//
//	export KEYSTILE_WEBHOOK_SECRET=$(go run ./examples/webhookreceiver -new-secret)
//	go run ./examples/webhookreceiver [-addr 127.0.0.1:8090] &
//	go run ./examples/server -webhook-url http://127.0.0.1:8090/hooks -webhook-allow-loopback
//
// -new-secret prints a new signing secret ("whsec_..."), the only output
// that ever shows one, and exits: keep it in the environment of both
// programs (KEYSTILE_WEBHOOK_SECRET), never in a log.
//
// Delivery is at least once: the same event (the same webhook-id) may
// arrive twice, after a retry whose answer was lost. The receiver answers
// 204 to a request that verifies, and logs a duplicate as such; a real one
// handles each id once (a unique key on the id where it stores its effect).
// It refuses requests that do not verify with 401 (bad signature, or a
// timestamp more than 5 minutes from its clock) and bodies over 1 MiB with
// 413.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
)

// SecretEnv names the environment variable that holds the signing secret.
const SecretEnv = "KEYSTILE_WEBHOOK_SECRET"

// MaxBody bounds a request's body.
const MaxBody = 1 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "webhookreceiver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("webhookreceiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	newSecret := fs.Bool("new-secret", false, "print a new signing secret and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *newSecret {
		_, err := fmt.Fprintln(stdout, webhook.GenerateSecret().Reveal())
		return err
	}
	h, err := NewHandler(os.Getenv(SecretEnv), slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return fmt.Errorf("%s: %w (go run ./examples/webhookreceiver -new-secret makes one)", SecretEnv, err)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	slog.New(slog.NewTextHandler(stderr, nil)).Info("receiving webhooks", "addr", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewHandler returns the receiver: it verifies each request with secret
// ("whsec_...") and logs the event to log. The error never holds the
// secret.
func NewHandler(secret string, log *slog.Logger) (http.Handler, error) {
	if _, err := webhook.ParseSecret(secret); err != nil {
		return nil, err
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, errors.New("the secret is not a Standard Webhooks secret")
	}
	return &receiver{wh: wh, log: log, seen: map[string]bool{}}, nil
}

type receiver struct {
	wh  *standardwebhooks.Webhook
	log *slog.Logger

	mu   sync.Mutex
	seen map[string]bool // ids handled; a real receiver keeps them durably
}

// maxSeen bounds the ids the example remembers.
const maxSeen = 100_000

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBody))
	if err != nil {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.log.Warn("webhook refused: it does not verify", "error", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p events.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.log.Warn("webhook refused: not an event", "error", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	r.mu.Lock()
	duplicate := r.seen[id]
	if len(r.seen) >= maxSeen {
		clear(r.seen)
	}
	r.seen[id] = true
	r.mu.Unlock()
	r.log.Info("webhook", "type", p.Type, "id", id, "duplicate", duplicate, "account", p.Data.Account,
		"environment", p.Data.Environment, "key", p.Data.KeyPrefix(), "detail", p.Data.Detail)
	w.WriteHeader(http.StatusNoContent)
}
