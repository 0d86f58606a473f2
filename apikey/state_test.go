package apikey_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

var operator = apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}

// TestRecordStatusOrder: the first of revoked, expired, disabled, expiring
// and active that applies.
func TestRecordStatusOrder(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	for _, tt := range []struct {
		name string
		rec  apikey.Record
		want apikey.Status
	}{
		{"enabled", apikey.Record{}, apikey.Active},
		{"disabled", apikey.Record{DisabledAt: past}, apikey.Disabled},
		{"disabled in its grace", apikey.Record{DisabledAt: past, RotatedAt: past, ExpiresAt: future}, apikey.Disabled},
		{"disabled and expired", apikey.Record{DisabledAt: past, ExpiresAt: now}, apikey.Expired},
		{"disabled and revoked", apikey.Record{DisabledAt: past, RevokedAt: past, ExpiresAt: now}, apikey.Revoked},
		{"expiring", apikey.Record{RotatedAt: past, ExpiresAt: future}, apikey.Expiring},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.rec.Status(now))
		})
	}
}

func TestDisableEnable(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	extra, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:write"}})
	require.NoError(t, err)
	id := extra.View.ID

	for _, k := range []apikey.Issued{f.server, f.client} {
		_, err := f.m.Disable(ctx, owner, k.View.ID)
		require.ErrorIs(t, err, apikey.ErrDefaultKeyNotDisableable, "%s", k.View.Prefix)
		assert.Contains(t, err.Error(), "rotate it first")
	}

	before := len(f.events)
	view, err := f.m.Disable(ctx, owner, id)
	require.NoError(t, err)
	assert.Equal(t, apikey.Disabled, view.Status)
	assert.True(t, f.clock.Now().Equal(view.DisabledAt))
	assert.Equal(t, apikey.Disabled, f.record(t, id).Status(f.clock.Now()))
	require.Len(t, f.events, before+1)
	assert.Equal(t, apikey.ActionDisable, f.events[before].Action)
	assert.Equal(t, id, f.events[before].KeyID)
	got, err := f.m.Get(ctx, readOnly, extra.Key.Prefix())
	require.NoError(t, err)
	assert.Equal(t, apikey.Disabled, got.Status, "every role sees it disabled")

	f.clock.Advance(time.Minute)
	rev := f.record(t, id).Revision
	view, err = f.m.Disable(ctx, owner, id)
	require.NoError(t, err, "disabling a disabled key is a no-op")
	assert.Equal(t, apikey.Disabled, view.Status)
	assert.Equal(t, rev, f.record(t, id).Revision, "nothing written")
	assert.Len(t, f.events, before+1, "no event")

	view, err = f.m.Enable(ctx, owner, id)
	require.NoError(t, err)
	assert.Equal(t, apikey.Active, view.Status)
	assert.True(t, view.DisabledAt.IsZero())
	require.Len(t, f.events, before+2)
	assert.Equal(t, apikey.ActionEnable, f.events[before+1].Action)
	_, err = f.m.Enable(ctx, owner, id)
	require.NoError(t, err, "enabling an enabled key is a no-op")
	assert.Len(t, f.events, before+2)

	// A rotated-out key can be disabled during its grace; its expiry keeps
	// running.
	rotated, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, Grace: time.Hour})
	require.NoError(t, err)
	require.NotEqual(t, f.client.View.ID, rotated.View.ID)
	view, err = f.m.Disable(ctx, owner, f.client.View.ID)
	require.NoError(t, err, "the rotated-out default is no longer the default")
	assert.Equal(t, apikey.Disabled, view.Status)
	f.clock.Advance(2 * time.Hour)
	view, err = f.m.Enable(ctx, owner, f.client.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Expired, view.Status, "enabled after its grace ended: expired")

	_, err = f.m.Disable(ctx, owner, id)
	require.NoError(t, err)
	_, err = f.m.Revoke(ctx, owner, id)
	require.NoError(t, err, "a disabled key can be revoked")
	_, err = f.m.Enable(ctx, owner, id)
	assert.ErrorIs(t, err, apikey.ErrAlreadyRevoked)
	_, err = f.m.Disable(ctx, owner, id)
	assert.ErrorIs(t, err, apikey.ErrAlreadyRevoked)
	_, err = f.m.Disable(ctx, owner, "nosuchkey000")
	assert.ErrorIs(t, err, apikey.ErrNotFound)
}

func TestDisableEnableActors(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	full, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	require.NoError(t, err)
	narrow, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	keyActor := apikey.Actor{ID: "key", Role: apikey.Owner, Scopes: []string{"customers:write"}, Expires: f.clock.Now().Add(time.Hour)}
	for _, tt := range []struct {
		name  string
		actor apikey.Actor
		id    string
		want  error
	}{
		{"member", member, narrow.View.ID, apikey.ErrForbidden},
		{"read-only", readOnly, narrow.View.ID, apikey.ErrForbidden},
		{"another account", apikey.Actor{ID: "x", Role: apikey.Owner, Account: "acme"}, narrow.View.ID, apikey.ErrNotFound},
		{"key beyond its scopes", keyActor, full.View.ID, apikey.ErrBeyondActor},
		{"key within its scopes", keyActor, narrow.View.ID, nil},
		{"operator", operator, full.View.ID, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.m.Disable(ctx, tt.actor, tt.id)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want, "disable")
				_, err = f.m.Enable(ctx, tt.actor, tt.id)
				assert.ErrorIs(t, err, tt.want, "enable")
				return
			}
			assert.NoError(t, err, "disable")
			_, err = f.m.Enable(ctx, tt.actor, tt.id)
			if tt.actor.Scopes != nil {
				assert.ErrorIs(t, err, apikey.ErrBeyondActor, "a key does not switch on a key that outlives it")
				_, err = f.m.Enable(ctx, owner, tt.id)
			}
			assert.NoError(t, err, "enable")
		})
	}
}

// TestSuspendAccount: operators only; every environment suspended; the
// account's keys and settings refuse changes but are readable; resume
// restores every key as it was.
func TestSuspendAccount(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	acme := apikey.Actor{ID: "acme-admin", Role: apikey.Owner, Account: "acme"}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		_, err := f.m.Bootstrap(ctx, acme, env)
		require.NoError(t, err)
	}
	extra, err := f.m.Create(ctx, acme, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	disabled, err := f.m.Create(ctx, acme, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
	require.NoError(t, err)
	_, err = f.m.Disable(ctx, acme, disabled.View.ID)
	require.NoError(t, err)
	keys := func() map[string]apikey.Record {
		out := map[string]apikey.Record{}
		for _, env := range []string{apikey.Production, apikey.Staging} {
			page, err := f.store.Keys(ctx, apikey.KeyQuery{Account: "acme", Environment: env, Limit: 100})
			require.NoError(t, err)
			for _, r := range page {
				out[r.ID] = r
			}
		}
		return out
	}
	before := keys()

	for _, tt := range []struct {
		name  string
		actor apikey.Actor
		want  error
	}{
		{"the account's owner", acme, apikey.ErrForbidden},
		{"another account's owner", owner, apikey.ErrForbidden},
		{"an operator who is not an owner", apikey.Actor{ID: "ops", Role: apikey.Member, Account: apikey.AnyAccount}, apikey.ErrForbidden},
	} {
		assert.ErrorIs(t, f.m.SuspendAccount(ctx, tt.actor, "acme"), tt.want, "suspend by %s", tt.name)
		assert.ErrorIs(t, f.m.ResumeAccount(ctx, tt.actor, "acme"), tt.want, "resume by %s", tt.name)
	}
	assert.ErrorIs(t, f.m.SuspendAccount(ctx, operator, "nobody"), apikey.ErrNotFound)
	assert.ErrorIs(t, f.m.SuspendAccount(ctx, operator, "bad account"), apikey.ErrInvalidAccount)

	n := len(f.events)
	require.NoError(t, f.m.SuspendAccount(ctx, operator, "acme"))
	require.Len(t, f.events, n+2, "one event per environment")
	for _, e := range f.events[n:] {
		assert.Equal(t, apikey.ActionSuspend, e.Action)
		assert.Equal(t, "acme", e.Account)
	}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		s, err := f.m.Settings(ctx, acme, env)
		require.NoError(t, err, "owners still read settings")
		assert.False(t, s.SuspendedAt.IsZero(), env)
	}
	require.NoError(t, f.m.SuspendAccount(ctx, operator, "acme"), "suspending twice")
	assert.Len(t, f.events, n+2, "changes nothing")

	refused := map[string]func() error{
		"bootstrap": func() error { _, err := f.m.Bootstrap(ctx, acme, apikey.Development); return err },
		"create": func() error {
			_, err := f.m.Create(ctx, acme, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
			return err
		},
		"rotate": func() error {
			_, err := f.m.Rotate(ctx, acme, apikey.RotateRequest{Environment: apikey.Staging, Type: apikey.Server, Grace: time.Hour})
			return err
		},
		"set scopes": func() error {
			_, err := f.m.SetScopes(ctx, acme, extra.View.ID, []string{"customers:write"})
			return err
		},
		"disable":     func() error { _, err := f.m.Disable(ctx, acme, extra.View.ID); return err },
		"enable":      func() error { _, err := f.m.Enable(ctx, acme, disabled.View.ID); return err },
		"set origins": func() error { _, err := f.m.SetAllowedOrigins(ctx, acme, apikey.Staging, nil); return err },
		"set owner":   func() error { _, err := f.m.SetOwner(ctx, acme, extra.View.ID, "u1"); return err },
	}
	for name, call := range refused {
		assert.ErrorIs(t, call(), apikey.ErrAccountSuspended, name)
	}
	list, err := f.m.List(ctx, acme, apikey.Staging, apikey.Page{})
	require.NoError(t, err, "owners still list")
	assert.Len(t, list.Keys, 4)
	_, err = f.m.Get(ctx, readOnly, f.server.View.ID)
	require.NoError(t, err)
	_, err = f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err, "other accounts are untouched")

	n = len(f.events)
	require.NoError(t, f.m.ResumeAccount(ctx, operator, "acme"))
	require.Len(t, f.events, n+2)
	assert.Equal(t, apikey.ActionResume, f.events[n].Action)
	after := keys()
	require.Len(t, after, len(before))
	for id, r := range before {
		assert.Equal(t, r.Revision, after[id].Revision, "%s untouched", r.Prefix())
		assert.Equal(t, r.Status(f.clock.Now()), after[id].Status(f.clock.Now()), "%s keeps its status", r.Prefix())
	}
	assert.Equal(t, apikey.Disabled, after[disabled.View.ID].Status(f.clock.Now()))
	_, err = f.m.Create(ctx, acme, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
	require.NoError(t, err, "resumed")
	require.NoError(t, f.m.ResumeAccount(ctx, operator, "acme"), "resuming twice")
	assert.Len(t, f.events, n+3, "changes nothing more (the create above aside)")

	// Closing a suspended account works; a closed account is neither
	// suspended nor resumed.
	require.NoError(t, f.m.SuspendAccount(ctx, operator, "acme"))
	_, err = f.m.Revoke(ctx, acme, extra.View.ID)
	require.NoError(t, err, "revoking works in a suspended account")
	_, err = f.m.CloseAccount(ctx, operator, "acme")
	require.NoError(t, err)
	assert.ErrorIs(t, f.m.SuspendAccount(ctx, operator, "acme"), apikey.ErrAccountClosed)
	assert.ErrorIs(t, f.m.ResumeAccount(ctx, operator, "acme"), apikey.ErrAccountClosed)
	_, err = f.m.Create(ctx, acme, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
	assert.ErrorIs(t, err, apikey.ErrAccountClosed, "closed wins over suspended")
}

// TestSuspendAccountWinsTheBootstrapRace: an environment bootstrapped
// between the listing of SuspendAccount and its first write is suspended
// too.
func TestSuspendAccountWinsTheBootstrapRace(t *testing.T) {
	s := &interleaving{}
	f := newFixture(t, apikey.ManagerOptions{})
	s.Store = f.store
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	s.afterListing = func() {
		_, err := f.m.Bootstrap(ctx, owner, apikey.Staging)
		assert.NoError(t, err)
	}
	require.NoError(t, m.SuspendAccount(ctx, operator, apikey.DefaultAccount))
	st, err := f.store.Settings(ctx, apikey.DefaultAccount, apikey.Staging)
	require.NoError(t, err)
	assert.False(t, st.SuspendedAt.IsZero(), "the environment bootstrapped during the suspension is suspended")
}

// A rotated-out key is not rotated again when it is disabled too (its
// status is then Disabled, not Expiring): a lineage has one live successor.
func TestRotateDisabledRotatedOutKey(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	extra, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"customers:write"}, Limits: apikey.Limits{Quota: apikey.Quota{Limit: 1000, Refill: 1000, Period: apikey.Monthly}}})
	require.NoError(t, err)
	first, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: extra.View.ID, Grace: 24 * time.Hour})
	require.NoError(t, err)
	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: extra.View.ID, Grace: 24 * time.Hour})
	require.ErrorIs(t, err, apikey.ErrAlreadyRotated, "baseline: a rotated-out key is not rotated again")

	_, err = f.m.Disable(ctx, owner, extra.View.ID)
	require.NoError(t, err)
	second, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: extra.View.ID, Grace: 24 * time.Hour})
	require.ErrorIs(t, err, apikey.ErrAlreadyRotated,
		"disabled rotated-out key rotated again: second successor %s next to %s", second.View.Prefix, first.View.Prefix)
}

// An actor authenticated by a key, which may not change any key's limits,
// cannot restore a lineage's quota that an owner lowered by disabling the
// rotated-out key and rotating it again.
func TestKeyActorCannotLiftQuotaThroughDisabledRotation(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	k, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"orders:read"}, Limits: apikey.Limits{Quota: apikey.Quota{Limit: 1000}}})
	require.NoError(t, err)
	next, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: k.View.ID, Grace: 24 * time.Hour})
	require.NoError(t, err)
	_, err = f.m.SetLimits(ctx, owner, next.View.ID, apikey.Limits{Quota: apikey.Quota{Limit: 10}}) // lowered
	require.NoError(t, err)

	keyActor := apikey.Actor{ID: "server-ci", Role: apikey.Owner, Scopes: []string{"*"}}
	_, err = f.m.SetLimits(ctx, keyActor, next.View.ID, apikey.Limits{Quota: apikey.Quota{Limit: 1000}})
	require.ErrorIs(t, err, apikey.ErrBeyondActor, "baseline: a key may not change limits")
	_, err = f.m.Disable(ctx, keyActor, k.View.ID)
	require.NoError(t, err)
	_, err = f.m.Rotate(ctx, keyActor, apikey.RotateRequest{KeyID: k.View.ID, ExpireNow: true})
	require.ErrorIs(t, err, apikey.ErrAlreadyRotated)

	lease, err := f.store.LeaseQuota(ctx, next.View.ID, 500, f.clock.Now())
	require.NoError(t, err)
	require.LessOrEqual(t, lease.Granted, int64(10), "the lowered quota of %s was lifted by a key: %d granted", next.View.Prefix, lease.Granted)
}
