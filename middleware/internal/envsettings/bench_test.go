package envsettings

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// benchAccounts is the number of accounts of the benchmarks (three
// environments each). The design target: a validator starts in at most
// 2 s with 100,000 accounts.
const benchAccounts = 100_000

var (
	benchOnce  sync.Once
	benchStore *memory.Store
)

func benchStoreFor(b *testing.B) *memory.Store {
	benchOnce.Do(func() { benchStore = manyAccounts(b, benchAccounts) })
	return benchStore
}

// BenchmarkStartManyAccounts loads the settings of 100,000 accounts x 3
// environments with origins from storage/memory, and reports the heap the
// table takes: "heap-MiB" is the live heap after the load minus before,
// after a GC; "alloc-MiB" everything allocated during the load.
func BenchmarkStartManyAccounts(b *testing.B) {
	store := benchStoreFor(b)
	var heap, alloc float64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		table := New(store, nil)
		if err := table.Load(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := table.Len(); n != 3*benchAccounts {
			b.Fatalf("loaded %d environments", n)
		}
		runtime.ReadMemStats(&after)
		alloc = float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
		runtime.KeepAlive(table)
		b.StartTimer()
	}
	b.ReportMetric(heap, "heap-MiB")
	b.ReportMetric(alloc, "alloc-MiB")
}

// BenchmarkLookup measures the lookups of a browser request among 300,000
// environments, in parallel, while a writer reloads an environment every
// millisecond (as the change feed does).
func BenchmarkLookup(b *testing.B) {
	store := benchStoreFor(b)
	table := New(store, nil)
	if err := table.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	accounts := make([]string, benchAccounts)
	origins := make([]string, benchAccounts)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acct-%06d", i)
		origins[i] = "https://" + accounts[i] + ".example.com"
	}
	run := func(b *testing.B, lookup func(i int) bool) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-t.C:
					_ = table.Reload(context.Background(), accounts[i%benchAccounts], apikey.Production)
				}
			}
		})
		var next atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(7919))
			for pb.Next() {
				i = (i + 7919) % benchAccounts
				if !lookup(i) {
					b.Fatal("wrong answer")
				}
			}
		})
		close(stop)
		wg.Wait()
	}
	b.Run("Allows", func(b *testing.B) {
		run(b, func(i int) bool {
			allowed, known := table.Allows(accounts[i], apikey.Production, origins[i])
			return allowed && known
		})
	})
	b.Run("State", func(b *testing.B) {
		run(b, func(i int) bool { return table.State(accounts[i], apikey.Production) == Open })
	})
	b.Run("AnyAllows/exact", func(b *testing.B) {
		run(b, func(i int) bool { return table.AnyAllows(origins[i]) })
	})
	b.Run("AnyAllows/nobody", func(b *testing.B) {
		run(b, func(int) bool { return !table.AnyAllows("https://app.evil.example.net") })
	})
}
