// Package middleware is keystile's HTTP edge: it authenticates the API key
// of every request to a net/http service, authorizes it under each route's
// Policy, answers CORS preflights for publishable keys, and puts the key's
// Identity in the request context.
//
// Build one Validator per process with New. Wrap the router with CORS, a
// router or group with Authenticate (any valid key of either type) and
// each route with Require (a Policy: key types, scope, environments;
// publishable keys only where the Policy names apikey.Client). Read the
// Identity with FromContext. Pass Invalidate as
// apikey.ManagerOptions.OnEvent, so that changes apply in this process
// before the Manager call returns (other processes follow the store's
// change feed), and Close the Validator after the server has shut down.
//
// A refused request gets an application/problem+json body (RFC 9457) with
// the stable code of one of the Err sentinels: 401 for a key that is not
// valid, 403 for a valid key not allowed here (the detail names the
// policy), 429 and 503 with Retry-After. Storage failures and panics of a
// store or hasher are 503, never 401. Errors, bodies and hooks carry at
// most a key's displayable prefix, never its secret. docs/security.md and
// docs/consistency.md in the repository state every guarantee.
package middleware
