package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestConformanceQuotaFutureClock: a lease whose now is a year ahead (one
// process with a wrong clock) moves the balance's period no further than
// the database's clock plus one hour, on both engines, so the processes
// with right clocks keep their refills; and it refills once at most, not
// at every lease.
func TestConformanceQuotaFutureClock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		r := apikey.Record{ID: "fc0000000001", Account: apikey.DefaultAccount, Type: apikey.Server, Environment: apikey.Production,
			Scopes: []string{"*"}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond), CreatedBy: "test",
			Hash: apikey.NewOpaque("x"), Limits: apikey.Limits{Quota: apikey.Quota{Limit: 10, Refill: 10, Period: apikey.Daily}}}
		require.NoError(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{r}}))
		now := time.Now()
		l, err := s.LeaseQuota(ctx, r.ID, 10, now)
		require.NoError(t, err)
		require.Equal(t, int64(10), l.Granted)

		ahead := now.AddDate(1, 0, 0)
		var granted int64
		for range 3 {
			l, err := s.LeaseQuota(ctx, r.ID, 10, ahead)
			require.NoError(t, err)
			granted += l.Granted
		}
		assert.LessOrEqual(t, granted, int64(10), "one refill at most (when the next hour holds midnight)")

		var period int64
		require.NoError(t, s.DB().QueryRow("SELECT period_index FROM keystile_quotas WHERE key_id = 'fc0000000001'").Scan(&period))
		assert.LessOrEqual(t, period, apikey.Daily.Index(time.Now().Add(time.Hour)), "the period is the database clock's, not a year ahead")
		assert.GreaterOrEqual(t, period, apikey.Daily.Index(now))
	})
}
