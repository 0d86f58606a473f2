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

// TestMigrateAddsInstances upgrades a version-12 database, with a revoked
// key, to version 13 on both engines: the revocation has no instance to
// wait for (0 of 0, confirmed), an instance can then report (its ServesUntil is stored) and confirm
// it, and Migrate again changes nothing.
func TestMigrateAddsInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
		require.NoError(t, err)
		_, err = m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		extra, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
		require.NoError(t, err)
		_, err = m.Revoke(ctx, owner, extra.View.ID)
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		migrateFrom(t, db, s, 13)

		p, err := m.Propagation(ctx, owner, extra.View.ID)
		require.NoError(t, err)
		assert.True(t, p.Confirmed, "no instance to wait for")
		assert.Equal(t, 0, p.Live)

		servesUntil := time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)
		require.NoError(t, s.ReportInstance(ctx, apikey.Instance{ID: "i1", Label: "host:1", Applied: p.Revision - 1, ReportedAt: time.Now(), ServesUntil: servesUntil}))
		instances, err := s.Instances(ctx)
		require.NoError(t, err)
		require.Len(t, instances, 1)
		assert.True(t, servesUntil.Equal(instances[0].ServesUntil), "serves_until is stored: %v", instances[0].ServesUntil)
		p, err = m.Propagation(ctx, owner, extra.View.ID)
		require.NoError(t, err)
		assert.False(t, p.Confirmed, "one instance behind")
		require.NoError(t, s.ReportInstance(ctx, apikey.Instance{ID: "i1", Label: "host:1", Applied: p.Revision, ReportedAt: time.Now(), ServesUntil: servesUntil}))
		p, err = m.Propagation(ctx, owner, extra.View.ID)
		require.NoError(t, err)
		assert.True(t, p.Confirmed)
		assert.Equal(t, 1, p.Applied)
	})
}
