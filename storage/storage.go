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
//   - AuditLog: reading audit events back, a page at a time;
//   - EventStream: every account's events in commit order, read from a
//     cursor by any process;
//   - TimedEventLog: the keys whose expiry falls in a window, by index,
//     and time-based events written once per key and expiry;
//   - DeliveryLog: each webhook endpoint's place in the event stream,
//     under a lease that one instance holds at a time, and its dead
//     letters;
//   - ReplayLog: dead letters re-queued for delivery;
//   - EndpointStore: the webhook endpoints that tenants register, and each
//     account's events read from the stream by index;
//   - QuotaLedger: the balance of each key's quota (and of each owner's
//     shared quota), leased in batches;
//   - UsageRecorder: requests per key, hour and outcome, written in batches;
//   - CallerLog: the callers still using each key rotated out, bounded per
//     key, written in batches;
//   - InstanceLog: the change-feed revision each running validator has
//     applied, so that a change can be confirmed everywhere;
//   - OwnerIndex, ExpiryIndex: an owner's keys, and the keys that expire
//     soon, by index;
//   - KeyPurger: deleting keys revoked or expired long ago, in batches.
//
// Backends: storage/memory (tests, examples, one process), storage/sqlstore
// (SQLite and PostgreSQL through database/sql, with the driver the user
// brings). Package storage/storetest is the conformance suite that every
// backend, ours or yours, should pass.
//
// Writing your own store: implement Store, keep only hashes (a Record never
// holds a secret), make Apply atomic with compare-and-set on revisions, and
// run storetest.Run against it, naming the optional interfaces it
// implements in storetest.Config.Require.
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

// EventStream is an optional Store capability: every account's events in
// commit order, read from a cursor; see apikey.EventStream.
type EventStream = apikey.EventStream

// StreamEvent is an event of an EventStream; see apikey.StreamEvent.
type StreamEvent = apikey.StreamEvent

// ReplayLog is an optional Store capability: dead letters re-queued for
// delivery; see apikey.ReplayLog.
type ReplayLog = apikey.ReplayLog

// EndpointStore is an optional Store capability: the webhook endpoints
// tenants register, and each account's events by index; see
// apikey.EndpointStore.
type EndpointStore = apikey.EndpointStore

// TimedEventLog is an optional Store capability: time-based events, each
// written once per key and expiry; see apikey.TimedEventLog.
type TimedEventLog = apikey.TimedEventLog

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

// QuotaLedger is an optional Store capability: it keeps the balance of each
// key's quota (Record.Limits.Quota), spent in leases so that no request
// writes to the store. A key whose record has no quota has no balance.
//
// There is one balance per rotation lineage (Record.LineageID), not per
// key: a replacement key continues the balance of the key it replaced, and
// during the grace both keys lease from and return to that one balance, so
// that the keys of a lineage are granted together at most one quota per
// period. The balance follows the record of the lineage's key that is not
// rotated out (Record.RotatedAt zero): writing a rotated-out key never
// changes it.
//
// The keys of one owner in an account also share a balance, named by
// apikey.OwnerBalanceID(account, owner), whose quota is the keys'
// Record.OwnerLimits.Quota (the same on all of them; see
// apikey.Manager.SetOwnerLimits): Apply keeps it in step with each key it
// writes that has an owner quota, by the same rules as a lineage's. A key
// without one leaves it as it is: a balance whose owner quota was removed
// is kept (never deleted), so that setting the quota again continues what
// was spent instead of granting a fresh one. LeaseQuota and ReturnQuota
// take such an id in place of a key id; an owner id without a balance is
// a balance without a quota (Unlimited), never apikey.ErrNotFound.
//
// A quota starts full (its Limit) when it is set on a key (or set again
// after it was removed). A change to a different Quota keeps what was
// spent or leased: the balance becomes the new Limit minus the uses spent
// or leased under the old one (old Limit - balance), which is at most the
// new Limit and may be below zero, so that raising the limit of an
// exhausted key by 100 grants 100 more, not a full quota, and lowering it
// below what was spent or leased leaves a balance that returns must fill
// before a lease is granted anything. While the Period stays the same,
// the period the balance was last refilled in is kept too (a changed
// Period refills from the first boundary after the next lease). At each
// boundary of its Period (UTC) the balance gains Refill, from zero when it
// is below zero, never beyond Limit: it becomes min(Limit, max(balance, 0)
// + Refill × boundaries passed), so that a lowered quota's excess is
// forgiven at the next boundary. A lease at time now first adds the
// refills of every boundary passed since the balance was last refilled,
// in the same atomic update, so that a refill happens exactly once per
// period whatever the number of processes. A return refills nothing: it
// adds its uses only while the balance is still in the lease's period and
// now is too (see ReturnQuota).
//
// Besides its Generation, each balance keeps the generation from which it
// accepts returns: the Generation of the change that set the quota when
// the balance starts full (a new quota, or a key's set again after it was
// removed; an owner's balance outlives its removal) or when the change
// sets another Period, and kept when a change sets only another Limit or
// Refill. A lease taken before a change of the Limit or Refill is counted
// as leased by the change, and its unspent uses are still returned to the
// balance; a lease taken before the balance started full, or under
// another Period, was replaced by the new balance, and its returns are
// dropped.
//
// A lease's now is the caller's clock. A store shared by processes bounds
// it by its own clock: a now more than one hour ahead of the store's clock
// counts as the store's clock plus one hour, so that one process whose
// clock is far ahead cannot move the balance into a future period, which
// would stop the refills of every other process until then (sqlstore uses
// the database's clock; memory serves one process, and takes now as
// given). A now behind the balance's period refills nothing.
//
// A ledger that is also an EventStream appends an
// apikey.ActionQuotaExhausted event (apikey.QuotaExhaustedEvent) when a
// lease cannot be granted in full (Granted < want), once per balance,
// quota (Generation) and period, whatever the number of processes leasing:
// it records (balance id, apikey.QuotaExhaustedKind(generation), period
// index) as TimedEventLog records a time-based event, and appends the
// event only with the record it wrote. A lease granted in full writes
// nothing. A store may append it after the lease's own update (sqlstore
// does, in a transaction of its own, and ignores its failure: the lease
// stands, and the next lease the balance cannot grant in the period
// writes the event).
type QuotaLedger interface {
	// LeaseQuota takes up to want uses (want >= 1) from keyID's balance at
	// now, in one atomic conditional update, and reports what it granted
	// (min(want, max(balance, 0)): 0 when the balance is empty or below
	// zero) and the balance left (never below zero). It returns
	// apikey.ErrNotFound for an unknown key and a lease with Granted 0 and
	// Unlimited true for a key without a quota.
	LeaseQuota(ctx context.Context, keyID string, want int64, now time.Time) (QuotaLease, error)
	// ReturnQuota gives back n unspent uses of lease, a lease of keyID's
	// balance (only its LeasedAt and Generation are read). The uses are
	// added when the lease's Generation is at least the generation from
	// which the balance accepts returns (see above) and the lease's period
	// has not ended: uses of a period that has ended are dropped (the
	// refill replaced them), and so are uses of a lease taken before the
	// balance started full or changed its Period. The balance never
	// exceeds Limit, whatever n (up to math.MaxInt64: the return
	// saturates, never overflows or fails). Unknown keys and keys without
	// a quota are ignored.
	ReturnQuota(ctx context.Context, keyID string, n int64, lease QuotaLease, now time.Time) error
}

// QuotaLease is what LeaseQuota granted.
type QuotaLease struct {
	// Granted is how many uses the caller may spend, 0 to want.
	Granted int64
	// Remaining is the balance left in the store after the grant, or 0
	// when the balance is below zero; never negative.
	Remaining int64
	// NextRefill is when the balance next gains the quota's Refill; zero
	// when the quota never refills.
	NextRefill time.Time
	// Unlimited reports that the key has no quota.
	Unlimited bool
	// LeasedAt is the time the lease was taken at (LeaseQuota's now),
	// which names its period.
	LeasedAt time.Time
	// Generation names the quota the lease was taken under: it changes
	// whenever the balance's quota changes, and never takes a value it had
	// before (stores use the revision of the change that set the quota).
	// ReturnQuota adds the uses of a lease whose generation is at least
	// the one from which the balance accepts returns, and drops the others.
	Generation int64
}

// DeliveryLog is an optional Store capability: delivery progress per
// endpoint under a lease, and dead letters; see apikey.DeliveryLog.
type DeliveryLog = apikey.DeliveryLog

// DeadLetter is an event that was not delivered; see apikey.DeadLetter.
type DeadLetter = apikey.DeadLetter
