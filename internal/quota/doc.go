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
// leases unused for LeaseTime, Forget those of one key whose quota did not
// change, Close all of them.
//
// # Bound
//
// Every admitted use was first taken from the store's balance by one atomic
// conditional update that never takes it below zero, and a lease is spent
// only until the NextRefill the store reported with it (then it is dropped:
// the store refilled). So, with the instances' clocks in agreement, the
// uses admitted for a key in one refill period never exceed the balance the
// period started with, which is at most the quota's Limit, whatever the
// number of instances: admitted ≤ quota.
//
// Two cases can admit more, each at most one lease per instance:
//   - an instance whose clock lags spends its lease of the ended period for
//     as long as its clock lags;
//   - the quota of a key changes (the store keeps what was spent under the
//     new Limit) while an instance holds a lease taken under the old
//     quota: until the instance learns of the change it spends that
//     lease. Its returns are dropped by the store (the lease's Generation
//     is no longer the quota's), and once it learns (Spend with the new
//     quota, or Forget with it) the old lease is dropped, never returned;
//     a lease being taken under the old quota meanwhile is dropped too.
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
