package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// BenchmarkColdLookup measures what a key that is not in the validation
// cache costs with the store c.New returns, among 1,000 other keys:
//
//   - "Key": the lookup by key id alone;
//   - "KeyVerify": the lookup and the argon2id verification of the presented
//     key with DefaultParams, as the middleware does on a cache miss.
//
// Call it from a benchmark of your backend:
//
//	func BenchmarkColdLookup(b *testing.B) {
//		storetest.BenchmarkColdLookup(b, storetest.Config{New: newStore})
//	}
func BenchmarkColdLookup(b *testing.B, c Config) {
	if c.New == nil {
		b.Fatal("storetest: Config.New is required")
	}
	s, ctx := c.New(b), context.Background()
	requireCapabilities(b, s, c.Require)
	var filler apikey.Change
	for range 1000 {
		filler.Insert = append(filler.Insert, record(apikey.DefaultAccount, apikey.Production, apikey.Server, false))
	}
	require.NoError(b, s.Apply(ctx, filler))

	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(b, err)
	hasher := apikey.Argon2id{Params: apikey.DefaultParams}
	hash, err := hasher.Hash([]byte(key.Reveal()))
	require.NoError(b, err)
	r := record(apikey.DefaultAccount, apikey.Production, apikey.Server, true)
	r.ID, r.Hash = key.ID(), apikey.NewOpaque(hash)
	require.NoError(b, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{r}}))

	b.Run("Key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Key(ctx, key.ID()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("KeyVerify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec, err := s.Key(ctx, key.ID())
			if err != nil {
				b.Fatal(err)
			}
			match, _, err := hasher.Verify([]byte(key.Reveal()), rec.Hash.Reveal())
			if err != nil || !match {
				b.Fatal(fmt.Errorf("verify: match %v, err %w", match, err))
			}
		}
	})
}

// BenchmarkLargeEnvironment measures the lookups that the storage contract
// asks to be answered by index, in an environment of 1,000 and of 10,000
// keys (among as many in another account's environment of the same name):
//
//   - "DefaultKey": the default key of a type;
//   - "KeysPage": a page of 100 keys from the middle of the environment;
//   - "Rotate": the rotation of the default key through a Manager, with
//     apikey.TestParams (the light hasher, so that the store's cost shows).
//
// A store that answers by index takes about as long at 10,000 keys as at
// 1,000. The keys are written with Apply, 1,000 per change; the SQL
// backends' 1,000,000-key benchmarks load their tables directly.
func BenchmarkLargeEnvironment(b *testing.B, c Config) {
	if c.New == nil {
		b.Fatal("storetest: Config.New is required")
	}
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			s, ctx := c.New(b), context.Background()
			requireCapabilities(b, s, c.Require)
			m := manager(b, s)
			actor := apikey.Actor{ID: "bench", Role: apikey.Owner, Account: acme}
			bootstrap(b, m, actor, apikey.Production)
			for _, account := range []string{acme, globex} {
				for i := 0; i < n; i += 1000 {
					var c apikey.Change
					for j := range min(1000, n-i) {
						r := record(account, apikey.Production, apikey.Server, false)
						r.CreatedAt = base.Add(time.Duration(i+j) * time.Millisecond)
						c.Insert = append(c.Insert, r)
					}
					require.NoError(b, s.Apply(ctx, c))
				}
			}
			middle := apikey.KeyPosition{CreatedAt: base.Add(time.Duration(n/2) * time.Millisecond)}

			b.Run("DefaultKey", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.DefaultKey(ctx, acme, apikey.Production, apikey.Server); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("KeysPage", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					page, err := s.Keys(ctx, apikey.KeyQuery{Account: acme, Environment: apikey.Production, After: middle, Limit: 100})
					if err != nil || len(page) != 100 {
						b.Fatal(len(page), err)
					}
				}
			})
			b.Run("Rotate", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_, err := m.Rotate(ctx, actor, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, ExpireNow: true})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkLimits measures the optional interfaces that limits and usage
// use; it runs each sub-benchmark only when the store c.New returns
// implements its interface (it registers none for one that does not):
//
//   - "LeaseQuota" (storage.QuotaLedger): one lease of 100 uses from a
//     key's quota (what an instance does once per 100 requests of a route
//     of cost 1), among 1,000 keys with quotas;
//   - "ReturnQuota" (storage.QuotaLedger): giving 10 unspent uses back (on
//     Close);
//   - "RecordUsage" (storage.UsageRecorder): a batch of 1,000 counts (1,000
//     keys, one hour and outcome), as a usage flush writes them.
//
// A store that lacks an interface of c.Require fails the benchmark, as in
// Run.
func BenchmarkLimits(b *testing.B, c Config) {
	if c.New == nil {
		b.Fatal("storetest: Config.New is required")
	}
	s, ctx := c.New(b), context.Background()
	requireCapabilities(b, s, c.Require)
	var keys apikey.Change
	for range 1000 {
		r := record(acme, apikey.Production, apikey.Server, false)
		r.Limits.Quota = apikey.Quota{Limit: apikey.MaxQuotaUses, Refill: apikey.MaxQuotaUses, Period: apikey.Daily}
		keys.Insert = append(keys.Insert, r)
	}
	require.NoError(b, s.Apply(ctx, keys))
	id := keys.Insert[500].ID
	now := base
	if l, ok := s.(storage.QuotaLedger); ok {
		b.Run("LeaseQuota", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, err := l.LeaseQuota(ctx, id, 100, now); err != nil || got.Granted != 100 {
					b.Fatal(got, err)
				}
			}
		})
		b.Run("ReturnQuota", func(b *testing.B) {
			taken, err := l.LeaseQuota(ctx, id, 100, now)
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				if err := l.ReturnQuota(ctx, id, 10, taken, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if r, ok := s.(storage.UsageRecorder); ok {
		batch := make([]apikey.UsageCount, 0, len(keys.Insert))
		for _, k := range keys.Insert {
			batch = append(batch, apikey.UsageCount{Account: acme, Environment: apikey.Production, KeyID: k.ID,
				Hour: now.Truncate(time.Hour), Outcome: "admitted", Count: 100})
		}
		b.Run("RecordUsage", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := r.RecordUsage(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
