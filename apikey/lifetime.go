package apikey

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// MaxKeyLifetime is the longest DefaultExpiry and MaxLifetime a
// LifetimePolicy may set: ten years of 365 days.
const MaxKeyLifetime = 10 * 365 * 24 * time.Hour

// LifetimePolicy bounds the lifetime of an environment's non-default keys,
// counted from their creation. The zero LifetimePolicy bounds nothing.
//
// Default keys are the exception: they have no expiry by design (an
// environment always keeps a working key of each type) and are rotated,
// not expired; neither bound applies to them, nor to the grace of a
// default key rotated out (GracePolicy bounds it).
//
// A policy applies to what is created or changed after it is set: keys
// created earlier keep their expiry until they are rotated or their grace
// is changed.
type LifetimePolicy struct {
	// DefaultExpiry is the expiry, from creation, of a key created without
	// one (Manager.Create), and of the replacement of a key without expiry
	// (Manager.Rotate). Zero means MaxLifetime; both zero means no expiry.
	// In whole seconds, at most MaxLifetime when that is set and at most
	// MaxKeyLifetime ("default_expiry_seconds" in JSON).
	DefaultExpiry time.Duration
	// MaxLifetime is the longest a key may live from its creation: a
	// requested expiry beyond it is refused with ErrBeyondLifetime, a
	// replacement issued by rotation expires within it, and neither a
	// rotation's grace nor a grace change keeps a key past it. Zero means
	// no maximum. In whole seconds, at most MaxKeyLifetime
	// ("max_lifetime_seconds" in JSON).
	MaxLifetime time.Duration
}

// IsZero reports whether p bounds nothing.
func (p LifetimePolicy) IsZero() bool { return p == LifetimePolicy{} }

// defaultExpiry is the lifetime of a key that asks for none: DefaultExpiry,
// else MaxLifetime; zero for none.
func (p LifetimePolicy) defaultExpiry() time.Duration {
	if p.DefaultExpiry > 0 {
		return p.DefaultExpiry
	}
	return p.MaxLifetime
}

// limit returns the latest expiry that p allows a key created at created:
// zero for no limit.
func (p LifetimePolicy) limit(created time.Time) time.Time {
	if p.MaxLifetime <= 0 {
		return time.Time{}
	}
	return created.Add(p.MaxLifetime)
}

// beyond returns an error wrapping ErrBeyondLifetime for a key created at
// created that would expire at expires (zero: never), or nil when p
// allows it.
func (p LifetimePolicy) beyond(what string, created, expires time.Time) error {
	limit := p.limit(created)
	if limit.IsZero() || (!expires.IsZero() && !expires.After(limit)) {
		return nil
	}
	at := "no expiry"
	if !expires.IsZero() {
		at = "expiry " + expires.UTC().Format(time.RFC3339)
	}
	return fmt.Errorf("%w: the environment's maximum lifetime is %s (max_lifetime_seconds %d): %s may last until %s; %s is later",
		ErrBeyondLifetime, hours(p.MaxLifetime), int64(p.MaxLifetime/time.Second), what,
		limit.UTC().Format(time.RFC3339), at)
}

// String summarises p for people and audit events, such as
// "default expiry 720h; max lifetime 8760h", or "no lifetime policy".
func (p LifetimePolicy) String() string {
	switch {
	case p.IsZero():
		return "no lifetime policy"
	case p.MaxLifetime == 0:
		return "default expiry " + hours(p.DefaultExpiry) + "; no max lifetime"
	case p.DefaultExpiry == 0:
		return "default expiry " + hours(p.MaxLifetime) + " (max lifetime); max lifetime " + hours(p.MaxLifetime)
	}
	return "default expiry " + hours(p.DefaultExpiry) + "; max lifetime " + hours(p.MaxLifetime)
}

// lifetimeJSON is the JSON form of a LifetimePolicy: whole seconds.
type lifetimeJSON struct {
	DefaultExpirySeconds int64 `json:"default_expiry_seconds"`
	MaxLifetimeSeconds   int64 `json:"max_lifetime_seconds"`
}

// MarshalJSON writes p as {"default_expiry_seconds": D,
// "max_lifetime_seconds": M}, each in whole seconds (rounded down), 0 for
// none.
func (p LifetimePolicy) MarshalJSON() ([]byte, error) {
	return json.Marshal(lifetimeJSON{
		DefaultExpirySeconds: int64(p.DefaultExpiry / time.Second),
		MaxLifetimeSeconds:   int64(p.MaxLifetime / time.Second),
	})
}

// UnmarshalJSON reads the form MarshalJSON writes, ignoring fields it does
// not know; null leaves p unchanged. It checks no bound (see
// ValidateLifetime) but keeps every out-of-range value out of range: a
// number of seconds too large for a time.Duration becomes one longer than
// MaxKeyLifetime, never a wrapped-around valid one.
func (p *LifetimePolicy) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil
	}
	var v lifetimeJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("lifetime: %w", err)
	}
	*p = LifetimePolicy{DefaultExpiry: lifetimeSeconds(v.DefaultExpirySeconds), MaxLifetime: lifetimeSeconds(v.MaxLifetimeSeconds)}
	return nil
}

// lifetimeSeconds returns n seconds as a time.Duration for a
// LifetimePolicy, keeping every value out of range out of range: beyond
// MaxKeyLifetime, one second more than it; below zero, minus one second.
func lifetimeSeconds(n int64) time.Duration {
	switch maxSeconds := int64(MaxKeyLifetime / time.Second); {
	case n > maxSeconds:
		return MaxKeyLifetime + time.Second
	case n < 0:
		return -time.Second
	}
	return time.Duration(n) * time.Second
}

// ValidateLifetime checks a lifetime policy: each duration 0 (none) or
// whole seconds from 1s to MaxKeyLifetime, and DefaultExpiry at most
// MaxLifetime when both are set. Errors wrap ErrInvalidLifetime and name
// the field by its JSON name.
func ValidateLifetime(p LifetimePolicy) error {
	maxSeconds := strconv.FormatInt(int64(MaxKeyLifetime/time.Second), 10)
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"default_expiry_seconds", p.DefaultExpiry}, {"max_lifetime_seconds", p.MaxLifetime}} {
		switch {
		case f.d < 0 || f.d > MaxKeyLifetime:
			return fmt.Errorf("%w: %s must be 0 (none) to %s (%s)", ErrInvalidLifetime, f.name, maxSeconds, hours(MaxKeyLifetime))
		case f.d%time.Second != 0:
			return fmt.Errorf("%w: %s must be whole seconds", ErrInvalidLifetime, f.name)
		}
	}
	if p.MaxLifetime > 0 && p.DefaultExpiry > p.MaxLifetime {
		return fmt.Errorf("%w: default_expiry_seconds must be at most max_lifetime_seconds (%d)",
			ErrInvalidLifetime, int64(p.MaxLifetime/time.Second))
	}
	return nil
}

// SetLifetimePolicy replaces the lifetime policy of an environment of the
// actor's account (see LifetimePolicy and ValidateLifetime; the zero
// policy removes it), audited as ActionSetLifetime. Owners only, and no
// actor authenticated by a key (ErrBeyondActor): the policy is a security
// bound, like a key's limits. Keys that exist keep their expiry.
func (m *Manager) SetLifetimePolicy(ctx context.Context, actor Actor, environment string, policy LifetimePolicy) (Settings, error) {
	if err := authorize(actor, ActionSetLifetime); err != nil {
		return Settings{}, err
	}
	if actor.Scopes != nil {
		return Settings{}, fmt.Errorf("%w: an acting key may not change the lifetime policy", ErrBeyondActor)
	}
	if err := ValidateLifetime(policy); err != nil {
		return Settings{}, err
	}
	var out Settings
	err := m.retry(ctx, func() error {
		s, err := m.environment(ctx, actor, environment)
		if err != nil {
			return err
		}
		if !s.ClosedAt.IsZero() {
			return fmt.Errorf("%w: %s", ErrAccountClosed, s.Account)
		}
		now := m.Now()
		s.Lifetime, s.UpdatedAt = policy, now
		out = s.Clone()
		return m.apply(ctx, Change{
			Settings: []Settings{s},
			Events: []Event{{Time: now, Actor: actor.audited(), Action: ActionSetLifetime, Account: s.Account,
				Environment: s.Environment, Detail: policy.String()}},
			OpenAccount: s.Account,
		})
	})
	return out, err
}

// Rename changes a key's name (see ValidateName; "" removes it), audited
// as ActionRename. The roles are those of the key actions (see
// Role.Permits); a revoked key keeps its name
// (ErrAlreadyRevoked). keyID is a key id or a displayable prefix (see
// ParseKeyID).
func (m *Manager) Rename(ctx context.Context, actor Actor, keyID, name string) (View, error) {
	if err := authorize(actor, ActionRename); err != nil {
		return View{}, err
	}
	if err := ValidateName(name); err != nil {
		return View{}, err
	}
	return m.update(ctx, actor, keyID, ActionRename, func(rec *Record, now time.Time) error {
		if err := actor.mayChange(rec); err != nil {
			return err
		}
		rec.Name = name
		return nil
	})
}

// renameDetail is the audit detail of a rename: the new name, quoted (a
// validated name holds no key).
func renameDetail(name string) string {
	if name == "" {
		return "name removed"
	}
	return "name " + strconv.Quote(name)
}

// lifetimeOf returns the lifetime policy of a key's environment: the zero
// policy for a default key, which no policy bounds.
func (m *Manager) lifetimeOf(ctx context.Context, rec Record) (LifetimePolicy, error) {
	if rec.Default {
		return LifetimePolicy{}, nil
	}
	s, err := m.store.Settings(ctx, rec.Account, rec.Environment)
	if err != nil {
		return LifetimePolicy{}, err
	}
	return s.Lifetime, nil
}

// createExpiry returns the expiry of a key created at now that asked for
// expires (zero: none) under p: the default expiry when it asked for none,
// or ErrBeyondLifetime when it asked for more than the maximum.
func (p LifetimePolicy) createExpiry(now, expires time.Time) (time.Time, error) {
	if expires.IsZero() {
		if d := p.defaultExpiry(); d > 0 {
			return now.Add(d), nil
		}
		return time.Time{}, nil
	}
	return expires, p.beyond("a key created now", now, expires)
}

// replacementExpiry returns the expiry of the replacement, created at
// now, of a non-default key that expires at old (zero: never): old, or the
// default expiry when old is zero, and never beyond the maximum.
func (p LifetimePolicy) replacementExpiry(now, old time.Time) time.Time {
	expires := old
	if expires.IsZero() {
		if d := p.defaultExpiry(); d > 0 {
			expires = now.Add(d)
		}
	}
	return earliest(expires, p.limit(now))
}
