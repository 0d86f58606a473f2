// Package middleware is keystile's HTTP edge: it validates the API key of
// every request to a net/http service, answers CORS preflights for
// publishable keys, and puts the key's Identity in the request context.
//
// # Overview
//
// Build one Validator per process with New, wrap handlers with Handler (any
// valid server key) or Require (a route Policy: key types, scope,
// environments; publishable keys only where the Policy names
// apikey.Client),
// and read the key's Identity in the handler with FromContext. Check is the
// same validation without a response, for code that is not an
// http.Handler. Pass Invalidate as apikey.ManagerOptions.OnEvent so that
// lifecycle changes take effect in this process at once, and Close the
// Validator after the server has shut down.
//
// Per request the middleware:
//
//  1. reads the key from the X-API-Key header (any capitalisation), or from
//     "Authorization: Bearer" when Options.AllowBearer is set; never from
//     the URL;
//  2. looks it up in the validation cache, keyed by the key's public head
//     ("server-<id>_" or "client-<id>_") and 128 bits of SHA-256 of the
//     rest (the secret and the checksum, one SHA-256 block; see cache.go),
//     never by the key itself. The cache holds only keys that passed step
//     3, so a hit proves that this exact string is well-formed and skips
//     it;
//  3. on a miss, checks the format and checksum with apikey.ParseKey (a
//     malformed key costs no storage call and no argon2), then loads the
//     key by id and verifies its argon2id hash (one verification for any
//     number of concurrent requests with the same key, under a concurrency
//     cap, throttled per key id after failures); a key that verified in
//     this process before and whose stored hash is unchanged needs no
//     argon2 run, only the read. A cached key in use is renewed before its
//     entry ends, by the background loop (see Options.CacheTTL), so that
//     its requests do not wait for that read;
//  4. checks status and expiry against Options.Now on every request, cached
//     or not: a key stops working at its expiry, to the second; a key of a
//     closed account is refused as revoked, even one that the close did
//     not revoke (created in a race with it), because its environment's
//     settings say the account is closed;
//  5. refuses a server key that arrives with an Origin header (a leaked
//     secret), unless Options.AllowServerKeyFromBrowser;
//  6. checks the route Policy (the zero Policy admits server keys only),
//     then, for a publishable key sent by a browser, the Origin against its
//     own account's environment's allowed origins (an environment with no
//     list admits no browser origin; the entry "*" admits every origin).
//
// The Identity names the key's account, environment, id and prefix, type,
// scopes, name, owner, metadata and expiry. Policy.Environments names
// environments by name, in any account: a service whose accounts are its
// customers checks Identity.Account itself, in the handler.
//
// # Responses
//
// A refused request gets an application/problem+json body (RFC 9457) whose
// "code" member is stable: 401 for a missing, malformed, unknown, expired or
// revoked key; 403 for a valid key not allowed here (type, scope,
// environment, origin, server key from a browser); 429 with Retry-After
// when a key id has spent its failure budget (Options.ThrottleFailures);
// 503 with Retry-After when storage fails or a request's context ends while
// it waits for a verification. Storage failures never yield 401: validation
// fails closed. The sentinels ErrMissingKey ... ErrBusy list every reason;
// Options.ErrorHandler replaces the response and learns the reason with
// ReasonOf. A key in its grace period works and the response carries
// HeaderKeyExpires.
//
// Every response of Handler and Require carries "Vary: Origin, X-API-Key"
// (and Authorization with Options.AllowBearer), so that a shared cache
// never serves one key's response to another key's request; refusals also
// carry "Cache-Control: no-store". Responses to keyed requests are per key:
// a handler should send "Cache-Control: private" (or no-store) so that
// shared caches keep none of them. Check writes no response: code that
// calls it adds these headers itself.
//
// # Consistency
//
// Changes made through an apikey.Manager whose OnEvent is Invalidate evict
// the affected cache entries of this process at once. Other processes
// sharing the store learn of changes through its change feed
// (storage.ChangeFeed), polled every Options.FeedInterval (1 second by
// default): every process stops accepting a revoked key within about that
// bound. A feed entry that carries the key's record updates the cached
// entry in place, so the refusal needs no storage read and no argon2. A
// store without a change feed bounds it by Options.CacheTTL (1 minute by
// default). When the store is unreachable, cached valid keys
// keep working until their cache TTL ends and nothing is served past it;
// uncached keys get 503.
//
// Settings (allowed origins, closed accounts) are held for every account's
// environments. New loads them a page of 1,000 at a time (100,000 accounts
// of 3 environments in about a second, see
// BenchmarkValidatorStartManyAccounts). After that they follow the change
// feed entry by entry: a change to one environment's settings, in any
// process, reaches this one as a feed entry, and this process reads that
// environment's settings alone (one Store.Settings call; Invalidate does
// the same at once for changes made here). Everything is reloaded only
// after a gap in the feed (storage.ErrFeedGap), and every
// Options.SettingsInterval for stores without a change feed. A browser
// request with a publishable key of an environment not loaded yet (created
// a moment ago elsewhere) gets 503 and makes this process read that
// environment's settings.
//
// # Performance
//
// A cached key costs no storage call and no argon2: one SHA-256 block, an
// LRU lookup, a clock read and the policy checks (see
// BenchmarkCachedKeyCheck), plus the copy of the request that carries the
// Identity to the handler (BenchmarkWithContext): two allocations per
// request.
//
// Last-used times are kept in memory and written at most once per key per
// Options.LastUsedInterval through storage.LastUsedRecorder, and on Close.
//
// # Threat model
//
// The middleware assumes an attacker who can send any number of requests
// with any headers, knows key ids (publishable keys are public, and every
// role sees prefixes), may have stolen a key, and may read logs and hook
// output. It defends as follows.
//
//   - Secrets never leave the request: the cache is keyed by the key's
//     public head and a hash of the rest, never by the key; errors, problem
//     bodies, hooks (Attempt, Identity)
//     and background errors carry at most the displayable prefix.
//   - Junk is cheap: format and checksum are checked before any storage call
//     or argon2 (a string of the right length first costs one SHA-256
//     block and a cache lookup), so random strings cost microseconds;
//     unknown keys and wrong secrets are cached as failures for
//     Options.FailureTTL.
//   - argon2 cannot be used to exhaust CPU or memory: at most
//     Options.MaxConcurrentHashes run at once; a cached key never hashes;
//     concurrent first requests with one key share one verification; each
//     key id has a budget of Options.ThrottleFailures failed or in-flight
//     verifications per Options.ThrottleWindow, after which attempts get 429
//     without a storage call or a hash. Key ids are public, so a throttle
//     per id could lock the real key out: a cached valid key is never
//     throttled, and a key that verified in this process before is let
//     through, and not counted (so that many keys re-validating cannot
//     push the counters of ids under attack out of the throttle's table).
//     Verified keys are known from the cache, which keeps them past their
//     lifetime, and from a fixed table of their own (at least 65,536
//     slots) that only a successful verification writes to, in a slot
//     chosen by a keyed hash under the table's own random secret: junk
//     cannot touch it, and pushing one key out takes, on average, as many
//     distinct valid keys as the table has slots, each verified with
//     argon2. Left open: the first verification of a key in a process
//     waits out a window that an attacker keeps spending (see
//     Options.ThrottleFailures).
//   - Key ids are public, and timing tells whether one exists: an unknown
//     id is refused after a storage read (about 0.5 ms), a wrong secret
//     for a real id after an argon2 check (about 20 ms with the default
//     parameters). This is by design: the id is not a secret (it is in
//     every displayable prefix, and in every web page that uses a
//     publishable key); the 256-bit secret is what protects a key.
//   - Memory is bounded under any flood: both caches, the set of verified
//     keys and the throttle table are fixed-size LRUs.
//   - A verification never hands a request a result read before the last
//     eviction of its key id: a request that arrives after a revocation
//     reached this process does not join a verification that began
//     before it.
//   - A panic in a Store or Hasher method (a custom implementation's bug)
//     is answered 503 and reported to Options.OnBackgroundError with any
//     key cut to its prefix; it never ends the process.
//   - Outages fail closed (503), and a revoked key is never served from the
//     cache past the consistency bound above.
//   - Accounts are hard boundaries: a publishable key is checked against
//     its own account's origins only, and a closed account's keys are
//     refused. CORS preflights carry no key, so they are answered for an
//     origin that any account allows for an environment the route accepts;
//     the actual request is then checked against the key's own account.
//   - A server key seen with an Origin header is reported
//     (Options.OnLeakedServerKey) and refused by default.
//   - Comparisons of secrets are constant-time (apikey.Hasher); random
//     values come from crypto/rand.
//
// Out of scope: TLS (run the service behind HTTPS), rate limiting of valid
// keys, and the Origin header of non-browser clients, which can send any
// value: origin rules protect publishable keys from use by other web sites,
// not from scripts.
package middleware
