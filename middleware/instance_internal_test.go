package middleware

import (
	"context"
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

// TestInstanceServesUntil: a report carries ServesUntil, its time plus
// CacheTTL plus apikey.InstanceStaleAfter, and the instance keeps the one
// stored; before the first report, and on a nil instance, nothing bounds
// the cache.
func TestInstanceServesUntil(t *testing.T) {
	log := memory.New()
	in := newInstance(log, 3*time.Second, func(error) {})
	_, ok := in.servingLeft()
	assert.False(t, ok, "nothing reported yet")
	in.applied(4)
	require.NoError(t, in.write(context.Background()))
	list, err := log.Instances(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 1)
	got := list[0]
	assert.True(t, got.ReportedAt.Add(3*time.Second+apikey.InstanceStaleAfter).Equal(got.ServesUntil),
		"ServesUntil %v of a report at %v", got.ServesUntil, got.ReportedAt)
	assert.Equal(t, got.ServesUntil.UnixNano(), in.servesUntil.Load(), "the cache is bounded by the ServesUntil stored")
	left, ok := in.servingLeft()
	require.True(t, ok)
	assert.Greater(t, left, 3*time.Second, "a heartbeat's report leaves more than CacheTTL")
	var none *instance
	_, ok = none.servingLeft()
	assert.False(t, ok)
}

// TestFollowerReadBoundedByServesUntil: a read of the change feed lets the
// cache serve for CacheTTL, but never past the ServesUntil the instance
// last stored, so that a Validator whose reports stopped reaching the
// store stops serving its cache by the ServesUntil the store holds.
func TestFollowerReadBoundedByServesUntil(t *testing.T) {
	const ttl = time.Minute
	key := keycache.KeyOf("server-" + strings.Repeat("a", apikey.KeyLength-len("server-")))
	tests := map[string]struct {
		servesUntil time.Duration // from now; 0: no report stored
		at          time.Duration // when the cache is asked, from now
		served      bool
	}{
		"no report: CacheTTL":           {at: ttl - time.Second, served: true},
		"no report: past CacheTTL":      {at: ttl + time.Second},
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
			if tt.servesUntil != 0 {
				in.servesUntil.Store(now.Add(tt.servesUntil).UnixNano())
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
		servesUntil time.Duration // from now; 0: no report stored
		want        time.Duration // the entry's Until, from now
	}{
		"no report":                   {want: ttl},
		"ServesUntil beyond CacheTTL": {servesUntil: ttl + time.Hour, want: ttl},
		"an earlier ServesUntil":      {servesUntil: 10 * time.Second, want: 10 * time.Second},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := newInstance(memory.New(), ttl, func(error) {})
			if tt.servesUntil != 0 {
				in.servesUntil.Store(now.Add(tt.servesUntil).UnixNano())
			}
			vf := &verifier{ttl: ttl, instance: in}
			e := vf.newEntry(key, apikey.Record{ID: "k1", Type: apikey.Server}, now)
			assert.WithinDuration(t, now.Add(tt.want), e.Until, time.Second)
			assert.False(t, e.Until.After(now.Add(tt.want)), "never beyond")
		})
	}
}
