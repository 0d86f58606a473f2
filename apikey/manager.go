package apikey

import (
	"context"
	"errors"
	"fmt"
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
}

// Manager enforces the key lifecycle: bootstrap, create, rotate, change
// grace, revoke, scopes, allowed origins and reveal, each checked against the
// actor's role and recorded as an audit event. Its rules hold under
// concurrent calls from many processes sharing one Store: every change is a
// compare-and-set that is retried on conflict. A Manager is safe for
// concurrent use.
type Manager struct {
	store   Store
	hasher  Hasher
	now     func() time.Time
	sealer  Sealer
	onEvent func(Event)
}

// maxAttempts bounds the retries of a change that keeps losing races.
const maxAttempts = 100

// NewManager returns a Manager. It fails only when opts.Store is nil.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("apikey: ManagerOptions.Store is required")
	}
	m := &Manager{store: opts.Store, hasher: opts.Hasher, now: opts.Now, sealer: opts.Sealer, onEvent: opts.OnEvent}
	if m.hasher == nil {
		m.hasher = Argon2id{}
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// Now returns the Manager's clock reading as stored: UTC, microseconds.
func (m *Manager) Now() time.Time { return m.now().UTC().Truncate(time.Microsecond) }

// Bootstrap creates an environment: its settings, one default server key and
// one default publishable key (returned in that order, shown this once). It
// succeeds once per environment; later calls fail with
// ErrAlreadyBootstrapped.
func (m *Manager) Bootstrap(ctx context.Context, actor Actor, environment string) ([]Issued, error) {
	if err := authorize(actor, ActionBootstrap); err != nil {
		return nil, err
	}
	if err := ValidateEnvironment(environment); err != nil {
		return nil, err
	}
	now := m.Now()
	change := Change{Settings: []Settings{{Environment: environment, UpdatedAt: now}}}
	var issued []Issued
	for _, t := range []KeyType{Server, Client} {
		var scopes []string // publishable keys carry none
		if t == Server {
			scopes = []string{AllScopes} // explicit: full access is never implied
		}
		key, rec, err := m.newKey(t, environment, "default", scopes, time.Time{}, actor, now)
		if err != nil {
			return nil, err
		}
		rec.Default = true
		change.Insert = append(change.Insert, rec)
		change.Events = append(change.Events, Event{Time: now, Actor: actor, Action: ActionBootstrap, Environment: environment, KeyID: rec.ID})
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
// key, or another publishable key.
type CreateRequest struct {
	Environment string
	Type        KeyType
	// Name is a label for people, such as "billing worker". Optional.
	Name string
	// Scopes of a server key: at least one, AllScopes ("*") for full
	// access; an empty list fails with ErrScopesRequired. Must be empty for
	// a publishable key.
	Scopes []string
	// ExpiresAt, if set, must be in the future. Zero means no expiry. Either
	// way the key can be revoked directly: only default keys must be rotated
	// first.
	ExpiresAt time.Time
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
	scopes, err := ValidateScopes(req.Type, req.Scopes)
	if err != nil {
		return Issued{}, err
	}
	if len(req.Name) > 200 {
		return Issued{}, ErrInvalidName
	}
	now := m.Now()
	expires := req.ExpiresAt.UTC().Truncate(time.Microsecond)
	if !req.ExpiresAt.IsZero() && !expires.After(now) {
		return Issued{}, fmt.Errorf("%w: expiry must be in the future", ErrInvalidExpiry)
	}
	if _, err := m.environment(ctx, req.Environment); err != nil {
		return Issued{}, err
	}
	var issued Issued
	err = m.retry(ctx, func() error {
		key, rec, err := m.newKey(req.Type, req.Environment, req.Name, scopes, expires, actor, now)
		if err != nil {
			return err
		}
		issued = Issued{Key: key, View: rec.View(now)}
		return m.apply(ctx, Change{
			Insert: []Record{rec},
			Events: []Event{{Time: now, Actor: actor, Action: ActionCreate, Environment: rec.Environment, KeyID: rec.ID, Detail: expiryDetail(expires)}},
		})
	})
	return issued, err
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
func (m *Manager) Rotate(ctx context.Context, actor Actor, req RotateRequest) (Issued, error) {
	if err := authorize(actor, ActionRotate); err != nil {
		return Issued{}, err
	}
	if err := req.checkGrace(); err != nil {
		return Issued{}, err
	}
	var target keyName
	if req.KeyID == "" {
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
		old, err := m.rotationTarget(ctx, req, target)
		if err != nil {
			return err
		}
		now := m.Now()
		switch old.Status(now) {
		case Revoked:
			return fmt.Errorf("%w: %s", ErrAlreadyRevoked, old.Prefix())
		case Expired:
			return fmt.Errorf("%w: %s", ErrKeyExpired, old.Prefix())
		case Expiring:
			return fmt.Errorf("%w: %s", ErrAlreadyRotated, old.Prefix())
		}
		key, rec, err := m.newKey(old.Type, old.Environment, old.Name, old.Scopes, old.ExpiresAt, actor, now)
		if err != nil {
			return err
		}
		rec.Default = old.Default
		old.Default = false
		old.RotatedAt = now
		old.ExpiryLimit = old.ExpiresAt
		old.ExpiresAt = earliest(old.ExpiresAt, now.Add(req.Grace))
		issued = Issued{Key: key, View: rec.View(now)}
		return m.apply(ctx, Change{
			Update: []Record{old},
			Insert: []Record{rec},
			Events: []Event{
				{Time: now, Actor: actor, Action: ActionRotate, Environment: old.Environment, KeyID: old.ID, Detail: "replaced by " + rec.Prefix() + "; " + expiryDetail(old.ExpiresAt)},
				{Time: now, Actor: actor, Action: ActionCreate, Environment: rec.Environment, KeyID: rec.ID, Detail: "replaces " + old.Prefix()},
			},
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

func (m *Manager) rotationTarget(ctx context.Context, req RotateRequest, target keyName) (Record, error) {
	if req.KeyID != "" {
		return m.key(ctx, target)
	}
	keys, err := m.store.Keys(ctx, req.Environment)
	if err != nil {
		return Record{}, err
	}
	for _, k := range keys {
		if k.Default && k.Type == req.Type {
			return k, nil
		}
	}
	return Record{}, fmt.Errorf("%w: %s has no default %s key", ErrUnknownEnvironment, req.Environment, req.Type)
}

// ChangeGrace sets the grace period of a rotated key, counted from when it
// was rotated: it may shorten or lengthen it within the policy, but never
// past an expiry the key had before rotation. A grace that has already
// passed expires the key at once. keyID is a key id or a displayable prefix
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
		rec.ExpiresAt = earliest(rec.ExpiryLimit, rec.RotatedAt.Add(grace))
		if rec.ExpiresAt.Before(now) {
			rec.ExpiresAt = now
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
		rec.Scopes = valid
		return nil
	})
}

// update reads a key, lets change modify it, and stores it with an audit
// event, retrying on conflict.
func (m *Manager) update(ctx context.Context, actor Actor, keyID string, action Action, change func(*Record, time.Time) error) (View, error) {
	name, err := parseKeyName(keyID)
	if err != nil {
		return View{}, err
	}
	var view View
	err = m.retry(ctx, func() error {
		rec, err := m.key(ctx, name)
		if err != nil {
			return err
		}
		now := m.Now()
		if err := change(&rec, now); err != nil {
			return err
		}
		view = rec.View(now)
		return m.apply(ctx, Change{
			Update: []Record{rec},
			Events: []Event{{Time: now, Actor: actor, Action: action, Environment: rec.Environment, KeyID: rec.ID, Detail: expiryDetail(rec.ExpiresAt)}},
		})
	})
	return view, err
}

// List returns the public views of an environment's keys. Every role may
// list; no view carries a secret.
func (m *Manager) List(ctx context.Context, actor Actor, environment string) ([]View, error) {
	if err := authorize(actor, ActionView); err != nil {
		return nil, err
	}
	if _, err := m.environment(ctx, environment); err != nil {
		return nil, err
	}
	keys, err := m.store.Keys(ctx, environment)
	if err != nil {
		return nil, err
	}
	now := m.Now()
	views := make([]View, len(keys))
	for i, k := range keys {
		views[i] = k.View(now)
	}
	return views, nil
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
	rec, err := m.key(ctx, name)
	if err != nil {
		return View{}, err
	}
	return rec.View(m.Now()), nil
}

// Reveal returns a full key again, for owners only: a publishable key
// always, a server key only if it was sealed (ManagerOptions.Sealer); else
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
	rec, err := m.key(ctx, name)
	if err != nil {
		return Key{}, err
	}
	if !rec.RevokedAt.IsZero() {
		return Key{}, fmt.Errorf("%w: %s", ErrAlreadyRevoked, rec.Prefix())
	}
	plain := rec.Recoverable.Bytes()
	if rec.Type == Server {
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
	err = m.apply(ctx, Change{Events: []Event{{Time: now, Actor: actor, Action: ActionReveal, Environment: rec.Environment, KeyID: rec.ID}}})
	if err != nil {
		return Key{}, err
	}
	return key, nil
}

// Settings returns an environment's settings. Every role may read them.
func (m *Manager) Settings(ctx context.Context, actor Actor, environment string) (Settings, error) {
	if err := authorize(actor, ActionView); err != nil {
		return Settings{}, err
	}
	return m.environment(ctx, environment)
}

// Environments returns the settings of every bootstrapped environment,
// sorted by name. Every role may read them.
func (m *Manager) Environments(ctx context.Context, actor Actor) ([]Settings, error) {
	if err := authorize(actor, ActionView); err != nil {
		return nil, err
	}
	return m.store.Environments(ctx)
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
		s, err := m.environment(ctx, environment)
		if err != nil {
			return err
		}
		now := m.Now()
		s.AllowedOrigins, s.UpdatedAt = valid, now
		out = s.Clone()
		return m.apply(ctx, Change{
			Settings: []Settings{s},
			Events:   []Event{{Time: now, Actor: actor, Action: ActionSetOrigins, Environment: environment, Detail: fmt.Sprintf("%d allowed origins", len(valid))}},
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

// key loads the key that n names. A key of another type than n's prefix
// named is not found, as if it did not exist.
func (m *Manager) key(ctx context.Context, n keyName) (Record, error) {
	rec, err := m.store.Key(ctx, n.id)
	if err != nil {
		return Record{}, err
	}
	if n.typ != "" && rec.Type != n.typ {
		return Record{}, errNoSuchKey
	}
	return rec, nil
}

// environment returns the settings of a bootstrapped environment.
func (m *Manager) environment(ctx context.Context, environment string) (Settings, error) {
	if err := ValidateEnvironment(environment); err != nil {
		return Settings{}, err
	}
	s, err := m.store.Settings(ctx, environment)
	if errors.Is(err, ErrNotFound) {
		return Settings{}, fmt.Errorf("%w: %s", ErrUnknownEnvironment, environment)
	}
	return s, err
}

// newKey generates a key and its record.
func (m *Manager) newKey(t KeyType, env, name string, scopes []string, expires time.Time, actor Actor, now time.Time) (Key, Record, error) {
	key, err := GenerateKey(t)
	if err != nil {
		return Key{}, Record{}, err
	}
	hash, err := m.hasher.Hash([]byte(key.Reveal()))
	if err != nil {
		return Key{}, Record{}, err
	}
	rec := Record{
		ID: key.ID(), Type: t, Environment: env, Name: name, Scopes: cloneStrings(scopes),
		CreatedAt: now, CreatedBy: actor.ID, ExpiresAt: expires, Hash: NewOpaque(hash),
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
