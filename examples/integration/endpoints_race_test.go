package integration_test

import (
	"context"
	"errors"
	"fmt"
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

// TestCreateEndpointRacesKeepTheBound: twelve owners' requests from four
// processes (a Manager and a pool each) create endpoints in one account at
// once, on SQLite, on PostgreSQL, and on PostgreSQL whose default isolation
// is REPEATABLE READ: exactly apikey.MaxEndpoints succeed and the others
// fail with ErrTooManyEndpoints; none fails with a store's lost race
// (ErrConflict), which the Manager retries.
func TestCreateEndpointRacesKeepTheBound(t *testing.T) {
	type run struct {
		name string
		b    backend
		dsn  func(t *testing.T) string
	}
	runs := []run{{"sqlite", sqliteBackend, func(t *testing.T) string { return sqliteBackend.fresh(t) }},
		{"postgres", postgresBackend, func(t *testing.T) string { return postgresBackend.fresh(t) }},
		{"postgres-repeatable-read", postgresBackend, func(t *testing.T) string {
			pgtest.DSN(t)
			return pgtest.FreshSchema(t, "keystile_test") + "&default_transaction_isolation=repeatable%20read"
		}}}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			dsn := r.dsn(t)
			managers := make([]*apikey.Manager, 4)
			for i := range managers {
				var err error
				managers[i], err = apikey.NewManager(apikey.ManagerOptions{Store: r.b.store(t, dsn, sqlstore.Options{}), Hasher: testHasher})
				require.NoError(t, err)
			}
			owner := apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
			var (
				wg      sync.WaitGroup
				ok, too atomic.Int32
			)
			for i := range 12 {
				wg.Go(func() {
					_, err := managers[i%len(managers)].CreateEndpoint(context.Background(), owner,
						apikey.EndpointRequest{URL: fmt.Sprintf("https://hooks.example.com/%d", i)})
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, apikey.ErrTooManyEndpoints):
						too.Add(1)
					default:
						assert.NoError(t, err)
					}
				})
			}
			wg.Wait()
			assert.Equal(t, int32(apikey.MaxEndpoints), ok.Load())
			assert.Equal(t, int32(12-apikey.MaxEndpoints), too.Load())
			list, _, err := managers[0].Endpoints(context.Background(), owner, apikey.Page{})
			require.NoError(t, err)
			assert.Len(t, list, apikey.MaxEndpoints)

			// Every endpoint has a dead letter; the owners replay them all at once.
			store := r.b.store(t, dsn, sqlstore.Options{})
			for _, e := range list {
				_, ok, err := store.LeaseDelivery(context.Background(), e.DeliveryName(), "test", fixtureNow, fixtureNow.Add(time.Hour))
				require.NoError(t, err)
				require.True(t, ok)
				require.NoError(t, store.AdvanceDelivery(context.Background(), e.DeliveryName(), "test", fixtureNow, 1,
					&apikey.DeadLetter{Cursor: 1, EventID: "evt_acme_1", Attempts: 1, Reason: "failed", At: fixtureNow}))
			}
			var replayed atomic.Int32
			for i := range 2 * len(list) {
				wg.Go(func() {
					n, err := managers[i%len(managers)].Replay(context.Background(), owner, list[i%len(list)].ID, "")
					assert.NoError(t, err)
					replayed.Add(int32(n))
				})
			}
			wg.Wait()
			assert.Equal(t, int32(len(list)), replayed.Load(), "each letter re-queued once")
		})
	}
}
