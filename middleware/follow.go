package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/internal/envsettings"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/storage"
)

const (
	feedBatch  = 1000                   // change-feed entries one read asks for
	retryDelay = 250 * time.Millisecond // after a failed settings reload
)

// follower is the Validator's background loop: change feed, settings
// reloads, last-used times. Only it (and New, before) touches its state.
type follower struct {
	feed     storage.ChangeFeed       // nil without a change feed
	wake     <-chan struct{}          // Options.FeedWake; nil without a feed
	recorder storage.LastUsedRecorder // nil without one
	usage    storage.UsageRecorder    // nil without one
	// callerLog records verifier.callers; nil without one
	callerLog interface {
		RecordCallers(context.Context, []storage.KeyCallers) error
	}
	limiter  *limiter
	cache    *keycache.Cache[*Identity]
	verifier *verifier
	settings *envsettings.Table
	clock    *requestClock // advanced when a page changes keys; nil with Options.Now
	instance *instance     // told each revision applied; nil without an InstanceLog or feed
	stats    *stats
	now      func() time.Time
	ttl      time.Duration // Options.CacheTTL
	report   func(error)
	// 0: never (feedEvery without a feed, flushEvery without a recorder)
	feedEvery, settingsEvery, flushEvery time.Duration
	retention                            time.Duration // of usage counts; 0: forever
	prunedAt                             time.Time     // when usage was last pruned

	following bool  // since is a revision read from the store
	since     int64 // the last revision applied
}

// run is the loop; it returns when ctx ends.
func (f *follower) run(ctx context.Context) {
	feedC, settingsC, flushC := ticker(f.feedEvery), ticker(f.settingsEvery), ticker(f.flushEvery)
	pending := f.settings.Pending()
	var retry <-chan time.Time // while it waits, pending is nil
	for {
		select {
		case <-ctx.Done():
			return
		case <-feedC:
			f.poll(ctx)
			f.failed(ctx, f.settings.ReloadPending(ctx)) // retries of failed reloads
		case <-f.wake:
			f.poll(ctx)
		case <-settingsC:
			f.failed(ctx, f.settings.Load(ctx))
		case <-pending:
			if f.failed(ctx, f.settings.ReloadPending(ctx)) {
				pending, retry = nil, time.After(retryDelay)
			}
		case <-retry:
			pending, retry = f.settings.Pending(), nil
		case <-flushC:
			f.failed(ctx, f.flush(ctx, true))
		}
	}
}

// ticker returns a channel that ticks every d, or nil when d is 0.
func ticker(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil
	}
	return time.NewTicker(d).C
}

// start reads the store's current revision and drops every cached entry,
// which may be older. If it fails, poll retries.
func (f *follower) start(ctx context.Context) {
	if f.feed == nil {
		return
	}
	now := f.now()
	rev, err := f.feed.Revision(ctx)
	if err != nil {
		f.report(fmt.Errorf("middleware: reading the change feed revision: %w", err))
		return
	}
	f.cache.Purge()
	f.following, f.since = true, rev
	f.read(rev, now)
}

// poll applies every change since the last poll to the cached keys, and
// queues the reloads of changed settings (all after storage.ErrFeedGap).
func (f *follower) poll(ctx context.Context) {
	if !f.following {
		if f.start(ctx); f.following {
			f.settings.QueueAll()
		}
		return
	}
	for {
		token := f.cache.Token() // the records of this page are read after it
		now := f.now()           // and after now
		changes, next, err := f.feed.Changes(ctx, f.since, feedBatch)
		if errors.Is(err, storage.ErrFeedGap) {
			f.cache.Purge()
			f.since = next
			f.settings.QueueAll()
			return
		}
		if err != nil {
			f.failed(ctx, fmt.Errorf("middleware: following the change feed: %w", err))
			return
		}
		keys := map[string]*apikey.Record{} // the page's changed keys, and their records if the store sent them
		for _, c := range changes {
			switch {
			case c.KeyID != "":
				keys[c.KeyID] = c.Key
			case c.Account == "": // a store that does not name accounts
				f.settings.QueueAll()
			default:
				f.settings.Queue(c.Account, c.Environment)
			}
		}
		if len(keys) > 0 {
			f.clock.advance() // a key the page ends now is refused from now on
		}
		for id, rec := range keys {
			f.apply(id, rec, token, now)
		}
		f.since = next
		if len(changes) < feedBatch {
			f.read(next, now)
			return
		}
	}
}

// apply remakes the cached entries of the key id from its record rec, read
// after token and now, if they verified against its hash; else it evicts.
func (f *follower) apply(id string, rec *apikey.Record, token uint64, now time.Time) {
	if rec == nil || rec.ID != id {
		f.cache.Evict(id)
		return
	}
	hash := keycache.Fingerprint(rec.Hash.Reveal())
	f.cache.Update(id, token, rec.Revision, func(old *entry) *entry {
		if rec.Revision < old.Revision || old.Value.Type != rec.Type {
			return nil // never go back to an older record
		}
		if match, _, _ := f.verifier.verified.Lookup(old.Key, hash); !match {
			return nil
		}
		return f.verifier.newEntry(old.Key, *rec, now)
	})
}

// failed reports whether err is not nil, and reports err unless ctx ended.
func (f *follower) failed(ctx context.Context, err error) bool {
	if err != nil && ctx.Err() == nil {
		f.report(err)
	}
	return err != nil
}

// read records a successful read of the change feed up to rev that started
// at now: cached keys are served until CacheTTL after it, and never past
// the end of the lease this instance last stored, nor at all before its
// first report is stored (see instance).
func (f *follower) read(rev int64, now time.Time) {
	fresh := now.Add(f.ttl)
	if left, ok := f.instance.servingLeft(); ok && left < f.ttl {
		fresh = now.Add(left)
	}
	f.cache.SetFresh(fresh)
	f.stats.feedRevision.Store(rev)
	f.stats.feedReadAt.Store(now.UnixNano())
	f.instance.applied(rev)
}

// flush writes the last-used times, the callers of keys rotated out and
// the usage counted since the last flush and, if prune, deletes the usage counts older than the retention,
// at most once an hour.
func (f *follower) flush(ctx context.Context, prune bool) error {
	err := errors.Join(f.flushLastUsed(ctx), f.flushCallers(ctx))
	if f.usage == nil {
		return err
	}
	err = errors.Join(err, f.limiter.flushUsage(ctx, f.usage))
	if now := f.now(); prune && f.retention > 0 && now.Sub(f.prunedAt) >= time.Hour {
		f.prunedAt = now
		if _, perr := f.usage.PruneUsage(ctx, now.Add(-f.retention)); perr != nil {
			err = errors.Join(err, fmt.Errorf("middleware: deleting old usage counts: %w", perr))
		}
	}
	return err
}

// flushLastUsed writes the last-used times noted since the last flush.
func (f *follower) flushLastUsed(ctx context.Context) error {
	if f.recorder == nil {
		return nil
	}
	used := f.cache.TakeUsed()
	if len(used) == 0 {
		return nil
	}
	if err := f.recorder.RecordLastUsed(ctx, used); err != nil {
		f.cache.RestoreUsed(used)
		return fmt.Errorf("middleware: recording last-used times: %w", err)
	}
	return nil
}

// flushCallers writes the callers of keys rotated out seen since the last
// flush; those that could not be written are kept for the next.
func (f *follower) flushCallers(ctx context.Context) error {
	if f.callerLog == nil {
		return nil
	}
	reports := f.verifier.callers.Take()
	if len(reports) == 0 {
		return nil
	}
	if err := f.callerLog.RecordCallers(ctx, reports); err != nil {
		f.verifier.callers.Restore(reports)
		return fmt.Errorf("middleware: recording the callers of keys rotated out: %w", err)
	}
	return nil
}
