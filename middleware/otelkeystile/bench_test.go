package otelkeystile_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/otelkeystile"
)

// benchCached serves a cached key's request through a Validator whose
// spans go to tp (none if nil).
func benchCached(b *testing.B, tp trace.TracerProvider) {
	store, key := setup()
	opts := middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}}
	if tp != nil {
		opts.OnVerification = otelkeystile.Tracing(tp)
	}
	v, err := middleware.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Close() })
	h := v.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(middleware.HeaderAPIKey, key.Reveal())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r) // cache the key
	b.ReportAllocs()
	for b.Loop() {
		clear(w.Header())
		h.ServeHTTP(w, r)
	}
	if w.Code != http.StatusOK {
		b.Fatalf("status %d", w.Code)
	}
}

// BenchmarkCachedNoTracing is the baseline: no hook.
func BenchmarkCachedNoTracing(b *testing.B) { benchCached(b, nil) }

// BenchmarkCachedNoopTracer: Tracing with OpenTelemetry's no-op provider
// (what the global provider is until a service sets one).
func BenchmarkCachedNoopTracer(b *testing.B) { benchCached(b, noop.NewTracerProvider()) }

// BenchmarkCachedSampledOut: Tracing with the SDK, every span sampled out.
func BenchmarkCachedSampledOut(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	benchCached(b, tp)
}

// BenchmarkCachedRecorded: Tracing with the SDK, every span recorded and
// handed to a processor that drops it.
func BenchmarkCachedRecorded(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dropSpans{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	benchCached(b, tp)
}

// dropSpans is a span processor that keeps nothing.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }
