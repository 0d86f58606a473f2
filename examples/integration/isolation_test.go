package integration_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/pgtest"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestConformancePostgresRepeatableReadQuota: on a server whose default
// isolation is REPEATABLE READ (set per connection here, as an operator
// would per role or database), concurrent leases and returns from several
// pools on one quota still succeed, and grant every use exactly once.
func TestConformancePostgresRepeatableReadQuota(t *testing.T) {
	pgtest.DSN(t)
	dsn := pgtest.FreshSchema(t, "keystile_test") + "&default_transaction_isolation=repeatable%20read"
	const limit = 2000
	first := postgresBackend.store(t, dsn, sqlstore.Options{})
	var level string
	require.NoError(t, first.DB().QueryRow("SHOW default_transaction_isolation").Scan(&level))
	require.Equal(t, "repeatable read", level)
	r := apikey.Record{ID: "rr0000000001", Account: apikey.DefaultAccount, Type: apikey.Server, Environment: apikey.Production,
		Scopes: []string{"*"}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond), CreatedBy: "test",
		Hash: apikey.NewOpaque("x"), Limits: apikey.Limits{Quota: apikey.Quota{Limit: limit}}}
	require.NoError(t, first.Apply(context.Background(), apikey.Change{Insert: []apikey.Record{r}}))

	now := time.Now()
	var granted, returned atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		s := first
		if i > 0 {
			s = postgresBackend.store(t, dsn, sqlstore.Options{})
		}
		wg.Go(func() {
			for {
				l, err := s.LeaseQuota(context.Background(), r.ID, 3, now)
				if !assert.NoError(t, err) {
					return
				}
				granted.Add(l.Granted)
				if l.Granted == 0 {
					return
				}
				if l.Granted == 3 && l.Remaining%5 == 0 { // give one back now and then
					if !assert.NoError(t, s.ReturnQuota(context.Background(), r.ID, 1, l, now)) {
						return
					}
					returned.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(limit), granted.Load()-returned.Load(), "every use granted once")
}
