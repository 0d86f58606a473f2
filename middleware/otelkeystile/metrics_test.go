package otelkeystile_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/otelkeystile"
)

// collect returns the keystile metrics that r reads now: each int64 value
// by metric name and, for refusals, "keystile.refusals/<code>"; each float64
// value with the same names, in floats.
func collect(t *testing.T, r *sdkmetric.ManualReader) (ints map[string]int64, floats map[string]float64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	ints, floats = map[string]int64{}, map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelkeystile.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					key := m.Name
					if code, ok := p.Attributes.Value(otelkeystile.AttrRefusal); ok {
						key += "/" + code.AsString()
					}
					ints[key] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					ints[m.Name] = p.Value
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					floats[m.Name] = p.Value
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					floats[m.Name] = p.Value
				}
			default:
				t.Fatalf("metric %s has data of type %T", m.Name, m.Data)
			}
		}
	}
	return ints, floats
}

// TestMetrics: the Validator's Stats, read at each collection.
func TestMetrics(t *testing.T) {
	f := newFixture(t, nil)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	reg, err := otelkeystile.RegisterMetrics(mp, f.v)
	require.NoError(t, err)

	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	for _, key := range []string{f.keys[apikey.Server].Reveal(), f.keys[apikey.Server].Reveal(), f.keys[apikey.Server].Reveal(), unknown.Reveal(), ""} {
		f.serve(key)
	}
	ints, floats := collect(t, reader)
	s := f.v.Stats()
	for name, want := range map[string]int64{
		otelkeystile.MetricCacheHits:                                        2,
		otelkeystile.MetricCacheMisses:                                      2,
		otelkeystile.MetricCachedKeys:                                       1,
		otelkeystile.MetricCachedFailures:                                   1,
		otelkeystile.MetricHashes:                                           1,
		otelkeystile.MetricHashesRunning:                                    0,
		otelkeystile.MetricHashesWaiting:                                    0,
		otelkeystile.MetricThrottled:                                        0,
		otelkeystile.MetricEnvironments:                                     int64(s.Environments),
		otelkeystile.MetricBackgroundErrors:                                 0,
		otelkeystile.MetricUsageDropped:                                     0,
		otelkeystile.MetricRefusals + "/" + middleware.ErrInvalidKey.Code(): 1,
		otelkeystile.MetricRefusals + "/" + middleware.ErrMissingKey.Code(): 1,
		otelkeystile.MetricRefusals + "/" + middleware.ErrRevokedKey.Code(): 0,
		otelkeystile.MetricRefusals + "/other":                              0,
		otelkeystile.MetricFeedRevision:                                     s.FeedRevision,
	} {
		got, ok := ints[name]
		if assert.True(t, ok, "metric %s missing", name) {
			assert.Equal(t, want, got, name)
		}
	}
	assert.Positive(t, s.Environments)
	assert.Positive(t, s.FeedRevision) // the memory store has a change feed
	assert.Positive(t, floats[otelkeystile.MetricHashTime])
	assert.Contains(t, floats, otelkeystile.MetricFeedLag)

	f.serve(f.keys[apikey.Server].Reveal())
	ints, _ = collect(t, reader)
	assert.EqualValues(t, 3, ints[otelkeystile.MetricCacheHits], "read again at the next collection")

	require.NoError(t, reg.Unregister())
	ints, floats = collect(t, reader)
	assert.Empty(t, ints)
	assert.Empty(t, floats)
}

// TestRegisterMetricsNeedsAValidator: a nil Validator is refused.
func TestRegisterMetricsNeedsAValidator(t *testing.T) {
	_, err := otelkeystile.RegisterMetrics(sdkmetric.NewMeterProvider(), nil)
	require.Error(t, err)
}
