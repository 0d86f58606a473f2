package apikey

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Each is a sentinel: test for it with
// errors.Is, because most are wrapped with detail. No error text ever holds a
// secret; where a key is named, only its displayable prefix appears.
var (
	// ErrMalformedKey means a presented key does not have the shape of a
	// keystile key (prefix, key id, secret, checksum).
	ErrMalformedKey = errors.New("apikey: malformed key")
	// ErrBadChecksum means a presented key has the right shape but its
	// checksum does not match: a typo or a made-up key.
	ErrBadChecksum = errors.New("apikey: key checksum mismatch")
	// ErrInvalidHash means a stored hash is not a well-formed argon2id PHC
	// string, or its parameters exceed the verifier's limits.
	ErrInvalidHash = errors.New("apikey: invalid argon2id hash")
	// ErrInvalidParams means argon2id parameters are out of range.
	ErrInvalidParams = errors.New("apikey: invalid argon2id parameters")
	// ErrKeyMismatch means a key given with a record (to UpgradeHash) is not
	// that record's key: another id or type, or a secret that does not
	// match its hash. A caller's mistake, not a request error.
	ErrKeyMismatch = errors.New("apikey: key does not match the record")

	// ErrInvalidKeyID means a string given to name a stored key is neither a
	// key id (IDLength characters of [0-9A-Za-z]) nor a displayable prefix
	// ("server-<id>", "client-<id>"); a full key, secret included, is
	// refused with it too. See ParseKeyID.
	ErrInvalidKeyID = errors.New("apikey: invalid key id")

	// ErrNotFound means the store has no such key or environment. Stores
	// return it (wrapped or not) for a missing record and for nothing else.
	ErrNotFound = errors.New("apikey: not found")
	// ErrConflict means a change lost a race with another writer (a stale
	// revision, a duplicate id, a second default key). The change was not
	// applied; re-read and try again.
	ErrConflict = errors.New("apikey: conflicting change")

	// ErrForbidden means the actor's role may not perform the action.
	ErrForbidden = errors.New("apikey: role not allowed")
	// ErrBeyondActor means a key-authenticated actor asked for more than
	// its key has (see Actor.Scopes and Actor.Expires): a scope it does not
	// hold, or an expiry later than its own. The wrapped error names the
	// limit. It wraps ErrForbidden, so that whoever refuses ErrForbidden
	// refuses it too.
	ErrBeyondActor = fmt.Errorf("%w: beyond the acting key's own scopes or expiry", ErrForbidden)
	// ErrInvalidEnvironment means an environment name is not valid.
	ErrInvalidEnvironment = errors.New("apikey: invalid environment name")
	// ErrUnknownEnvironment means the environment has not been bootstrapped.
	ErrUnknownEnvironment = errors.New("apikey: unknown environment")
	// ErrAlreadyBootstrapped means the environment already has its default keys.
	ErrAlreadyBootstrapped = errors.New("apikey: environment already bootstrapped")
	// ErrInvalidKeyType means a key type other than server or client.
	ErrInvalidKeyType = errors.New("apikey: invalid key type")
	// ErrInvalidScope means a scope is not "*" or "resource:read|write",
	// is longer than MaxScopeLength, a key was given more than MaxScopes, or
	// scopes were given for a publishable key.
	ErrInvalidScope = errors.New("apikey: invalid scope")
	// ErrScopesRequired means a server key was to get an empty scope list.
	// Full access is never implicit: ask for it with the scope "*"
	// (AllScopes).
	ErrScopesRequired = errors.New(`apikey: scopes required; give "*" for full access`)
	// ErrInvalidOrigin means an allowed-origin entry is not an exact origin,
	// a subdomain wildcard or a localhost origin.
	ErrInvalidOrigin = errors.New("apikey: invalid origin")
	// ErrInvalidName means a key name is longer than MaxNameLength, is not
	// printable UTF-8, or looks like it holds a key (see ValidateName).
	ErrInvalidName = errors.New("apikey: invalid key name")
	// ErrInvalidExpiry means a requested expiry is not in the future.
	ErrInvalidExpiry = errors.New("apikey: invalid expiry")
	// ErrGraceOutOfRange means a grace period is negative or beyond the
	// policy's maximum (7 days for the console policy, 1 year for the API),
	// or a rotation asked to expire the old key now and also gave a grace.
	ErrGraceOutOfRange = errors.New("apikey: grace period out of range")
	// ErrGraceRequired means a rotation (or, in the management API, a grace
	// change) named no grace period: the old key's remaining life is never
	// picked silently. Give a grace within
	// the policy, or expire the old key at once explicitly (a zero grace:
	// RotateRequest.ExpireNow in Go, "0s" in the management API and keyctl).
	// The wrapped error names the policy's maximum.
	ErrGraceRequired = errors.New("apikey: an explicit grace period is required: 0s (expire now), 1h, 24h, 72h or 168h (the console's choices), or any duration up to the policy's maximum")
	// ErrDefaultKeyNotRevocable means the key is its environment's default
	// key of its type, which keeps the environment working. Rotate it first;
	// the rotated-out key is no longer the default and can then be revoked.
	// Extra keys, with or without an expiry, are revoked directly.
	ErrDefaultKeyNotRevocable = errors.New("apikey: a default key cannot be revoked; rotate it first, then revoke the old key")
	// ErrAlreadyRevoked means the key was revoked before. Revocation is final.
	ErrAlreadyRevoked = errors.New("apikey: key already revoked")
	// ErrAlreadyRotated means the key was rotated before; rotate its
	// replacement instead.
	ErrAlreadyRotated = errors.New("apikey: key already rotated")
	// ErrNotRotated means the grace period of a key that was never rotated
	// was to be changed.
	ErrNotRotated = errors.New("apikey: key was not rotated")
	// ErrNotSilent means Manager.EndGraceIfSilent found the key rotated
	// out used more recently than the silence it asked for.
	ErrNotSilent = errors.New("apikey: key rotated out is still in use")
	// ErrSilenceOutOfRange means the silence asked of
	// Manager.EndGraceIfSilent is shorter than MinSilence or longer than a
	// year.
	ErrSilenceOutOfRange = errors.New("apikey: silence out of range")
	// ErrKeyExpired means the action needs a key that has not expired.
	ErrKeyExpired = errors.New("apikey: key expired")
	// ErrInvalidAccount means an account id is not valid (see
	// ValidateAccount), or a call that names an environment was made by an
	// Actor acting in AnyAccount.
	ErrInvalidAccount = errors.New("apikey: invalid account")
	// ErrAccountClosed means the account was closed (Manager.CloseAccount):
	// its keys are revoked and it takes no new ones.
	ErrAccountClosed = errors.New("apikey: account closed")
	// ErrAccountSuspended means the account is suspended
	// (Manager.SuspendAccount): its keys are refused, and its keys and
	// settings do not change (revocation and closing aside) until
	// Manager.ResumeAccount; its owners can still read them.
	ErrAccountSuspended = errors.New("apikey: account suspended")
	// ErrDefaultKeyNotDisableable means the key is its environment's
	// default key of its type, which keeps the environment working. Rotate
	// it first; the rotated-out key is no longer the default and can then
	// be disabled.
	ErrDefaultKeyNotDisableable = errors.New("apikey: a default key cannot be disabled; rotate it first, then disable the old key")
	// ErrInvalidMetadata means a key's owner or metadata is out of bounds,
	// or looks like it holds a key (see ValidateOwner and ValidateMetadata).
	ErrInvalidMetadata = errors.New("apikey: invalid owner or metadata")
	// ErrInvalidCursor means a page cursor was not one that a list returned.
	ErrInvalidCursor = errors.New("apikey: invalid page cursor")
	// ErrInvalidTimeRange means a time range is empty, inverted or
	// unbounded: From and To must both be set, From before To.
	ErrInvalidTimeRange = errors.New("apikey: invalid time range")
	// ErrNotRevealable means the full key cannot be shown again: server keys
	// are stored only as hashes unless the operator configured a Sealer.
	ErrNotRevealable = errors.New("apikey: key cannot be revealed")
	// ErrInvalidLifetime means a lifetime policy is out of range (see
	// ValidateLifetime); the wrapped error names the field and the bound.
	ErrInvalidLifetime = errors.New("apikey: invalid lifetime policy")
	// ErrBeyondLifetime means a key would live longer than its
	// environment's maximum lifetime (LifetimePolicy.MaxLifetime): an
	// expiry asked for at creation, or the grace of a rotation or a grace
	// change. The wrapped error names the maximum and the latest expiry it
	// allows.
	ErrBeyondLifetime = errors.New("apikey: beyond the environment's maximum key lifetime")
	// ErrTooManyKeys means a call would act on more keys than its bound
	// allows in one atomic write (MaxOwnerRevocation for
	// Manager.RevokeOwner); the wrapped error names the bound.
	ErrTooManyKeys = errors.New("apikey: too many keys for one call")
)

// requestErrors are the sentinels that refuse a request for what it asks or
// for the state it finds, as opposed to a storage or system failure.
var requestErrors = []error{
	ErrMalformedKey, ErrBadChecksum, ErrInvalidKeyID, ErrNotFound, ErrConflict, ErrForbidden, ErrBeyondActor,
	ErrInvalidEnvironment, ErrUnknownEnvironment, ErrAlreadyBootstrapped, ErrInvalidKeyType,
	ErrInvalidScope, ErrScopesRequired, ErrInvalidOrigin, ErrInvalidName, ErrInvalidExpiry, ErrGraceOutOfRange,
	ErrGraceRequired, ErrDefaultKeyNotRevocable, ErrAlreadyRevoked, ErrAlreadyRotated, ErrNotRotated,
	ErrNotSilent, ErrSilenceOutOfRange,
	ErrKeyExpired, ErrNotRevealable, ErrInvalidAccount, ErrAccountClosed, ErrInvalidMetadata,
	ErrInvalidCursor, ErrInvalidLimits, ErrInvalidTimeRange,
	ErrAccountSuspended, ErrDefaultKeyNotDisableable,
	ErrInvalidLifetime, ErrBeyondLifetime, ErrInvalidImport,
	ErrTooManyKeys, ErrInvalidEndpoint, ErrTooManyEndpoints,
}

// IsRequestError reports whether err is a refusal by this package's rules or
// input checks (a client's mistake or a state that forbids the action),
// rather than a storage or system failure. Interfaces use it to choose
// between "refused" (4xx) and "unavailable" (5xx).
func IsRequestError(err error) bool {
	for _, e := range requestErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
