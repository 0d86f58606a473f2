// Package envsettings holds, in memory, what the middleware needs of every
// account's environments' settings: the allowed origins of each
// environment's publishable keys, as an apikey.OriginSet, and whether the
// environment's account is closed. It answers three questions without a
// store call:
//
//   - Allows: does this environment allow this request origin (and are its
//     settings known at all)?
//   - Closed: is this environment's account closed?
//   - AnyAllows: does some environment of some account allow this origin
//     (a CORS preflight, which carries no key)?
//
// # Loading and updates
//
// Load reads every environment, a page of PageSize at a time
// (apikey.Store's Environments), into a fresh map and swaps it in. Reload
// reads one environment (one Store.Settings call) and replaces its entry in
// place: the change feed and Invalidate call it. A failed Reload, and an
// environment a lookup asked for and the table does not hold, wait in a
// bounded queue (at most MaxPending environments; beyond it a full load is
// due) until ReloadPending, which the caller runs when Pending signals and
// at each feed poll. Until the first Load succeeds, Loaded reports false
// and Allows reports every environment unknown.
//
// An allowed-origin entry that does not parse (a list saved before a rule
// became stricter: a wildcard over a public suffix, a list longer than
// apikey.MaxOrigins) admits nothing: the environment's other entries keep
// working, and the entry is reported to the Report function, by position,
// never by content.
//
// Errors of the store are returned to the caller, wrapped. The table does
// not recover panics of the store: the caller wraps its store.
//
// # Concurrency
//
// All methods of *Table are safe for concurrent use. Lookups take a read
// lock (Closed takes none while no account in the table is closed) and do
// not allocate, except once (the public suffix look-up) when a wildcard
// admits the origin. Writers (Load, Reload) are serialised, so that a read of
// the store that began before a change never replaces one that began after
// it; a Load holds the write lock only to swap the map. The lookups' cost
// does not grow with the number of environments, nor with the length of an
// environment's list.
package envsettings
