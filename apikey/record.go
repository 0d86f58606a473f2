package apikey

import (
	"fmt"
	"log/slog"
	"maps"
	"time"
)

// Status is a key's state at a given time.
type Status string

// The five statuses. Expired, revoked and disabled keys are refused. A key
// has one status at a time, the first of revoked, expired, disabled,
// expiring and active that applies: a disabled key that is also revoked or
// past its expiry reports Revoked or Expired (the final states win), and a
// rotated-out key that is disabled reports Disabled until its grace ends.
const (
	// Active keys work and have not been rotated out.
	Active Status = "active"
	// Expiring keys were rotated out and work until their grace period ends.
	Expiring Status = "expiring"
	// Expired keys are past their expiry.
	Expired Status = "expired"
	// Revoked keys were revoked; revocation is immediate and final.
	Revoked Status = "revoked"
	// Disabled keys were switched off (Manager.Disable) and work again once
	// enabled (Manager.Enable); their expiry keeps running meanwhile.
	Disabled Status = "disabled"
)

// Record is a stored key. It holds the key's hash, never its secret. Times
// are UTC; a zero time means "never" (no expiry, not rotated, not revoked,
// not used).
//
// Every way of printing a Record (String, fmt verbs, slog) shows only its
// displayable prefix; printed by reflection, where fmt and slog call no
// method (a Record in an unexported field of a user's struct), it shows its
// public fields, and Hash and Recoverable as addresses (see Opaque). For
// the same reason, records that hold the same hash compare unequal with
// reflect.DeepEqual (and testify's assert.Equal): compare Hash and
// Recoverable with Opaque.Equal.
type Record struct {
	ID          string  `json:"id"`
	Account     string  `json:"account"`
	Type        KeyType `json:"type"`
	Environment string  `json:"environment"`
	Name        string  `json:"name,omitempty"`
	// Owner names whom the key was issued to (the service's user or
	// customer id); empty if nobody was named.
	Owner string `json:"owner,omitempty"`
	// Metadata is a small map the service attaches to the key (see
	// ValidateMetadata); it reaches every request's Identity.
	Metadata map[string]string `json:"metadata,omitempty"`
	Scopes   []string          `json:"scopes,omitempty"`
	Default  bool              `json:"default"` // the environment's default key of its type
	// Limits bound the key's use (see ValidateLimits); the zero Limits
	// bounds nothing.
	Limits Limits `json:"limits,omitzero"`
	// OwnerLimits are the limits shared by every key of the account issued
	// to Owner (see Manager.SetOwnerLimits): a copy on each of them, the
	// same on all, that the middleware enforces on one budget per account
	// and owner (OwnerBalanceID). The zero Limits shares nothing.
	OwnerLimits Limits    `json:"owner_limits,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	// RotatedAt is when the key was rotated out; zero if it never was.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	// ExpiryLimit is the latest expiry the key may have once rotated: the
	// expiry it had before, or the end of its maximum lifetime
	// (LifetimePolicy) when that is earlier, or, for a key that had
	// neither, CreatedAt + MaxKeyLifetime; a grace change never moves
	// ExpiresAt past it. Zero means no limit (a rotated-out default key,
	// which had no expiry).
	ExpiryLimit time.Time `json:"expiry_limit,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	// DisabledAt is when the key was disabled (Manager.Disable); zero while
	// it is enabled.
	DisabledAt time.Time `json:"disabled_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// Lineage is the id of the first key of the rotation chain the key
	// belongs to: Rotate sets it on the replacement to the rotated key's
	// LineageID. Empty for a key not issued by rotation. Every key of a
	// lineage spends from one quota balance (see LineageID).
	Lineage string `json:"lineage,omitempty"`

	// Hash is the argon2id PHC string of the full key. Never serialised or
	// printed, even by reflection (see Opaque); stores write
	// Hash.Reveal() and read back with NewOpaque.
	Hash Opaque `json:"-"`
	// Recoverable holds the full key in a form the Manager can reveal: the
	// key itself for publishable keys (public by design), the key sealed by
	// ManagerOptions.Sealer for server keys, or nothing (the zero Opaque).
	// Never serialised or printed, even by reflection (see Opaque); stores
	// write Recoverable.Bytes() and read back with OpaqueBytes.
	Recoverable Opaque `json:"-"`

	// Revision is the store's version of the record, used to detect
	// concurrent changes. Zero means not stored yet.
	Revision int64 `json:"-"`
}

// LineageID returns the id of the first key of r's rotation chain:
// Lineage, or r's own ID when empty. Stores keep one quota balance per
// lineage (see storage.QuotaLedger), so a replacement key continues the
// balance of the key it replaced, and both spend from it during the grace.
func (r Record) LineageID() string {
	if r.Lineage != "" {
		return r.Lineage
	}
	return r.ID
}

// Prefix returns the key's displayable prefix, "server-<id>".
func (r Record) Prefix() string { return Prefix(r.Type, r.ID) }

// Status returns the key's status at time now.
func (r Record) Status(now time.Time) Status {
	switch {
	case !r.RevokedAt.IsZero():
		return Revoked
	case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt):
		return Expired
	case !r.DisabledAt.IsZero():
		return Disabled
	case !r.RotatedAt.IsZero():
		return Expiring
	default:
		return Active
	}
}

// Clone returns a deep copy of r. (Opaques are immutable, so the copy
// shares them.)
func (r Record) Clone() Record {
	r.Scopes = cloneStrings(r.Scopes)
	r.Metadata = maps.Clone(r.Metadata)
	r.Limits = r.Limits.Clone()
	r.OwnerLimits = r.OwnerLimits.Clone()
	return r
}

// String returns the displayable prefix.
func (r Record) String() string { return r.Prefix() }

// Format prints the displayable prefix for every verb, so that printing a
// record never prints its hash or recoverable key.
func (r Record) Format(f fmt.State, verb rune) { formatPrefix(f, verb, r.Prefix()) }

// LogValue logs the record's public fields.
func (r Record) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("key", r.Prefix()),
		slog.String("account", r.Account),
		slog.String("environment", r.Environment),
		slog.Bool("default", r.Default),
	)
}

// View is what anyone with a role may see of a key: never its secret or hash.
type View struct {
	Prefix      string            `json:"prefix"`
	ID          string            `json:"id"`
	Account     string            `json:"account"`
	Type        KeyType           `json:"type"`
	Environment string            `json:"environment"`
	Name        string            `json:"name,omitempty"`
	Owner       string            `json:"owner,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Scopes      []string          `json:"scopes,omitempty"`
	Default     bool              `json:"default"`
	Limits      Limits            `json:"limits,omitzero"`
	// OwnerLimits are the limits the key shares with every key of its
	// Owner (Record.OwnerLimits); zero if none.
	OwnerLimits Limits    `json:"owner_limits,omitzero"`
	Status      Status    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	RotatedAt   time.Time `json:"rotated_at,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	// DisabledAt is when the key was disabled; zero while it is enabled.
	DisabledAt time.Time `json:"disabled_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// Imported reports a key issued before keystile (Manager.Import),
	// verified by its SHA-256 digest: rotate it to a keystile key.
	Imported bool `json:"imported,omitempty"`
}

// View returns the public view of r at time now.
func (r Record) View(now time.Time) View {
	return View{
		Prefix: r.Prefix(), ID: r.ID, Account: r.Account, Type: r.Type, Environment: r.Environment,
		Name: r.Name, Owner: r.Owner, Metadata: maps.Clone(r.Metadata), Scopes: cloneStrings(r.Scopes), Default: r.Default,
		Limits: r.Limits.Clone(), OwnerLimits: r.OwnerLimits.Clone(),
		Status: r.Status(now), CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		RotatedAt: r.RotatedAt, RevokedAt: r.RevokedAt, DisabledAt: r.DisabledAt, LastUsedAt: r.LastUsedAt,
		Imported: r.Imported(),
	}
}

// Issued is a key handed out by Create, Rotate or Bootstrap: the full key,
// shown this once, and its public view. It marshals to JSON as
// {"view": VIEW}, never with the key: a program that shows the key says so
// with a field of its own (the management API and keyctl answer
// {"full_key": "...", "view": VIEW}).
type Issued struct {
	Key  Key  `json:"-"`
	View View `json:"view"`
}

// Event is an audit event: who did what to which key or environment, when.
// Events never hold a secret.
type Event struct {
	// Seq is the event's place in its account's audit log: 1 for the
	// account's first event, one more for each later one. The store
	// assigns it in the write that appends the event and sets it when the
	// event is read back (see storage.AuditLog); zero before. It counts
	// only the account's own events, so that it tells a tenant nothing of
	// other accounts' activity.
	Seq         int64     `json:"seq,omitempty"`
	Time        time.Time `json:"time"`
	Actor       Actor     `json:"actor"`
	Action      Action    `json:"action"`
	Account     string    `json:"account"`
	Environment string    `json:"environment"`
	// KeyID and KeyType name the key acted on; empty for environment-wide
	// actions.
	KeyID   string  `json:"key_id,omitempty"`
	KeyType KeyType `json:"key_type,omitempty"`
	// Detail is a short human-readable note, such as the new expiry.
	Detail string `json:"detail,omitempty"`
}

// KeyPrefix returns the displayable prefix of the key acted on, "" for an
// environment-wide action.
func (e Event) KeyPrefix() string {
	if e.KeyID == "" {
		return ""
	}
	return Prefix(e.KeyType, e.KeyID)
}
