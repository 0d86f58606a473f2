package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// panicDriver is a database/sql driver whose transactions panic as they
// begin: a fault no real database produces on demand.
type panicDriver struct{}

func (panicDriver) Open(string) (driver.Conn, error) { return panicConn{}, nil }

type panicConn struct{}

func (panicConn) Prepare(string) (driver.Stmt, error) { return nil, driver.ErrSkip }
func (panicConn) Close() error                        { return nil }
func (panicConn) Begin() (driver.Tx, error)           { panic("driver fault") }

func init() { sql.Register("keystile-panic", panicDriver{}) }

// TestLeaseBatchPanicFailsTheBatch: a panic while a batch of SQLite
// leases is written fails that batch's leases with an error that says so,
// and later leases are written (and fail) in their own batch: the process
// does not crash and no caller waits for good.
func TestLeaseBatchPanicFailsTheBatch(t *testing.T) {
	db, err := sql.Open("keystile-panic", "")
	require.NoError(t, err)
	defer db.Close()
	s := &Store{db: db, d: SQLite}
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.leaseBatched(ctx, "key", "UPDATE keystile_quotas SET balance = 0", nil, time.Now())
		cancel()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "panic: driver fault")
	}
}

// queryPanicDriver is a database/sql driver whose transactions begin and
// end, and whose queries panic: the fault of a driver bug in a lease
// statement.
type queryPanicDriver struct{}

func (queryPanicDriver) Open(string) (driver.Conn, error) { return queryPanicConn{}, nil }

type queryPanicConn struct{}

func (queryPanicConn) Prepare(string) (driver.Stmt, error) { return queryPanicStmt{}, nil }
func (queryPanicConn) Close() error                        { return nil }
func (queryPanicConn) Begin() (driver.Tx, error)           { return queryPanicTx{}, nil }

type queryPanicTx struct{}

func (queryPanicTx) Commit() error   { return nil }
func (queryPanicTx) Rollback() error { return nil }

type queryPanicStmt struct{}

func (queryPanicStmt) Close() error                               { return nil }
func (queryPanicStmt) NumInput() int                              { return -1 }
func (queryPanicStmt) Exec([]driver.Value) (driver.Result, error) { panic("driver fault") }
func (queryPanicStmt) Query([]driver.Value) (driver.Rows, error)  { panic("driver fault") }

func init() { sql.Register("keystile-query-panic", queryPanicDriver{}) }

// TestLeaseBatchStatementPanicFailsTheBatch: a panic of the driver while
// a lease statement runs (database/sql then never releases the
// transaction, whose Rollback would wait for good) fails that batch's
// leases with an error that says so, and later leases get their own
// batch: no caller waits until its context ends.
func TestLeaseBatchStatementPanicFailsTheBatch(t *testing.T) {
	db, err := sql.Open("keystile-query-panic", "")
	require.NoError(t, err)
	defer db.Close()
	s := &Store{db: db, d: SQLite}
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.leaseBatched(ctx, "key", "UPDATE keystile_quotas SET balance = 0", nil, time.Now())
		cancel()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "panic: driver fault")
	}
}
