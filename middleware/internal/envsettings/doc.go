// Package envsettings holds, in memory, what the middleware needs of every
// account's environments' settings: the allowed origins of each
// environment's publishable keys and whether its account is closed. A Table
// answers, without a store call, whether an environment allows a request
// origin (Allows), whether its account is closed (Closed) and whether any
// environment allows an origin (AnyAllows, for a CORS preflight, which
// carries no key). Load reads every environment a page at a time; Reload
// reads one; failed and missing ones wait in a bounded queue for
// ReloadPending.
package envsettings
