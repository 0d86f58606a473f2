package apikey

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errUnchanged is returned by an update's change function when the key is
// already in the state asked for: nothing is stored and no event recorded.
var errUnchanged = errors.New("apikey: unchanged")

// Disable switches a key off until Enable switches it on again: while
// disabled (Record.DisabledAt set) the key is refused everywhere, in every
// process through the store's change feed, and its expiry keeps running.
// Owners may disable a key, members one outside production (see
// Role.Permits); an actor authenticated by a key only a key whose
// scopes it holds (ErrBeyondActor). A default key fails with
// ErrDefaultKeyNotDisableable, so that an environment always keeps a working
// key of each type: rotate it first, then disable the rotated-out key. A
// revoked key fails with ErrAlreadyRevoked; a key of a closed or suspended
// account with ErrAccountClosed or ErrAccountSuspended. Disabling a
// disabled key changes nothing, records no event and returns its view.
// keyID is a key id or a displayable prefix (see ParseKeyID).
func (m *Manager) Disable(ctx context.Context, actor Actor, keyID string) (View, error) {
	if err := authorize(actor, ActionDisable); err != nil {
		return View{}, err
	}
	return m.update(ctx, actor, keyID, ActionDisable, func(rec *Record, now time.Time) error {
		switch {
		case !rec.RevokedAt.IsZero():
			return fmt.Errorf("%w: %s", ErrAlreadyRevoked, rec.Prefix())
		case rec.Default:
			return fmt.Errorf("%w: %s", ErrDefaultKeyNotDisableable, rec.Prefix())
		}
		if err := actor.mayActOn(rec.Type, rec.Scopes); err != nil {
			return err
		}
		if !rec.DisabledAt.IsZero() {
			return errUnchanged
		}
		rec.DisabledAt = now
		return nil
	})
}

// Enable switches a disabled key on again: it works as before it was
// disabled, unless it expired or was revoked meanwhile. The roles are those
// of Disable; an actor authenticated by a key may also not enable a key
// that outlives it (ErrBeyondActor). A revoked key fails with
// ErrAlreadyRevoked. Enabling a key that is not disabled changes nothing,
// records no event and returns its view. keyID is a key id or a
// displayable prefix (see ParseKeyID).
func (m *Manager) Enable(ctx context.Context, actor Actor, keyID string) (View, error) {
	if err := authorize(actor, ActionEnable); err != nil {
		return View{}, err
	}
	return m.update(ctx, actor, keyID, ActionEnable, func(rec *Record, now time.Time) error {
		if err := actor.mayChange(rec); err != nil {
			return err
		}
		if err := actor.mayLast(rec.ExpiresAt); err != nil {
			return err
		}
		if rec.DisabledAt.IsZero() {
			return errUnchanged
		}
		rec.DisabledAt = time.Time{}
		return nil
	})
}

// SuspendAccount suspends an account: every environment is marked
// suspended (Settings.SuspendedAt), with one audit event per environment.
// While it is suspended, every key of the account is refused by the
// middleware (in every process, through the store's change feed), and
// every change to its keys and settings fails with ErrAccountSuspended,
// revocation and CloseAccount aside; its members can still read
// everything (keys, settings, usage, audit). Keys keep their status:
// ResumeAccount restores exactly the state before.
//
// Suspension is for the service, not for the account's members: only an
// owner acting across accounts (AnyAccount) may suspend; anyone else gets
// ErrForbidden. A closed account fails with ErrAccountClosed (closing a
// suspended account works). Suspending a suspended account changes
// nothing.
//
// Like CloseAccount, suspension wins every race in every process: once the
// first environment is suspended, the store refuses every change in the
// account but a revocation (Change.OpenAccount), and the environments are
// listed again to suspend one bootstrapped in between. If it fails
// part-way, calling it again finishes the job.
func (m *Manager) SuspendAccount(ctx context.Context, actor Actor, account string) error {
	envs, err := m.operatorEnvironments(ctx, actor, ActionSuspend, account)
	if err != nil {
		return err
	}
	for suspending := envs; len(suspending) > 0; {
		for _, env := range suspending {
			if err := m.setSuspended(ctx, actor, account, env.Environment, true); err != nil {
				return err
			}
		}
		if envs, err = m.accountEnvironments(ctx, account); err != nil {
			return err
		}
		suspending = nil
		for _, env := range envs {
			if env.SuspendedAt.IsZero() {
				suspending = append(suspending, env)
			}
		}
	}
	return nil
}

// ResumeAccount ends an account's suspension (see SuspendAccount): each
// suspended environment is marked not suspended, with one audit event per
// environment, and nothing else changes: every key has the status it had
// before (a key disabled, rotated or revoked before or during the
// suspension stays so; one that expired meanwhile is expired). The roles are
// those of SuspendAccount. A closed account fails with ErrAccountClosed:
// closing is final. Resuming an account that is not suspended changes
// nothing. No environment can be bootstrapped while one is suspended, so
// one pass resumes them all; if it fails part-way, calling it again
// finishes the job.
func (m *Manager) ResumeAccount(ctx context.Context, actor Actor, account string) error {
	envs, err := m.operatorEnvironments(ctx, actor, ActionResume, account)
	if err != nil {
		return err
	}
	for _, env := range envs {
		if err := m.setSuspended(ctx, actor, account, env.Environment, false); err != nil {
			return err
		}
	}
	return nil
}

// operatorEnvironments authorizes an operator's action on an account and
// returns the account's environments: ErrForbidden for an actor that does
// not act across accounts, ErrNotFound for an account without environments.
func (m *Manager) operatorEnvironments(ctx context.Context, actor Actor, action Action, account string) ([]Settings, error) {
	if err := authorize(actor, action); err != nil {
		return nil, err
	}
	if actor.Account != AnyAccount {
		return nil, fmt.Errorf("%w: %s needs an operator acting across accounts", ErrForbidden, action)
	}
	if err := ValidateAccount(account); err != nil {
		return nil, err
	}
	envs, err := m.accountEnvironments(ctx, account)
	if err != nil {
		return nil, err
	}
	if len(envs) == 0 {
		return nil, fmt.Errorf("%w: no such account", ErrNotFound)
	}
	return envs, nil
}

// setSuspended marks an environment suspended or not, once; a closed
// environment fails with ErrAccountClosed.
func (m *Manager) setSuspended(ctx context.Context, actor Actor, account, environment string, suspend bool) error {
	action := ActionResume
	if suspend {
		action = ActionSuspend
	}
	return m.retry(ctx, func() error {
		s, err := m.store.Settings(ctx, account, environment)
		switch {
		case err != nil:
			return err
		case !s.ClosedAt.IsZero():
			return fmt.Errorf("%w: %s", ErrAccountClosed, account)
		case s.SuspendedAt.IsZero() != suspend:
			return nil // already so
		}
		now := m.Now()
		s.SuspendedAt = time.Time{}
		if suspend {
			s.SuspendedAt = now
		}
		s.UpdatedAt = now
		return m.apply(ctx, Change{
			Settings: []Settings{s},
			Events:   []Event{{Time: now, Actor: actor.audited(), Action: action, Account: account, Environment: environment}},
		})
	})
}
