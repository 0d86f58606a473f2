package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// testManagerOwnerLimitsConcurrent: SetOwnerLimits, racing creations,
// rotations and changes of owner of the owner's keys from other peers,
// leaves every key of the owner that is not revoked with the limits of
// the last SetOwnerLimits: no key issued meanwhile misses them.
func testManagerOwnerLimitsConcurrent(t *testing.T, c Config) {
	s := c.New(t)
	stores := c.peers(t, s, 4)
	ms := managers(t, stores)
	ctx := context.Background()
	bootstrap(t, ms[0], acmeOwner, apikey.Production)
	create := func(m *apikey.Manager, owner string) (apikey.Issued, error) {
		return m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}, Owner: owner})
	}
	first, err := create(ms[0], "user-1")
	require.NoError(t, err)
	stranger, err := create(ms[0], "user-2")
	require.NoError(t, err)

	limits := func(i int) apikey.Limits {
		return apikey.Limits{Rate: apikey.RateLimit{Requests: 10 + i, Window: time.Minute},
			Quota: apikey.Quota{Limit: int64(100 + i)}}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	wg.Go(func() { // the setter, on peer 0
		for i := range 6 {
			if _, err := ms[0].SetOwnerLimits(ctx, acmeOwner, "user-1", limits(i)); err != nil {
				errs <- err
			}
		}
	})
	wg.Go(func() { // creations, on peer 1
		for range 4 {
			if _, err := create(ms[1], "user-1"); err != nil {
				errs <- err
			}
		}
	})
	wg.Go(func() { // rotations of the first key, on peer 2
		id := first.View.ID
		for range 3 {
			next, err := ms[2].Rotate(ctx, acmeOwner, apikey.RotateRequest{KeyID: id, Grace: time.Hour})
			if err != nil {
				errs <- err
				return
			}
			id = next.View.ID
		}
	})
	wg.Go(func() { // another owner's key given to the owner, on peer 3
		if _, err := ms[3].SetOwner(ctx, acmeOwner, stranger.View.ID, "user-1"); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	want := limits(5)
	list, err := ms[0].OwnerKeys(ctx, acmeOwner, "user-1", apikey.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, list.Keys, 2+4+3, "the first key and its 3 replacements, 4 created, 1 given")
	for _, v := range list.Keys {
		assert.True(t, v.OwnerLimits.Equal(want), "%s: %v", v.Prefix, v.OwnerLimits)
	}
}
