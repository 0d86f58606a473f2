package integration_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestPurgeCheckpointsSQLiteLog purges revoked keys from an SQLite database
// in WAL mode whose automatic checkpoints are off: the purge copies what it
// wrote into the database file itself (the file changes), so that the next
// writer's commit (a rotation) does not pay for copying a purge batch's
// pages.
func TestPurgeCheckpointsSQLiteLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keystile.db")
	dsn := "file:" + path + "?" + sqliteParams + "&_pragma=wal_autocheckpoint(0)"
	s := sqliteBackend.store(t, dsn, sqlstore.Options{})
	now := time.Now()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher, Now: func() time.Time { return now }})
	require.NoError(t, err)
	owner := apikey.Actor{ID: "alice", Role: apikey.Owner}
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	for range 20 {
		k, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
		require.NoError(t, err)
		_, err = m.Revoke(ctx, owner, k.View.ID)
		require.NoError(t, err)
	}
	// Everything written so far is in the log: the file holds what the
	// last checkpoint (none) copied.
	before := fileDigest(t, path)

	now = now.Add(48 * time.Hour)
	operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
	n, err := m.Purge(ctx, operator, 24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, 20, n)
	assert.NotEqual(t, before, fileDigest(t, path), "the purge checkpointed the log into the database file")
}

func fileDigest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}
