package storetest

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// twoAccounts bootstraps production and staging in acme and in globex,
// through a Manager on s, and returns it.
func twoAccounts(t *testing.T, s apikey.Store) *apikey.Manager {
	t.Helper()
	m := manager(t, s)
	bootstrap(t, m, acmeOwner, apikey.Production, apikey.Staging)
	bootstrap(t, m, globexOwner, apikey.Production, apikey.Staging)
	return m
}

// testAccountIsolation checks, at the store, that two accounts with
// environments of the same names keep separate settings, default keys, key
// pages, change-feed entries and audit events.
func testAccountIsolation(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	var start int64
	feed, hasFeed := s.(storage.ChangeFeed)
	if hasFeed {
		var err error
		start, err = feed.Revision(ctx)
		require.NoError(t, err)
	}
	m := twoAccounts(t, s)
	_, err := m.SetAllowedOrigins(ctx, acmeOwner, apikey.Production, []string{"https://acme.example"})
	require.NoError(t, err)
	_, err = m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	require.NoError(t, err)

	accounts, err := s.Accounts(ctx, "", 10)
	require.NoError(t, err)
	assert.Equal(t, []string{acme, globex}, accounts)

	for _, env := range []string{apikey.Production, apikey.Staging} {
		a, g := mustSettings(t, s, acme, env), mustSettings(t, s, globex, env)
		assert.Equal(t, acme, a.Account)
		assert.Equal(t, globex, g.Account)
		assert.Empty(t, g.AllowedOrigins, "%s: acme's origins are acme's", env)

		for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
			a, g := mustDefault(t, s, acme, env, typ), mustDefault(t, s, globex, env, typ)
			assert.NotEqual(t, a.ID, g.ID, "%s %s: each account has its own default", env, typ)
			assert.Equal(t, acme, a.Account)
			assert.Equal(t, globex, g.Account)
		}

		acmeKeys, globexKeys := allKeys(t, s, acme, env), allKeys(t, s, globex, env)
		for _, k := range acmeKeys {
			assert.Equal(t, acme, k.Account)
			assert.Equal(t, env, k.Environment)
		}
		for _, k := range globexKeys {
			assert.Equal(t, globex, k.Account)
			assert.Equal(t, env, k.Environment)
		}
		assert.Len(t, globexKeys, 2, "%s: globex has its two defaults only", env)
	}
	assert.Equal(t, "https://acme.example", mustSettings(t, s, acme, apikey.Production).AllowedOrigins[0])
	assert.Len(t, allKeys(t, s, acme, apikey.Production), 3)

	// A rotation in one account touches nothing of the other.
	before := mustDefault(t, s, globex, apikey.Production, apikey.Server)
	_, err = m.Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
	require.NoError(t, err)
	after := mustDefault(t, s, globex, apikey.Production, apikey.Server)
	assert.Equal(t, before.ID, after.ID)
	assert.Equal(t, before.Revision, after.Revision)

	if hasFeed {
		entries, _, err := feed.Changes(ctx, start, 1000)
		require.NoError(t, err)
		perAccount := map[string]int{}
		for _, e := range entries {
			perAccount[e.Account]++
			if e.KeyID != "" {
				assert.Equal(t, mustKey(t, s, e.KeyID).Account, e.Account, "a feed entry names its key's account")
			}
		}
		// acme: 2 settings, 4 defaults, origins, a created key, a rotation
		// (two keys); globex: 2 settings, 4 defaults.
		assert.Equal(t, map[string]int{acme: 10, globex: 6}, perAccount)
	}

	if _, ok := s.(storage.AuditLog); ok {
		for _, e := range events(t, s, storage.EventQuery{Account: acme}) {
			assert.Equal(t, acme, e.Account)
			assert.Equal(t, acme, e.Actor.Account)
		}
		globexEvents := events(t, s, storage.EventQuery{Account: globex})
		assert.Len(t, globexEvents, 4, "globex: its four bootstrap events only")
		for _, e := range globexEvents {
			assert.Equal(t, globex, e.Account)
			assert.Equal(t, apikey.ActionBootstrap, e.Action)
		}
		for _, e := range events(t, s, storage.EventQuery{Account: globex, Environment: apikey.Production}) {
			assert.Equal(t, globex, e.Account)
			assert.Equal(t, apikey.Production, e.Environment)
		}
	}
}

// testManagerIsolation checks that an actor of one account finds nothing
// of another: the other's keys are ErrNotFound, by id and by prefix, for
// every call that names a key, and environments that exist only in the
// other account are ErrUnknownEnvironment. Nothing of the other account
// changes.
func testManagerIsolation(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m := twoAccounts(t, s)
	bootstrap(t, m, globexOwner, "billing") // an environment only globex has

	// globex's keys: defaults, an extra scoped key, a key rotated out.
	_, err := m.Create(ctx, globexOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"invoices:read"}, Owner: "globex-user", Metadata: map[string]string{"team": "globex"}})
	require.NoError(t, err)
	rotatedOut := mustDefault(t, s, globex, apikey.Staging, apikey.Client)
	_, err = m.Rotate(ctx, globexOwner, apikey.RotateRequest{KeyID: rotatedOut.ID, Grace: time.Hour})
	require.NoError(t, err)
	var theirs []apikey.Record
	for _, env := range []string{apikey.Production, apikey.Staging, "billing"} {
		theirs = append(theirs, allKeys(t, s, globex, env)...)
	}
	require.Len(t, theirs, 8)

	for _, actor := range []apikey.Actor{acmeOwner, owner} { // acme, and the default account
		for _, k := range theirs {
			for _, name := range []string{k.ID, k.Prefix()} {
				calls := map[string]func() error{
					"Get":    func() error { _, err := m.Get(ctx, actor, name); return err },
					"Revoke": func() error { _, err := m.Revoke(ctx, actor, name); return err },
					"Rotate": func() error {
						_, err := m.Rotate(ctx, actor, apikey.RotateRequest{KeyID: name, Grace: time.Hour})
						return err
					},
					"SetScopes":   func() error { _, err := m.SetScopes(ctx, actor, name, []string{"*"}); return err },
					"Reveal":      func() error { _, err := m.Reveal(ctx, actor, name); return err },
					"ChangeGrace": func() error { _, err := m.ChangeGrace(ctx, actor, name, time.Minute, apikey.APIPolicy); return err },
					"SetOwner":    func() error { _, err := m.SetOwner(ctx, actor, name, "intruder"); return err },
					"SetMetadata": func() error {
						_, err := m.SetMetadata(ctx, actor, name, map[string]string{"who": "intruder"})
						return err
					},
				}
				for _, call := range slices.Sorted(maps.Keys(calls)) {
					assert.ErrorIs(t, calls[call](), apikey.ErrNotFound, "%s by %s of globex's %s", call, actor.InAccount(), name)
				}
			}
		}

		// Environments that exist only in the other account.
		envCalls := map[string]func() error{
			"List":     func() error { _, err := m.List(ctx, actor, "billing", apikey.Page{}); return err },
			"Settings": func() error { _, err := m.Settings(ctx, actor, "billing"); return err },
			"SetAllowedOrigins": func() error {
				_, err := m.SetAllowedOrigins(ctx, actor, "billing", []string{"https://intruder.example"})
				return err
			},
			"Create": func() error {
				_, err := m.Create(ctx, actor, apikey.CreateRequest{Environment: "billing", Type: apikey.Client})
				return err
			},
			"Rotate": func() error {
				_, err := m.Rotate(ctx, actor, apikey.RotateRequest{Environment: "billing", Type: apikey.Server, Grace: time.Hour})
				return err
			},
		}
		for _, call := range slices.Sorted(maps.Keys(envCalls)) {
			assert.ErrorIs(t, envCalls[call](), apikey.ErrUnknownEnvironment, "%s by %s of globex's environment", call, actor.InAccount())
		}
		list, err := m.Environments(ctx, actor, apikey.Page{})
		require.NoError(t, err)
		for _, e := range list.Environments {
			assert.Equal(t, actor.InAccount(), e.Account, "Environments lists the actor's account only")
		}
	}

	// Nothing of globex changed: same records, same revisions, no event by
	// anyone else.
	for _, k := range theirs {
		got := mustKey(t, s, k.ID)
		assertSameRecord(t, k, got)
		assert.Equal(t, k.Revision, got.Revision, "%s unchanged", k.Prefix())
	}
	assert.Empty(t, mustSettings(t, s, globex, "billing").AllowedOrigins)
	if _, ok := s.(storage.AuditLog); ok {
		for _, e := range events(t, s, storage.EventQuery{Account: globex}) {
			assert.Equal(t, globexOwner, e.Actor, "only globex's owner acted in globex")
		}
		for _, e := range events(t, s, storage.EventQuery{}) {
			assert.NotEqual(t, apikey.ActionReveal, e.Action, "no reveal went through")
		}
	}

	// An environment name is the account's own: acme may bootstrap one
	// that globex has, and each keeps its keys.
	bootstrap(t, m, acmeOwner, "billing")
	assert.NotEqual(t, mustDefault(t, s, acme, "billing", apikey.Server).ID, mustDefault(t, s, globex, "billing", apikey.Server).ID)
	list, err := m.List(ctx, acmeOwner, "billing", apikey.Page{})
	require.NoError(t, err)
	require.Len(t, list.Keys, 2)
	for _, v := range list.Keys {
		assert.Equal(t, acme, v.Account)
	}
}

// testAnyAccount checks an operator acting across accounts: key ids are
// found in every account and accounts are listed, but a call that names an
// environment is refused with ErrInvalidAccount.
func testAnyAccount(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m := twoAccounts(t, s)
	for _, account := range []string{acme, globex} {
		k := mustDefault(t, s, account, apikey.Production, apikey.Server)
		v, err := m.Get(ctx, operator, k.Prefix())
		require.NoError(t, err, "the operator finds %s's keys", account)
		assert.Equal(t, account, v.Account)
	}
	// A rotation by id keeps the key in its account.
	old := mustDefault(t, s, globex, apikey.Staging, apikey.Client)
	issued, err := m.Rotate(ctx, operator, apikey.RotateRequest{KeyID: old.ID, Grace: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, globex, issued.View.Account)
	assert.Equal(t, issued.View.ID, mustDefault(t, s, globex, apikey.Staging, apikey.Client).ID, "the default moved within globex")

	list, err := m.Accounts(ctx, operator, apikey.Page{})
	require.NoError(t, err)
	assert.Equal(t, []string{acme, globex}, list.Accounts)
	assert.Empty(t, list.Next)
	first, err := m.Accounts(ctx, operator, apikey.Page{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []string{acme}, first.Accounts)
	require.NotEmpty(t, first.Next)
	second, err := m.Accounts(ctx, operator, apikey.Page{After: first.Next, Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{globex}, second.Accounts)
	_, err = m.Accounts(ctx, acmeOwner, apikey.Page{})
	assert.ErrorIs(t, err, apikey.ErrForbidden, "only an operator acting across accounts lists them")

	envCalls := map[string]func() error{
		"Bootstrap":    func() error { _, err := m.Bootstrap(ctx, operator, "qa"); return err },
		"List":         func() error { _, err := m.List(ctx, operator, apikey.Production, apikey.Page{}); return err },
		"Settings":     func() error { _, err := m.Settings(ctx, operator, apikey.Production); return err },
		"Environments": func() error { _, err := m.Environments(ctx, operator, apikey.Page{}); return err },
		"SetAllowedOrigins": func() error {
			_, err := m.SetAllowedOrigins(ctx, operator, apikey.Production, []string{"https://op.example"})
			return err
		},
		"Create": func() error {
			_, err := m.Create(ctx, operator, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
			return err
		},
		"Rotate": func() error {
			_, err := m.Rotate(ctx, operator, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
			return err
		},
	}
	for _, call := range slices.Sorted(maps.Keys(envCalls)) {
		assert.ErrorIs(t, envCalls[call](), apikey.ErrInvalidAccount, "%s by an operator naming an environment", call)
	}
	accounts, err := s.Accounts(ctx, "", 10)
	require.NoError(t, err)
	assert.Equal(t, []string{acme, globex}, accounts, "no environment was bootstrapped in the account \"*\"")
}

// testOwnerAndMetadata checks that a key's owner and metadata go through
// the store: set at creation, changed by SetOwner and SetMetadata, kept by
// rotation.
func testOwnerAndMetadata(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m := manager(t, s)
	bootstrap(t, m, acmeOwner, apikey.Production)
	md := map[string]string{"team": "billing", "plan": "pro", "region": "eu-west-1"}
	created, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Name: "billing worker", Owner: "user_42", Metadata: md, Scopes: []string{"invoices:write"}})
	require.NoError(t, err)
	md["team"] = "changed after Create" // the caller's map is not the stored one
	rec := mustKey(t, s, created.View.ID)
	assert.Equal(t, "user_42", rec.Owner)
	assert.Equal(t, map[string]string{"team": "billing", "plan": "pro", "region": "eu-west-1"}, rec.Metadata)
	assert.Equal(t, rec.Metadata, created.View.Metadata)

	view, err := m.SetOwner(ctx, acmeOwner, created.View.Prefix, "user_43")
	require.NoError(t, err)
	assert.Equal(t, "user_43", view.Owner)
	assert.Equal(t, "user_43", mustKey(t, s, created.View.ID).Owner)
	_, err = m.SetMetadata(ctx, acmeOwner, created.View.ID, map[string]string{"team": "payments"})
	require.NoError(t, err)
	rec = mustKey(t, s, created.View.ID)
	assert.Equal(t, map[string]string{"team": "payments"}, rec.Metadata, "replaced, not merged")
	assert.Equal(t, "user_43", rec.Owner)

	// Rotation keeps both, on the new key; the old one keeps its own.
	rotated, err := m.Rotate(ctx, acmeOwner, apikey.RotateRequest{KeyID: created.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	next := mustKey(t, s, rotated.View.ID)
	assert.Equal(t, "user_43", next.Owner)
	assert.Equal(t, map[string]string{"team": "payments"}, next.Metadata)
	assert.Equal(t, map[string]string{"team": "payments"}, mustKey(t, s, created.View.ID).Metadata)

	// So does the rotation of a default key, found by index.
	def := mustDefault(t, s, acme, apikey.Production, apikey.Client)
	assert.Empty(t, def.Owner)
	assert.Empty(t, def.Metadata)
	_, err = m.SetOwner(ctx, acmeOwner, def.ID, "web-app")
	require.NoError(t, err)
	_, err = m.SetMetadata(ctx, acmeOwner, def.ID, map[string]string{"app": "storefront"})
	require.NoError(t, err)
	newDefault, err := m.Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, Grace: time.Hour})
	require.NoError(t, err)
	got := mustDefault(t, s, acme, apikey.Production, apikey.Client)
	assert.Equal(t, newDefault.View.ID, got.ID)
	assert.Equal(t, "web-app", got.Owner)
	assert.Equal(t, map[string]string{"app": "storefront"}, got.Metadata)

	// Removing them.
	_, err = m.SetOwner(ctx, acmeOwner, next.ID, "")
	require.NoError(t, err)
	_, err = m.SetMetadata(ctx, acmeOwner, next.ID, nil)
	require.NoError(t, err)
	rec = mustKey(t, s, next.ID)
	assert.Empty(t, rec.Owner)
	assert.Empty(t, rec.Metadata)

	// Each change is audited.
	if _, ok := s.(storage.AuditLog); ok {
		var actions []apikey.Action
		for _, e := range events(t, s, storage.EventQuery{Account: acme}) {
			if e.Action == apikey.ActionSetOwner || e.Action == apikey.ActionSetMetadata {
				actions = append(actions, e.Action)
				assert.NotEmpty(t, e.KeyID)
			}
		}
		assert.Len(t, actions, 6)
	}
}

// testCloseAccount closes an account of two environments and several
// hundred keys, and checks that every key is revoked with one event each,
// the account refuses new keys, and the other account is untouched.
func testCloseAccount(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m := twoAccounts(t, s)
	// In acme's production: an extra key, a key revoked before, and a
	// default rotated out; in staging, more keys than one write revokes,
	// created in the same microsecond.
	_, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err)
	gone, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	require.NoError(t, err)
	revokedBefore, err := m.Revoke(ctx, acmeOwner, gone.View.ID)
	require.NoError(t, err)
	_, err = m.Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: 24 * time.Hour})
	require.NoError(t, err)
	var bulk apikey.Change
	now := m.Now()
	for range 450 {
		r := record(acme, apikey.Staging, apikey.Server, false)
		r.CreatedAt = now
		bulk.Insert = append(bulk.Insert, r)
	}
	apply(t, s, bulk)
	_, err = m.Create(ctx, globexOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err)

	open := map[string]bool{} // acme's keys that are not revoked
	for _, env := range []string{apikey.Production, apikey.Staging} {
		for _, k := range allKeys(t, s, acme, env) {
			if k.RevokedAt.IsZero() {
				open[k.ID] = true
			}
		}
	}
	require.Len(t, open, 4+452)
	globexBefore := map[string]apikey.Record{}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		for _, k := range allKeys(t, s, globex, env) {
			globexBefore[k.ID] = k
		}
	}

	// Who may close it.
	member := apikey.Actor{ID: "acme-member", Role: apikey.Member, Account: acme}
	_, err = m.CloseAccount(ctx, member, acme)
	assert.ErrorIs(t, err, apikey.ErrForbidden)
	_, err = m.CloseAccount(ctx, globexOwner, acme)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "another account's owner does not see it")
	_, err = m.CloseAccount(ctx, operator, "initech")
	assert.ErrorIs(t, err, apikey.ErrNotFound, "an account with no environment")

	revoked, err := m.CloseAccount(ctx, acmeOwner, acme)
	require.NoError(t, err)
	assert.Equal(t, len(open), revoked)

	for _, env := range []string{apikey.Production, apikey.Staging} {
		for _, k := range allKeys(t, s, acme, env) {
			assert.False(t, k.RevokedAt.IsZero(), "%s revoked", describe(k))
			if k.ID == gone.View.ID {
				assert.True(t, revokedBefore.RevokedAt.Equal(k.RevokedAt), "a revoked key keeps its revocation time")
			}
		}
		closed := mustSettings(t, s, acme, env)
		assert.False(t, closed.ClosedAt.IsZero(), "%s closed", env)
		for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
			assert.False(t, mustDefault(t, s, acme, env, typ).RevokedAt.IsZero(), "%s: the default %s key is revoked too", env, typ)
		}
	}

	if _, ok := s.(storage.AuditLog); ok {
		perKey := map[string]int{}
		closes := 0
		for _, e := range events(t, s, storage.EventQuery{Account: acme}) {
			switch {
			case e.Action == apikey.ActionRevoke && e.Detail == "account closed":
				perKey[e.KeyID]++
				assert.Equal(t, acme, e.Account)
				assert.NotEmpty(t, e.KeyType)
			case e.Action == apikey.ActionClose:
				closes++
			}
		}
		assert.Len(t, perKey, len(open), "one event per revoked key")
		for id, n := range perKey {
			assert.True(t, open[id], "%s was open", id)
			assert.Equal(t, 1, n, "one event for %s", id)
		}
		assert.Equal(t, 2, closes, "one close event per environment")
	}

	// Closed: nothing new in acme.
	_, err = m.Bootstrap(ctx, acmeOwner, apikey.Development)
	assert.ErrorIs(t, err, apikey.ErrAccountClosed, "Bootstrap")
	_, err = m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	assert.ErrorIs(t, err, apikey.ErrAccountClosed, "Create")
	_, err = m.SetAllowedOrigins(ctx, acmeOwner, apikey.Production, []string{"https://acme.example"})
	assert.ErrorIs(t, err, apikey.ErrAccountClosed, "SetAllowedOrigins")

	// Twice: nothing more to revoke.
	var before int
	if _, ok := s.(storage.AuditLog); ok {
		before = len(events(t, s, storage.EventQuery{}))
	}
	again, err := m.CloseAccount(ctx, acmeOwner, acme)
	require.NoError(t, err)
	assert.Zero(t, again)
	if _, ok := s.(storage.AuditLog); ok {
		assert.Len(t, events(t, s, storage.EventQuery{}), before, "closing again writes nothing")
	}

	// globex is untouched, and still works.
	for _, env := range []string{apikey.Production, apikey.Staging} {
		assert.True(t, mustSettings(t, s, globex, env).ClosedAt.IsZero())
		for _, k := range allKeys(t, s, globex, env) {
			was, ok := globexBefore[k.ID]
			require.True(t, ok, "a key appeared in globex")
			assert.True(t, k.RevokedAt.IsZero())
			assert.Equal(t, was.Revision, k.Revision, "%s unchanged", k.Prefix())
		}
		assertOneActiveDefault(t, s, globex, env)
	}
	_, err = m.Create(ctx, globexOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err)
	_, err = m.SetAllowedOrigins(ctx, globexOwner, apikey.Production, []string{"https://globex.example"})
	require.NoError(t, err)

	// An operator acting across accounts may close an account too.
	n, err := m.CloseAccount(ctx, operator, globex)
	require.NoError(t, err)
	assert.Equal(t, len(globexBefore)+1, n)
}
