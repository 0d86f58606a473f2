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
// The work is done in writes of a few hundred keys, so that an account of
// any size is closed with bounded memory and transactions; if it fails
// part-way, calling it again finishes the job. Revocations reach other
// processes through the change feed like any other. A key created by a
// call that read the environment open just before it was closed is revoked
// by calling CloseAccount again, which also reports it.
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
	var envs []Settings
	after := EnvironmentPosition{Account: account}
	for {
		page, err := m.store.Environments(ctx, EnvironmentQuery{Account: account, After: after, Limit: MaxPageSize})
		if err != nil {
			return 0, err
		}
		envs = append(envs, page...)
		if len(page) < MaxPageSize {
			break
		}
		after = EnvironmentPosition{Account: account, Environment: page[len(page)-1].Environment}
	}
	if len(envs) == 0 {
		return 0, fmt.Errorf("%w: no such account", ErrNotFound)
	}
	for _, env := range envs {
		if err := m.closeEnvironment(ctx, actor, env.Environment, account); err != nil {
			return revoked, err
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
			Events:   []Event{{Time: now, Actor: actor, Action: ActionClose, Account: account, Environment: environment}},
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
