package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// clockSlack is how far a store's instance clock may be from this
// process's in the conformance cases (a database server's clock).
const clockSlack = 2 * time.Second

func instancesOf(t testing.TB, l storage.InstanceLog) (map[string]apikey.Instance, time.Time) {
	t.Helper()
	list, now, err := l.Instances(context.Background())
	require.NoError(t, err)
	assert.Equal(t, time.UTC, now.Location(), "the store's clock comes back in UTC")
	assert.WithinDuration(t, time.Now(), now, clockSlack, "the store's clock")
	out := map[string]apikey.Instance{}
	for i, in := range list {
		if i > 0 {
			assert.Less(t, list[i-1].ID, in.ID, "instances come back by id")
		}
		assert.Equal(t, time.UTC, in.ReportedAt.Location(), "times come back in UTC")
		assert.False(t, in.ReportedAt.After(now), "%s: reported before the clock read before it", in.ID)
		out[in.ID] = in
	}
	return out, now
}

// testInstanceLog: a report is stored under its id and replaces the last
// one, stamped by the store's clock: ServesUntil is its time plus the
// lease; StartedAt is kept, and AppliedAt while Applied stays the same;
// RemoveInstance deletes and refuses later reports under the id until
// ForgetInstances forgets it; ForgetInstances deletes only the instances
// both last reported and past their ServesUntil more than its age ago,
// and the ids removed more than its age ago.
func testInstanceLog(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.InstanceLog](t, s)
	ctx := context.Background()
	got, _ := instancesOf(t, l)
	assert.Empty(t, got, "none at first")
	before := time.Now()
	for _, r := range []apikey.InstanceReport{
		{ID: "a", Label: "host-a:1", Applied: 5, Lease: time.Minute},
		{ID: "b", Label: "host-b:2", Applied: 3, Lease: time.Minute},
		{ID: "a", Label: "host-a:1", Applied: 5, Lease: time.Minute},       // a heartbeat
		{ID: "b", Label: "host-b:22", Applied: 7, Lease: 10 * time.Second}, // applied more, a shorter lease
		{ID: "c", Label: "", Applied: 0},                                   // no lease
	} {
		require.NoError(t, l.ReportInstance(ctx, r))
		time.Sleep(2 * time.Millisecond) // distinct stamps, at millisecond precision
	}
	got, now := instancesOf(t, l)
	require.Len(t, got, 3)
	for id, in := range got {
		assert.WithinDuration(t, before, in.StartedAt, clockSlack, "%s: stamped by the store's clock", id)
		assert.False(t, in.AppliedAt.Before(in.StartedAt), id)
		assert.False(t, in.ReportedAt.Before(in.AppliedAt), id)
		assert.True(t, in.Live(now), id)
	}
	tests := map[string]struct {
		id      string
		label   string
		applied int64
		lease   time.Duration
		// AppliedAt is the first report's (StartedAt), or the last's
		appliedFirst, startedLast bool
	}{
		"heartbeat keeps AppliedAt": {"a", "host-a:1", 5, time.Minute, true, false},
		"applied more":              {"b", "host-b:22", 7, 10 * time.Second, false, false},
		"one report":                {"c", "", 0, 0, true, true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := got[tt.id]
			assert.Equal(t, tt.label, in.Label)
			assert.Equal(t, tt.applied, in.Applied)
			assert.True(t, in.ReportedAt.Add(tt.lease).Equal(in.ServesUntil), "ServesUntil %v of a report at %v", in.ServesUntil, in.ReportedAt)
			if tt.appliedFirst {
				assert.True(t, in.AppliedAt.Equal(in.StartedAt), "AppliedAt %v, StartedAt %v", in.AppliedAt, in.StartedAt)
			} else {
				assert.True(t, in.AppliedAt.Equal(in.ReportedAt), "AppliedAt %v, ReportedAt %v", in.AppliedAt, in.ReportedAt)
				assert.True(t, in.StartedAt.Before(in.AppliedAt), "StartedAt is the first report's")
			}
			assert.Equal(t, tt.startedLast, in.StartedAt.Equal(in.ReportedAt), "one report: StartedAt is ReportedAt")
		})
	}

	require.NoError(t, l.RemoveInstance(ctx, "a"))
	require.NoError(t, l.RemoveInstance(ctx, "unknown"), "an unknown id")
	require.NoError(t, l.ReportInstance(ctx, apikey.InstanceReport{ID: "a", Label: "host-a:1", Applied: 6, Lease: time.Minute}),
		"a report in flight when a was removed")
	require.NoError(t, l.ReportInstance(ctx, apikey.InstanceReport{ID: "unknown", Applied: 1, Lease: time.Minute}))
	got, _ = instancesOf(t, l)
	assert.NotContains(t, got, "a", "a removed instance is not brought back")
	assert.NotContains(t, got, "unknown", "an id removed before its first report is refused too")

	n, err := l.ForgetInstances(ctx, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "nothing is an hour old")
	time.Sleep(30 * time.Millisecond)
	n, err = l.ForgetInstances(ctx, 20*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "c, last reported and serving no more 20 ms ago, and the ids a and unknown; b serves for 10 s")
	got, _ = instancesOf(t, l)
	assert.Len(t, got, 1)
	assert.Contains(t, got, "b")
	require.NoError(t, l.ReportInstance(ctx, apikey.InstanceReport{ID: "a", Label: "host-a:1", Applied: 6, Lease: time.Minute}))
	got, _ = instancesOf(t, l)
	assert.Contains(t, got, "a", "a forgotten id reports again")
}

// testManagerPropagation: a revocation's record revision is the change
// feed's revision of it; with no instance it is not confirmed (no
// instance known); Propagation counts the live instances that applied
// it, and those that did not, with an instance ahead of the store's
// revision (another history) among the latter; only an operator gets
// them listed, and the JSON form names none; viewers may ask, other
// accounts may not; WaitPropagated returns once the last live instance
// reports, and with ctx's error while one lags.
func testManagerPropagation(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.InstanceLog](t, s)
	feed := as[storage.ChangeFeed](t, s)
	m := manager(t, s)
	ctx := context.Background()
	bootstrap(t, m, acmeOwner, apikey.Production)
	issued, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	require.NoError(t, err)
	before, err := feed.Revision(ctx)
	require.NoError(t, err)
	_, err = m.Revoke(ctx, acmeOwner, issued.View.ID)
	require.NoError(t, err)
	rev := mustKey(t, s, issued.View.ID).Revision
	changes, _, err := feed.Changes(ctx, before, 0)
	require.NoError(t, err)
	require.Len(t, changes, 1, "one entry for the revocation")
	assert.Equal(t, rev, changes[0].Revision, "the record's revision is the feed's")
	current, err := feed.Revision(ctx)
	require.NoError(t, err)

	p, err := m.Propagation(ctx, acmeOwner, issued.View.ID)
	require.NoError(t, err)
	assert.False(t, p.Confirmed, "no instance known: nothing confirms it")
	assert.Equal(t, apikey.PropagationNoInstances, p.Reason)
	assert.Equal(t, 0, p.Live)
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	_, err = m.WaitPropagated(short, acmeOwner, issued.View.ID)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "an empty log confirms nothing")

	report := func(id string, applied int64) {
		t.Helper()
		require.NoError(t, l.ReportInstance(ctx, apikey.InstanceReport{ID: id, Label: "host-" + id + ":1", Applied: applied, Lease: time.Minute}))
	}
	report("ahead", current+5) // the store was restored: the instance follows another history
	report("exact", rev)
	report("behind", rev-1)

	viewer := apikey.Actor{ID: "viewer", Role: apikey.ReadOnly, Account: acme}
	p, err = m.Propagation(ctx, viewer, issued.View.Prefix)
	require.NoError(t, err)
	assert.Equal(t, issued.View.ID, p.KeyID)
	assert.Equal(t, apikey.Revoked, p.Status)
	assert.Equal(t, rev, p.Revision)
	assert.Equal(t, 1, p.Applied, "exact; ahead of the store's revision is not applied")
	assert.Equal(t, 3, p.Live)
	assert.Equal(t, 2, p.Pending)
	assert.Nil(t, p.PendingInstances, "listed for operators only")
	assert.False(t, p.Confirmed)
	assert.Equal(t, apikey.PropagationPending, p.Reason)
	assert.True(t, p.ConfirmedBy.IsZero())
	out, err := json.Marshal(p)
	require.NoError(t, err)
	assert.NotContains(t, string(out), "host-", "the JSON form names no instance")

	ops := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
	p, err = m.Propagation(ctx, ops, issued.View.ID)
	require.NoError(t, err)
	if assert.Len(t, p.PendingInstances, 2) {
		assert.Equal(t, "ahead", p.PendingInstances[0].ID)
		assert.Equal(t, "behind", p.PendingInstances[1].ID)
	}

	_, err = m.Propagation(ctx, globexOwner, issued.View.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "another account's key")

	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	p, err = m.WaitPropagated(short, acmeOwner, issued.View.ID)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "an instance lags")
	assert.False(t, p.Confirmed)

	done := make(chan error, 1)
	go func() {
		time.Sleep(30 * time.Millisecond)
		done <- l.ReportInstance(ctx, apikey.InstanceReport{ID: "behind", Label: "behind", Applied: rev, Lease: time.Minute})
	}()
	report("ahead", current) // back on the store's history (after storage.ErrFeedGap)
	p, err = m.WaitPropagated(ctx, acmeOwner, issued.View.ID)
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.True(t, p.Confirmed)
	assert.Empty(t, p.Reason)
	assert.Equal(t, 3, p.Applied)
	assert.Equal(t, 3, p.Live)
	assert.Equal(t, 0, p.Pending)
	assert.False(t, p.ConfirmedBy.IsZero())
	// The instances are read after the clock (InstanceLog.Instances): a
	// report stored in between may be stamped after CheckedAt, never after
	// a reading of the clock once the wait has returned.
	_, after, err := l.Instances(ctx)
	require.NoError(t, err)
	assert.False(t, p.ConfirmedBy.After(after), "confirmed by the time the wait returned")
}

// testInstanceLogConcurrent: instances reporting at once, each under its
// own id, all end with their last report; an Instances read meanwhile
// never fails.
func testInstanceLogConcurrent(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.InstanceLog](t, s)
	ctx := context.Background()
	const instances, reports = 4, 20
	errs := make(chan error, instances+1)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() {
			for n := range reports {
				if err := l.ReportInstance(ctx, apikey.InstanceReport{ID: fmt.Sprintf("i%d", i), Label: "host", Applied: int64(n + 1),
					Lease: time.Minute}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range reports {
			if _, _, err := l.Instances(ctx); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, _ := instancesOf(t, l)
	require.Len(t, got, instances)
	for id, in := range got {
		assert.Equal(t, int64(reports), in.Applied, id)
		assert.True(t, in.AppliedAt.Equal(in.ReportedAt), "%s: AppliedAt is the last report's", id)
		assert.False(t, in.StartedAt.After(in.AppliedAt), "%s: StartedAt is the first report's", id)
		assert.True(t, in.ReportedAt.Add(time.Minute).Equal(in.ServesUntil), id)
	}
}
