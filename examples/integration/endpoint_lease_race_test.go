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
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestLeaseRacingEndpointDeleteLeavesNoRow, on both engines: a deliverer
// renewing an endpoint's lease (on a pool of its own) while its owner
// deletes the endpoint, and renewing on after the delete, leaves no lease
// row of it: each renewal either commits before the delete, which then
// deletes the row, or writes nothing.
func TestLeaseRacingEndpointDeleteLeavesNoRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		renewer := b.store(t, dsn, sqlstore.Options{})
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
		require.NoError(t, err)
		owner := apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
		count := `SELECT COUNT(*) FROM keystile_deliveries WHERE endpoint = ?`
		if s.Dialect() == sqlstore.Postgres {
			count = `SELECT COUNT(*) FROM keystile_deliveries WHERE endpoint = $1`
		}
		for round := range 20 {
			issued, err := m.CreateEndpoint(ctx, owner, apikey.EndpointRequest{URL: "https://hooks.example.com/in"})
			require.NoError(t, err)
			name := issued.Endpoint.DeliveryName()
			_, ok, err := renewer.LeaseDelivery(ctx, name, "a", time.Now(), time.Now().Add(time.Minute))
			require.NoError(t, err)
			require.True(t, ok)
			var (
				deleted atomic.Bool
				wg      sync.WaitGroup
			)
			wg.Go(func() {
				for after := 0; after < 5; { // renews until five renewals after the delete
					if deleted.Load() {
						after++
					}
					_, _, err := renewer.LeaseDelivery(ctx, name, "a", time.Now(), time.Now().Add(time.Minute))
					assert.NoError(t, err)
				}
			})
			require.NoError(t, m.DeleteEndpoint(ctx, owner, issued.Endpoint.ID))
			deleted.Store(true)
			wg.Wait()
			var rows int
			require.NoError(t, s.DB().QueryRowContext(ctx, count, name).Scan(&rows))
			assert.Zero(t, rows, "round %d: the deleted endpoint's lease row", round)
		}
	})
}
