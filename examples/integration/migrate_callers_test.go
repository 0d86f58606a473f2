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

// TestMigrateAddsCallers upgrades a version-11 database, with a key rotated
// out, to version 12 on both engines: the key reads back with no callers,
// its callers can then be recorded and read through the Manager, and
// Migrate again changes nothing.
func TestMigrateAddsCallers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m := fixtureManager(t, s)
		issued, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		old := issued[0].View
		_, err = m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.ID, Grace: time.Hour})
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		migrateFrom(t, db, s, 12)

		report, err := m.Callers(ctx, owner, old.ID)
		require.NoError(t, err)
		assert.Empty(t, report.Callers, "no callers before any were recorded")
		assert.False(t, report.RotatedAt.IsZero())

		seen := fixtureNow.Add(time.Minute)
		require.NoError(t, s.RecordCallers(ctx, []apikey.KeyCallers{{Account: old.Account, KeyID: old.ID,
			Callers: []apikey.Caller{{Address: "192.0.2.7", UserAgent: "billing-cron/2.1", Requests: 4, FirstSeen: fixtureNow, LastSeen: seen}}}}))
		report, err = m.Callers(ctx, owner, old.ID)
		require.NoError(t, err)
		require.Len(t, report.Callers, 1)
		assert.Equal(t, "billing-cron/2.1", report.Callers[0].UserAgent)
		assert.Equal(t, int64(4), report.Requests)
		assert.True(t, seen.Equal(report.LastUsedAt))
	})
}
