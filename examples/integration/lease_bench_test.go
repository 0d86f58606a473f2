package integration_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// BenchmarkLeaseQuotaManyKeys: 64 goroutines lease quota uses of 1,000
// distinct keys at once, as the quota spenders of a server do when many
// keys start spending together (after a restart, say). On SQLite each
// lease is a write, and writes commit one at a time. The pool is bounded
// and kept open (storage/sqlstore, Connection pool). ns/op is per lease.
func BenchmarkLeaseQuotaManyKeys(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			dsn := be.fresh(b)
			db := be.open(b, dsn)
			b.Cleanup(func() { db.Close() })
			db.SetMaxOpenConns(16)
			db.SetMaxIdleConns(16)
			s, err := sqlstore.New(db, sqlstore.Options{Dialect: be.dialect})
			require.NoError(b, err)
			require.NoError(b, s.Migrate(ctx))
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
			require.NoError(b, err)
			_, err = m.Bootstrap(ctx, owner, apikey.Production)
			require.NoError(b, err)
			const keys = 1000
			ids := make([]string, keys)
			for i := range ids {
				issued, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
					Name: fmt.Sprint("k", i), Scopes: []string{"*"}, Limits: apikey.Limits{Quota: apikey.Quota{Limit: apikey.MaxQuotaUses}}})
				require.NoError(b, err)
				ids[i] = issued.View.ID
			}
			var next atomic.Int64
			var failed atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range 64 {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if l, err := s.LeaseQuota(ctx, ids[i%keys], 100, time.Now()); err != nil || l.Granted != 100 {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			require.Zero(b, failed.Load(), "every lease granted in full")
		})
	}
}
