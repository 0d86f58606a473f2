package integration_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestSQLiteLeaseAbandonedIsReturned: on SQLite, leases wait for their
// batch's commit. A caller that stops waiting while its lease is being
// written (here: behind another connection's write lock) gets its
// context's error, and the uses granted to it go back to the store, so
// that the whole quota can still be leased.
func TestSQLiteLeaseAbandonedIsReturned(t *testing.T) {
	ctx := context.Background()
	// Without _txlock=immediate, the batch's transaction begins at once and
	// its first statement waits for the lock: the statement runs for a
	// caller that is waiting, which then stops waiting.
	dsn := "file:" + filepath.Join(t.TempDir(), "keystile.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	s := sqliteBackend.store(t, dsn, sqlstore.Options{})
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
	require.NoError(t, err)
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	const uses = 1000
	issued, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"*"}, Limits: apikey.Limits{Quota: apikey.Quota{Limit: uses}}})
	require.NoError(t, err)
	id := issued.View.ID

	// Another pool holds the write lock for a while.
	other, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	defer other.Close()
	conn, err := other.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	require.NoError(t, err)
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(time.Second)
		_, err := conn.ExecContext(ctx, "COMMIT")
		assert.NoError(t, err)
	}()

	waiting, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = s.LeaseQuota(waiting, id, 100, time.Now())
	require.ErrorIs(t, err, context.DeadlineExceeded, "the caller stops waiting behind the lock")
	<-released

	// The batch committed the abandoned lease after the lock was released,
	// then returned it: the whole quota is left.
	require.Eventually(t, func() bool {
		l, err := s.LeaseQuota(ctx, id, uses, time.Now())
		require.NoError(t, err)
		if l.Granted == uses {
			return true
		}
		require.NoError(t, s.ReturnQuota(ctx, id, l.Granted, l, time.Now()))
		return false
	}, 10*time.Second, 50*time.Millisecond, "the abandoned lease's uses are back in the store")
}
