// Package redislimit is a limit.Limiter whose limits are shared by every
// instance of a service through Redis, without a Redis call per request.
//
// Each bucket (a key id, or an owner's shared bucket) has one key in
// Redis holding its theoretical arrival time under the generic cell rate
// algorithm (limit.Step). An instance takes capacity in batches: an atomic
// Lua script spends Batch requests of the bucket at once, or none when the
// shared bucket cannot afford them, and the instance then admits requests
// from its batch in memory. The call to Redis runs in the background when
// a batch runs out; while it is on its way, the instance admits up to one
// batch on credit, which the next batches repay. A bucket that Redis
// refused a batch admits nothing more until Redis said a batch would fit.
//
// # Accuracy
//
// Redis charges a bucket at most B + d/T requests in any interval of
// length d (B the burst, T = Window/Requests, as limit.Local). An
// instance holds at most one batch taken and not spent, and admits at
// most one batch on credit (a request that costs more than Batch takes its
// cost, which then counts as the batch), so with P instances the requests
// admitted in any interval of length d are at most
//
//	B + d/T + 2·P·Batch
//
// Once a bucket is spent (under steady pressure), a Window admits at most
// Requests + (2·P+1)·Batch: the shared bucket is then within one batch of
// empty. With the default batch (Requests/100) and 3 instances, the
// excess is at most 7 % of the limit. Times are the instances' clocks (the
// now given to Allow): a skew of s between instances can add s/T.
// TestSharedAccuracy measures it with 3 OS processes.
//
// The capacity goes to the instances that ask first: it is not divided
// fairly between them, so that under pressure one instance may admit most
// of a bucket's requests while the others refuse theirs.
//
// # Calls to Redis
//
// An instance calls Redis once per batch it admits (a request costing more
// than Batch takes its cost at once), and, for a bucket that Redis
// refused, at most once per time a batch takes to return (Batch·T). It
// never calls Redis for a request decided from its batch.
//
// # Faults
//
// Allow never waits for Redis and never fails because of it. When a call
// fails, the Limiter reports the error to the function given to
// ReportErrors and decides every request with a per-process limit.Local
// at the same rates (so P instances admit at most P times the limit)
// until a probe call, one per RetryInterval, succeeds.
package redislimit
