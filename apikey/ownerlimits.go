package apikey

import (
	"context"
	"fmt"
	"strings"
)

// ActionSetOwnerLimits is the audit action of SetOwnerLimits: one event
// per key it writes, and one for the call that names the owner.
const ActionSetOwnerLimits Action = "set_owner_limits"

// MaxOwnerKeys is the most keys SetOwnerLimits writes in one call (one
// atomic write).
const MaxOwnerKeys = MaxOwnerRevocation

// ownerBalancePrefix starts every OwnerBalanceID; no key id holds a colon.
const ownerBalancePrefix = "owner:"

// OwnerBalanceID returns the id of the budget that the keys of account
// issued to owner share: the rate-limit bucket and the quota balance
// (storage.QuotaLedger) of their OwnerLimits. It is "owner:" + account +
// "/" + owner, which no key id or lineage id can be (an account holds no
// "/", a key id no ":").
func OwnerBalanceID(account, owner string) string {
	return ownerBalancePrefix + account + "/" + owner
}

// IsOwnerBalanceID reports whether id names an owner's budget
// (OwnerBalanceID) rather than a key.
func IsOwnerBalanceID(id string) bool { return strings.HasPrefix(id, ownerBalancePrefix) }

// ValidateOwnerLimits checks the limits shared by an owner's keys: a rate
// limit and a quota, bounded as ValidateLimits bounds a key's. An address
// allowlist is refused (allowed_ips): it is not a budget to share, and is
// set on each key. Errors wrap ErrInvalidLimits and name the field.
func ValidateOwnerLimits(l Limits) (Limits, error) {
	if len(l.AllowedIPs) > 0 {
		return Limits{}, limitError("allowed_ips", "is set per key, not for an owner")
	}
	return ValidateLimits(Server, l)
}

// SetOwnerLimits sets the limits shared by every key of the actor's
// account issued to owner (see ValidateOwnerLimits; the zero Limits
// removes them): the middleware limits each of those keys by its own
// Limits and by these, spent on one rate-limit bucket and one quota
// balance per account and owner (OwnerBalanceID) across all of them.
//
// The limits are written as Record.OwnerLimits on every key of the owner
// that is not revoked, in one atomic write (a compare-and-set of every
// key, retried from the start when another writer changed one of them),
// so that they reach every process through the change feed like any key
// change. A key created, imported or rotated for the owner later takes
// them, and so does a key given to the owner (SetOwner); a key given to
// another owner takes that owner's. Owners only; an actor authenticated by
// a key may not change limits (ErrBeyondActor). Each key written has an
// ActionSetOwnerLimits event, and so has the call (naming the owner, the
// limits and the count). It returns how many keys carry the limits. An
// owner with no key that is not revoked fails with ErrNotFound (there is
// nothing to carry them; removing limits then does nothing), one with
// more than MaxOwnerKeys with ErrTooManyKeys, and both change nothing. A
// store without an OwnerIndex fails with an error wrapping
// errors.ErrUnsupported.
//
// The owner's quota balance starts full when an owner quota is first set;
// a changed quota keeps what was spent (as a key's does), and so does one
// removed and set again: removing an owner quota never refills it.
func (m *Manager) SetOwnerLimits(ctx context.Context, actor Actor, owner string, limits Limits) (int, error) {
	if err := authorize(actor, ActionSetOwnerLimits); err != nil {
		return 0, err
	}
	if actor.Scopes != nil {
		return 0, fmt.Errorf("%w: an acting key may not change limits", ErrBeyondActor)
	}
	account, err := namedAccount(actor)
	if err != nil {
		return 0, err
	}
	if err := validOwnerName(owner); err != nil {
		return 0, err
	}
	valid, err := ValidateOwnerLimits(limits)
	if err != nil {
		return 0, err
	}
	idx, err := m.ownerIndex()
	if err != nil {
		return 0, err
	}
	var n int
	err = m.retry(ctx, func() error {
		keys, err := m.liveOwnerKeys(ctx, idx, account, owner, MaxOwnerKeys, "set limits on")
		if err != nil {
			return err
		}
		n = len(keys)
		if n == 0 {
			if valid.IsZero() {
				return nil
			}
			return fmt.Errorf("%w: owner has no keys that are not revoked", ErrNotFound)
		}
		now := m.Now()
		c := Change{OpenAccount: account}
		for _, rec := range keys {
			if rec.OwnerLimits.Equal(valid) {
				continue
			}
			rec.OwnerLimits = valid.Clone()
			c.Update = append(c.Update, rec)
			c.Events = append(c.Events, keyEvent(now, actor, ActionSetOwnerLimits, rec, "owner limits: "+valid.String()))
		}
		c.Events = append(c.Events, Event{Time: now, Actor: actor.audited(), Action: ActionSetOwnerLimits, Account: account,
			Detail: fmt.Sprintf("owner %s: %s, on %d keys", owner, valid, n)})
		return m.apply(ctx, c)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// OwnerLimits returns the limits shared by the keys of the actor's account
// issued to owner (see SetOwnerLimits), read from one of its keys by
// index; the zero Limits when it has none, or no key that is not revoked.
// Every role may read them. A store without an OwnerIndex fails with an
// error wrapping errors.ErrUnsupported.
func (m *Manager) OwnerLimits(ctx context.Context, actor Actor, owner string) (Limits, error) {
	if err := authorize(actor, ActionView); err != nil {
		return Limits{}, err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return Limits{}, err
	}
	if err := validOwnerName(owner); err != nil {
		return Limits{}, err
	}
	idx, err := m.ownerIndex()
	if err != nil {
		return Limits{}, err
	}
	keys, err := idx.OwnerKeys(ctx, OwnerQuery{Account: account, Owner: owner, NotRevoked: true, Limit: 1})
	if err != nil || len(keys) == 0 {
		return Limits{}, err
	}
	return keys[0].OwnerLimits.Clone(), nil
}

// ownerGuard returns a key of account issued to owner that is not revoked
// and is not the key except, or nil when there is none, owner is empty, or
// the store has no OwnerIndex (no owner then has limits). A key issued to
// owner takes its OwnerLimits, and the change that writes the key writes
// the guard too, unchanged: a compare-and-set that orders the change with
// any SetOwnerLimits, which writes the guard as well, so that no key of
// the owner misses its limits.
func (m *Manager) ownerGuard(ctx context.Context, account, owner, except string) (*Record, error) {
	idx, ok := m.store.(OwnerIndex)
	if owner == "" || !ok {
		return nil, nil
	}
	keys, err := idx.OwnerKeys(ctx, OwnerQuery{Account: account, Owner: owner, NotRevoked: true, Limit: 2})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.ID != except {
			return &k, nil
		}
	}
	return nil, nil
}

// takeOwnerLimits gives rec the OwnerLimits of its owner's key guard (none
// when guard is nil) and adds guard to c (see ownerGuard).
func takeOwnerLimits(rec *Record, guard *Record, c *Change) {
	rec.OwnerLimits = Limits{}
	if guard != nil {
		rec.OwnerLimits = guard.OwnerLimits.Clone()
		c.Update = append(c.Update, *guard)
	}
}
