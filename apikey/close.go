package apikey

import (
	"context"
	"fmt"
)

// closeBatch is how many keys one write of CloseAccount revokes.
const closeBatch = 200

// CloseAccount closes an account: every environment is marked closed (it
// takes no new keys, and Bootstrap refuses the account), then every key of
// every environment is revoked, default keys included, with one audit
// event per key. It returns how many keys it revoked. Owners of the account
// may close it, and so may an owner acting across accounts (AnyAccount);
// for anyone else the account does not exist (ErrNotFound).
//
// Closing wins every race, in every process sharing the store: once the
// first environment is marked closed, the store refuses every change in
// the account but a revocation (Change.OpenAccount), so a concurrent
// Bootstrap, Create, Rotate or other change either committed before that
// (its environment is closed and its keys revoked here) or fails with
// ErrAccountClosed. The environments are listed again after they are
// closed, to close one that was bootstrapped after the first listing.
//
// The work is done in writes of a few hundred keys, so that an account of
// any size is closed with bounded memory and transactions; if it fails
// part-way, calling it again finishes the job. Revocations reach other
// processes through the change feed like any other.
func (m *Manager) CloseAccount(ctx context.Context, actor Actor, account string) (revoked int, err error) {
	if err := authorize(actor, ActionClose); err != nil {
		return 0, err
	}
	if err := ValidateAccount(account); err != nil {
		return 0, err
	}
	if actor.Account != AnyAccount && actor.InAccount() != account {
		return 0, fmt.Errorf("%w: no such account", ErrNotFound)
	}
	envs, err := m.accountEnvironments(ctx, account)
	if err != nil {
		return 0, err
	}
	if len(envs) == 0 {
		return 0, fmt.Errorf("%w: no such account", ErrNotFound)
	}
	// After the first close no environment can be added, so the second
	// listing finds every environment open before it, and the third none.
	for closing := envs; len(closing) > 0; {
		for _, env := range closing {
			if err := m.closeEnvironment(ctx, actor, env.Environment, account); err != nil {
				return 0, err
			}
		}
		if envs, err = m.accountEnvironments(ctx, account); err != nil {
			return 0, err
		}
		closing = nil
		for _, env := range envs {
			if env.ClosedAt.IsZero() {
				closing = append(closing, env)
			}
		}
	}
	for _, env := range envs {
		n, err := m.revokeAll(ctx, actor, account, env.Environment)
		revoked += n
		if err != nil {
			return revoked, err
		}
	}
	return revoked, nil
}

// accountEnvironments returns the settings of every environment of an
// account, a page at a time.
func (m *Manager) accountEnvironments(ctx context.Context, account string) ([]Settings, error) {
	var envs []Settings
	after := EnvironmentPosition{Account: account}
	for {
		page, err := m.store.Environments(ctx, EnvironmentQuery{Account: account, After: after, Limit: MaxPageSize})
		if err != nil {
			return nil, err
		}
		envs = append(envs, page...)
		if len(page) < MaxPageSize {
			return envs, nil
		}
		after = EnvironmentPosition{Account: account, Environment: page[len(page)-1].Environment}
	}
}

// closeEnvironment marks an environment closed, once.
func (m *Manager) closeEnvironment(ctx context.Context, actor Actor, environment, account string) error {
	return m.retry(ctx, func() error {
		s, err := m.store.Settings(ctx, account, environment)
		if err != nil || !s.ClosedAt.IsZero() {
			return err
		}
		now := m.Now()
		s.ClosedAt, s.UpdatedAt = now, now
		return m.apply(ctx, Change{
			Settings: []Settings{s},
			Events:   []Event{{Time: now, Actor: actor.audited(), Action: ActionClose, Account: account, Environment: environment}},
		})
	})
}

// revokeAll revokes every key of an environment that is not revoked yet, a
// page at a time in creation order.
func (m *Manager) revokeAll(ctx context.Context, actor Actor, account, environment string) (int, error) {
	revoked := 0
	after := KeyPosition{}
	for {
		var page []Record
		err := m.retry(ctx, func() error {
			var err error
			page, err = m.store.Keys(ctx, KeyQuery{Account: account, Environment: environment, After: after, Limit: closeBatch})
			if err != nil {
				return err
			}
			now := m.Now()
			var c Change
			for _, rec := range page {
				if !rec.RevokedAt.IsZero() {
					continue
				}
				rec.RevokedAt = now
				c.Update = append(c.Update, rec)
				c.Events = append(c.Events, keyEvent(now, actor, ActionRevoke, rec, "account closed"))
			}
			if len(c.Update) == 0 {
				return nil
			}
			if err := m.apply(ctx, c); err != nil {
				return err
			}
			revoked += len(c.Update)
			return nil
		})
		if err != nil {
			return revoked, err
		}
		if len(page) < closeBatch {
			return revoked, nil
		}
		last := page[len(page)-1]
		after = KeyPosition{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}
