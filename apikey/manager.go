package apikey

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"time"
)

// GracePolicy bounds the grace period of a rotation: how long the old key
// keeps working. Pick the policy of the surface the request came from.
type GracePolicy struct {
	Name string        // for error messages, e.g. "console"
	Max  time.Duration // the longest grace allowed
}

// The two grace policies of the product. The zero GracePolicy means
// APIPolicy.
var (
	// APIPolicy allows 0 to 365 days, for programmatic rotation.
	APIPolicy = GracePolicy{Name: "api", Max: 365 * 24 * time.Hour}
	// ConsolePolicy allows 0 to 7 days, as a console offers.
	ConsolePolicy = GracePolicy{Name: "console", Max: 7 * 24 * time.Hour}
)

func (p GracePolicy) orDefault() GracePolicy {
	if p.Max == 0 {
		return APIPolicy
	}
	return p
}

func (p GracePolicy) check(grace time.Duration) error {
	p = p.orDefault()
	if grace < 0 || grace > p.Max {
		return fmt.Errorf("%w: %s policy allows 0 to %s, got %s", ErrGraceOutOfRange, p.Name, p.Max, grace)
	}
	return nil
}

// ManagerOptions configure a Manager. Only Store is required.
type ManagerOptions struct {
	// Store keeps keys, settings and audit events. Required.
	Store Store
	// Hasher hashes new keys. Nil means Argon2id{} (DefaultParams).
	Hasher Hasher
	// Now is the clock. Nil means time.Now. Times are stored in UTC,
	// truncated to the microsecond (what SQL databases keep).
	Now func() time.Time
	// Sealer, if set, keeps an encrypted copy of each new server key so that
	// owners can Reveal it later. Nil means server keys are shown only once.
	// Publishable keys can always be revealed: they are public by design.
	Sealer Sealer
	// OnEvent, if set, is called with every audit event after its change is
	// stored, for example to evict validation caches; the Manager call
	// returns after it, so it should return quickly.
	OnEvent func(Event)
	// Production reports whether an environment of an account is a
	// production environment, whose keys members may view but not change
	// (see Role.Permits): the service's choice per account. It must be
	// safe for concurrent use, quick (it runs on every change a member
	// makes) and stable for an environment. Nil means the environment
	// named Production ("production") in every account.
	Production func(account, environment string) bool
	// AllowInternalEndpoints lets tenants register webhook endpoints with
	// http URLs and hosts that name localhost or internal addresses (see
	// ValidateEndpointURL): for development, or a service whose tenants
	// are trusted. The webhook Sender must allow such targets too
	// (webhook.Options) for deliveries to reach them. False means https
	// only, to public hosts.
	AllowInternalEndpoints bool
}

// Manager enforces the key lifecycle: bootstrap, create, rotate, change
// grace, revoke, disable and enable, scopes, allowed origins and reveal, each checked against the
// actor's role in the key's environment (Role.Permits, with the production
// environments of ManagerOptions.Production) and recorded as an audit
// event. Its rules hold under
// concurrent calls from many processes sharing one Store: every change is a
// compare-and-set that is retried on conflict. Once CloseAccount has closed
// an account's first environment, every change in that account but a
// revocation fails with ErrAccountClosed, in every process: the store
// checks it in the same atomic write (Change.OpenAccount); while
// SuspendAccount has an account suspended, the same changes fail with
// ErrAccountSuspended, checked the same way.
//
// An actor authenticated by a key (Actor.Scopes, Actor.Expires,
// Actor.Limits) never gets more than its key has: Bootstrap, Create,
// Rotate, ChangeGrace, SetScopes and Reveal (of a server key) fail with
// ErrBeyondActor, naming the limit, for a key holding a scope the actor
// does not hold, expiring later than the actor (a lengthened grace
// included) or, for Bootstrap, Create and Rotate, bounded less tightly
// than the actor (see Limits.Within); SetLimits refuses every key actor. A Manager is safe for
// concurrent use.
type Manager struct {
	store   Store
	hasher  Hasher
	now     func() time.Time
	sealer  Sealer
	onEvent func(Event)
	isProd  func(account, environment string) bool
	// allowInternal is ManagerOptions.AllowInternalEndpoints.
	allowInternal bool
}

// maxAttempts bounds the retries of a change that keeps losing races.
const maxAttempts = 100

// NewManager returns a Manager. It fails only when opts.Store is nil.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("apikey: ManagerOptions.Store is required")
	}
	m := &Manager{store: opts.Store, hasher: opts.Hasher, now: opts.Now, sealer: opts.Sealer, onEvent: opts.OnEvent,
		isProd: opts.Production, allowInternal: opts.AllowInternalEndpoints}
	if m.hasher == nil {
		m.hasher = Argon2id{}
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.isProd == nil {
		m.isProd = func(_, environment string) bool { return environment == Production }
	}
	return m, nil
}

// Production reports whether an environment of an account is a production
// environment (ManagerOptions.Production), for a surface that marks it or
// offers members only what Role.Permits allows there.
func (m *Manager) Production(account, environment string) bool {
	return m.isProd(account, environment)
}

// permit refuses, with an error wrapping ErrForbidden, an action that the
// actor's role may not perform on a key of type t (empty: no key) in an
// environment of an account (see Role.Permits).
func (m *Manager) permit(actor Actor, a Action, account, environment string, t KeyType) error {
	if actor.Role == Owner {
		return nil
	}
	return actor.Role.Permits(a, Target{Environment: environment, Production: m.isProd(account, environment), Type: t})
}

// Now returns the Manager's clock reading as stored: UTC, microseconds.
func (m *Manager) Now() time.Time { return m.now().UTC().Truncate(time.Microsecond) }

// Bootstrap creates an environment in the actor's account: its settings,
// one default server key and one default publishable key (returned in that
// order, shown this once). It succeeds once per account and environment;
// later calls fail with ErrAlreadyBootstrapped, and calls in a closed
// account with ErrAccountClosed, also when CloseAccount runs at the same
// time in another process (see Change.OpenAccount).
func (m *Manager) Bootstrap(ctx context.Context, actor Actor, environment string) ([]Issued, error) {
	if err := authorize(actor, ActionBootstrap); err != nil {
		return nil, err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return nil, err
	}
	if err := ValidateEnvironment(environment); err != nil {
		return nil, err
	}
	if err := actor.mayCreateDefaults(); err != nil {
		return nil, err
	}
	if err := m.checkOpen(ctx, account); err != nil {
		return nil, err
	}
	now := m.Now()
	change := Change{Settings: []Settings{{Account: account, Environment: environment, UpdatedAt: now}}, OpenAccount: account}
	var issued []Issued
	for _, t := range []KeyType{Server, Client} {
		var scopes []string // publishable keys carry none
		if t == Server {
			scopes = []string{AllScopes} // explicit: full access is never implied
		}
		key, rec, err := m.newKey(keySpec{account: account, env: environment, typ: t, name: "default", scopes: scopes}, actor, now)
		if err != nil {
			return nil, err
		}
		rec.Default = true
		change.Insert = append(change.Insert, rec)
		change.Events = append(change.Events, keyEvent(now, actor, ActionBootstrap, rec, ""))
		issued = append(issued, Issued{Key: key, View: rec.View(now)})
	}
	if err := m.apply(ctx, change); err != nil {
		if errors.Is(err, ErrConflict) {
			return nil, fmt.Errorf("%w: %s", ErrAlreadyBootstrapped, environment)
		}
		return nil, err
	}
	return issued, nil
}

// CreateRequest describes an extra key: a scoped server key, a temporary
// key, or another publishable key, in an environment of the actor's
// account.
type CreateRequest struct {
	Environment string
	Type        KeyType
	// Name is a label for people, such as "billing worker" (see
	// ValidateName). Optional.
	Name string
	// Owner names whom the key is issued to (the service's user or
	// customer id; see ValidateOwner). Optional.
	Owner string
	// Metadata is a small map the service attaches to the key, shown to
	// every role and handed to every request's Identity (see
	// ValidateMetadata). Never put a secret there. Optional.
	Metadata map[string]string
	// Scopes of a server key: at least one, AllScopes ("*") for full
	// access; an empty list fails with ErrScopesRequired. Must be empty for
	// a publishable key.
	Scopes []string
	// ExpiresAt, if set, must be in the future and within the
	// environment's maximum lifetime (LifetimePolicy.MaxLifetime, else
	// ErrBeyondLifetime). Zero means the environment's default expiry
	// (LifetimePolicy), or no expiry where it has none. Either way the key
	// can be revoked directly: only default keys must be rotated first.
	ExpiresAt time.Time
	// Limits bound the key's use (see ValidateLimits; an allowlist of
	// addresses only for a server key). The zero Limits bounds nothing.
	Limits Limits
}

// Create makes a new key that is not a default key and returns it, shown
// this once.
func (m *Manager) Create(ctx context.Context, actor Actor, req CreateRequest) (Issued, error) {
	if err := authorize(actor, ActionCreate); err != nil {
		return Issued{}, err
	}
	if !req.Type.Valid() {
		return Issued{}, ErrInvalidKeyType
	}
	now := m.Now()
	scopes, metadata, limits, expires, err := validKeyFields(req.Type, req.Scopes, req.Name, req.Owner, req.Metadata, req.Limits, req.ExpiresAt, now)
	if err != nil {
		return Issued{}, err
	}
	if err := actor.mayActOn(req.Type, scopes); err != nil {
		return Issued{}, err
	}
	if err := actor.mayBound(limits); err != nil {
		return Issued{}, err
	}
	s, err := m.environment(ctx, actor, req.Environment)
	if err != nil {
		return Issued{}, err
	}
	if err := m.permit(actor, ActionCreate, s.Account, s.Environment, req.Type); err != nil {
		return Issued{}, err
	}
	if err := s.refusesChanges(); err != nil {
		return Issued{}, err
	}
	if expires, err = s.Lifetime.createExpiry(now, expires); err != nil {
		return Issued{}, err
	}
	if err := actor.mayLast(expires); err != nil {
		return Issued{}, err
	}
	spec := keySpec{account: s.Account, env: s.Environment, typ: req.Type, name: req.Name, owner: req.Owner,
		metadata: metadata, scopes: scopes, expires: expires, limits: limits}
	var issued Issued
	err = m.retry(ctx, func() error {
		key, rec, err := m.newKey(spec, actor, now)
		if err != nil {
			return err
		}
		guard, err := m.ownerGuard(ctx, s.Account, req.Owner, "")
		if err != nil {
			return err
		}
		c := Change{OpenAccount: s.Account}
		takeOwnerLimits(&rec, guard, &c)
		c.Insert = []Record{rec}
		c.Events = []Event{keyEvent(now, actor, ActionCreate, rec, expiryDetail(expires))}
		issued = Issued{Key: key, View: rec.View(now)}
		return m.apply(ctx, c)
	})
	return issued, err
}

// validKeyFields validates the fields a new key of type t is given (by
// Create or Import) at now, and returns them as stored: the scopes, the
// metadata, the limits and the expiry (UTC, to the microsecond; zero for
// none, else in the future).
func validKeyFields(t KeyType, scopes []string, name, owner string, metadata map[string]string, limits Limits, expiresAt, now time.Time) ([]string, map[string]string, Limits, time.Time, error) {
	scopes, err := ValidateScopes(t, scopes)
	if err != nil {
		return nil, nil, Limits{}, time.Time{}, err
	}
	if err := ValidateName(name); err != nil {
		return nil, nil, Limits{}, time.Time{}, err
	}
	if err := ValidateOwner(owner); err != nil {
		return nil, nil, Limits{}, time.Time{}, err
	}
	if metadata, err = ValidateMetadata(metadata); err != nil {
		return nil, nil, Limits{}, time.Time{}, err
	}
	if limits, err = ValidateLimits(t, limits); err != nil {
		return nil, nil, Limits{}, time.Time{}, err
	}
	expires := expiresAt.UTC().Truncate(time.Microsecond)
	if !expiresAt.IsZero() && !expires.After(now) {
		return nil, nil, Limits{}, time.Time{}, fmt.Errorf("%w: expiry must be in the future", ErrInvalidExpiry)
	}
	return scopes, metadata, limits, expires, nil
}

// RotateRequest names the key to rotate and the grace period of the old one.
type RotateRequest struct {
	// KeyID is the key to rotate: its key id or its displayable prefix
	// (see ParseKeyID). If empty, the default key of Environment and Type
	// is rotated.
	KeyID       string
	Environment string
	Type        KeyType
	// Grace is how long the old key keeps working, from now, within
	// Policy. Zero is refused with ErrGraceRequired unless ExpireNow is set:
	// no rotation picks a grace silently.
	Grace time.Duration
	// ExpireNow means the old key stops working at once: an explicit zero
	// grace. Grace must then be zero (else ErrGraceOutOfRange).
	ExpireNow bool
	// Policy bounds Grace. The zero value is APIPolicy.
	Policy GracePolicy
}

// Rotate replaces a key atomically: a new key with the same type, scopes,
// name and default status is created, and the old key expires after the
// grace period (never later than an expiry it already had). The grace must
// be explicit: a zero Grace without ExpireNow fails with ErrGraceRequired
// and changes nothing. The new key is returned, shown this once.
//
// For a key that is not a default key, the environment's LifetimePolicy
// applies: the replacement keeps the old key's expiry, or gets the default
// expiry if the old key had none, and never expires later than the
// maximum lifetime from its creation; a grace that would keep the old key
// past its own maximum lifetime (a key created before the policy) fails
// with ErrBeyondLifetime, which ExpireNow never does.
func (m *Manager) Rotate(ctx context.Context, actor Actor, req RotateRequest) (Issued, error) {
	if err := authorize(actor, ActionRotate); err != nil {
		return Issued{}, err
	}
	if err := req.checkGrace(); err != nil {
		return Issued{}, err
	}
	var target keyName
	if req.KeyID == "" {
		if _, err := namedAccount(actor); err != nil {
			return Issued{}, err
		}
		if err := ValidateEnvironment(req.Environment); err != nil {
			return Issued{}, err
		}
		if !req.Type.Valid() {
			return Issued{}, ErrInvalidKeyType
		}
	} else {
		var err error
		if target, err = parseKeyName(req.KeyID); err != nil {
			return Issued{}, err
		}
	}
	var issued Issued
	err := m.retry(ctx, func() error {
		old, err := m.rotationTarget(ctx, actor, req, target)
		if err != nil {
			return err
		}
		if err := m.permit(actor, ActionRotate, old.Account, old.Environment, old.Type); err != nil {
			return err
		}
		now := m.Now()
		switch old.Status(now) {
		case Revoked:
			return fmt.Errorf("%w: %s", ErrAlreadyRevoked, old.Prefix())
		case Expired:
			return fmt.Errorf("%w: %s", ErrKeyExpired, old.Prefix())
		}
		if !old.RotatedAt.IsZero() { // also when disabled, a status that hides it
			return fmt.Errorf("%w: %s", ErrAlreadyRotated, old.Prefix())
		}
		policy, err := m.lifetimeOf(ctx, old) // none for a default key
		if err != nil {
			return err
		}
		expires := old.ExpiresAt // the replacement's
		graceEnd := earliest(old.ExpiresAt, now.Add(req.Grace))
		expiryLimit := old.ExpiresAt
		if !old.Default {
			expires = policy.replacementExpiry(now, old.ExpiresAt)
			if !req.ExpireNow {
				if err := policy.beyond("rotated-out key "+old.Prefix(), old.CreatedAt, graceEnd); err != nil {
					return err
				}
			}
			expiryLimit = earliest(old.ExpiresAt, policy.limit(old.CreatedAt))
			if expiryLimit.IsZero() { // marks a key that was not a default key
				expiryLimit = old.CreatedAt.Add(MaxKeyLifetime)
			}
		}
		if err := actor.mayActOn(old.Type, old.Scopes); err != nil { // the new key has the old one's scopes
			return err
		}
		if err := actor.mayLast(expires); err != nil {
			return err
		}
		if err := actor.mayBound(old.Limits); err != nil {
			return err
		}
		key, rec, err := m.newKey(keySpec{account: old.Account, env: old.Environment, typ: old.Type, name: old.Name,
			owner: old.Owner, metadata: old.Metadata, scopes: old.Scopes, expires: expires, limits: old.Limits}, actor, now)
		if err != nil {
			return err
		}
		rec.Default = old.Default
		rec.Lineage = old.LineageID()             // the replacement continues the old key's quota balance
		rec.OwnerLimits = old.OwnerLimits.Clone() // old is written too: ordered with SetOwnerLimits
		old.Default = false
		old.RotatedAt = now
		old.ExpiryLimit = expiryLimit
		old.ExpiresAt = graceEnd
		issued = Issued{Key: key, View: rec.View(now)}
		return m.apply(ctx, Change{
			Update: []Record{old},
			Insert: []Record{rec},
			Events: []Event{
				keyEvent(now, actor, ActionRotate, old, "replaced by "+rec.Prefix()+"; "+expiryDetail(old.ExpiresAt)),
				keyEvent(now, actor, ActionCreate, rec, "replaces "+old.Prefix()),
			},
			OpenAccount: old.Account,
		})
	})
	return issued, err
}

// checkGrace refuses a grace that is missing, contradicts ExpireNow or is
// outside the policy.
func (req RotateRequest) checkGrace() error {
	p := req.Policy.orDefault()
	switch {
	case req.ExpireNow && req.Grace != 0:
		return fmt.Errorf("%w: expire now means a zero grace, got %s", ErrGraceOutOfRange, req.Grace)
	case !req.ExpireNow && req.Grace == 0:
		return fmt.Errorf("%w (%s policy: %s)", ErrGraceRequired, p.Name, hours(p.Max))
	}
	return p.check(req.Grace)
}

// hours writes a whole number of hours as "168h", anything else as
// time.Duration does.
func hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// rotationTarget loads the key that req names: by id, or the default key
// of an environment of the actor's account, found by index.
func (m *Manager) rotationTarget(ctx context.Context, actor Actor, req RotateRequest, target keyName) (Record, error) {
	if req.KeyID != "" {
		return m.key(ctx, actor, target)
	}
	rec, err := m.store.DefaultKey(ctx, actor.InAccount(), req.Environment, req.Type)
	if errors.Is(err, ErrNotFound) {
		return Record{}, fmt.Errorf("%w: %s has no default %s key", ErrUnknownEnvironment, req.Environment, req.Type)
	}
	return rec, err
}

// ChangeGrace sets the grace period of a rotated key, counted from when it
// was rotated: it may shorten or lengthen it within the policy, but never
// past Record.ExpiryLimit: the expiry the key had before rotation, or the
// end of its maximum lifetime. A grace that has already passed expires the
// key at once. A key with an ExpiryLimit (never a default key) is not kept
// past the maximum lifetime of its environment's current LifetimePolicy
// either: lengthening its grace beyond it fails with ErrBeyondLifetime. keyID is a key id or a displayable prefix
// (see ParseKeyID).
func (m *Manager) ChangeGrace(ctx context.Context, actor Actor, keyID string, grace time.Duration, policy GracePolicy) (View, error) {
	if err := authorize(actor, ActionChangeGrace); err != nil {
		return View{}, err
	}
	if err := policy.check(grace); err != nil {
		return View{}, err
	}
	return m.update(ctx, actor, keyID, ActionChangeGrace, func(rec *Record, now time.Time) error {
		switch {
		case rec.Status(now) == Revoked:
			return fmt.Errorf("%w: %s", ErrAlreadyRevoked, rec.Prefix())
		case rec.RotatedAt.IsZero():
			return fmt.Errorf("%w: %s", ErrNotRotated, rec.Prefix())
		case rec.Status(now) == Expired:
			return fmt.Errorf("%w: %s", ErrKeyExpired, rec.Prefix())
		}
		if err := actor.mayActOn(rec.Type, rec.Scopes); err != nil {
			return err
		}
		was := rec.ExpiresAt
		rec.ExpiresAt = earliest(rec.ExpiryLimit, rec.RotatedAt.Add(grace))
		if rec.ExpiresAt.Before(now) {
			rec.ExpiresAt = now
		}
		if rec.ExpiresAt.After(was) { // shortening is always allowed
			if !rec.ExpiryLimit.IsZero() { // it had an expiry: not a default key
				policy, err := m.lifetimeOf(ctx, *rec)
				if err != nil {
					return err
				}
				if err := policy.beyond("rotated-out key "+rec.Prefix(), rec.CreatedAt, rec.ExpiresAt); err != nil {
					return err
				}
			}
			return actor.mayLast(rec.ExpiresAt)
		}
		return nil
	})
}

// Revoke invalidates a key at once and for good. A default key fails with
// ErrDefaultKeyNotRevocable and must be rotated first, so an environment
// always keeps an active key of each type; any other key, with or without
// an expiry, is revoked directly. keyID is a key id or a displayable prefix
// (see ParseKeyID).
func (m *Manager) Revoke(ctx context.Context, actor Actor, keyID string) (View, error) {
	if err := authorize(actor, ActionRevoke); err != nil {
		return View{}, err
	}
	return m.update(ctx, actor, keyID, ActionRevoke, func(rec *Record, now time.Time) error {
		switch {
		case !rec.RevokedAt.IsZero():
			return fmt.Errorf("%w: %s", ErrAlreadyRevoked, rec.Prefix())
		case rec.Default:
			return fmt.Errorf("%w: %s", ErrDefaultKeyNotRevocable, rec.Prefix())
		}
		rec.RevokedAt = now
		return nil
	})
}

// SetScopes replaces the scopes of a server key that is not a default key
// (default server keys hold every scope). An empty list fails with
// ErrScopesRequired and leaves the key as it was: full access is given only
// by the explicit scope AllScopes. keyID is a key id or a displayable prefix
// (see ParseKeyID).
func (m *Manager) SetScopes(ctx context.Context, actor Actor, keyID string, scopes []string) (View, error) {
	if err := authorize(actor, ActionSetScopes); err != nil {
		return View{}, err
	}
	valid, err := ValidateScopes(Server, scopes)
	if err != nil {
		return View{}, err
	}
	return m.update(ctx, actor, keyID, ActionSetScopes, func(rec *Record, now time.Time) error {
		switch {
		case rec.Type != Server:
			return fmt.Errorf("%w: publishable keys carry no scopes", ErrInvalidScope)
		case rec.Default:
			return fmt.Errorf("%w: the default server key holds every scope", ErrInvalidScope)
		case !rec.RevokedAt.IsZero():
			return fmt.Errorf("%w: %s", ErrAlreadyRevoked, rec.Prefix())
		}
		if err := actor.mayHold(rec.Scopes); err != nil {
			return err
		}
		if err := actor.mayHold(valid); err != nil {
			return err
		}
		rec.Scopes = valid
		return nil
	})
}

// update reads a key, lets change modify it, and stores it with an audit
// event, retrying on conflict; a change that returns errUnchanged stores
// nothing and returns the key's view. Every change but a revocation needs
// the key's account open and not suspended (Change.OpenAccount): revoking
// is what closing does.
func (m *Manager) update(ctx context.Context, actor Actor, keyID string, action Action, change func(*Record, time.Time) error) (View, error) {
	name, err := parseKeyName(keyID)
	if err != nil {
		return View{}, err
	}
	var view View
	err = m.retry(ctx, func() error {
		rec, err := m.permittedKey(ctx, actor, name, action)
		if err != nil {
			return err
		}
		now := m.Now()
		if err := change(&rec, now); errors.Is(err, errUnchanged) {
			view = rec.View(now)
			return nil
		} else if err != nil {
			return err
		}
		view = rec.View(now)
		detail := expiryDetail(rec.ExpiresAt)
		switch action {
		case ActionSetLimits:
			detail = rec.Limits.String()
		case ActionDisable, ActionEnable:
			detail = ""
		case ActionRename:
			detail = renameDetail(rec.Name)
		}
		c := Change{
			Update: []Record{rec},
			Events: []Event{keyEvent(now, actor, action, rec, detail)},
		}
		if action != ActionRevoke {
			c.OpenAccount = rec.Account
		}
		return m.apply(ctx, c)
	})
	return view, err
}

// SetOwner names whom a key is issued to (see ValidateOwner); an empty
// owner names nobody. The key takes the limits shared by the new owner's
// keys (Record.OwnerLimits; none if they have none) in the same atomic
// write. The roles are those of the key actions (see Role.Permits); keyID
// is a key id or a displayable prefix.
func (m *Manager) SetOwner(ctx context.Context, actor Actor, keyID, owner string) (View, error) {
	if err := authorize(actor, ActionSetOwner); err != nil {
		return View{}, err
	}
	if err := ValidateOwner(owner); err != nil {
		return View{}, err
	}
	name, err := parseKeyName(keyID)
	if err != nil {
		return View{}, err
	}
	var view View
	err = m.retry(ctx, func() error {
		rec, err := m.permittedKey(ctx, actor, name, ActionSetOwner)
		if err != nil {
			return err
		}
		if err := actor.mayChange(&rec); err != nil {
			return err
		}
		now := m.Now()
		guard, err := m.ownerGuard(ctx, rec.Account, owner, rec.ID)
		if err != nil {
			return err
		}
		rec.Owner = owner
		c := Change{OpenAccount: rec.Account}
		takeOwnerLimits(&rec, guard, &c) // the new owner's limits, or none
		c.Update = append(c.Update, rec)
		c.Events = []Event{keyEvent(now, actor, ActionSetOwner, rec, expiryDetail(rec.ExpiresAt))}
		view = rec.View(now)
		return m.apply(ctx, c)
	})
	return view, err
}

// SetMetadata replaces a key's metadata (see ValidateMetadata); an empty
// map removes it. The roles are those of the key actions (see
// Role.Permits); keyID is a key id or a displayable prefix.
func (m *Manager) SetMetadata(ctx context.Context, actor Actor, keyID string, metadata map[string]string) (View, error) {
	if err := authorize(actor, ActionSetMetadata); err != nil {
		return View{}, err
	}
	valid, err := ValidateMetadata(metadata)
	if err != nil {
		return View{}, err
	}
	return m.update(ctx, actor, keyID, ActionSetMetadata, func(rec *Record, now time.Time) error {
		if err := actor.mayChange(rec); err != nil {
			return err
		}
		rec.Metadata = valid
		return nil
	})
}

// SetLimits replaces the limits of a key that is not revoked (see
// ValidateLimits; the zero Limits removes every bound). Owners, and
// members outside production (see Role.Permits); an
// actor authenticated by a key may not change any key's limits
// (ErrBeyondActor), its own included. A quota that differs from the
// key's previous one keeps what was spent of it (see
// storage.QuotaLedger). A rotated key spends from its lineage's balance,
// whose quota is its replacement's: changing its quota fails with
// ErrAlreadyRotated (its other limits may change). The change reaches
// every process through the store's change feed like any other. keyID is
// a key id or a displayable prefix (see ParseKeyID).
func (m *Manager) SetLimits(ctx context.Context, actor Actor, keyID string, limits Limits) (View, error) {
	if err := authorize(actor, ActionSetLimits); err != nil {
		return View{}, err
	}
	if actor.Scopes != nil {
		return View{}, fmt.Errorf("%w: an acting key may not change limits", ErrBeyondActor)
	}
	return m.update(ctx, actor, keyID, ActionSetLimits, func(rec *Record, now time.Time) error {
		if !rec.RevokedAt.IsZero() {
			return fmt.Errorf("%w: %s", ErrAlreadyRevoked, rec.Prefix())
		}
		valid, err := ValidateLimits(rec.Type, limits)
		if err != nil {
			return err
		}
		if !rec.RotatedAt.IsZero() && valid.Quota != rec.Limits.Quota {
			return fmt.Errorf("%w: %s spends its replacement's quota; change the quota of the replacement", ErrAlreadyRotated, rec.Prefix())
		}
		rec.Limits = valid
		return nil
	})
}

// List returns a page of the public views of an environment's keys, in
// creation order. Every role may list; no view carries a secret.
func (m *Manager) List(ctx context.Context, actor Actor, environment string, page Page) (KeyList, error) {
	if err := authorize(actor, ActionView); err != nil {
		return KeyList{}, err
	}
	limit, err := page.limit()
	if err != nil {
		return KeyList{}, err
	}
	after, err := parseKeyCursor(page.After)
	if err != nil {
		return KeyList{}, err
	}
	s, err := m.environment(ctx, actor, environment)
	if err != nil {
		return KeyList{}, err
	}
	keys, err := m.store.Keys(ctx, KeyQuery{Account: s.Account, Environment: s.Environment, After: after, Limit: limit + 1})
	if err != nil {
		return KeyList{}, err
	}
	return keyPage(keys, limit, m.Now(), func(last Record) string {
		return keyCursor(KeyPosition{CreatedAt: last.CreatedAt, ID: last.ID})
	}), nil
}

// Get returns the public view of one key. Every role may get. keyID is a
// key id or a displayable prefix (see ParseKeyID).
func (m *Manager) Get(ctx context.Context, actor Actor, keyID string) (View, error) {
	if err := authorize(actor, ActionView); err != nil {
		return View{}, err
	}
	name, err := parseKeyName(keyID)
	if err != nil {
		return View{}, err
	}
	rec, err := m.key(ctx, actor, name)
	if err != nil {
		return View{}, err
	}
	return rec.View(m.Now()), nil
}

// Reveal returns a full key again: a publishable key always, to owners and
// members, a server key only to owners and only if it was sealed
// (ManagerOptions.Sealer); else
// ErrNotRevealable. Revoked keys are not revealed. Each reveal is audited.
// keyID is a key id or a displayable prefix (see ParseKeyID).
func (m *Manager) Reveal(ctx context.Context, actor Actor, keyID string) (Key, error) {
	if err := authorize(actor, ActionReveal); err != nil {
		return Key{}, err
	}
	name, err := parseKeyName(keyID)
	if err != nil {
		return Key{}, err
	}
	rec, err := m.permittedKey(ctx, actor, name, ActionReveal)
	if err != nil {
		return Key{}, err
	}
	if !rec.RevokedAt.IsZero() {
		return Key{}, fmt.Errorf("%w: %s", ErrAlreadyRevoked, rec.Prefix())
	}
	if rec.Imported() {
		return Key{}, fmt.Errorf("%w: %s is imported: only its digest is stored", ErrNotRevealable, rec.Prefix())
	}
	plain := rec.Recoverable.Bytes()
	if rec.Type == Server {
		if err := actor.mayHold(rec.Scopes); err != nil {
			return Key{}, err
		}
		if err := actor.mayLast(rec.ExpiresAt); err != nil {
			return Key{}, err
		}
		if m.sealer == nil || plain == nil {
			return Key{}, fmt.Errorf("%w: %s is stored only as a hash", ErrNotRevealable, rec.Prefix())
		}
		if plain, err = m.sealer.Open(plain, []byte(rec.ID)); err != nil {
			return Key{}, err
		}
	}
	key, err := ParseKey(string(plain))
	if err != nil || key.ID() != rec.ID {
		return Key{}, fmt.Errorf("%w: %s: stored copy is damaged", ErrNotRevealable, rec.Prefix())
	}
	now := m.Now()
	err = m.apply(ctx, Change{Events: []Event{keyEvent(now, actor, ActionReveal, rec, "")}})
	if err != nil {
		return Key{}, err
	}
	return key, nil
}

// Settings returns the settings of an environment of the actor's account.
// Every role may read them.
func (m *Manager) Settings(ctx context.Context, actor Actor, environment string) (Settings, error) {
	if err := authorize(actor, ActionView); err != nil {
		return Settings{}, err
	}
	return m.environment(ctx, actor, environment)
}

// Environments returns a page of the settings of the actor's account's
// environments, sorted by name. Every role may read them.
func (m *Manager) Environments(ctx context.Context, actor Actor, page Page) (EnvironmentList, error) {
	if err := authorize(actor, ActionView); err != nil {
		return EnvironmentList{}, err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return EnvironmentList{}, err
	}
	limit, err := page.limit()
	if err != nil {
		return EnvironmentList{}, err
	}
	after, err := parseNameCursor(page.After, ValidateEnvironment)
	if err != nil {
		return EnvironmentList{}, err
	}
	envs, err := m.store.Environments(ctx, EnvironmentQuery{
		Account: account, After: EnvironmentPosition{Account: account, Environment: after}, Limit: limit + 1,
	})
	if err != nil {
		return EnvironmentList{}, err
	}
	out := EnvironmentList{Environments: envs}
	if len(envs) > limit {
		out.Environments = envs[:limit]
		out.Next = nameCursor(envs[limit-1].Environment)
	}
	return out, nil
}

// Accounts returns a page of the ids of the accounts that have
// environments, in order. Only an operator acting across accounts
// (AnyAccount) may list them; any role may.
func (m *Manager) Accounts(ctx context.Context, actor Actor, page Page) (AccountList, error) {
	if err := authorize(actor, ActionView); err != nil {
		return AccountList{}, err
	}
	if actor.Account != AnyAccount {
		return AccountList{}, fmt.Errorf("%w: listing accounts needs an actor acting across accounts", ErrForbidden)
	}
	limit, err := page.limit()
	if err != nil {
		return AccountList{}, err
	}
	after, err := parseNameCursor(page.After, ValidateAccount)
	if err != nil {
		return AccountList{}, err
	}
	ids, err := m.store.Accounts(ctx, after, limit+1)
	if err != nil {
		return AccountList{}, err
	}
	out := AccountList{Accounts: ids}
	if len(ids) > limit {
		out.Accounts = ids[:limit]
		out.Next = nameCursor(ids[limit-1])
	}
	return out, nil
}

// SetAllowedOrigins replaces the web origins allowed to use the
// environment's publishable keys (see ParseOrigin). An empty list admits no
// browser origin; the entry "*" (AnyOrigin) admits every origin, so that
// any web page may use the keys: a development convenience.
func (m *Manager) SetAllowedOrigins(ctx context.Context, actor Actor, environment string, origins []string) (Settings, error) {
	if err := authorize(actor, ActionSetOrigins); err != nil {
		return Settings{}, err
	}
	valid, err := ValidateOrigins(origins)
	if err != nil {
		return Settings{}, err
	}
	var out Settings
	err = m.retry(ctx, func() error {
		s, err := m.environment(ctx, actor, environment)
		if err != nil {
			return err
		}
		if err := s.refusesChanges(); err != nil {
			return err
		}
		now := m.Now()
		s.AllowedOrigins, s.UpdatedAt = valid, now
		out = s.Clone()
		return m.apply(ctx, Change{
			Settings: []Settings{s},
			Events: []Event{{Time: now, Actor: actor.audited(), Action: ActionSetOrigins, Account: s.Account, Environment: environment,
				Detail: fmt.Sprintf("%d allowed origins", len(valid))}},
			OpenAccount: s.Account,
		})
	})
	return out, err
}

// keyName is a parsed key name: a key id, and the type its displayable
// prefix named, or "".
type keyName struct {
	id  string
	typ KeyType
}

func parseKeyName(s string) (keyName, error) {
	id, t, err := ParseKeyID(s)
	return keyName{id: id, typ: t}, err
}

// errNoSuchKey is the refusal of a displayable prefix of the other type.
var errNoSuchKey = fmt.Errorf("%w: no such key", ErrNotFound)

// key loads the key that n names, if the actor may see it. A key of
// another account, or of another type than n's prefix named, is not found,
// as if it did not exist.
func (m *Manager) key(ctx context.Context, actor Actor, n keyName) (Record, error) {
	rec, err := m.store.Key(ctx, n.id)
	if err != nil {
		return Record{}, err
	}
	if n.typ != "" && rec.Type != n.typ {
		return Record{}, errNoSuchKey
	}
	if actor.Account != AnyAccount && rec.Account != actor.InAccount() {
		return Record{}, errNoSuchKey
	}
	return rec, nil
}

// permittedKey loads the key that n names, as key does, and refuses it, as
// permit does, when the actor's role may not perform action on it (an
// error wrapping ErrForbidden). A key the actor may not see fails as not
// found before its role is asked.
func (m *Manager) permittedKey(ctx context.Context, actor Actor, n keyName, action Action) (Record, error) {
	rec, err := m.key(ctx, actor, n)
	if err != nil {
		return Record{}, err
	}
	if err := m.permit(actor, action, rec.Account, rec.Environment, rec.Type); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// namedAccount returns the account an actor acts in, for a call that names
// an environment: an operator acting across accounts must name one.
func namedAccount(actor Actor) (string, error) {
	if actor.Account == AnyAccount {
		return "", fmt.Errorf("%w: an actor acting across accounts names the account of an environment", ErrInvalidAccount)
	}
	return actor.InAccount(), nil
}

// environment returns the settings of a bootstrapped environment of the
// actor's account.
func (m *Manager) environment(ctx context.Context, actor Actor, environment string) (Settings, error) {
	account, err := namedAccount(actor)
	if err != nil {
		return Settings{}, err
	}
	if err := ValidateEnvironment(environment); err != nil {
		return Settings{}, err
	}
	s, err := m.store.Settings(ctx, account, environment)
	if errors.Is(err, ErrNotFound) {
		return Settings{}, fmt.Errorf("%w: %s", ErrUnknownEnvironment, environment)
	}
	return s, err
}

// checkOpen refuses an account that was closed or is suspended: its
// environments carry ClosedAt or SuspendedAt (one read, by index).
func (m *Manager) checkOpen(ctx context.Context, account string) error {
	envs, err := m.store.Environments(ctx, EnvironmentQuery{Account: account, Limit: 1})
	if err != nil || len(envs) == 0 {
		return err
	}
	return envs[0].refusesChanges()
}

// keySpec is what a new key is made of.
type keySpec struct {
	account, env string
	typ          KeyType
	name, owner  string
	metadata     map[string]string
	scopes       []string
	expires      time.Time
	limits       Limits
}

// newKey generates a key and its record.
func (m *Manager) newKey(spec keySpec, actor Actor, now time.Time) (Key, Record, error) {
	t := spec.typ
	key, err := GenerateKey(t)
	if err != nil {
		return Key{}, Record{}, err
	}
	hash, err := m.hasher.Hash([]byte(key.Reveal()))
	if err != nil {
		return Key{}, Record{}, err
	}
	rec := Record{
		ID: key.ID(), Account: spec.account, Type: t, Environment: spec.env, Name: spec.name,
		Owner: spec.owner, Metadata: maps.Clone(spec.metadata), Scopes: cloneStrings(spec.scopes),
		Limits:    spec.limits.Clone(),
		CreatedAt: now, CreatedBy: actor.ID, ExpiresAt: spec.expires, Hash: NewOpaque(hash),
	}
	switch {
	case t == Client:
		rec.Recoverable = NewOpaque(key.Reveal())
	case m.sealer != nil:
		sealed, err := m.sealer.Seal([]byte(key.Reveal()), []byte(rec.ID))
		if err != nil {
			return Key{}, Record{}, err
		}
		rec.Recoverable = OpaqueBytes(sealed)
	}
	return key, rec, nil
}

// apply stores a change and then reports its events.
func (m *Manager) apply(ctx context.Context, c Change) error {
	if err := m.store.Apply(ctx, c); err != nil {
		return err
	}
	if m.onEvent != nil {
		for _, e := range c.Events {
			m.onEvent(e)
		}
	}
	return nil
}

// retry runs fn until it does not fail with ErrConflict, with a short
// random pause between attempts so that racing writers spread out.
func (m *Manager) retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if !errors.Is(err, ErrConflict) || attempt == maxAttempts {
			return err
		}
		pause := time.NewTimer(rand.N(time.Duration(min(attempt, 20)) * time.Millisecond))
		select {
		case <-ctx.Done():
			pause.Stop()
			return fmt.Errorf("apikey: %w", ctx.Err())
		case <-pause.C:
		}
	}
}

// keyEvent is the audit event of an action on rec.
func keyEvent(now time.Time, actor Actor, action Action, rec Record, detail string) Event {
	return Event{Time: now, Actor: actor.audited(), Action: action, Account: rec.Account, Environment: rec.Environment,
		KeyID: rec.ID, KeyType: rec.Type, Detail: detail}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func expiryDetail(t time.Time) string {
	if t.IsZero() {
		return "no expiry"
	}
	return "expires " + t.Format(time.RFC3339)
}
