package apikey

import "context"

// Store is the persistence that the lifecycle (Manager) and the middleware
// need. Package storage holds the backends that implement it, the optional
// capabilities they may add, and a conformance suite that every
// implementation should pass.
//
// Contract, for implementers:
//   - Store only what a Record holds: a hash of each key, never the key.
//     Record.Hash and Record.Recoverable are Opaque: write Hash.Reveal()
//     and Recoverable.Bytes(), read back with NewOpaque and OpaqueBytes.
//   - Every method is safe for concurrent use. A backend that several
//     processes can share (a SQL database) must keep every rule across
//     them; a single-process backend (memory, a file) says so in its docs.
//   - err is for system errors, except for the sentinels named below.
//     A missing record is ErrNotFound; a lost race is ErrConflict.
//   - Every method honours ctx: once ctx is done it returns an error that
//     wraps ctx.Err() and changes nothing.
//   - Returned records and settings are copies the caller may modify.
type Store interface {
	// Key returns the key with the given id, or ErrNotFound.
	Key(ctx context.Context, id string) (Record, error)
	// Keys returns every key of the environment, in creation order (then
	// id); an empty list if there are none.
	Keys(ctx context.Context, environment string) ([]Record, error)
	// Settings returns an environment's settings, or ErrNotFound if the
	// environment has not been bootstrapped.
	Settings(ctx context.Context, environment string) (Settings, error)
	// Environments returns the settings of every environment, sorted by name.
	Environments(ctx context.Context) ([]Settings, error)
	// Apply makes a Change atomically: all of it or, with an error, none of
	// it.
	Apply(ctx context.Context, c Change) error
}

// Change is one atomic write to a Store. Apply fails with ErrConflict, and
// writes nothing, when:
//   - an inserted record's id exists already;
//   - an updated record or settings' Revision differs from the stored one
//     (someone else changed it since it was read);
//   - settings with Revision 0 are inserted for an environment that has them;
//   - after the change, an environment would have two Default keys of one
//     type.
//
// An updated record that does not exist fails with ErrNotFound. Settings
// with a non-zero Revision for an environment that has none are
// ErrConflict. The store sets the Revision of what it writes to a new,
// higher value. On update it keeps the later of the stored and the given
// LastUsedAt, which is written separately (see storage.LastUsedRecorder).
// Times are stored in UTC with at least microsecond precision.
//
// Callers (the Manager) name an id at most once per Change and never change
// a record's ID, Type, Environment or CreatedAt; stores need not check
// either, and may refuse a repeated id with ErrConflict.
type Change struct {
	Insert   []Record   // new keys, with Revision 0
	Update   []Record   // changed keys, with the Revision they were read at
	Settings []Settings // environment settings: Revision 0 to create, else as read
	Events   []Event    // audit events to append
}
