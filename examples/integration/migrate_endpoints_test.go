package integration_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestMigrateAddsEndpoints upgrades a database of version 13, with keys
// and events, to version 15 on both engines: an account has no endpoint,
// its events are read by account from the stream, an endpoint can be
// created (starting at the stream's end), read back and rotated, and
// Migrate again changes nothing.
func TestMigrateAddsEndpoints(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
		require.NoError(t, err)
		_, err = m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		migrateFrom(t, db, s, 15)

		list, _, err := m.Endpoints(ctx, owner, apikey.Page{})
		require.NoError(t, err)
		assert.Empty(t, list)
		page, _, err := s.AccountEventsAfter(ctx, owner.InAccount(), 0, 10)
		require.NoError(t, err)
		assert.Len(t, page, 2, "the bootstrap's events, from before the migration")
		issued, err := m.CreateEndpoint(ctx, owner, apikey.EndpointRequest{URL: "https://hooks.example.com/in"})
		require.NoError(t, err)
		stored, err := s.Endpoint(ctx, issued.Endpoint.ID)
		require.NoError(t, err)
		_, end, err := s.EventsAfter(ctx, 0, 100)
		require.NoError(t, err)
		assert.Equal(t, end, stored.Start)
		_, err = m.RotateEndpointSecret(ctx, owner, issued.Endpoint.ID, 0)
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx))
		got, err := m.Endpoint(ctx, owner, issued.Endpoint.ID)
		require.NoError(t, err)
		assert.Equal(t, "https://hooks.example.com/in", got.URL)
	})
}
