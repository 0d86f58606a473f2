// Package middleware is keystile's HTTP edge: it authenticates the API key
// of every request to a net/http service, authorizes it under each route's
// Policy, answers CORS preflights for publishable keys, and puts the key's
// Identity in the request context.
//
// # Overview
//
// Build one Validator per process with New. Wrap a router or group with
// Authenticate (any valid key of either type) and each route with Require
// (a Policy: key types, scope, environments; publishable keys only where
// the Policy names apikey.Client); Handler is Require with the zero Policy.
// Wrap the whole router with CORS. Read the key's Identity in the handler
// with FromContext. Check is the same validation without a response. Pass
// Invalidate as apikey.ManagerOptions.OnEvent so that lifecycle changes
// take effect in this process at once, and Close the Validator after the
// server has shut down.
//
// Authentication reads the key from X-API-Key (or "Authorization: Bearer"
// with Options.AllowBearer; never from the URL), finds it in the
// validation cache or, on a miss, checks its format and checksum (no I/O),
// reads it by id and verifies its argon2id hash. It then checks status and
// expiry on every request, refuses keys of closed accounts as revoked and
// server keys sent by a browser (an Origin or a Sec-Fetch-Site header; see
// Options.AllowServerKeyFromBrowser), and checks a publishable key sent
// with an Origin against its environment's allowed origins. Authorization
// checks the route's Policy.
//
// # Responses
//
// A refused request gets an application/problem+json body (RFC 9457) whose
// stable "code" is that of one of the Err sentinels: 401 for a key that is
// not valid, 403 for a valid key not allowed here (the detail names the
// policy that refused), 429 and 503 with Retry-After. Storage failures are
// 503, never 401. Options.ErrorHandler replaces the response; problem.Of
// tells it the reason. Every response of Authenticate, Handler and Require
// varies on the headers a key is read from, and refusals carry
// "Cache-Control: no-store".
//
// # Consistency
//
// Changes made through an apikey.Manager whose OnEvent is Invalidate take
// effect in this process before the Manager call returns; other processes
// learn of them through the store's change feed (storage.ChangeFeed) within
// Options.FeedInterval, or at once on Options.FeedWake. Options.CacheTTL
// bounds how long a key is served on what this process last read.
//
// # Security
//
// Errors, problem bodies, hooks and background errors carry at most a key's
// displayable prefix, never its secret. Work and memory are bounded under
// any flood (Options.MaxConcurrentHashes, Options.ThrottleFailures and
// fixed-size caches), outages and panics of a store or hasher fail closed
// (503), and a publishable key is checked against its own account's
// origins only. docs/security.md in the repository states the threat model
// and every guarantee.
package middleware
