package integration_test

import (
	"context"
	"encoding/base64"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/sqlstore"
)

// The scale benchmarks of DESIGN.md, on both SQL engines: an environment
// of a million keys, and many accounts. The databases are loaded once per
// engine and test binary (see bulk_test.go), the first time a benchmark
// asks for them, and only when benchmarks run (-bench): plain go test loads
// nothing. The Manager hashes with apikey.TestParams, so that the numbers
// are the store's work, not argon2's.
//
//	go test -run '^$' -bench 'RotateDefaultLargeEnvironment|ListPage|ManyAccounts|AllAccounts|AccountsPage' -count 5 ./examples/integration

// largeEnvironmentKeys is how many keys the large environment holds, besides
// its default keys.
const largeEnvironmentKeys = 1_000_000

// largeEnvironment is the shared database of backend b whose default
// account's production environment holds largeEnvironmentKeys loaded keys,
// created one microsecond apart from the returned time, and then its
// default keys (bootstrapped through a Manager). The load time is logged.
func largeEnvironment(b *testing.B, be backend) (dsn string, start time.Time) {
	start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dsn = sharedDatabase(b, be, "large-environment", func(dsn string) {
		s := be.store(b, dsn, sqlstore.Options{})
		took := loadKeys(b, s, apikey.DefaultAccount, apikey.Production, largeEnvironmentKeys, start)
		b.Logf("%s: loaded %d keys into one environment in %s", be.name, largeEnvironmentKeys, took.Round(time.Millisecond))
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
		require.NoError(b, err)
		_, err = m.Bootstrap(context.Background(), owner, apikey.Production)
		require.NoError(b, err)
	})
	return dsn, start
}

// BenchmarkRotateDefaultLargeEnvironment rotates the default server key of
// an environment of a million keys, through Manager.Rotate by environment
// and type: the default is found by index, and the change writes two keys,
// two audit events and two feed entries. Target (DESIGN.md): 5 ms.
func BenchmarkRotateDefaultLargeEnvironment(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			dsn, _ := largeEnvironment(b, be)
			s := be.store(b, dsn, sqlstore.Options{})
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
			require.NoError(b, err)
			ctx := context.Background()
			req := apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Rotate(ctx, owner, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(largeEnvironmentKeys, "keys/env")
		})
	}
}

// BenchmarkListPage lists a page of 100 keys from the middle of the
// environment of a million keys through Manager.List with a cursor: one
// range scan of the (account, environment, created_at, id) index. Target
// (DESIGN.md): 10 ms.
func BenchmarkListPage(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			dsn, start := largeEnvironment(b, be)
			s := be.store(b, dsn, sqlstore.Options{})
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
			require.NoError(b, err)
			ctx := context.Background()
			middle := largeEnvironmentKeys / 2
			page := apikey.Page{After: keyCursor(bulkCreatedAt(start, middle-1), bulkKey(middle-1)), Limit: 100}
			list, err := m.List(ctx, owner, apikey.Production, page)
			require.NoError(b, err)
			require.Len(b, list.Keys, 100)
			require.Equal(b, bulkKey(middle), list.Keys[0].ID, "the page starts after the cursor")
			require.NotEmpty(b, list.Next)
			b.ReportAllocs()
			for b.Loop() {
				list, err := m.List(ctx, owner, apikey.Production, page)
				if err != nil || len(list.Keys) != 100 {
					b.Fatal(len(list.Keys), err)
				}
			}
			b.ReportMetric(largeEnvironmentKeys, "keys/env")
		})
	}
}

// keyCursor is the cursor of Manager.List that points after the key
// created at t with id id. Cursors are opaque to callers; the benchmark
// builds one, to start in the middle of a million keys without paging
// there, and checks that the page starts where it should.
func keyCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + "." + id))
}

// manyAccounts is how many accounts the many-accounts database holds, each
// with three environments.
const manyAccounts = 100_000

// manyAccountsDatabase is the shared database of backend b that holds the
// settings of manyAccounts accounts (see loadAccounts). The load time is
// logged.
func manyAccountsDatabase(b *testing.B, be backend) string {
	return sharedDatabase(b, be, "many-accounts", func(dsn string) {
		s := be.store(b, dsn, sqlstore.Options{})
		took := loadAccounts(b, s, manyAccounts)
		b.Logf("%s: loaded %d accounts x %d environments in %s", be.name, manyAccounts, len(benchEnvironments),
			took.Round(time.Millisecond))
	})
}

// BenchmarkEnvironmentsAllAccounts reads every environment's settings of
// 100,000 accounts (300,000 rows) a page of apikey.MaxPageSize at a time,
// as a validator does when it starts: the store's side of
// BenchmarkValidatorStartManyAccounts (2 s for the whole start). Each page
// is one range scan of the settings' primary key.
func BenchmarkEnvironmentsAllAccounts(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := be.store(b, manyAccountsDatabase(b, be), sqlstore.Options{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for after := (apikey.EnvironmentPosition{}); ; {
					page, err := s.Environments(ctx, apikey.EnvironmentQuery{After: after, Limit: apikey.MaxPageSize})
					if err != nil {
						b.Fatal(err)
					}
					n += len(page)
					if len(page) < apikey.MaxPageSize {
						break
					}
					last := page[len(page)-1]
					after = apikey.EnvironmentPosition{Account: last.Account, Environment: last.Environment}
				}
				if n != manyAccounts*len(benchEnvironments) {
					b.Fatalf("read %d environments, want %d", n, manyAccounts*len(benchEnvironments))
				}
			}
			b.ReportMetric(manyAccounts*float64(len(benchEnvironments)), "environments")
		})
	}
}

// BenchmarkAccountsPage lists a page of 100 account ids from the middle of
// 100,000 accounts (Store.Accounts): about one index probe per account.
func BenchmarkAccountsPage(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := be.store(b, manyAccountsDatabase(b, be), sqlstore.Options{})
			ctx := context.Background()
			after := benchAccount(manyAccounts / 2)
			b.ReportAllocs()
			for b.Loop() {
				ids, err := s.Accounts(ctx, after, 100)
				if err != nil || len(ids) != 100 {
					b.Fatal(len(ids), err)
				}
			}
		})
	}
}

// BenchmarkValidatorStartManyAccounts starts a middleware.Validator over a
// store of 100,000 accounts x 3 environments with allowed origins: New
// reads every environment's settings before it returns. It reports the
// time of New and the heap the Validator keeps (live after a collection).
// Targets (DESIGN.md): 2 s and 200 MiB.
func BenchmarkValidatorStartManyAccounts(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := be.store(b, manyAccountsDatabase(b, be), sqlstore.Options{})
			var kept uint64
			for b.Loop() {
				before := liveHeap()
				v, err := middleware.New(middleware.Options{Store: s, Hasher: testHasher,
					OnBackgroundError: func(err error) { b.Error(err) }})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				kept = max(kept, liveHeap()-before)
				runtime.KeepAlive(v)
				if err := v.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(kept)/(1<<20), "MiB-kept")
			b.ReportMetric(manyAccounts, "accounts")
		})
	}
}

// liveHeap returns the bytes of the live heap, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
