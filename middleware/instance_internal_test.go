package middleware

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/storage/memory"
)

// TestInstanceApplied: a revision that moves is handed over with at most
// one signal waiting; the same revision again signals nothing; a lower one
// (a feed restarted after a gap) replaces it; a nil instance ignores it.
func TestInstanceApplied(t *testing.T) {
	tests := []struct {
		name    string
		revs    []int64
		drain   bool // take the waiting signal before the revisions
		want    int64
		signals int
	}{
		{"the first", []int64{5}, false, 5, 1},
		{"coalesced", []int64{5, 6, 9}, false, 9, 1},
		{"unchanged", []int64{9}, true, 9, 0},
		{"lower, after a gap", []int64{2}, true, 2, 1},
	}
	in := newInstance(memory.New(), time.Minute, func(error) {})
	assert.Equal(t, int64(-1), in.revision.Load(), "nothing applied yet")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.drain {
				select {
				case <-in.changed:
				default:
				}
			}
			for _, rev := range tt.revs {
				in.applied(rev)
			}
			assert.Equal(t, tt.want, in.revision.Load())
			assert.Len(t, in.changed, tt.signals)
		})
	}
	var none *instance
	assert.NotPanics(t, func() { none.applied(1) })
}

// leaseLeft sets the lease of in as if its last report left d.
func leaseLeft(in *instance, d time.Duration) {
	in.servesFor.Store(int64(time.Now().Add(d).Sub(in.start)))
}

// skewedLog is an InstanceLog whose clock is off by skew: the stamps of
// the reports it stores, and the time Instances returns, are shifted.
type skewedLog struct {
	*memory.Store
	skew time.Duration
}

func (l skewedLog) Instances(ctx context.Context) ([]apikey.Instance, time.Time, error) {
	list, now, err := l.Store.Instances(ctx)
	for i := range list {
		list[i].ReportedAt = list[i].ReportedAt.Add(l.skew)
		list[i].ServesUntil = list[i].ServesUntil.Add(l.skew)
	}
	return list, now.Add(l.skew), err
}

// TestInstanceLease: a report carries a lease, CacheTTL plus
// apikey.InstanceStaleAfter, which the store turns into ServesUntil by its
// own clock; the instance serves its cache for the lease less
// apikey.InstanceLeaseMargin from before it sent the report, by its own
// clock, whatever the store's; before the first report is stored it
// serves nothing from the cache; a nil instance does not bound the cache.
func TestInstanceLease(t *testing.T) {
	const ttl = 3 * time.Second
	for name, skew := range map[string]time.Duration{"same clock": 0, "store an hour behind": -time.Hour, "store an hour ahead": time.Hour} {
		t.Run(name, func(t *testing.T) {
			log := skewedLog{memory.New(), skew}
			in := newInstance(log, ttl, func(error) {})
			left, ok := in.servingLeft()
			require.True(t, ok)
			assert.Equal(t, noLease, left, "nothing reported yet: nothing served from the cache")
			in.applied(4)
			before := time.Now()
			require.NoError(t, in.write(context.Background()))
			after := time.Now()
			list, now, err := log.Instances(context.Background())
			require.NoError(t, err)
			require.Len(t, list, 1)
			got := list[0]
			assert.True(t, got.ReportedAt.Add(ttl+apikey.InstanceStaleAfter).Equal(got.ServesUntil),
				"ServesUntil %v of a report at %v", got.ServesUntil, got.ReportedAt)
			assert.True(t, got.Serving(now) && got.Live(now), "live and serving by the store's clock")
			lease := ttl + apikey.InstanceStaleAfter - apikey.InstanceLeaseMargin
			most := lease - time.Since(after) // the report was sent before after
			left, ok = in.servingLeft()
			require.True(t, ok)
			least := lease - time.Since(before) // and after before
			assert.LessOrEqual(t, left, most, "measured from before the report was sent, less the margin")
			assert.GreaterOrEqual(t, left, least, "by the Validator's clock, whatever the store's")
			assert.Greater(t, left, ttl, "a heartbeat's report leaves more than CacheTTL")
			assert.Less(t, now.Add(left), got.ServesUntil, "the instance stops before the store's ServesUntil")
		})
	}
	var none *instance
	_, ok := none.servingLeft()
	assert.False(t, ok)
}

// failingLog is an InstanceLog whose reports fail.
type failingLog struct{ *memory.Store }

func (failingLog) ReportInstance(context.Context, apikey.InstanceReport) error {
	return errors.New("read-only")
}

// TestInstanceUnreportedServesNothing: a Validator whose report has not
// been stored serves nothing from its cache, whatever its feed reads:
// every request reads the store.
func TestInstanceUnreportedServesNothing(t *testing.T) {
	var errs []error
	in := newInstance(failingLog{memory.New()}, time.Minute, func(err error) { errs = append(errs, err) })
	in.applied(3)
	in.first(context.Background())
	require.Len(t, errs, 1, "the failed first report is reported")
	left, ok := in.servingLeft()
	require.True(t, ok)
	assert.Equal(t, noLease, left)
}

// TestFollowerReadBoundedByServesUntil: a read of the change feed lets the
// cache serve for CacheTTL, but never past the ServesUntil the instance
// last stored, so that a Validator whose reports stopped reaching the
// store stops serving its cache by the ServesUntil the store holds.
func TestFollowerReadBoundedByServesUntil(t *testing.T) {
	const ttl = time.Minute
	key := keycache.KeyOf("server-" + strings.Repeat("a", apikey.KeyLength-len("server-")))
	tests := map[string]struct {
		servesUntil time.Duration // the lease left, from now; -1: no report stored
		at          time.Duration // when the cache is asked, from now
		served      bool
		none        bool // no instance (no InstanceLog)
	}{
		"no InstanceLog: CacheTTL":      {none: true, at: ttl - time.Second, served: true},
		"no InstanceLog: past CacheTTL": {none: true, at: ttl + time.Second},
		"no report: nothing":            {servesUntil: -1, at: time.Millisecond},
		"ServesUntil beyond CacheTTL":   {servesUntil: ttl + 10*time.Second, at: ttl - time.Second, served: true},
		"before an earlier ServesUntil": {servesUntil: 10 * time.Second, at: 5 * time.Second, served: true},
		"past an earlier ServesUntil":   {servesUntil: 10 * time.Second, at: 20 * time.Second},
		"a ServesUntil passed already":  {servesUntil: -time.Second, at: time.Second},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := keycache.New[*Identity](10, true)
			require.NoError(t, err)
			now := time.Now()
			c.AddValid(&entry{Key: key, KeyID: "k1", Value: &Identity{}, Until: now.Add(-time.Second)}, c.Token())
			in := newInstance(memory.New(), ttl, func(error) {})
			if tt.servesUntil != -1 {
				leaseLeft(in, tt.servesUntil)
			}
			if tt.none {
				in = nil
			}
			f := &follower{cache: c, ttl: ttl, instance: in, stats: &stats{}}
			f.read(1, now)
			assert.Equal(t, tt.served, c.Get(key, now.Add(tt.at)) != nil)
		})
	}
}

// TestEntryBoundedByServesUntil: a key read from the store is cached for
// CacheTTL, but never past the ServesUntil its Validator last stored.
func TestEntryBoundedByServesUntil(t *testing.T) {
	const ttl = time.Minute
	key := keycache.KeyOf("server-" + strings.Repeat("a", apikey.KeyLength-len("server-")))
	now := time.Now()
	tests := map[string]struct {
		servesUntil time.Duration // the lease left, from now; -1: no report stored
		want        time.Duration // the entry's Until, from now
	}{
		"no report":                   {servesUntil: -1, want: noLease},
		"ServesUntil beyond CacheTTL": {servesUntil: ttl + time.Hour, want: ttl},
		"an earlier ServesUntil":      {servesUntil: 10 * time.Second, want: 10 * time.Second},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := newInstance(memory.New(), ttl, func(error) {})
			if tt.servesUntil != -1 {
				leaseLeft(in, tt.servesUntil)
			}
			vf := &verifier{ttl: ttl, instance: in}
			e := vf.newEntry(key, apikey.Record{ID: "k1", Type: apikey.Server}, now)
			assert.WithinDuration(t, now.Add(tt.want), e.Until, time.Second)
			assert.False(t, e.Until.After(now.Add(tt.want)), "never beyond")
		})
	}
}
