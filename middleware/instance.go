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
//     revision to report. New writes the first report once it has read
//     the feed's revision.
//   - Until a report is stored, the Validator serves nothing from its
//     cache (servingLeft is noLease): every request reads the store, so that a
//     Validator the InstanceLog does not know never admits a key from its
//     cache.
//   - After each read of the whole feed that moved its revision, the
//     follower hands the revision over (applied, which never blocks) and
//     the reporter's goroutine writes it: at most one write is in flight,
//     and the newest revision wins. Nothing runs on the request path.
//   - With nothing new, it reports every apikey.InstanceHeartbeat. Each
//     report also deletes, at most once an hour, the instances not heard
//     from, and past their ServesUntil, for apikey.InstanceForgetAfter.
//   - Each report carries a lease, Options.CacheTTL plus
//     apikey.InstanceStaleAfter: the store stamps the report with its own
//     clock and stores ServesUntil, its time plus the lease. The Validator
//     measures the lease on its own monotonic clock from before it sent
//     the report, less apikey.InstanceLeaseMargin: neither the follower's
//     feed deadline nor a key's own cache entry lets a cached key be
//     served past it (servingLeft; requests read a clock that may lag by
//     a tick, 10 ms, well within the margin), so a Validator cut off from the store
//     stops serving its cache before the ServesUntil the store holds for
//     it, whatever the clocks of the hosts: until then it counts as
//     unreachable and blocks the confirmation of the changes it has not
//     applied; after, it is stopped and blocks nothing.
//   - The revision covers cached keys: every key change at or below it is
//     applied. An environment's settings changed by those revisions
//     (allowed origins, suspensions) are reloaded just after, by the same
//     loop, and are not bounded by the lease.
//   - Close deletes the instance, so that it never blocks a confirmation;
//     the store refuses the id from then on, so a report still in flight
//     does not bring it back.
type instance struct {
	log    storage.InstanceLog
	id     string
	label  string
	lease  time.Duration // Options.CacheTTL plus apikey.InstanceStaleAfter
	report func(error)
	start  time.Time // the origin of servesFor, with a monotonic reading

	revision  atomic.Int64  // the newest revision applied; -1 before the first
	servesFor atomic.Int64  // the end of the last lease stored, in ns since start; 0 before the first report
	changed   chan struct{} // buffered 1: a newer revision is waiting to be written
	forgotAt  time.Time     // the reporter's goroutine's: when it last forgot old instances
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
	in := &instance{log: log, id: hex.EncodeToString(id), label: label, lease: ttl + apikey.InstanceStaleAfter,
		report: report, start: time.Now(), changed: make(chan struct{}, 1)}
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

// first writes the first report, in New, and reports its error; nothing
// on a nil instance or before a revision is applied.
func (in *instance) first(ctx context.Context) {
	if in == nil {
		return
	}
	if err := in.write(ctx); err != nil {
		in.report(err)
		return
	}
	select {
	case <-in.changed: // written: run need not write it again
	default:
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
	sent := time.Now() // the lease runs from before the store stamps it
	if err := in.log.ReportInstance(ctx, apikey.InstanceReport{ID: in.id, Label: in.label, Applied: rev, Lease: in.lease}); err != nil {
		return fmt.Errorf("middleware: reporting this instance: %w", err)
	}
	in.servesFor.Store(int64(sent.Add(in.lease - apikey.InstanceLeaseMargin).Sub(in.start)))
	if sent.Sub(in.forgotAt) < time.Hour {
		return nil
	}
	in.forgotAt = sent
	if _, err := in.log.ForgetInstances(ctx, apikey.InstanceForgetAfter); err != nil {
		return fmt.Errorf("middleware: forgetting stopped instances: %w", err)
	}
	return nil
}

// noLease is servingLeft before the first report is stored: a lease that
// ended long before any request clock's reading (which may lag the system
// clock by a tick), so that nothing is served from the cache.
const noLease = -time.Hour

// servingLeft returns how long, by the monotonic clock, cached keys may
// still be served under the last lease stored: noLease before the first
// report is stored. ok is false on a nil instance (no InstanceLog, or no
// change feed: nothing bounds the cache but CacheTTL).
func (in *instance) servingLeft() (left time.Duration, ok bool) {
	if in == nil {
		return 0, false
	}
	end := in.servesFor.Load()
	if end == 0 {
		return noLease, true
	}
	return time.Until(in.start.Add(time.Duration(end))), true
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
