package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keystile/keystile/storage"
)

// maxLeaseBatch bounds the leases of one SQLite transaction, so that a
// batch holds the write lock for a few milliseconds (a rotation waits for
// it).
const maxLeaseBatch = 100

// leaseBatchTimeout bounds the writing of one batch.
const leaseBatchTimeout = time.Minute

// leaseBatches groups the SQLite quota leases that arrive while a batch is
// being written into the next batch, one transaction of at most
// maxLeaseBatch lease statements. SQLite commits one writer at a time and
// syncs its log at each commit, so that N concurrent leases cost one
// commit instead of N (docs/benchmarks.md, Quota leases on SQLite). Each
// statement is the one LeaseQuota runs alone on PostgreSQL: batching
// changes when leases commit, not what they grant.
type leaseBatches struct {
	mu      sync.Mutex
	pending []*leaseCall
	writing bool // a goroutine writes batches until pending is empty
}

// leaseCall is one LeaseQuota waiting for its batch.
type leaseCall struct {
	ctx       context.Context
	keyID     string
	stmt      string
	args      []any
	now       time.Time
	row       leaseRow
	err       error
	abandoned bool          // its caller stopped waiting; guarded by leaseBatches.mu
	done      chan struct{} // closed under leaseBatches.mu once row and err are set
}

// leaseRow is what a lease statement returns.
type leaseRow struct {
	granted, remaining, refill, generation, limit, index int64
	period                                               string
}

func (r *leaseRow) dest() []any {
	return []any{&r.granted, &r.remaining, &r.refill, &r.period, &r.generation, &r.limit, &r.index}
}

// leaseBatched runs the lease statement stmt with args in the next batch
// and waits for its commit, or for ctx. A lease granted to a caller that
// stopped waiting is returned to the store.
func (s *Store) leaseBatched(ctx context.Context, keyID, stmt string, args []any, now time.Time) (leaseRow, error) {
	c := &leaseCall{ctx: ctx, keyID: keyID, stmt: stmt, args: args, now: now, done: make(chan struct{})}
	b := &s.leases
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if !b.writing {
		b.writing = true
		go s.writeLeaseBatches()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.row, c.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-c.done:
		return c.row, c.err
	default:
		c.abandoned = true
		return leaseRow{}, ctx.Err()
	}
}

// writeLeaseBatches writes batches of pending leases until none is left.
func (s *Store) writeLeaseBatches() {
	b := &s.leases
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxLeaseBatch)
		if n == 0 {
			b.pending, b.writing = nil, false
			b.mu.Unlock()
			return
		}
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()

		s.writeLeaseBatch(batch)

		var unclaimed []*leaseCall
		b.mu.Lock()
		for _, c := range batch {
			if c.abandoned && c.err == nil && c.row.granted > 0 {
				unclaimed = append(unclaimed, c)
			}
			close(c.done)
		}
		b.mu.Unlock()
		for _, c := range unclaimed {
			s.returnUnclaimed(c)
		}
	}
}

// writeLeaseBatch runs the statements of batch in one transaction and sets
// each call's row and error. A call whose context ended before its
// statement ran gets the context's error. A statement that fails for
// another reason than finding no row rolls the batch back: every call
// gets its error.
func (s *Store) writeLeaseBatch(batch []*leaseCall) {
	ctx, cancel := context.WithTimeout(context.Background(), leaseBatchTimeout)
	defer cancel()
	fail := func(err error) {
		for _, c := range batch {
			c.row, c.err = leaseRow{}, err
		}
	}
	var tx *sql.Tx
	defer func() { // a panic (of the driver, say) fails the batch, not the process
		if p := recover(); p != nil {
			if tx != nil {
				// Not waited for: after a panic in the driver's query,
				// database/sql never releases the transaction, and its
				// Rollback (and connection) waits for good.
				go func() { _ = tx.Rollback() }()
			}
			fail(fmt.Errorf("sqlstore: writing quota leases: panic: %v", p))
		}
	}()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	stmts := map[string]*sql.Stmt{} // each statement compiled once per batch
	for _, c := range batch {
		if c.err = c.ctx.Err(); c.err != nil {
			continue
		}
		stmt := stmts[c.stmt]
		if stmt == nil {
			if stmt, err = tx.PrepareContext(ctx, c.stmt); err != nil {
				_ = tx.Rollback()
				fail(err)
				return
			}
			stmts[c.stmt] = stmt
		}
		c.err = stmt.QueryRowContext(ctx, c.args...).Scan(c.row.dest()...)
		if c.err != nil && !errors.Is(c.err, sql.ErrNoRows) {
			err := c.err
			_ = tx.Rollback()
			fail(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(err)
	}
}

// returnUnclaimed gives back the uses granted to a call whose caller
// stopped waiting.
func (s *Store) returnUnclaimed(c *leaseCall) {
	ctx, cancel := context.WithTimeout(context.Background(), leaseBatchTimeout)
	defer cancel()
	lease := storage.QuotaLease{LeasedAt: c.now, Generation: c.row.generation}
	// Returned as of the later of the lease's time and the clock's, so that
	// a lease whose period has ended since is dropped, as ReturnQuota drops
	// one. If the return fails, the uses stay spent: fewer admitted, never
	// more.
	now := c.now
	if t := time.Now(); t.After(now) {
		now = t
	}
	_ = s.ReturnQuota(ctx, c.keyID, c.row.granted, lease, now)
}
