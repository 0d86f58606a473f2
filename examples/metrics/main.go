// Command metrics serves a protected API and its keystile metrics for
// Prometheus: GET /v1/hello needs a server key, GET /metrics (no key)
// exports Validator.Stats through prometheus/client_golang. It keeps its
// keys in memory and prints the production server key at start.
//
//	go run ./examples/metrics [-addr 127.0.0.1:8083]
//	curl -H "X-API-Key: server-..." http://127.0.0.1:8083/v1/hello
//	curl http://127.0.0.1:8083/metrics | grep keystile_
//
// Every request is also logged with slog from the middleware's hooks, with
// the key's prefix, never its secret.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/memory"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "listen address")
	flag.Parse()
	h, key, closeFn, err := newServer(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		log.Fatal(err)
	}
	defer closeFn()
	fmt.Println("production server key:", key.Reveal())
	log.Fatal(http.ListenAndServe(*addr, h))
}

// newServer returns the API with /metrics, the production server key, and
// a function that closes the Validator.
func newServer(log *slog.Logger) (http.Handler, apikey.Key, func(), error) {
	store := memory.New()
	v, err := middleware.New(middleware.Options{
		Store: store,
		// A request log built on the hooks: the Attempt and Identity hold
		// the key's prefix, never its secret.
		OnAuthenticated: func(ctx context.Context, a middleware.Attempt, id middleware.Identity) {
			log.InfoContext(ctx, "request", "method", a.Method, "path", a.Path, "key", id.Prefix, "environment", id.Environment)
		},
		OnRejected: func(ctx context.Context, a middleware.Attempt, err error) {
			log.WarnContext(ctx, "refused", "method", a.Method, "path", a.Path, "key", a.Prefix, "code", problem.Of(err).Code())
		},
	})
	if err != nil {
		return nil, apikey.Key{}, nil, err
	}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, OnEvent: v.Invalidate})
	if err != nil {
		v.Close()
		return nil, apikey.Key{}, nil, err
	}
	issued, err := m.Bootstrap(context.Background(), apikey.Actor{ID: "metrics-example", Role: apikey.Owner}, apikey.Production)
	if err != nil {
		v.Close()
		return nil, apikey.Key{}, nil, err
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(newCollector(v))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /v1/hello", v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.FromContext(r.Context())
		fmt.Fprintln(w, "hello", id.Prefix)
	})))
	return mux, issued[0].Key, func() { _ = v.Close() }, nil
}
