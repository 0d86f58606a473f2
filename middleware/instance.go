package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// instance reports what this Validator has applied of the change feed to
// the store's storage.InstanceLog, so that a change can be confirmed on
// every running Validator (apikey.Manager.Propagation).
//
// The contract:
//   - A Validator reports only while it follows a change feed: without
//     one (or before its first successful read of the feed) it has no
//     revision to report and is not counted.
//   - After each read of the whole feed that moved its revision, the
//     follower hands the revision over (applied, which never blocks) and
//     the reporter's goroutine writes it: at most one write is in flight,
//     and the newest revision wins. Nothing runs on the request path.
//   - With nothing new, it reports every apikey.InstanceHeartbeat. Each
//     report also deletes, at most once an hour, the instances not heard
//     from, and past their ServesUntil, for apikey.InstanceForgetAfter.
//   - Each report carries ServesUntil: its time plus Options.CacheTTL plus
//     apikey.InstanceStaleAfter (a lease that outlasts the next
//     heartbeats). Once a report is stored, neither the follower's feed
//     deadline nor a key's own cache entry lets a cached key be served
//     past the last ServesUntil stored (servingLeft), so a
//     Validator cut off from the store stops serving its cache by the
//     ServesUntil the store holds for it: until then it counts as
//     unreachable and blocks the confirmation of the changes it has not
//     applied; after, it is stopped and blocks nothing.
//   - The revision covers cached keys: every key change at or below it is
//     applied. An environment's settings changed by those revisions
//     (allowed origins) are reloaded just after, by the same loop.
//   - Close deletes the instance, so that it never blocks a confirmation.
//   - Report times are the system clock's (never Options.Now): liveness is
//     judged by the Manager's clock, so hosts' clocks must agree within a
//     heartbeat or so.
type instance struct {
	log    storage.InstanceLog
	id     string
	label  string
	ttl    time.Duration // Options.CacheTTL
	report func(error)

	revision    atomic.Int64  // the newest revision applied; -1 before the first
	servesUntil atomic.Int64  // the last ServesUntil stored, Unix ns; 0 before the first report
	changed     chan struct{} // buffered 1: a newer revision is waiting to be written
	forgotAt    time.Time     // the reporter's goroutine's: when it last forgot old instances
}

// newInstance returns the reporter of a Validator to log, whose cache
// serves for ttl after each read of the change feed, with a random id and
// the label host name:process id.
func newInstance(log storage.InstanceLog, ttl time.Duration, report func(error)) *instance {
	id := make([]byte, 16)
	_, _ = rand.Read(id) // never fails (crypto/rand)
	host, _ := os.Hostname()
	label := host + ":" + strconv.Itoa(os.Getpid())
	if len(label) > apikey.MaxInstanceLabelLength {
		label = label[len(label)-apikey.MaxInstanceLabelLength:] // keep the pid
	}
	in := &instance{log: log, id: hex.EncodeToString(id), label: label, ttl: ttl, report: report, changed: make(chan struct{}, 1)}
	in.revision.Store(-1)
	return in
}

// applied hands rev, the newest revision applied, to the reporter; it
// never blocks, and does nothing on a nil instance or an unchanged
// revision. Only the follower calls it. A revision lower than the last
// (the feed restarted after storage.ErrFeedGap: the store was reset or
// restored) replaces it too, so that the instance never claims what it
// has not applied.
func (in *instance) applied(rev int64) {
	if in == nil || in.revision.Swap(rev) == rev {
		return
	}
	select {
	case in.changed <- struct{}{}:
	default: // a write is already waiting: it reads the newest
	}
}

// run writes the reports until ctx ends.
func (in *instance) run(ctx context.Context) {
	tick := time.NewTicker(apikey.InstanceHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.changed:
		case <-tick.C:
		}
		if err := in.write(ctx); err != nil && ctx.Err() == nil {
			in.report(err)
		}
	}
}

// write reports the newest revision applied, if there is one, and now
// and then forgets old instances.
func (in *instance) write(ctx context.Context) error {
	rev := in.revision.Load()
	if rev < 0 {
		return nil
	}
	now := time.Now()
	// stores keep microseconds: the cache is bounded by what they hold
	until := now.Add(in.ttl + apikey.InstanceStaleAfter).Truncate(time.Microsecond)
	if err := in.log.ReportInstance(ctx, apikey.Instance{ID: in.id, Label: in.label, Applied: rev, ReportedAt: now, ServesUntil: until}); err != nil {
		return fmt.Errorf("middleware: reporting this instance: %w", err)
	}
	in.servesUntil.Store(until.UnixNano())
	if now.Sub(in.forgotAt) < time.Hour {
		return nil
	}
	in.forgotAt = now
	if _, err := in.log.ForgetInstances(ctx, now.Add(-apikey.InstanceForgetAfter)); err != nil {
		return fmt.Errorf("middleware: forgetting stopped instances: %w", err)
	}
	return nil
}

// servingLeft returns how long, by the system clock, cached keys may
// still be served under the last ServesUntil stored; ok is false on a nil
// instance and before the first report is stored (the instance is not
// counted then, and does not bound the cache).
func (in *instance) servingLeft() (left time.Duration, ok bool) {
	if in == nil {
		return 0, false
	}
	until := in.servesUntil.Load()
	if until == 0 {
		return 0, false
	}
	return time.Until(time.Unix(0, until)), true
}

// leave deletes the instance from the log; nil on a nil instance.
func (in *instance) leave(ctx context.Context) error {
	if in == nil {
		return nil
	}
	if err := in.log.RemoveInstance(ctx, in.id); err != nil {
		return fmt.Errorf("middleware: removing this instance: %w", err)
	}
	return nil
}
