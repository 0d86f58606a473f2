// Package quota spends the uses of each key's quota (apikey.Quota) from
// leases taken from a storage.QuotaLedger, so that no request writes to the
// store.
//
// A Spender keeps, per key, the unspent uses of its latest lease. A request
// that costs no more than that is admitted from memory (no I/O); otherwise
// the Spender takes one lease with one LeaseQuota call, shared by every
// request for that key that waits meanwhile. A lease holds between MinLease
// and MaxLease uses (and at least the request's cost), sized to what the
// key spent over the last LeaseTime; ReturnIdle gives back the uses of
// leases unused for LeaseTime, Forget those of one key, Close all of them.
//
// # Bound
//
// Every admitted use was first taken from the store's balance by one atomic
// conditional update that never grants more than the balance holds, and a
// lease is spent only until the NextRefill the store reported with it
// (then it is dropped: the store refilled). So, with the instances' clocks in agreement, the
// uses admitted for a key in one refill period never exceed the balance the
// period started with, which is at most the quota's Limit, whatever the
// number of instances: admitted ≤ quota.
//
// Two cases can admit more, each at most one lease per instance:
//   - an instance whose clock lags spends its lease of the ended period for
//     as long as its clock lags;
//   - the quota of a key changes while an instance holds a lease taken
//     under the old quota (the store counts the lease's uses as leased:
//     the new balance is the new Limit minus what was spent or leased,
//     below zero when the Limit was lowered below it): until the instance
//     learns of the change it spends that lease. Once it learns (Spend
//     with the new quota, or Forget with it) it never spends the old
//     lease: it returns the lease's unspent uses, with the lease's
//     Generation, and returns whole a lease being taken under the old
//     quota meanwhile; a Spend that learns of the change leases under the
//     new quota only once both are returned (the key's other requests wait
//     for them too). The store adds them to the new balance, or drops them
//     when the change replaced the balance (a quota set again after it was
//     removed, another Period).
//
// In the worst case, then, admitted ≤ quota + instances × max(MaxLease,
// largest cost) per period; with LeaseAhead, an instance holds at most a
// quarter of a lease besides the next one, and the term is 5/4 ×
// max(MaxLease, largest cost).
//
// The other way, a request may be refused while uses sit unspent in other
// instances' leases: at most (instances − 1) × max(MaxLease, largest cost)
// per key (5/4 of it with LeaseAhead), until those instances spend them,
// return them (ReturnIdle, after LeaseTime unused), or Close. An instance that found the store empty asks
// it again at most once per LeaseTime (and at the refill).
//
// Memory is bounded: at most MaxKeys keys (rounded up to a multiple of 32,
// plus keys whose lease is being taken) have local state, about 210 bytes
// each besides the key id; a key that arrives when its shard is full evicts
// another, whose unspent uses are returned.
package quota
