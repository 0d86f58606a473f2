package middleware

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// Run them:
//
//	go test -run '^$' -bench 'ManyAccounts|SettingsLookup' -benchtime 3x ./middleware
//
// Target: BenchmarkValidatorStartManyAccounts (100,000 accounts x 3
// environments with origins) starts a Validator in at most 2 s with at most
// 200 MiB of heap.

const (
	manyAccounts = 100_000
	// envsPerAccount: production, staging, development.
	envsPerAccount = 3
)

// manyAccountsSettings returns the settings of account i's environments:
// an origin of its own in production, its own origin and a wildcard in
// staging, and a localhost origin (shared by every account) in
// development.
func manyAccountsSettings(i int, now time.Time) []apikey.Settings {
	account := fmt.Sprintf("acct-%06d", i)
	return []apikey.Settings{
		{Account: account, Environment: apikey.Development, AllowedOrigins: []string{"http://localhost:3000"}, UpdatedAt: now},
		{Account: account, Environment: apikey.Production, AllowedOrigins: []string{"https://" + account + ".example.com"}, UpdatedAt: now},
		{Account: account, Environment: apikey.Staging, AllowedOrigins: []string{
			"https://staging." + account + ".example.com", "https://*.preview." + account + ".example.com"}, UpdatedAt: now},
	}
}

var (
	manyAccountsOnce  sync.Once
	manyAccountsStore *memory.Store
)

// manyAccountsStoreFor returns a memory store holding the settings of
// manyAccounts accounts (no keys: a Validator loads settings at start, and
// keys on demand), written in bulk by Apply, a thousand at a time. It is
// built once per test binary.
func manyAccountsStoreFor(b *testing.B) *memory.Store {
	b.Helper()
	manyAccountsOnce.Do(func() {
		s := memory.New()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var batch []apikey.Settings
		for i := range manyAccounts {
			batch = append(batch, manyAccountsSettings(i, now)...)
			if len(batch) >= 999 || i == manyAccounts-1 {
				if err := s.Apply(context.Background(), apikey.Change{Settings: batch}); err != nil {
					panic(err)
				}
				batch = batch[:0]
			}
		}
		manyAccountsStore = s
	})
	return manyAccountsStore
}

// BenchmarkValidatorStartManyAccounts starts a Validator over a store of
// 100,000 accounts x 3 environments with origins (storage/memory, so that
// it measures the Validator: paging, parsing, the table and the preflight
// index), and reports the time to start and the heap the settings take:
// "heap-MiB" is the live heap after New minus before, after a GC;
// "alloc-MiB" is everything allocated during New; "cpu-s/op" is the CPU
// time of the process during New (the garbage collector's included), which
// varies less than the wall time on a shared machine.
func BenchmarkValidatorStartManyAccounts(b *testing.B) {
	store := manyAccountsStoreFor(b)
	var heap, alloc float64
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cpu0 := processCPU()
		b.StartTimer()
		v, err := New(Options{Store: store, OnBackgroundError: func(err error) { b.Error(err) }})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += processCPU() - cpu0
		if n := v.Stats().Environments; n != manyAccounts*envsPerAccount {
			b.Fatalf("loaded %d environments, want %d", n, manyAccounts*envsPerAccount)
		}
		runtime.ReadMemStats(&after)
		alloc = float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		runtime.KeepAlive(v)
		_ = v.Close()
		b.StartTimer()
	}
	b.ReportMetric(heap, "heap-MiB")
	b.ReportMetric(alloc, "alloc-MiB")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkPreflightManyAccounts answers a CORS preflight with 300,000
// environments loaded: from the index, not a scan.
func BenchmarkPreflightManyAccounts(b *testing.B) {
	v, err := New(Options{Store: manyAccountsStoreFor(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	for _, c := range []struct{ name, origin string }{
		{"exact", "https://staging.acct-054321.example.com"},
		{"wildcard", "https://pr-7.preview.acct-054321.example.com"},
		{"nobody", "https://evil.example.net"},
	} {
		b.Run(c.name, func(b *testing.B) {
			want := c.name != "nobody"
			b.ReportAllocs()
			for b.Loop() {
				if v.settings.AnyAllows(c.origin) != want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}
