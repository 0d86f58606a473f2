package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

func instancesOf(t testing.TB, l storage.InstanceLog) map[string]apikey.Instance {
	t.Helper()
	list, err := l.Instances(context.Background())
	require.NoError(t, err)
	out := map[string]apikey.Instance{}
	for i, in := range list {
		if i > 0 {
			assert.Less(t, list[i-1].ID, in.ID, "instances come back by id")
		}
		assert.Equal(t, time.UTC, in.ReportedAt.Location(), "times come back in UTC")
		out[in.ID] = in
	}
	return out
}

// testInstanceLog: a report is stored under its id and replaces the last
// one (ServesUntil too), keeping StartedAt, and AppliedAt while Applied
// stays the same;
// RemoveInstance deletes; ForgetInstances deletes only the instances
// both last reported and past their ServesUntil before its time.
func testInstanceLog(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.InstanceLog](t, s)
	ctx := context.Background()
	assert.Empty(t, instancesOf(t, l), "none at first")
	at := func(seconds int) time.Time { return base.Add(time.Duration(seconds) * time.Second) }
	for _, in := range []apikey.Instance{
		{ID: "a", Label: "host-a:1", Applied: 5, ReportedAt: at(0), ServesUntil: at(60)},
		{ID: "b", Label: "host-b:2", Applied: 3, ReportedAt: at(1), ServesUntil: at(61)},
		{ID: "a", Label: "host-a:1", Applied: 5, ReportedAt: at(2), ServesUntil: at(62)},  // a heartbeat
		{ID: "b", Label: "host-b:22", Applied: 7, ReportedAt: at(3), ServesUntil: at(13)}, // applied more, a shorter TTL
		{ID: "c", Label: "", Applied: 0, ReportedAt: at(4)},                               // no ServesUntil
	} {
		require.NoError(t, l.ReportInstance(ctx, in))
	}
	got := instancesOf(t, l)
	tests := map[string]struct {
		id                               string
		label                            string
		applied                          int64
		appliedAt, reportedAt, startedAt time.Time
		servesUntil                      time.Time
	}{
		"heartbeat keeps AppliedAt": {"a", "host-a:1", 5, at(0), at(2), at(0), at(62)},
		"applied more":              {"b", "host-b:22", 7, at(3), at(3), at(1), at(13)},
		"one report":                {"c", "", 0, at(4), at(4), at(4), time.Time{}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in, ok := got[tt.id]
			require.True(t, ok)
			assert.Equal(t, tt.label, in.Label)
			assert.Equal(t, tt.applied, in.Applied)
			assert.True(t, tt.appliedAt.Equal(in.AppliedAt), "AppliedAt: want %v, got %v", tt.appliedAt, in.AppliedAt)
			assert.True(t, tt.reportedAt.Equal(in.ReportedAt), "ReportedAt: want %v, got %v", tt.reportedAt, in.ReportedAt)
			assert.True(t, tt.startedAt.Equal(in.StartedAt), "StartedAt: want %v, got %v", tt.startedAt, in.StartedAt)
			assert.True(t, tt.servesUntil.Equal(in.ServesUntil), "ServesUntil: want %v, got %v", tt.servesUntil, in.ServesUntil)
		})
	}
	assert.Len(t, got, 3)

	require.NoError(t, l.RemoveInstance(ctx, "a"))
	require.NoError(t, l.RemoveInstance(ctx, "unknown"), "an unknown id")
	n, err := l.ForgetInstances(ctx, at(4))
	require.NoError(t, err)
	assert.Equal(t, 0, n, "b was last reported before, but may serve its cache until at(13)")
	n, err = l.ForgetInstances(ctx, at(13))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "c, last reported before and serving no more; b serves until at(13)")
	got = instancesOf(t, l)
	assert.Len(t, got, 1)
	assert.Contains(t, got, "b")
	n, err = l.ForgetInstances(ctx, at(14))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "b")
	assert.Empty(t, instancesOf(t, l))
}

// testManagerPropagation: a revocation's record revision is the change
// feed's revision of it; Propagation counts the live instances that
// applied it, lists those that did not, counts as unreachable (blocking)
// those not heard from that had not applied it and may still serve their
// cache, ignores stopped ones; viewers may ask, other accounts may not;
// WaitPropagated returns once the last live instance reports and the
// unreachable one's ServesUntil has passed, and with ctx's error while one
// lags.
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

	now := time.Now()
	report := func(id string, applied int64, at, until time.Time) {
		t.Helper()
		require.NoError(t, l.ReportInstance(ctx, apikey.Instance{ID: id, Label: id, Applied: applied, ReportedAt: at, ServesUntil: until}))
	}
	silent := now.Add(-apikey.InstanceStaleAfter - time.Second)
	servesUntil := now.Add(time.Second)
	report("ahead", rev+3, now, now.Add(time.Minute))
	report("exact", rev, now, now.Add(time.Minute))
	report("behind", rev-1, now, now.Add(time.Minute))
	report("unreachable", rev-1, silent, servesUntil)
	report("silent-applied", rev, silent, now.Add(time.Minute))
	report("stopped", rev-1, now.Add(-apikey.InstanceStaleAfter-time.Minute), now.Add(-time.Second))

	viewer := apikey.Actor{ID: "viewer", Role: apikey.ReadOnly, Account: acme}
	p, err := m.Propagation(ctx, viewer, issued.View.Prefix)
	require.NoError(t, err)
	assert.Equal(t, issued.View.ID, p.KeyID)
	assert.Equal(t, apikey.Revoked, p.Status)
	assert.Equal(t, rev, p.Revision)
	assert.Equal(t, 2, p.Applied)
	assert.Equal(t, 3, p.Live)
	assert.Equal(t, 1, p.Unreachable, "not heard from, may still serve the key")
	assert.True(t, servesUntil.Truncate(time.Microsecond).Equal(p.UnreachableUntil), "UnreachableUntil: %v", p.UnreachableUntil)
	assert.Equal(t, 2, p.Stopped, "past its ServesUntil, or had applied the change")
	assert.False(t, p.Confirmed)
	assert.True(t, p.ConfirmedBy.IsZero())
	if assert.Len(t, p.Pending, 1) {
		assert.Equal(t, "behind", p.Pending[0].ID)
	}

	_, err = m.Propagation(ctx, globexOwner, issued.View.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "another account's key")

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	p, err = m.WaitPropagated(short, acmeOwner, issued.View.ID)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "an instance lags")
	assert.False(t, p.Confirmed)

	done := make(chan error, 1)
	go func() {
		time.Sleep(30 * time.Millisecond)
		done <- l.ReportInstance(ctx, apikey.Instance{ID: "behind", Label: "behind", Applied: rev, ReportedAt: time.Now(), ServesUntil: time.Now().Add(time.Minute)})
	}()
	p, err = m.WaitPropagated(ctx, acmeOwner, issued.View.ID)
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.True(t, p.Confirmed)
	assert.False(t, p.CheckedAt.Before(servesUntil.Truncate(time.Microsecond)), "waited through the unreachable instance's ServesUntil")
	assert.Equal(t, 0, p.Unreachable)
	assert.Equal(t, 3, p.Stopped)
	assert.Equal(t, 3, p.Applied)
	assert.Equal(t, 3, p.Live)
	assert.Empty(t, p.Pending)
	assert.False(t, p.ConfirmedBy.IsZero())
	assert.False(t, p.ConfirmedBy.After(p.CheckedAt), "confirmed by the time it was checked")
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
				if err := l.ReportInstance(ctx, apikey.Instance{ID: fmt.Sprintf("i%d", i), Label: "host", Applied: int64(n + 1),
					ReportedAt: base.Add(time.Duration(n) * time.Second)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range reports {
			if _, err := l.Instances(ctx); err != nil {
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
	got := instancesOf(t, l)
	require.Len(t, got, instances)
	for id, in := range got {
		assert.Equal(t, int64(reports), in.Applied, id)
		assert.True(t, base.Equal(in.StartedAt), "%s: StartedAt is the first report", id)
		assert.True(t, base.Add((reports-1)*time.Second).Equal(in.AppliedAt), "%s: AppliedAt is the last report's", id)
	}
}
