package apikey

import "context"

// Store is the persistence that the lifecycle (Manager) and the middleware
// need. Package storage holds the backends that implement it, the optional
// capabilities they may add, and a conformance suite that every
// implementation should pass.
//
// Contract, for implementers:
//   - Store only what a Record holds: a hash of each key, never the key.
//   - Every method is safe for concurrent use. A backend that several
//     processes can share (a SQL database) must keep every rule across
//     them; a single-process backend (memory, a file) says so in its docs.
//   - err is for system errors, except for the sentinels named below.
//     A missing record is ErrNotFound; a lost race is ErrConflict.
//   - Every method honours ctx: once ctx is done it returns an error that
//     wraps ctx.Err() and changes nothing.
//   - Returned records and settings are copies the caller may modify.
//   - Nothing reads a whole environment or account to answer one
//     question: DefaultKey, Keys, Environments and Accounts are answered
//     by index, in time that does not grow with the number of keys.
//   - Pages are full: Keys, Environments and Accounts return exactly the
//     limit while that many items remain (a shorter page is the last one),
//     ordered by the bytes of ids, accounts and environment names (on
//     PostgreSQL, COLLATE "C").
//   - Accounts are hard boundaries: environment names are unique per
//     account, and key ids are unique across all of them.
type Store interface {
	// Key returns the key with the given id, whatever its account, or
	// ErrNotFound.
	Key(ctx context.Context, id string) (Record, error)
	// DefaultKey returns the default key of type t of an account's
	// environment, or ErrNotFound.
	DefaultKey(ctx context.Context, account, environment string, t KeyType) (Record, error)
	// Keys returns a page of an account's environment's keys in creation
	// order (CreatedAt, then ID) strictly after q.After: q.Limit of them
	// while that many remain, an empty list when there are no more.
	Keys(ctx context.Context, q KeyQuery) ([]Record, error)
	// Settings returns the settings of an account's environment, or
	// ErrNotFound if it has not been bootstrapped.
	Settings(ctx context.Context, account, environment string) (Settings, error)
	// Environments returns a page of settings ordered by account, then
	// environment, strictly after q.After: q.Limit of them while that many
	// remain, of q.Account only when it is set.
	Environments(ctx context.Context, q EnvironmentQuery) ([]Settings, error)
	// Accounts returns up to limit account ids that have environments, in
	// order, after the id after ("" for the first page).
	Accounts(ctx context.Context, after string, limit int) ([]string, error)
	// Apply makes a Change atomically: all of it or, with an error, none of
	// it.
	Apply(ctx context.Context, c Change) error
}

// Change is one atomic write to a Store. Apply fails with ErrConflict, and
// writes nothing, when:
//   - an inserted record's id exists already;
//   - an updated record or settings' Revision differs from the stored one
//     (someone else changed it since it was read);
//   - settings with Revision 0 are inserted for an account's environment
//     that has them;
//   - after the change, an account's environment would have two Default
//     keys of one type.
//
// With OpenAccount set, Apply fails with ErrAccountClosed, and writes
// nothing, when an environment of that account is closed (its Settings
// have ClosedAt set) at the moment the change is applied, and else with
// ErrAccountSuspended when one is suspended (SuspendedAt set): the check is part
// of the atomic write, never a read before it, so that a change racing
// Manager.CloseAccount in any process either lands before the account's
// first environment is closed (and is then revoked by it) or is refused.
//
// An updated record that does not exist fails with ErrNotFound. Settings
// with a non-zero Revision for an environment that has none are
// ErrConflict. The store sets the Revision of what it writes to a new,
// higher value. On update it keeps the later of the stored and the given
// LastUsedAt, which is written separately (see storage.LastUsedRecorder).
// Times are stored in UTC with at least microsecond precision.
//
// Callers (the Manager) name an id at most once per Change and never change
// a record's ID, Account, Type, Environment or CreatedAt; stores need not
// check either, and may refuse a repeated id with ErrConflict.
type Change struct {
	Insert   []Record   // new keys, with Revision 0
	Update   []Record   // changed keys, with the Revision they were read at
	Settings []Settings // environment settings: Revision 0 to create, else as read
	Events   []Event    // audit events to append
	// OpenAccount, if set, is an account that must have no closed
	// environment when the change is applied (else ErrAccountClosed), and
	// no suspended one (else ErrAccountSuspended). The Manager sets it on
	// every change that creates or changes keys or settings, except
	// revocations, the closing itself, and suspending and resuming.
	OpenAccount string
}
