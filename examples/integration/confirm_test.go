package integration_test

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/sqlstore"
)

// confirmInstances is how many helper processes (Validators) each
// revocation is confirmed on.
const confirmInstances = 3

// confirmBound bounds one WaitPropagated: far beyond any delay, so that a
// revocation never confirmed fails the test instead of hanging it.
const confirmBound = 30 * time.Second

// confirmCacheTTL is the helpers' CacheTTL: short, so that a killed
// helper stops blocking confirmations (at its ServesUntil, its last report
// plus CacheTTL plus apikey.InstanceStaleAfter) within seconds.
const confirmCacheTTL = 3 * time.Second

// confirmRig is a Manager on a store of its own, with no Validator (so it
// is no instance), and confirmInstances helper processes (TestHelperProcess)
// each with a Validator that caches keys, follows the feed and reports to
// the store's InstanceLog.
type confirmRig struct {
	manager *apikey.Manager
	keys    []apikey.Issued
	helpers []*helper
}

// newConfirmRig makes n extra keys on a fresh database of be and starts the
// helpers (with push on PostgreSQL: FeedWake from pgnotify), each of which
// caches every key; it waits until the three report.
func newConfirmRig(tb testing.TB, be backend, n int) *confirmRig {
	tb.Helper()
	dsn := be.fresh(tb)
	s := be.store(tb, dsn, sqlstore.Options{})
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
	require.NoError(tb, err)
	ctx := context.Background()
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(tb, err)
	r := &confirmRig{manager: m}
	for range n {
		issued, err := m.Create(ctx, owner, apikey.CreateRequest{
			Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: time.Now().Add(time.Hour),
		})
		require.NoError(tb, err)
		r.keys = append(r.keys, issued)
	}
	c := helperConfig{feedInterval: testFeedInterval, cacheTTL: confirmCacheTTL}
	if be.name == postgresBackend.name {
		c = helperConfig{feedInterval: middleware.DefaultFeedInterval, push: true, cacheTTL: confirmCacheTTL}
	}
	for range confirmInstances {
		h := startHelper(tb, be, dsn, c)
		for _, k := range r.keys {
			require.Equal(tb, accepted, h.get(tb, "/orders", k.Key), "process %d caches %s", h.cmd.Process.Pid, k.Key.Prefix())
		}
		r.helpers = append(r.helpers, h)
	}
	require.Eventually(tb, func() bool {
		p, err := m.Propagation(ctx, owner, r.keys[0].View.ID)
		return err == nil && p.Live == confirmInstances
	}, 10*time.Second, 10*time.Millisecond, "every helper reports")
	return r
}

// revokeConfirmed revokes key i, waits until it is confirmed, and checks
// that every helper in live refuses it. It returns the time from the
// return of Revoke to the return of WaitPropagated, and the Propagation.
func (r *confirmRig) revokeConfirmed(tb testing.TB, i int, live []*helper) (time.Duration, apikey.Propagation) {
	tb.Helper()
	ctx := context.Background()
	k := r.keys[i]
	_, err := r.manager.Revoke(ctx, owner, k.View.ID)
	require.NoError(tb, err)
	revoked := time.Now()
	wait, cancel := context.WithTimeout(ctx, confirmBound)
	defer cancel()
	p, err := r.manager.WaitPropagated(wait, owner, k.View.ID)
	took := time.Since(revoked)
	require.NoError(tb, err, "revocation %d confirmed: %+v", i, p)
	require.True(tb, p.Confirmed)
	assert.Equal(tb, apikey.Revoked, p.Status)
	assert.Equal(tb, p.Live, p.Applied)
	want := result{http.StatusUnauthorized, "revoked_key"}
	for _, h := range live {
		assert.Equal(tb, want, h.get(tb, "/orders", k.Key), "process %d refuses a confirmed revocation", h.cmd.Process.Pid)
	}
	return took, p
}

// kill ends the helper h at once, with no Close: its instance stays in the
// log until it is forgotten.
func (h *helper) kill(tb testing.TB) {
	h.once.Do(func() {
		require.NoError(tb, h.cmd.Process.Kill())
		go func() {
			for range h.lines {
			}
		}()
		<-h.done
	})
}

// confirmStops revokes keys a and b: a after the last helper stopped with
// Close (it leaves the log: confirmed by the others alone, none stopped or
// unreachable), b after the next to last was killed: once
// apikey.InstanceStaleAfter passed it is unreachable and the revocation
// is not confirmed while it may still serve its cache (before its
// ServesUntil); then it counts as stopped and the revocation is confirmed,
// not before its ServesUntil.
func (r *confirmRig) confirmStops(tb testing.TB, a, b int) {
	tb.Helper()
	n := len(r.helpers)
	r.helpers[n-1].stop(tb)
	_, p := r.revokeConfirmed(tb, a, r.helpers[:n-1])
	assert.Equal(tb, n-1, p.Live, "a helper that closed its Validator left")
	assert.Equal(tb, 0, p.Stopped)
	assert.Equal(tb, 0, p.Unreachable)

	r.helpers[n-2].kill(tb)
	ctx := context.Background()
	k := r.keys[b]
	_, err := r.manager.Revoke(ctx, owner, k.View.ID)
	require.NoError(tb, err)
	require.Eventually(tb, func() bool {
		p, err = r.manager.Propagation(ctx, owner, k.View.ID)
		require.NoError(tb, err)
		return p.Live == n-2 && p.Unreachable == 1
	}, confirmBound, 10*time.Millisecond, "the killed helper turns unreachable")
	assert.False(tb, p.Confirmed, "not confirmed while the killed helper may still serve its cache: %+v", p)
	assert.True(tb, p.CheckedAt.Before(p.UnreachableUntil), "checked before its ServesUntil")
	servesUntil := p.UnreachableUntil

	wait, cancel := context.WithTimeout(ctx, confirmBound)
	defer cancel()
	p, err = r.manager.WaitPropagated(wait, owner, k.View.ID)
	require.NoError(tb, err, "confirmed once the killed helper's ServesUntil passed: %+v", p)
	assert.True(tb, p.Confirmed)
	assert.False(tb, p.CheckedAt.Before(servesUntil), "confirmed at %v, not before its ServesUntil %v", p.CheckedAt, servesUntil)
	assert.Equal(tb, n-2, p.Live)
	assert.Equal(tb, n-2, p.Applied)
	assert.Equal(tb, 0, p.Unreachable)
	assert.Equal(tb, 1, p.Stopped, "the killed helper counts as stopped")
	want := result{http.StatusUnauthorized, "revoked_key"}
	for _, h := range r.helpers[:n-2] {
		assert.Equal(tb, want, h.get(tb, "/orders", k.Key), "process %d refuses a confirmed revocation", h.cmd.Process.Pid)
	}
}

// TestConfirmedRevocationBetweenProcesses: three helper processes cache
// keys; each of 10 revocations made here is confirmed by all three, and
// each helper refuses the key once it is; a helper that closed leaves,
// and one killed blocks as unreachable until its ServesUntil (the helpers'
// CacheTTL is 3 s), then counts as stopped and does not block. SQLite by polling
// (FeedInterval 100 ms) and PostgreSQL with push.
func TestConfirmedRevocationBetweenProcesses(t *testing.T) {
	const revocations = 10
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			r := newConfirmRig(t, be, revocations+2)
			for i := range revocations {
				_, p := r.revokeConfirmed(t, i, r.helpers)
				assert.Equal(t, confirmInstances, p.Applied, "revocation %d", i)
				assert.Equal(t, 0, p.Stopped)
				assert.Equal(t, 0, p.Unreachable)
				assert.Zero(t, p.Pending)
				assert.False(t, p.ConfirmedBy.IsZero())
			}
			r.confirmStops(t, revocations, revocations+1)
		})
	}
}

// BenchmarkConfirmedRevocation measures how long a revocation takes to be
// confirmed on three Validators in three OS processes on PostgreSQL with
// push (pgnotify as FeedWake, FeedInterval 1 s): 100 revocations, one
// after another, each timed from the return of Manager.Revoke to the
// return of Manager.WaitPropagated (which reads the instances after 10
// ms, then every 15, 22, ... up to 100 ms). Each confirmed revocation is
// checked to be refused by every helper (not timed). It then checks that a
// helper that closed does not block, and one killed blocks only until its
// ServesUntil (the helpers' CacheTTL is 3 s). The target (issue 23):
// confirmed p99 at most 100 ms.
//
// It reports median-ms, p99-ms and max-ms (nearest rank); ns/op is
// meaningless and left out.
//
//	go test -run '^$' -bench ConfirmedRevocation ./examples/integration
func BenchmarkConfirmedRevocation(b *testing.B) {
	const revocations = 100
	var took []time.Duration
	for b.Loop() {
		b.StopTimer()
		r := newConfirmRig(b, postgresBackend, revocations+2)
		b.StartTimer()
		for i := range revocations {
			d, p := r.revokeConfirmed(b, i, r.helpers)
			require.Equal(b, confirmInstances, p.Applied, "revocation %d", i)
			took = append(took, d)
		}
		b.StopTimer()
		r.confirmStops(b, revocations, revocations+1)
		b.StartTimer()
	}
	slices.Sort(took)
	b.Logf("%d revocations confirmed on %d processes: min %s, median %s, p99 %s, max %s",
		len(took), confirmInstances, ms(took[0]), ms(percentile(took, 0.5)), ms(percentile(took, 0.99)), ms(took[len(took)-1]))
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average at the end: %s", strings.TrimSpace(string(load)))
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(millis(percentile(took, 0.5)), "median-ms")
	b.ReportMetric(millis(percentile(took, 0.99)), "p99-ms")
	b.ReportMetric(millis(took[len(took)-1]), "max-ms")
}
