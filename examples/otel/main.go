// Command otel traces keystile's verifications with OpenTelemetry: each
// request's span, with a child span per key verification, and the
// Validator's Stats as metrics, all printed by the stdout exporters. It
// keeps its keys in memory and prints the production server key at start.
//
//	go run ./examples/otel [-addr 127.0.0.1:8084]
//	curl -H "X-API-Key: server-..." http://127.0.0.1:8084/v1/hello
//
// No span or metric holds a key's secret: spans name keys by their
// displayable prefix.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/otelkeystile"
	"github.com/keystile/keystile/storage/memory"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8084", "listen address")
	every := flag.Duration("metrics-every", 30*time.Second, "how often the metrics are printed")
	flag.Parse()
	h, key, closeFn, err := newServer(os.Stdout, *every)
	if err != nil {
		log.Fatal(err)
	}
	defer closeFn()
	fmt.Println("production server key:", key.Reveal())
	log.Fatal(http.ListenAndServe(*addr, h))
}

// newServer returns the API, the production server key, and a function
// that closes the Validator and flushes the exporters, which write to out.
func newServer(out io.Writer, metricsEvery time.Duration) (http.Handler, apikey.Key, func(), error) {
	spans, err := stdouttrace.New(stdouttrace.WithWriter(out), stdouttrace.WithPrettyPrint())
	if err != nil {
		return nil, apikey.Key{}, nil, err
	}
	// WithSyncer prints each span as it ends; a service uses WithBatcher.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	metrics, err := stdoutmetric.New(stdoutmetric.WithWriter(out), stdoutmetric.WithPrettyPrint())
	if err != nil {
		return nil, apikey.Key{}, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(
		sdkmetric.NewPeriodicReader(metrics, sdkmetric.WithInterval(metricsEvery))))

	store := memory.New()
	v, err := middleware.New(middleware.Options{Store: store, OnVerification: otelkeystile.Tracing(tp)})
	if err != nil {
		return nil, apikey.Key{}, nil, err
	}
	if _, err := otelkeystile.RegisterMetrics(mp, v); err != nil {
		return nil, apikey.Key{}, nil, err
	}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, OnEvent: v.Invalidate})
	if err != nil {
		return nil, apikey.Key{}, nil, err
	}
	issued, err := m.Bootstrap(context.Background(), apikey.Actor{ID: "ops", Role: apikey.Owner}, apikey.Production)
	if err != nil {
		return nil, apikey.Key{}, nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /v1/hello", v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s\n", id.Prefix)
	})))
	closeFn := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := errors.Join(v.Close(), tp.Shutdown(ctx), mp.Shutdown(ctx)); err != nil {
			log.Print(err)
		}
	}
	return serverSpans(tp.Tracer("example"), mux), issued[0].Key, closeFn, nil
}

// serverSpans starts a span per request, the parent of keystile's: what
// go.opentelemetry.io/contrib's otelhttp.NewHandler does in a service.
func serverSpans(tracer trace.Tracer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracer.Start(r.Context(), r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
