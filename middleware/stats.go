package middleware

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/middleware/problem"
)

// Stats are a Validator's counters since New, and a few gauges. They hold
// no key material.
type Stats struct {
	// CacheHits and CacheMisses count requests whose key was found in the
	// cache (verified or failed) and those whose key was not.
	CacheHits, CacheMisses uint64
	// CachedKeys and CachedFailures are the entries the caches hold, served
	// or not, at most Options.CacheSize each.
	CachedKeys, CachedFailures int
	// HashesRunning and HashesWaiting are the argon2 verifications running
	// now and those waiting for a slot.
	HashesRunning, HashesWaiting int64
	Hashes                       uint64        // argon2 verifications
	HashTime                     time.Duration // the time they took in all
	Throttled                    uint64        // verifications that the throttle refused
	// Refusals counts refused requests by reason code, such as
	// "invalid_key"; "other" counts the rest.
	Refusals map[string]uint64
	// FeedRevision is the last change-feed revision applied, and FeedLag
	// how long ago the feed was last read; both zero without a feed.
	FeedRevision     int64
	FeedLag          time.Duration
	Environments     int    // environments whose settings the Validator holds
	BackgroundErrors uint64 // errors passed to Options.OnBackgroundError
	// UsageDropped counts the requests left out of the usage counts
	// because a bound was reached (docs/limits.md, Usage).
	UsageDropped uint64
	// CallersDropped counts the requests of keys rotated out left out of
	// their callers because a bound was reached (docs/limits.md, Who still
	// uses a key rotated out).
	CallersDropped uint64
}

// reasons are the refusals counted one by one in Stats.Refusals.
var reasons = [...]*problem.Reason{
	ErrMissingKey, ErrMalformedKey, ErrInvalidKey, ErrExpiredKey, ErrRevokedKey,
	ErrKeyType, ErrScope, ErrEnvironment, ErrOrigin, ErrServerKeyFromBrowser,
	ErrAddressNotAllowed, ErrRateLimited, ErrQuotaExhausted,
	ErrThrottled, ErrUnavailable, ErrBusy,
	ErrDisabledKey, ErrAccountSuspended,
}

// reasonIndex returns the index in reasons of err's reason, or
// len(reasons) ("other").
func reasonIndex(err error) int {
	if i := slices.Index(reasons[:], problem.Of(err)); i >= 0 {
		return i
	}
	return len(reasons)
}

// stats holds the counters behind Stats.
type stats struct {
	// A line of padding keeps the counters that every request writes off
	// the cache lines of the fields that every request reads before them
	// (Validator's).
	_                            [64]byte
	hits, misses                 shardedCounter
	hashesRunning, hashesWaiting atomic.Int64
	hashes                       atomic.Uint64
	hashNanos                    atomic.Int64
	throttled                    atomic.Uint64
	refusals                     [len(reasons) + 1]atomic.Uint64 // the last one is "other"
	feedRevision                 atomic.Int64
	feedReadAt                   atomic.Int64 // Unix nanoseconds of the last successful read; 0 if none
	backgroundErrs               atomic.Uint64
}

// refused counts a refusal by its reason.
func (s *stats) refused(err error) {
	s.refusals[reasonIndex(err)].Add(1)
}

// Stats returns the Validator's counters, at any time.
func (v *Validator) Stats() Stats {
	s := &v.stats
	out := Stats{
		CacheHits: s.hits.load(), CacheMisses: s.misses.load(),
		HashesRunning: s.hashesRunning.Load(), HashesWaiting: s.hashesWaiting.Load(),
		Hashes: s.hashes.Load(), HashTime: time.Duration(s.hashNanos.Load()),
		Throttled: s.throttled.Load(), Refusals: make(map[string]uint64, len(reasons)+1),
		FeedRevision: s.feedRevision.Load(), Environments: v.settings.Len(),
		BackgroundErrors: s.backgroundErrs.Load(),
	}
	out.CachedKeys, out.CachedFailures = v.cache.Sizes()
	for i, r := range reasons {
		out.Refusals[r.Code()] = s.refusals[i].Load()
	}
	out.Refusals["other"] = s.refusals[len(reasons)].Load()
	if v.limiter.usage != nil {
		out.UsageDropped = v.limiter.usage.Dropped()
	}
	if v.verifier.callers != nil {
		out.CallersDropped = v.verifier.callers.Dropped()
	}
	if at := s.feedReadAt.Load(); at != 0 {
		out.FeedLag = max(v.cfg.Now().Sub(time.Unix(0, at)), 0)
	}
	return out
}

// shardedCounter is a counter that requests for different keys increment
// in different cache lines.
type shardedCounter struct {
	shards [16]struct {
		n atomic.Uint64
		_ [56]byte // one shard per 64-byte cache line
	}
}

func (c *shardedCounter) add(k keycache.Key) { c.shards[k.Shard()].n.Add(1) }

func (c *shardedCounter) load() uint64 {
	var sum uint64
	for i := range c.shards {
		sum += c.shards[i].n.Load()
	}
	return sum
}
