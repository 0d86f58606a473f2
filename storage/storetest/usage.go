package storetest

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// hour0 is the start of an hour; the usage cases count hours from it.
var hour0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func hour(n int) time.Time { return hour0.Add(time.Duration(n) * time.Hour) }

func compareUsage(a, b apikey.UsageCount) int {
	return cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(a.KeyID, b.KeyID), strings.Compare(a.Outcome, b.Outcome))
}

func usage(t testing.TB, r storage.UsageRecorder, q apikey.UsageQuery) []apikey.UsageCount {
	t.Helper()
	got, err := r.Usage(context.Background(), q)
	require.NoError(t, err)
	for _, c := range got {
		assert.Equal(t, time.UTC, c.Hour.Location(), "hours come back in UTC")
	}
	return got
}

// usageFixture is the counts of testUsage: two accounts with environments
// and keys of the same names, several hours and outcomes.
func usageFixture() []apikey.UsageCount {
	var out []apikey.UsageCount
	for _, account := range []string{acme, globex} {
		for h := range 4 {
			for _, k := range []struct{ env, key string }{
				{apikey.Production, "Kb"}, {apikey.Production, "Ka"}, {apikey.Staging, "Kc"},
			} {
				for o, outcome := range []string{"admitted", "rate_limited", "Quota"} {
					out = append(out, apikey.UsageCount{Account: account, Environment: k.env,
						KeyID: account + k.key, Hour: hour(h), Outcome: outcome, Count: int64(h*10 + o + 1)})
				}
			}
		}
	}
	return out
}

func filterUsage(counts []apikey.UsageCount, keep func(apikey.UsageCount) bool) []apikey.UsageCount {
	var out []apikey.UsageCount
	for _, c := range counts {
		if keep(c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, compareUsage)
	return out
}

// testUsage: counts are added up per account, key, hour and outcome,
// within one call and across calls; each selection returns its counts in
// order (hour, key id, outcome as bytes), within [From, To), of its
// account only.
func testUsage(t *testing.T, c Config) {
	s := c.New(t)
	r := as[storage.UsageRecorder](t, s)
	ctx := context.Background()
	all := usageFixture()
	require.NoError(t, r.RecordUsage(ctx, all[:len(all)/2]))
	require.NoError(t, r.RecordUsage(ctx, all[len(all)/2:]))
	// Again, split in two counts each, one of them in the middle of the
	// hour: every count doubles.
	var again []apikey.UsageCount
	for _, u := range all {
		half := u
		half.Count = u.Count / 2
		rest := u
		rest.Count -= half.Count
		rest.Hour = rest.Hour.Add(59 * time.Minute)
		again = append(again, half, rest)
	}
	require.NoError(t, r.RecordUsage(ctx, again))
	require.NoError(t, r.RecordUsage(ctx, nil))
	for i := range all {
		all[i].Count *= 2
	}

	from, to := hour(1), hour(3) // hours 1 and 2
	inRange := func(u apikey.UsageCount) bool { return !u.Hour.Before(from) && u.Hour.Before(to) }
	for _, tt := range []struct {
		name string
		q    apikey.UsageQuery
		keep func(apikey.UsageCount) bool
	}{
		{"account", apikey.UsageQuery{Account: acme, From: from, To: to},
			func(u apikey.UsageCount) bool { return u.Account == acme }},
		{"environment", apikey.UsageQuery{Account: globex, Environment: apikey.Production, From: from, To: to},
			func(u apikey.UsageCount) bool { return u.Account == globex && u.Environment == apikey.Production }},
		{"key", apikey.UsageQuery{Account: acme, KeyID: acme + "Kc", From: from, To: to},
			func(u apikey.UsageCount) bool { return u.KeyID == acme+"Kc" }},
		{"key and its environment", apikey.UsageQuery{Account: acme, Environment: apikey.Staging, KeyID: acme + "Kc", From: from, To: to},
			func(u apikey.UsageCount) bool { return u.KeyID == acme+"Kc" }},
		{"key and another environment", apikey.UsageQuery{Account: acme, Environment: apikey.Production, KeyID: acme + "Kc", From: from, To: to},
			func(apikey.UsageCount) bool { return false }},
		{"key of another account", apikey.UsageQuery{Account: acme, KeyID: globex + "Kc", From: from, To: to},
			func(apikey.UsageCount) bool { return false }},
		{"unknown account", apikey.UsageQuery{Account: "initech", From: from, To: to},
			func(apikey.UsageCount) bool { return false }},
		{"empty range", apikey.UsageQuery{Account: acme, From: to, To: to},
			func(apikey.UsageCount) bool { return false }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := filterUsage(all, func(u apikey.UsageCount) bool { return tt.keep(u) && inRange(u) })
			got := usage(t, r, tt.q)
			if len(want) == 0 {
				assert.Empty(t, got)
				return
			}
			assert.Equal(t, want, got)
		})
	}
}

// testUsagePaging: pages of every selection are full, strictly after the
// cursor, and add up to the whole selection.
func testUsagePaging(t *testing.T, c Config) {
	s := c.New(t)
	r := as[storage.UsageRecorder](t, s)
	all := usageFixture()
	require.NoError(t, r.RecordUsage(context.Background(), all))
	for _, q := range []apikey.UsageQuery{
		{Account: acme, From: hour(0), To: hour(4)},
		{Account: acme, Environment: apikey.Production, From: hour(0), To: hour(4)},
		{Account: globex, KeyID: globex + "Ka", From: hour(1), To: hour(4)},
	} {
		whole := usage(t, r, q)
		require.NotEmpty(t, whole)
		for _, limit := range []int{1, 4, 5} {
			var paged []apikey.UsageCount
			page := q
			page.Limit = limit
			for {
				got := usage(t, r, page)
				if len(got) == 0 {
					break
				}
				left := len(whole) - len(paged)
				require.Len(t, got, min(limit, left), "a full page while counts remain (limit %d)", limit)
				paged = append(paged, got...)
				last := got[len(got)-1]
				page.After = &last
			}
			assert.Equal(t, whole, paged, "limit %d", limit)
		}
		// A cursor of another key (as in an environment's pages) keeps the
		// order: a key's counts after it.
		if q.KeyID != "" {
			mid := whole[len(whole)/2]
			for _, other := range []string{"", "~"} { // before and after every key id
				after := mid
				after.KeyID = other
				page := q
				page.After = &after
				got := usage(t, r, page)
				want := filterUsage(whole, func(u apikey.UsageCount) bool { return compareUsage(u, after) > 0 })
				assert.Equal(t, len(want), len(got), "after %q", other)
			}
		}
	}
}

func testUsagePrune(t *testing.T, c Config) {
	s := c.New(t)
	r := as[storage.UsageRecorder](t, s)
	ctx := context.Background()
	all := usageFixture()
	require.NoError(t, r.RecordUsage(ctx, all))
	n, err := r.PruneUsage(ctx, hour(2))
	require.NoError(t, err)
	want := filterUsage(all, func(u apikey.UsageCount) bool { return !u.Hour.Before(hour(2)) })
	assert.Equal(t, int64(len(all)-len(want)), n, "how many it deleted")
	for _, account := range []string{acme, globex} {
		got := usage(t, r, apikey.UsageQuery{Account: account, From: hour(-10), To: hour(10)})
		assert.Equal(t, filterUsage(want, func(u apikey.UsageCount) bool { return u.Account == account }), got)
	}
	n, err = r.PruneUsage(ctx, hour(2))
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to prune")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, r.RecordUsage(canceled, all), context.Canceled)
	_, err = r.Usage(canceled, apikey.UsageQuery{Account: acme, From: hour(0), To: hour(4)})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = r.PruneUsage(canceled, hour(10))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Len(t, usage(t, r, apikey.UsageQuery{Account: acme, From: hour(-10), To: hour(10)}), len(want)/2, "nothing changed")
}

// testUsageConcurrent: batches from several processes (peers) adding to
// the same counts lose nothing.
func testUsageConcurrent(t *testing.T, c Config) {
	s := c.New(t)
	const batches = 20
	var wg sync.WaitGroup
	peers := c.peers(t, s, 4)
	for i, peer := range peers {
		r := peer.(storage.UsageRecorder)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				batch := []apikey.UsageCount{
					{Account: acme, Environment: apikey.Production, KeyID: "Kz", Hour: hour(b % 2), Outcome: "admitted", Count: 1},
					{Account: acme, Environment: apikey.Production, KeyID: "Ka", Hour: hour(0), Outcome: "admitted", Count: int64(i + 1)},
				}
				if i%2 == 1 {
					slices.Reverse(batch) // rows in another order in each batch
				}
				if !assert.NoError(t, r.RecordUsage(context.Background(), batch)) {
					return
				}
			}
		}()
	}
	wg.Wait()
	got := usage(t, s.(storage.UsageRecorder), apikey.UsageQuery{Account: acme, From: hour(0), To: hour(2)})
	sum := map[string]int64{}
	for _, u := range got {
		sum[u.KeyID+"@"+u.Hour.Format("15")] += u.Count
	}
	n := int64(len(peers))
	assert.Equal(t, map[string]int64{
		"Ka@10": batches * n * (n + 1) / 2,
		"Kz@10": batches / 2 * n,
		"Kz@11": batches / 2 * n,
	}, sum)
}
