package integration_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestMigrateAddsInstances upgrades a version-12 database, with a revoked
// key, to the newest version on both engines: the revocation has no
// instance to confirm it, an instance can then report (its ServesUntil,
// its time plus its lease, is stored) and confirm it, and Migrate again
// changes nothing.
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
		assert.False(t, p.Confirmed, "no instance to confirm it")
		assert.Equal(t, apikey.PropagationNoInstances, p.Reason)
		assert.Equal(t, 0, p.Live)

		require.NoError(t, s.ReportInstance(ctx, apikey.InstanceReport{ID: "i1", Label: "host:1", Applied: p.Revision - 1, Lease: time.Minute}))
		instances, _, err := s.Instances(ctx)
		require.NoError(t, err)
		require.Len(t, instances, 1)
		assert.True(t, instances[0].ReportedAt.Add(time.Minute).Equal(instances[0].ServesUntil), "serves_until is stored: %v", instances[0].ServesUntil)
		p, err = m.Propagation(ctx, owner, extra.View.ID)
		require.NoError(t, err)
		assert.False(t, p.Confirmed, "one instance behind")
		require.NoError(t, s.ReportInstance(ctx, apikey.InstanceReport{ID: "i1", Label: "host:1", Applied: p.Revision, Lease: time.Minute}))
		p, err = m.Propagation(ctx, owner, extra.View.ID)
		require.NoError(t, err)
		assert.True(t, p.Confirmed)
		assert.Equal(t, 1, p.Applied)
	})
}

// TestMigrateAddsRemovedInstances upgrades a version-13 database, with an
// instance reporting, to version 14 on both engines: the instance reads
// back as it was and keeps reporting; once removed, a later report under
// its id does not bring it back; Migrate again changes nothing.
func TestMigrateAddsRemovedInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		db := b.open(t, dsn)
		defer db.Close()
		_, err := db.Exec(`INSERT INTO keystile_instances (id, label, applied, applied_at, reported_at, started_at, serves_until)
			VALUES ('old', 'host:1', 4, 1000, 2000, 1000, 3000)`)
		require.NoError(t, err)
		migrateFrom(t, db, s, 14) // undoes version 14, then migrates

		instances, _, err := s.Instances(ctx)
		require.NoError(t, err)
		require.Len(t, instances, 1, "the instance of version 13 reads back")
		assert.Equal(t, "old", instances[0].ID)
		assert.Equal(t, int64(4), instances[0].Applied)
		assert.True(t, time.UnixMicro(3000).Equal(instances[0].ServesUntil))
		require.NoError(t, s.ReportInstance(ctx, apikey.InstanceReport{ID: "old", Label: "host:1", Applied: 5, Lease: time.Minute}))
		instances, now, err := s.Instances(ctx)
		require.NoError(t, err)
		require.Len(t, instances, 1)
		assert.Equal(t, int64(5), instances[0].Applied, "it keeps reporting")
		assert.WithinDuration(t, time.Now(), now, 2*time.Second, "stamped by the database's clock")

		require.NoError(t, s.RemoveInstance(ctx, "old"))
		require.NoError(t, s.ReportInstance(ctx, apikey.InstanceReport{ID: "old", Label: "host:1", Applied: 6, Lease: time.Minute}))
		instances, _, err = s.Instances(ctx)
		require.NoError(t, err)
		assert.Empty(t, instances, "a removed instance is not brought back by a later report")
	})
}

// TestInstanceReportNeverBackwards: on both engines, a report stamped
// before the stored one (the database's clock stepped back) changes
// nothing: the row keeps its later report.
func TestInstanceReportNeverBackwards(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		db := b.open(t, dsn)
		defer db.Close()
		require.NoError(t, s.ReportInstance(ctx, apikey.InstanceReport{ID: "i1", Label: "host:1", Applied: 3, Lease: time.Minute}))
		ahead := time.Now().Add(time.Hour).UnixMicro()
		_, err := db.Exec(`UPDATE keystile_instances SET reported_at = ` + strconv.FormatInt(ahead, 10) + ` WHERE id = 'i1'`)
		require.NoError(t, err)
		require.NoError(t, s.ReportInstance(ctx, apikey.InstanceReport{ID: "i1", Label: "host:1", Applied: 4, Lease: time.Minute}))
		instances, _, err := s.Instances(ctx)
		require.NoError(t, err)
		require.Len(t, instances, 1)
		assert.Equal(t, int64(3), instances[0].Applied, "the earlier-stamped report is dropped")
		assert.Equal(t, ahead, instances[0].ReportedAt.UnixMicro())
	})
}
