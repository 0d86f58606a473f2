// Package storage holds keystile's storage contract and its backends.
//
// The contract is apikey.Store (re-exported here as Store): seven methods
// whose rules live in their doc comments, every one answered by index (a
// key by id, a default key by account, environment and type, pages of keys,
// environments and accounts after a cursor) and one atomic write. Backends
// may offer more through optional interfaces, found by type assertion:
//
//   - ChangeFeed: what changed since a revision, so that every process
//     sharing the store can evict stale cache entries;
//   - LastUsedRecorder: batched last-used times;
//   - AuditLog: reading audit events back, a page at a time.
//
// Backends: storage/memory (tests, examples, one process), storage/sqlstore
// (SQLite and PostgreSQL through database/sql, with the driver the user
// brings). Package storage/storetest is the conformance suite that every
// backend, ours or yours, should pass.
//
// Writing your own store: implement Store, keep only hashes (a Record never
// holds a secret), make Apply atomic with compare-and-set on revisions, and
// run storetest.Run against it.
package storage

import (
	"context"
	"errors"
	"time"

	"github.com/keystile/keystile/apikey"
)

// Store is the storage contract; see apikey.Store.
type Store = apikey.Store

// Change is one atomic write; see apikey.Change.
type Change = apikey.Change

// ErrFeedGap means a ChangeFeed no longer holds the changes after the
// requested revision (they were pruned). The consumer must drop everything
// it cached and continue from the revision returned with the error.
var ErrFeedGap = errors.New("storage: change feed gap; drop caches")

// Changed is one entry of a change feed: a key or an account's
// environment's settings changed at Revision.
type Changed struct {
	Revision    int64
	Account     string
	Environment string
	// KeyID is the key that changed; empty when the settings changed.
	KeyID string
	// Key is the key's record as Key(KeyID) would return it when the
	// entry is read (or later), for stores that provide it (memory and
	// sqlstore do); nil for settings, for a key that no longer exists or
	// cannot be read, and from stores that do not. A reader updates what
	// it cached from it, with no read of its own; without it, a reader
	// evicts the key and reads it again when it is next presented. A
	// wrapper that changes what Key returns must set Key the same way in
	// Changes, or set it to nil.
	Key *apikey.Record
}

// ChangeFeed is an optional Store capability: it reports changes so that
// other processes can evict what they cached. Every Apply that writes a key
// or settings produces one entry per key or settings, in commit order.
type ChangeFeed interface {
	// Changes returns up to limit entries with Revision > since, in
	// ascending order, and the revision to pass next time (the last
	// returned, or since if there are none). If entries after since were
	// pruned, or since is beyond the newest revision (the store was reset
	// or restored), it returns ErrFeedGap with the current revision.
	// limit <= 0 means a backend default.
	Changes(ctx context.Context, since int64, limit int) ([]Changed, int64, error)
	// Revision returns the newest revision, to start following the feed.
	Revision(ctx context.Context) (int64, error)
}

// KeyBatchReader is an optional Store capability: it reads many keys in
// one call. The middleware uses it to renew the cache entries of the keys
// in use before their lifetime ends; without it, it reads them one by one
// with Key. A wrapper that changes what Key returns (or makes it fail)
// must implement KeysByID the same way, or not at all: a KeysByID promoted
// from an embedded store would go around it.
type KeyBatchReader interface {
	// KeysByID returns the records of the keys with these ids, as Key
	// would return them, in any order. An id may repeat; an id with no
	// key, or whose record cannot be read, is left out.
	KeysByID(ctx context.Context, ids []string) ([]apikey.Record, error)
}

// LastUsedRecorder is an optional Store capability: it stores last-used
// times in batches, without touching revisions or the change feed. Times
// never move backwards; unknown key ids are ignored.
type LastUsedRecorder interface {
	RecordLastUsed(ctx context.Context, used map[string]time.Time) error
}

// AuditLog is an optional Store capability: it reads audit events back,
// newest first, a page at a time, each with its Seq set.
//
// An event's Seq is its place in its account's log (see apikey.Event.Seq):
// Apply numbers the events of each account 1, 2, 3... in the order it
// appends them, in the same atomic write, so that neither an event nor a
// page cursor (a Seq) reveals how many events other accounts have.
type AuditLog interface {
	Events(ctx context.Context, q EventQuery) ([]apikey.Event, error)
}

// EventQuery selects a page of audit events, newest first.
type EventQuery struct {
	// Account, if set, selects that account's events; empty selects every
	// account's (for operators), newest first in the order they were
	// appended, and cannot be paged with Before.
	Account string
	// Environment, if set, selects that environment's events (of Account,
	// when set).
	Environment string
	// Before, if positive, selects Account's events older than the one
	// with this Seq: the Seq of the last event of the previous page. It
	// needs Account: with Account empty, a positive Before fails with
	// apikey.ErrInvalidCursor.
	Before int64
	// Limit is the most events to return; <= 0 means no limit.
	Limit int
}
