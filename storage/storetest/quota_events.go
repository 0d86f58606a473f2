package storetest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// exhaustedEvents returns the apikey.ActionQuotaExhausted events of es.
func exhaustedEvents(t *testing.T, es storage.EventStream) []apikey.Event {
	t.Helper()
	all, _ := readStream(t, es, 0, 100)
	var out []apikey.Event
	for _, se := range all {
		if se.Event.Action == apikey.ActionQuotaExhausted {
			out = append(out, se.Event)
		}
	}
	return out
}

// testQuotaExhaustedEvents checks the apikey.ActionQuotaExhausted event of
// a storage.QuotaLedger that has a storage.EventStream: one per balance,
// quota (generation) and period, written by the first lease that the
// balance cannot grant in full, never by a lease it grants in full,
// whatever returns and further leases follow; and, with leases racing on
// several handles, exactly one.
func testQuotaExhaustedEvents(t *testing.T, c Config) {
	t.Run("Key", func(t *testing.T) {
		s := c.New(t)
		l, es := as[storage.QuotaLedger](t, s), as[storage.EventStream](t, s)
		q := apikey.Quota{Limit: 10, Refill: 10, Period: apikey.Daily}
		id := quotaKey(t, s, q)
		key := mustKey(t, s, id)
		at := day(0).Add(time.Hour)
		ctx := context.Background()
		steps := []struct {
			name   string
			do     func()
			events int
		}{
			{"granted in full", func() { lease(t, l, id, 6, at) }, 0},
			{"granted in part: the balance is spent", func() { lease(t, l, id, 6, at) }, 1},
			{"refused again", func() { lease(t, l, id, 1, at.Add(time.Minute)) }, 1},
			{"uses returned and spent again, same period", func() {
				require.NoError(t, l.ReturnQuota(ctx, id, 3, lease(t, l, id, 1, at), at))
				lease(t, l, id, 5, at)
			}, 1},
			{"the next period, granted in full", func() { lease(t, l, id, 10, day(1)) }, 1},
			{"the next period, refused", func() { lease(t, l, id, 1, day(1).Add(time.Hour)) }, 2},
			{"a changed quota is a new quota", func() {
				r := mustKey(t, s, id)
				r.Limits.Quota = apikey.Quota{Limit: 15, Refill: 10, Period: apikey.Daily}
				apply(t, s, apikey.Change{Update: []apikey.Record{r}})
				assert.Equal(t, int64(5), lease(t, l, id, 6, day(1).Add(2*time.Hour)).Granted)
			}, 3},
		}
		for _, st := range steps {
			st.do()
			require.Len(t, exhaustedEvents(t, es), st.events, st.name)
		}
		got := exhaustedEvents(t, es)[0]
		assert.Equal(t, apikey.SystemActor, got.Actor)
		assert.Equal(t, []string{acme, apikey.Production, id}, []string{got.Account, got.Environment, got.KeyID})
		assert.Equal(t, key.Type, got.KeyType)
		assert.Equal(t, "quota of 10 uses exhausted, refills 10 at "+day(1).Format(time.RFC3339), got.Detail)
		assert.True(t, at.Equal(got.Time), "the lease's time")
		assert.Positive(t, got.Seq, "numbered in its account's log")
	})
	t.Run("Owner", func(t *testing.T) {
		s := c.New(t)
		l, es := as[storage.QuotaLedger](t, s), as[storage.EventStream](t, s)
		ownerQuotaKey(t, s, acme, "user-1", apikey.Quota{Limit: 4})
		ownerQuotaKey(t, s, globex, "user-1", apikey.Quota{Limit: 4})
		id := apikey.OwnerBalanceID(acme, "user-1")
		at := day(0).Add(time.Hour)
		assert.Equal(t, int64(4), lease(t, l, id, 5, at).Granted)
		lease(t, l, id, 1, day(40)) // no refill: the one period
		assert.Equal(t, int64(4), lease(t, l, apikey.OwnerBalanceID(globex, "user-1"), 4, at).Granted, "in full")
		got := exhaustedEvents(t, es)
		require.Len(t, got, 1)
		assert.Equal(t, acme, got[0].Account)
		assert.Empty(t, got[0].Environment+got[0].KeyID, "an owner's balance spans environments and keys")
		assert.Equal(t, "owner user-1: quota of 4 uses exhausted", got[0].Detail)
	})
	t.Run("Racing", func(t *testing.T) {
		s := c.New(t)
		l := as[storage.QuotaLedger](t, s)
		es := as[storage.EventStream](t, s)
		id := quotaKey(t, s, apikey.Quota{Limit: 20, Refill: 20, Period: apikey.Daily})
		at := day(0).Add(time.Hour)
		var wg sync.WaitGroup
		for i, peer := range c.peers(t, s, 8) {
			pl := peer.(storage.QuotaLedger)
			wg.Go(func() {
				for j := range 6 {
					_, err := pl.LeaseQuota(context.Background(), id, 3, at.Add(time.Duration(i*10+j)*time.Millisecond))
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		got := exhaustedEvents(t, es)
		require.Len(t, got, 1, "8 handles leasing 144 uses of 20: one event")
		assert.True(t, strings.HasPrefix(got[0].Detail, "quota of 20 uses exhausted"), got[0].Detail)
		_, _ = l.LeaseQuota(context.Background(), id, 1, at)
		assert.Len(t, exhaustedEvents(t, es), 1)
	})
}
