package otelkeystile

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/keystile/keystile/middleware"
)

// The metrics that RegisterMetrics observes, from the fields of
// middleware.Stats of the same meaning. Counters count since the
// Validator's New; the others are values at collection time.
const (
	MetricCacheHits        = "keystile.cache.hits"        // counter, CacheHits
	MetricCacheMisses      = "keystile.cache.misses"      // counter, CacheMisses
	MetricCachedKeys       = "keystile.cache.keys"        // up-down counter, CachedKeys
	MetricCachedFailures   = "keystile.cache.failures"    // up-down counter, CachedFailures
	MetricHashes           = "keystile.hashes"            // counter, Hashes (argon2 verifications)
	MetricHashTime         = "keystile.hashes.time"       // counter in seconds, HashTime
	MetricHashesRunning    = "keystile.hashes.running"    // up-down counter, HashesRunning
	MetricHashesWaiting    = "keystile.hashes.waiting"    // up-down counter, HashesWaiting
	MetricThrottled        = "keystile.throttled"         // counter, Throttled
	MetricRefusals         = "keystile.refusals"          // counter per keystile.refusal code, Refusals
	MetricFeedRevision     = "keystile.feed.revision"     // gauge, FeedRevision; only with a change feed
	MetricFeedLag          = "keystile.feed.lag"          // gauge in seconds, FeedLag; only with a change feed
	MetricEnvironments     = "keystile.environments"      // up-down counter, Environments
	MetricBackgroundErrors = "keystile.background_errors" // counter, BackgroundErrors
	MetricUsageDropped     = "keystile.usage.dropped"     // counter, UsageDropped
)

// RegisterMetrics makes the meter of mp observe v's Stats at each
// collection (see the Metric constants). A nil mp means the global
// MeterProvider (otel.GetMeterProvider). Unregister the returned
// Registration to stop; the Validator's Close does not.
func RegisterMetrics(mp metric.MeterProvider, v *middleware.Validator) (metric.Registration, error) {
	if v == nil {
		return nil, errors.New("otelkeystile: RegisterMetrics: nil Validator")
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	upDown := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		c, err := m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	hits := counter(MetricCacheHits, "{request}", "Requests whose key was found in the cache, verified or failed.")
	misses := counter(MetricCacheMisses, "{request}", "Requests whose key was not in the cache.")
	keys := upDown(MetricCachedKeys, "{key}", "Verified keys the cache holds.")
	failures := upDown(MetricCachedFailures, "{key}", "Failed keys (unknown, wrong secret) the cache holds.")
	hashes := counter(MetricHashes, "{verification}", "argon2 verifications.")
	hashTime, err := m.Float64ObservableCounter(MetricHashTime, metric.WithUnit("s"),
		metric.WithDescription("Time the argon2 verifications took in all."))
	errs = append(errs, err)
	running := upDown(MetricHashesRunning, "{verification}", "argon2 verifications running.")
	waiting := upDown(MetricHashesWaiting, "{verification}", "argon2 verifications waiting for a slot.")
	throttled := counter(MetricThrottled, "{verification}", "Verifications that the throttle refused.")
	refusals := counter(MetricRefusals, "{request}", "Refused requests, by refusal code.")
	revision, err := m.Int64ObservableGauge(MetricFeedRevision, metric.WithUnit("{revision}"),
		metric.WithDescription("The last change-feed revision applied."))
	errs = append(errs, err)
	lag, err := m.Float64ObservableGauge(MetricFeedLag, metric.WithUnit("s"),
		metric.WithDescription("How long ago the change feed was last read."))
	errs = append(errs, err)
	envs := upDown(MetricEnvironments, "{environment}", "Environments whose settings the Validator holds.")
	background := counter(MetricBackgroundErrors, "{error}", "Errors of background work and of a panicking store or hasher.")
	dropped := counter(MetricUsageDropped, "{request}", "Requests left out of the usage counts because a bound was reached.")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := v.Stats()
		o.ObserveInt64(hits, clamp(s.CacheHits))
		o.ObserveInt64(misses, clamp(s.CacheMisses))
		o.ObserveInt64(keys, int64(s.CachedKeys))
		o.ObserveInt64(failures, int64(s.CachedFailures))
		o.ObserveInt64(hashes, clamp(s.Hashes))
		o.ObserveFloat64(hashTime, s.HashTime.Seconds())
		o.ObserveInt64(running, s.HashesRunning)
		o.ObserveInt64(waiting, s.HashesWaiting)
		o.ObserveInt64(throttled, clamp(s.Throttled))
		for code, n := range s.Refusals {
			o.ObserveInt64(refusals, clamp(n), metric.WithAttributes(AttrRefusal.String(code)))
		}
		if s.FeedRevision != 0 || s.FeedLag != 0 {
			o.ObserveInt64(revision, s.FeedRevision)
			o.ObserveFloat64(lag, s.FeedLag.Seconds())
		}
		o.ObserveInt64(envs, int64(s.Environments))
		o.ObserveInt64(background, clamp(s.BackgroundErrors))
		o.ObserveInt64(dropped, clamp(s.UsageDropped))
		return nil
	}, hits, misses, keys, failures, hashes, hashTime, running, waiting, throttled, refusals,
		revision, lag, envs, background, dropped)
}

// clamp converts a counter to the int64 that OpenTelemetry takes.
func clamp(n uint64) int64 { return int64(min(n, 1<<63-1)) }
