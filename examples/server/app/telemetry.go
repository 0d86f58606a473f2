package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/otelkeystile"
)

// DefaultMetricsEvery is how often Telemetry prints the metrics when its
// MetricsEvery is zero.
const DefaultMetricsEvery = 30 * time.Second

// TracerName names the tracer of the App's request spans.
const TracerName = "github.com/keystile/keystile/examples/server"

// Telemetry wires OpenTelemetry to the App with package
// middleware/otelkeystile: a span per request (the stand-in for otelhttp's
// server span) with a "keystile.verify" child span per key verification,
// and the Validator's Stats as metrics, all written by OpenTelemetry's
// stdout exporters, one JSON document a line. No span or metric holds a
// key's secret: spans name keys by their displayable prefix.
type Telemetry struct {
	// Out receives the spans, each as it ends, and the metrics. Required.
	Out io.Writer
	// MetricsEvery is how often the metrics are written; they are written
	// once more when the App stops. Zero means DefaultMetricsEvery.
	MetricsEvery time.Duration
}

// telemetry is the providers of Config.Telemetry.
type telemetry struct {
	tp *sdktrace.TracerProvider
	mp *sdkmetric.MeterProvider
}

// newTelemetry makes the tracer and meter providers of cfg.
func newTelemetry(cfg Telemetry) (*telemetry, error) {
	if cfg.Out == nil {
		return nil, errors.New("telemetry: Out is required")
	}
	spans, err := stdouttrace.New(stdouttrace.WithWriter(cfg.Out))
	if err != nil {
		return nil, err
	}
	metrics, err := stdoutmetric.New(stdoutmetric.WithWriter(cfg.Out))
	if err != nil {
		return nil, err
	}
	every := cfg.MetricsEvery
	if every == 0 {
		every = DefaultMetricsEvery
	}
	return &telemetry{
		// WithSyncer writes each span as it ends; a service exporting to a
		// collector uses WithBatcher.
		tp: sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)),
		mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(
			sdkmetric.NewPeriodicReader(metrics, sdkmetric.WithInterval(every)))),
	}, nil
}

// register observes v's Stats as metrics.
func (t *telemetry) register(v *middleware.Validator) error {
	_, err := otelkeystile.RegisterMetrics(t.mp, v)
	return err
}

// handler starts a span per request around next, the parent of keystile's
// verification spans: what go.opentelemetry.io/contrib's
// otelhttp.NewHandler does in a service.
func (t *telemetry) handler(next http.Handler) http.Handler {
	tracer := t.tp.Tracer(TracerName)
	server := trace.WithSpanKind(trace.SpanKindServer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracer.Start(r.Context(), r.Method+" "+r.URL.Path, server)
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// shutdown writes the last metrics and the spans not written yet.
func (t *telemetry) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(t.tp.Shutdown(ctx), t.mp.Shutdown(ctx))
}
