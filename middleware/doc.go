// Package middleware is keystile's HTTP edge: it authenticates the API key
// of every request to a net/http service, authorizes it under each route's
// Policy, answers CORS preflights for publishable keys, and puts the key's
// Identity in the request context.
//
// Build one Validator per process with New. Wrap the router with CORS, a
// router or group with Authenticate and each route with Require. Pass
// Invalidate as apikey.ManagerOptions.OnEvent, and Close the Validator
// after the server has shut down.
//
// A refused request gets an application/problem+json body with the code of
// one of the Err sentinels: 401 for a key that is not valid, 403 for a
// valid key not allowed here, 429 and 503 with Retry-After; a failing
// store is 503, never 401. No error, body or hook holds a secret;
// docs/security.md states every guarantee.
package middleware
