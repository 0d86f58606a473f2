package otelkeystile_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/otelkeystile"
	"github.com/keystile/keystile/storage/memory"
)

// setup returns a store with the production environment and its server
// key. Examples use apikey.TestParams to stay fast.
func setup() (*memory.Store, apikey.Key) {
	store := memory.New()
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	issued, _ := m.Bootstrap(context.Background(), apikey.Actor{ID: "ops", Role: apikey.Owner}, apikey.Production)
	return store, issued[0].Key
}

// A span per request the Validator authenticates. A service passes its
// own TracerProvider (or nil for the global one); this one records the
// spans to print them.
func ExampleTracing() {
	store, key := setup()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	v, err := middleware.New(middleware.Options{
		Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		OnVerification: otelkeystile.Tracing(tp),
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	h := v.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for range 2 {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(middleware.HeaderAPIKey, key.Reveal())
		h.ServeHTTP(httptest.NewRecorder(), r)
	}

	for _, s := range spans.Ended() {
		fmt.Print(s.Name())
		for _, kv := range s.Attributes() {
			if kv.Key != otelkeystile.AttrKeyPrefix {
				fmt.Printf(" %s=%s", kv.Key, kv.Value.Emit())
			}
		}
		fmt.Println()
	}
	// Output:
	// keystile.verify keystile.cache=miss keystile.account=default keystile.environment=production keystile.store_read=true keystile.argon2=true keystile.outcome=admitted
	// keystile.verify keystile.cache=hit keystile.account=default keystile.environment=production keystile.store_read=false keystile.argon2=false keystile.outcome=admitted
}

// The Validator's Stats as metrics, read at each collection.
func ExampleRegisterMetrics() {
	store, _ := setup()
	v, err := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	reader := sdkmetric.NewManualReader() // a service uses its exporter's reader
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	reg, err := otelkeystile.RegisterMetrics(mp, v)
	if err != nil {
		panic(err)
	}
	defer reg.Unregister()

	v.Handler(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name == otelkeystile.MetricRefusals {
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if code, _ := p.Attributes.Value(otelkeystile.AttrRefusal); p.Value > 0 {
					fmt.Println(m.Name, code.AsString(), p.Value)
				}
			}
		}
	}
	// Output:
	// keystile.refusals missing_key 1
}
