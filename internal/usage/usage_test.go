package usage

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/storage"
)

var outcomes = []string{"admitted", "rate_limited"}

var t0 = time.Date(2026, 12, 4, 10, 59, 58, 0, time.UTC)

// sorted orders counts for comparison.
func sorted(cs []storage.UsageCount) []storage.UsageCount {
	slices.SortFunc(cs, func(a, b storage.UsageCount) int {
		return strings.Compare(fmt.Sprint(a.Hour.Unix(), a.KeyID, a.Outcome), fmt.Sprint(b.Hour.Unix(), b.KeyID, b.Outcome))
	})
	return cs
}

func TestTallyCountsPerKeyHourAndOutcome(t *testing.T) {
	tl := New(outcomes, 100)
	tl.Add("acme", "production", "keyA", 0, t0)
	tl.Add("acme", "production", "keyA", 0, t0.Add(time.Second))
	tl.Add("acme", "production", "keyA", 1, t0.Add(time.Second))
	tl.Add("acme", "production", "keyA", 0, t0.Add(3*time.Second)) // 11:00:01: the next hour
	tl.Add("acme", "staging", "keyB", 1, t0)

	h10, h11 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), time.Date(2026, 12, 4, 11, 0, 0, 0, time.UTC)
	want := []storage.UsageCount{
		{Account: "acme", Environment: "production", KeyID: "keyA", Hour: h10, Outcome: "admitted", Count: 2},
		{Account: "acme", Environment: "production", KeyID: "keyA", Hour: h10, Outcome: "rate_limited", Count: 1},
		{Account: "acme", Environment: "staging", KeyID: "keyB", Hour: h10, Outcome: "rate_limited", Count: 1},
		{Account: "acme", Environment: "production", KeyID: "keyA", Hour: h11, Outcome: "admitted", Count: 1},
	}
	assert.Equal(t, sorted(want), sorted(tl.Take()))
	assert.Empty(t, tl.Take(), "a Take forgets what it returned")
	assert.Zero(t, tl.Dropped())
}

// TestAddOutsideOutcomesPanics: an outcome that is not one of New's is a
// bug of the caller, never counted where no Take reads it.
func TestAddOutsideOutcomesPanics(t *testing.T) {
	c := New(outcomes, 100).Counter("acme", "production", "keyA")
	for _, o := range []int{-1, len(outcomes), MaxOutcomes - 1, MaxOutcomes} {
		assert.PanicsWithValue(t, fmt.Sprintf("usage: outcome %d of %d", o, len(outcomes)), func() { c.Add(o, t0) }, "outcome %d", o)
	}
}

func TestTallyForgetsIdleKeys(t *testing.T) {
	tl := New(outcomes, shards) // one key per shard
	tl.Add("a", "e", "key1", 0, t0)
	require.Len(t, tl.Take(), 1)
	require.Len(t, tl.Take(), 0)    // idle since: forgotten, room made
	tl.Add("a", "e", "xxx1", 0, t0) // key1's shard (same last byte), full while key1 was kept
	assert.Zero(t, tl.Dropped(), "the idle key left room in its shard")
	assert.Equal(t, "xxx1", tl.Take()[0].KeyID)
}

func TestTallyBoundsKeys(t *testing.T) {
	tl := New(outcomes, shards) // one key per shard
	tl.Add("a", "e", "xxx1", 0, t0)
	tl.Add("a", "e", "yyy1", 0, t0) // same last byte: same shard, which is full
	tl.Add("a", "e", "xxx1", 0, t0)
	got := tl.Take()
	require.Len(t, got, 1)
	assert.Equal(t, int64(2), got[0].Count)
	assert.Equal(t, uint64(1), tl.Dropped())
}

func TestTallyRestoreAndPendingBound(t *testing.T) {
	tl := New(outcomes, 100)
	tl.Add("a", "e", "key1", 0, t0)
	taken := tl.Take()
	tl.Restore(taken)
	assert.Equal(t, taken, tl.Take(), "restored counts are taken again")

	big := make([]storage.UsageCount, maxPending+3)
	for i := range big {
		big[i] = storage.UsageCount{KeyID: "k", Count: 2}
	}
	tl.Restore(big)
	assert.Len(t, tl.Take(), maxPending)
	assert.Equal(t, uint64(6), tl.Dropped(), "the 3 counts beyond the bound, 2 requests each")
}

func TestTallyConcurrentAddsAreAllCounted(t *testing.T) {
	tl := New(outcomes, 1000)
	var wg sync.WaitGroup
	var takenMu sync.Mutex
	var total int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 10_000 {
				tl.Add("a", "e", fmt.Sprintf("key%d", (g+i)%50), i%2, t0)
			}
		})
	}
	wg.Go(func() { // takes concurrently, as the flusher does
		for range 100 {
			for _, c := range tl.Take() {
				takenMu.Lock()
				total += c.Count
				takenMu.Unlock()
			}
		}
	})
	wg.Wait()
	for _, c := range tl.Take() {
		total += c.Count
	}
	assert.Equal(t, int64(80_000), total)
	assert.Zero(t, tl.Dropped())
}

func BenchmarkTallyAdd(b *testing.B) {
	tl := New(outcomes, 1000)
	tl.Add("acme", "production", "keyAAAAAAAAA", 0, t0)
	b.ReportAllocs()
	for b.Loop() {
		tl.Add("acme", "production", "keyAAAAAAAAA", 0, t0)
	}
}

func BenchmarkTallyAddParallel(b *testing.B) {
	tl := New(outcomes, 1000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("key%09d", time.Now().UnixNano()%1000)
		for pb.Next() {
			tl.Add("acme", "production", id, 0, t0)
		}
	})
}

// TestTallyStraggler: a request counted at an hour before the key's latest
// (it started before the hour turned) is kept on its own, and the key's
// counts stay on the newer hour: requests interleaved across the turn of
// the hour make one count per straggler, not one per switch.
func TestTallyStraggler(t *testing.T) {
	tl := New(outcomes, 100)
	before, after := t0, t0.Add(3*time.Second) // 10:59:58 and 11:00:01
	for range 1000 {
		tl.Add("acme", "production", "keyA", 0, after)
		tl.Add("acme", "production", "keyA", 0, before)
	}
	counts := tl.Take()
	var total int64
	for _, c := range counts {
		total += c.Count
	}
	assert.EqualValues(t, 2000, total)
	assert.Len(t, counts, 1000+1, "one count per straggler, and the newer hour's")
	assert.Zero(t, tl.Dropped())
	tl.Add("acme", "production", "keyA", 0, after)
	tl.Add("acme", "production", "keyA", 0, after)
	assert.Len(t, tl.Take(), 1, "the newer hour's counts stay together")
}

// TestCounterKeptAcrossTakes: a counter kept by its caller keeps counting
// after a Take forgot its key as idle, and after its key got a newer
// counter.
func TestCounterKeptAcrossTakes(t *testing.T) {
	tl := New(outcomes, 100)
	c := tl.Counter("a", "e", "key1")
	assert.Same(t, c, tl.Counter("a", "e", "key1"), "held")
	c.Add(0, t0)
	assert.Same(t, c, tl.Counter("a", "e", "key1"))
	require.Len(t, tl.Take(), 1)
	require.Empty(t, tl.Take(), "idle: forgotten")

	c.Add(1, t0) // forgotten: listed again
	taken := tl.Take()
	require.Len(t, taken, 1)
	assert.Equal(t, storage.UsageCount{Account: "a", Environment: "e", KeyID: "key1",
		Hour: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), Outcome: "rate_limited", Count: 1}, taken[0])

	require.Empty(t, tl.Take())
	newer := tl.Counter("a", "e", "key1")
	newer.Add(0, t0)
	c.Add(0, t0) // the forgotten counter: counted in the newer one
	c.Add(0, t0)
	taken = tl.Take()
	require.Len(t, taken, 1)
	assert.EqualValues(t, 3, taken[0].Count)
	assert.Zero(t, tl.Dropped())
}

// TestCountersConcurrentWithTakes: counters kept by goroutines while Takes
// forget idle keys lose no request.
func TestCountersConcurrentWithTakes(t *testing.T) {
	tl := New(outcomes, 1000)
	var wg sync.WaitGroup
	var total atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			c := tl.Counter("a", "e", fmt.Sprintf("key%d", g%4))
			for i := range 20_000 {
				c.Add(i%2, t0)
				if i%1000 == 0 {
					time.Sleep(time.Millisecond) // idle now and then
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 300 {
			for _, c := range tl.Take() {
				total.Add(c.Count)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	wg.Wait()
	<-done
	for _, c := range tl.Take() {
		total.Add(c.Count)
	}
	assert.EqualValues(t, 160_000, total.Load())
	assert.Zero(t, tl.Dropped())
}

func BenchmarkCounterAdd(b *testing.B) {
	tl := New(outcomes, 1000)
	c := tl.Counter("acme", "production", "keyAAAAAAAAA")
	c.Add(0, t0)
	b.ReportAllocs()
	for b.Loop() {
		c.Add(0, t0)
	}
}

func TestNewRefusesMoreThanMaxOutcomes(t *testing.T) {
	outcomes := make([]string, MaxOutcomes+1)
	for i := range outcomes {
		outcomes[i] = fmt.Sprint("o", i)
	}
	assert.Panics(t, func() { New(outcomes, 10) })
	tally := New(outcomes[:MaxOutcomes], 10)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tally.Add("acct", "production", "k1", MaxOutcomes-1, now)
	counts := tally.Take()
	require.Len(t, counts, 1)
	assert.Equal(t, outcomes[MaxOutcomes-1], counts[0].Outcome, "the last outcome is counted")
}

// TestCounterLayout: what Add reads and writes of an admitted request lies
// in one cache line, wherever the allocator puts the counter (its size
// class aligns it to 32 bytes at least).
func TestCounterLayout(t *testing.T) {
	var c Counter
	assert.LessOrEqual(t, unsafe.Offsetof(c.n)+unsafe.Sizeof(c.n[0]), uintptr(32))
	assert.Less(t, unsafe.Offsetof(c.hour), uintptr(32))
	assert.Less(t, unsafe.Offsetof(c.listed), uintptr(32))
}
