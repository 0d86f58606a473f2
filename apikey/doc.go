// Package apikey is keystile's domain: key strings, argon2id hashing, key
// records, environments and their settings, scopes, roles, and the lifecycle
// rules, enforced by Manager. It imports nothing else of keystile; package
// storage holds the backends and package middleware the HTTP edge.
//
// # Key strings
//
// A key reads server-<id>_<secret><checksum> or client-<id>_<secret><checksum>:
// a 12-character public key id (the lookup index), a 43-character secret
// (256 bits from crypto/rand) and a 6-character CRC32-C checksum of everything
// before it, all in [0-9A-Za-z]. Pattern is the regular expression for
// secret scanners. ParseKey rejects malformed keys and wrong checksums
// without I/O, so junk never reaches storage or the hasher.
//
// A stored key is named by its key id or by its displayable prefix,
// server-<id> or client-<id>; ParseKeyID reads either, and every Manager
// method that takes a key id accepts both.
//
// # Accounts
//
// Every key, environment, audit event and change belongs to an account: the
// embedding service's customer, named by the service's own id (see
// ValidateAccount). Accounts are hard boundaries: environment names are
// unique per account, and a Manager call finds nothing outside the actor's
// account (a key of another account is ErrNotFound, as if it did not
// exist). A single-tenant service never names one: an Actor with an empty
// Account acts in DefaultAccount. An operator acting across accounts (the
// service's back office, an operator CLI) says so with AnyAccount. A key
// can name whom it was issued to (Owner) and carry a small Metadata map;
// both reach the request's identity in package middleware. CloseAccount
// revokes every key of an account at once.
//
// # Limits and usage
//
// A key may carry Limits (Record.Limits, set at Create or with SetLimits,
// by owners, and by members outside production): a rate limit (requests per window, with a burst), a quota
// of uses refilled per UTC day or month, and, for server keys, an
// allowlist of address ranges. ValidateLimits bounds every field and names
// the one it refuses (ErrInvalidLimits). Package middleware enforces them
// after authentication; the store keeps each quota's balance
// (storage.QuotaLedger) and the requests of each key per hour and outcome
// (UsageRecorder), which Manager.Usage reads a page at a time. For a key
// rotated out, the middleware also records who still calls it (CallerLog:
// at most MaxCallers client addresses and user agents per key), which
// Manager.Callers reads.
//
// Each running Validator that follows the change feed reports the newest
// revision it has applied and until when it may serve its cache
// (InstanceLog); Manager.Propagation tells how many live instances have
// applied a key's last change and how many unreachable ones may still
// serve it as it was, and Manager.WaitPropagated waits until every live
// one has and none is unreachable (a revocation confirmed everywhere;
// confirmation fails closed: a crashed Validator delays it by at most its
// CacheTTL plus InstanceStaleAfter, and with no instance live nothing is
// confirmed). Instance times are the store's clock. Suspensions and
// allowed origins are settings, not covered by a confirmation.
//
// A tenant's owners register webhook endpoints for their account
// (Manager.CreateEndpoint; at most MaxEndpoints, stored in an
// EndpointStore): each receives the account's events appended after its
// creation, filtered by action and environment, signed with a secret that
// the Manager returns only when it makes it (and stores sealed when it has
// a Sealer). Package apikey/events delivers them; Manager.Replay re-queues
// an endpoint's dead letters (ReplayLog).
//
// # Lifetime policy
//
// An environment may carry a LifetimePolicy (Settings.Lifetime, set with
// SetLifetimePolicy, owners only and never a key): a default expiry for
// keys created without one and a maximum lifetime from creation, which
// Create, Rotate and ChangeGrace enforce (ErrBeyondLifetime, naming the
// maximum). Default keys have no expiry by design and no policy applies to
// them; a policy change rewrites no existing key.
//
// # Owners, expiring keys and clean-up
//
// OwnerKeys lists the keys issued to one owner across an account's
// environments, and RevokeOwner revokes them all in atomic writes, listing
// again after each until no key issued meanwhile is left (default keys
// skipped and reported; at most MaxOwnerRevocation per write).
// Expiring lists the keys whose expiry or end of grace falls within a
// window, soonest first. Purge, for operators, deletes keys revoked or
// expired longer ago than the service's retention, in short batches,
// imported keys aside. Each needs an optional capability of the store
// (OwnerIndex, ExpiryIndex, KeyPurger).
//
// Lists are read a Page at a time, by index: a default key, a page of keys
// and a page of environments cost the same in an environment of a million
// keys as in one of ten.
//
// # Threat model
//
//   - A stolen database must not yield usable keys: only argon2id hashes are
//     stored (and, if the operator opts in with a Sealer, AES-GCM sealed
//     copies of server keys under a key the database does not hold).
//   - Logs, errors, JSON and fmt output must not leak secrets: Key and Record
//     print only the displayable prefix, "server-<id>". A Record's hash and
//     recoverable copy are Opaque values, which print as "[redacted]" or an
//     address, even when fmt or slog print a Record by reflection.
//   - A hostile row must not exhaust memory or CPU: stored argon2 parameters
//     are bounded (DecodePHC, Argon2id.MaxMemory).
//   - Concurrent writers, in one process or many, must not break the
//     invariants: one active default key per account, environment and type,
//     no lost rotation or revocation. Every change is a compare-and-set in
//     the Store.
//   - Accounts bound what an actor sees: nothing of another account, not
//     even whether a key id exists there, nor (through audit Seq numbers)
//     how busy other accounts are. A closed account takes no change but
//     revocations, whatever races its closing (Change.OpenAccount).
//   - Names, owners and metadata are shown to every role: they are bounded
//     printable text and never hold anything from which a key could be
//     rebuilt (ValidateName, ValidateOwner, ValidateMetadata). Scopes are
//     bounded too (MaxScopes, MaxScopeLength), so that a cached key's size
//     is bounded.
//   - Roles bound what an actor may do (Role.Permits): everyone may view
//     prefixes and statuses; members create, rotate, revoke and change
//     keys only in environments the service does not mark as production
//     (ManagerOptions.Production) and reveal only publishable keys; only
//     owners change production keys, reveal a full server key or change
//     account settings (origins, lifetime policies, owner limits,
//     environments). An actor authenticated
//     by a key (Actor.Scopes, Actor.Expires, Actor.Limits) never creates,
//     extends or reveals more than its key has, nor a key bounded less
//     tightly, and changes no key's limits and no lifetime policy. Every change is an audit Event.
//
// Out of scope here: transport security (serve over TLS) and protecting the
// host that runs the code.
package apikey
