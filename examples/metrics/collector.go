package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keystile/keystile/middleware"
)

// collector exports a Validator's Stats as Prometheus metrics. It reads
// Stats once per scrape, so the request path pays nothing for it.
type collector struct {
	v *middleware.Validator

	cacheHits, cacheMisses, cached    *prometheus.Desc
	hashes, hashSeconds, hashesNow    *prometheus.Desc
	throttled, refusals               *prometheus.Desc
	feedRevision, feedLag, background *prometheus.Desc
}

func newCollector(v *middleware.Validator) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("keystile_"+name, help, labels, nil)
	}
	return &collector{
		v:            v,
		cacheHits:    d("cache_hits_total", "Requests whose key was found in the validation cache."),
		cacheMisses:  d("cache_misses_total", "Requests whose key was not in the validation cache."),
		cached:       d("cache_entries", "Entries in the validation cache.", "kind"),
		hashes:       d("argon2_verifications_total", "argon2 verifications run."),
		hashSeconds:  d("argon2_seconds_total", "Time spent in argon2 verifications."),
		hashesNow:    d("argon2_verifications", "argon2 verifications running or waiting for a slot now.", "state"),
		throttled:    d("throttled_total", "Verifications refused by the failure throttle."),
		refusals:     d("refusals_total", "Refused requests, by reason code.", "code"),
		feedRevision: d("feed_revision", "Last change-feed revision applied."),
		feedLag:      d("feed_lag_seconds", "Time since the change feed was last read."),
		background:   d("background_errors_total", "Errors of background work (feed, settings, last-used writes)."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cacheHits, c.cacheMisses, c.cached, c.hashes, c.hashSeconds,
		c.hashesNow, c.throttled, c.refusals, c.feedRevision, c.feedLag, c.background} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.v.Stats()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.cacheHits, float64(s.CacheHits))
	counter(c.cacheMisses, float64(s.CacheMisses))
	gauge(c.cached, float64(s.CachedKeys), "key")
	gauge(c.cached, float64(s.CachedFailures), "failure")
	counter(c.hashes, float64(s.Hashes))
	counter(c.hashSeconds, s.HashTime.Seconds())
	gauge(c.hashesNow, float64(s.HashesRunning), "running")
	gauge(c.hashesNow, float64(s.HashesWaiting), "waiting")
	counter(c.throttled, float64(s.Throttled))
	for code, n := range s.Refusals {
		counter(c.refusals, float64(n), code)
	}
	gauge(c.feedRevision, float64(s.FeedRevision))
	gauge(c.feedLag, s.FeedLag.Seconds())
	counter(c.background, float64(s.BackgroundErrors))
}
