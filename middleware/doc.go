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
// Per request, authentication:
//
//  1. reads the key from the X-API-Key header, or from "Authorization:
//     Bearer" with Options.AllowBearer; never from the URL;
//  2. looks it up in the validation cache, keyed by the key's public head
//     and a SHA-256 digest of the rest, never by the key itself; the cache
//     holds only keys that passed step 3, so a hit skips it;
//  3. on a miss, checks format and checksum with apikey.ParseKey (no store
//     read and no argon2 for a malformed key), then reads the key by id and
//     verifies its argon2id hash: one verification for concurrent requests
//     with the same key, under a concurrency cap, throttled per key id
//     after failures; a key that verified in this process against the same
//     stored hash needs only the read;
//  4. checks status and expiry against Options.Now, to the second, cached
//     or not; refuses a key of a closed account as revoked;
//  5. refuses a server key that arrives from a browser (an Origin or a
//     Sec-Fetch-Site header), unless Options.AllowServerKeyFromBrowser;
//  6. for a publishable key sent by a browser, checks the Origin against
//     its own account's environment's allowed origins (none admits no
//     browser origin; the entry "*" admits every origin).
//
// Authorization then checks the route's Policy: key type, scope and
// environment. Policy.Environments names environments in any account: a
// service whose accounts are its customers checks Identity.Account in its
// handler.
//
// # Responses
//
// A refused request gets an application/problem+json body (RFC 9457) with
// a stable "code": 401 for a missing, malformed, unknown, expired or
// revoked key; 403 for a valid key not allowed here (type, scope,
// environment, origin, server key from a browser), with a detail naming
// the policy that refused; 429 with Retry-After when a key id has spent its
// failure budget; 503 with Retry-After when storage fails or a request's
// context ends while it waits for a verification. Storage failures never
// yield 401. Options.ErrorHandler replaces the response and learns the
// reason with problem.Of. A key in its grace period works and the response
// carries HeaderKeyExpires.
//
// Every response of Authenticate, Handler and Require varies on the
// headers a key is read from, and CORS adds Origin, so that a shared cache
// never serves one key's response to another key's request; refusals carry
// "Cache-Control: no-store". Check writes no response.
//
// # Consistency
//
// Changes made through an apikey.Manager whose OnEvent is Invalidate take
// effect in this process before the Manager call returns. Other processes
// sharing the store learn of changes through its change feed
// (storage.ChangeFeed), read every Options.FeedInterval or at once on
// Options.FeedWake: a feed entry that carries the key's record updates the
// cached entry in place, so a revoked key is refused from memory. A cached
// key is served while the feed was read successfully within
// Options.CacheTTL; a store without a change feed bounds staleness by
// CacheTTL after each read. When the store is unreachable, cached keys
// keep working within that bound and uncached keys get 503.
//
// Settings (allowed origins, closed accounts) are held for every account's
// environments, loaded a page at a time by New. A feed entry for one
// environment's settings reloads that environment alone; a gap in the feed
// (storage.ErrFeedGap) reloads all of them; without a feed, all of them
// are reloaded every CacheTTL. A browser request with a publishable key of
// an environment not loaded yet gets 503 and makes this process load it.
//
// Last-used times are written at most once per key per
// Options.LastUsedInterval through storage.LastUsedRecorder, and on Close.
//
// New starts the goroutine that follows the feed, reloads settings and
// writes last-used times; hash upgrades run in goroutines of their own.
// Close ends and waits for all of them.
//
// # Threat model
//
// The middleware assumes an attacker who can send any number of requests
// with any headers, knows key ids (publishable keys are public, and every
// role sees prefixes), may have stolen a key, and may read logs and hook
// output. It defends as follows.
//
//   - Secrets never leave the request: errors, problem bodies, hooks and
//     background errors carry at most a key's displayable prefix.
//   - Junk is cheap: format and checksum are checked before any store read
//     or argon2; unknown keys and wrong secrets are cached as failures for
//     Options.FailureTTL.
//   - argon2 cannot exhaust CPU or memory: at most
//     Options.MaxConcurrentHashes run at once, a cached key never hashes,
//     and each key id has a budget of Options.ThrottleFailures failed or
//     in-flight verifications per Options.ThrottleWindow. Key ids are
//     public, so the throttle never refuses a key that verified in this
//     process: those are remembered in a fixed table that only a
//     successful verification writes to, in a bucket chosen by a keyed
//     hash that nobody outside the process can aim at. Left open: the
//     first verification in a process of a key whose id an attacker keeps
//     throttled waits for the window to end.
//   - Timing tells whether a key id exists (an unknown id costs a store
//     read, a wrong secret an argon2 check): ids are not secrets; the
//     256-bit secret is what protects a key.
//   - Memory is bounded under any flood: the caches, the table of verified
//     keys and the throttle are fixed-size.
//   - A verification never hands a request a result read before the last
//     eviction of its key id.
//   - A panic of a Store, change feed, last-used recorder or Hasher method
//     is answered 503 and reported to Options.OnBackgroundError with any
//     key cut to its prefix; it never ends the process.
//   - Outages fail closed (503), and a revoked key is never served past the
//     consistency bound above.
//   - Accounts are hard boundaries: a publishable key is checked against
//     its own account's origins only, and a closed account's keys are
//     refused. Preflights carry no key, so CORS answers them for an origin
//     that any account allows; the actual request is then checked against
//     the key's own account.
//   - A server key seen from a browser is refused by default (OnRejected
//     receives ErrServerKeyFromBrowser); an allowed one reaches
//     OnAuthenticated with a server key and Attempt.Browser set. Browsers
//     are recognised by an Origin header or a Fetch Metadata
//     Sec-Fetch-Site header of any value, which they send even on
//     same-origin GETs without an Origin. A publishable key is checked
//     against the Origin only: a browser request without one comes from
//     the API's own origin, and clients that are not browsers (mobile
//     apps, servers) send neither header and are served.
//   - Comparisons of secrets are constant-time (apikey.Hasher); random
//     values come from crypto/rand.
//
// Out of scope: TLS, rate limiting of valid keys, and the Origin header of
// non-browser clients, which can send any value: origin rules protect
// publishable keys from use by other web sites, not from scripts.
package middleware
