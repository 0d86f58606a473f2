package apikey_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

func TestValidateAccount(t *testing.T) {
	for _, id := range []string{"default", "acme", "cus_123", "ACME.io", "a", "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f", "user@example.com", "org:42", strings.Repeat("a", 64)} {
		assert.NoError(t, apikey.ValidateAccount(id), "%q", id)
	}
	for _, id := range []string{"", "*", "-acme", ".acme", "ac me", "acme/prod", "acmé", strings.Repeat("a", 65), "a\x00b"} {
		err := apikey.ValidateAccount(id)
		require.ErrorIs(t, err, apikey.ErrInvalidAccount, "%q", id)
		if id != "" {
			assert.NotContains(t, err.Error(), id, "errors never repeat the input")
		}
	}
}

func TestValidateOwnerAndMetadata(t *testing.T) {
	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	secret := key.Reveal()[apikey.PrefixLength:]
	for _, owner := range []string{"", "user_42", "Alice Müller <alice@example.com>", strings.Repeat("x", apikey.MaxOwnerLength)} {
		assert.NoError(t, apikey.ValidateOwner(owner), "%q", owner)
	}
	for name, owner := range map[string]string{
		"too long":     strings.Repeat("x", apikey.MaxOwnerLength+1),
		"a key":        key.Reveal(),
		"a secret":     "team" + secret,
		"control char": "a\nb",
		"not UTF-8":    "\xff",
	} {
		err := apikey.ValidateOwner(owner)
		require.ErrorIs(t, err, apikey.ErrInvalidMetadata, name)
		assert.NotContains(t, err.Error(), secret[1:20], "%s: errors never repeat the input", name)
	}

	md, err := apikey.ValidateMetadata(map[string]string{"plan": "pro", "customer.id": "cus_123", "region": ""})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"plan": "pro", "customer.id": "cus_123", "region": ""}, md)
	empty, err := apikey.ValidateMetadata(map[string]string{})
	require.NoError(t, err)
	assert.Nil(t, empty)
	many := map[string]string{}
	for i := range apikey.MaxMetadataEntries + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for name, bad := range map[string]map[string]string{
		"too many entries":  many,
		"upper-case name":   {"Plan": "pro"},
		"name with a space": {"my plan": "pro"},
		"name too long":     {strings.Repeat("a", apikey.MaxMetadataKeyLength+1): "v"},
		"digit first":       {"1plan": "v"},
		"value too long":    {"plan": strings.Repeat("v", apikey.MaxMetadataValueLen+1)},
		"a key as value":    {"backup": key.Reveal()},
		"a secret as value": {"note": "x" + secret},
		"control character": {"note": "a\tb"},
	} {
		_, err := apikey.ValidateMetadata(bad)
		require.ErrorIs(t, err, apikey.ErrInvalidMetadata, name)
		assert.NotContains(t, err.Error(), secret[1:20], "%s: errors never repeat a value", name)
	}
}

// TestOwnerAndMetadata: set at creation, changed by owners only, kept by
// rotation, copied out.
func TestOwnerAndMetadata(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	is, err := f.m.Create(ctx, owner, apikey.CreateRequest{
		Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:read"},
		Owner: "user_42", Metadata: map[string]string{"plan": "pro"},
	})
	require.NoError(t, err)
	assert.Equal(t, "user_42", is.View.Owner)
	assert.Equal(t, map[string]string{"plan": "pro"}, is.View.Metadata)
	assert.Equal(t, apikey.DefaultAccount, is.View.Account)

	is.View.Metadata["plan"] = "changed by the caller"
	assert.Equal(t, "pro", f.record(t, is.View.ID).Metadata["plan"], "views hold copies")

	_, err = f.m.SetOwner(ctx, member, is.View.ID, "user_43")
	assert.ErrorIs(t, err, apikey.ErrForbidden)
	_, err = f.m.SetMetadata(ctx, readOnly, is.View.ID, nil)
	assert.ErrorIs(t, err, apikey.ErrForbidden)
	view, err := f.m.SetOwner(ctx, owner, is.Key.Prefix(), "user_43")
	require.NoError(t, err)
	assert.Equal(t, "user_43", view.Owner)
	view, err = f.m.SetMetadata(ctx, owner, is.View.ID, map[string]string{"plan": "team", "seats": "5"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"plan": "team", "seats": "5"}, view.Metadata)
	_, err = f.m.SetMetadata(ctx, owner, is.View.ID, map[string]string{"Bad": "x"})
	assert.ErrorIs(t, err, apikey.ErrInvalidMetadata)
	assert.Equal(t, apikey.ActionSetMetadata, f.events[len(f.events)-1].Action)

	rotated, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: is.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, "user_43", rotated.View.Owner, "rotation keeps the owner")
	assert.Equal(t, map[string]string{"plan": "team", "seats": "5"}, rotated.View.Metadata, "and the metadata")

	_, err = f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client,
		Metadata: map[string]string{"leak": is.Key.Reveal()}})
	assert.ErrorIs(t, err, apikey.ErrInvalidMetadata)
}

// TestListPages: every key once, in creation order, a page at a time.
func TestListPages(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	for i := range 23 {
		if i%3 == 0 {
			f.clock.Advance(time.Second) // some keys share a creation time
		}
		_, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
		require.NoError(t, err)
	}
	var seen []apikey.View
	page := apikey.Page{Limit: 5}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		list, err := f.m.List(ctx, readOnly, apikey.Production, page)
		require.NoError(t, err)
		require.LessOrEqual(t, len(list.Keys), 5)
		seen = append(seen, list.Keys...)
		if list.Next == "" {
			break
		}
		page.After = list.Next
	}
	require.Len(t, seen, 25)
	ids := map[string]bool{}
	for i, v := range seen {
		assert.False(t, ids[v.ID], "key %s listed twice", v.Prefix)
		ids[v.ID] = true
		if i > 0 {
			prev := seen[i-1]
			assert.True(t, prev.CreatedAt.Before(v.CreatedAt) || prev.CreatedAt.Equal(v.CreatedAt) && prev.ID < v.ID,
				"creation order, then id")
		}
	}
	all, err := f.m.List(ctx, readOnly, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	assert.Len(t, all.Keys, 25, "the default page holds them all")
	assert.Empty(t, all.Next)

	for name, bad := range map[string]apikey.Page{
		"garbage cursor":  {After: "not a cursor!"},
		"forged cursor":   {After: "MTIzLmFiYw"},
		"negative limit":  {Limit: -1},
		"limit too large": {Limit: apikey.MaxPageSize + 1},
	} {
		_, err := f.m.List(ctx, readOnly, apikey.Production, bad)
		assert.ErrorIs(t, err, apikey.ErrInvalidCursor, name)
	}
}

// TestAccountsAreBoundaries: the same environment names in two accounts;
// nothing of one is found from the other; an operator says it acts across
// accounts.
func TestAccountsAreBoundaries(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	acme := apikey.Actor{ID: "acme-admin", Role: apikey.Owner, Account: "acme"}
	issued, err := f.m.Bootstrap(ctx, acme, apikey.Production)
	require.NoError(t, err)
	acmeKey := issued[0]
	assert.Equal(t, "acme", acmeKey.View.Account)

	_, err = f.m.Get(ctx, owner, acmeKey.View.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "the default account does not see acme's key")
	_, err = f.m.Revoke(ctx, acme, f.server.View.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "nor acme the default account's")
	_, err = f.m.Bootstrap(ctx, acme, apikey.Production)
	assert.ErrorIs(t, err, apikey.ErrAlreadyBootstrapped)
	_, err = f.m.Settings(ctx, acme, apikey.Staging)
	assert.ErrorIs(t, err, apikey.ErrUnknownEnvironment)
	list, err := f.m.List(ctx, acme, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, list.Keys, 2)
	for _, v := range list.Keys {
		assert.Equal(t, "acme", v.Account)
	}

	operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
	v, err := f.m.Get(ctx, operator, acmeKey.Key.Prefix())
	require.NoError(t, err)
	assert.Equal(t, "acme", v.Account)
	accounts, err := f.m.Accounts(ctx, operator, apikey.Page{Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{"acme"}, accounts.Accounts)
	accounts, err = f.m.Accounts(ctx, operator, apikey.Page{After: accounts.Next})
	require.NoError(t, err)
	assert.Equal(t, []string{apikey.DefaultAccount}, accounts.Accounts)
	assert.Empty(t, accounts.Next)
	_, err = f.m.Accounts(ctx, acme, apikey.Page{})
	assert.ErrorIs(t, err, apikey.ErrForbidden, "listing accounts is for operators")
	_, err = f.m.List(ctx, operator, apikey.Production, apikey.Page{})
	assert.ErrorIs(t, err, apikey.ErrInvalidAccount, "an operator names the account of an environment")
	_, err = f.m.Bootstrap(ctx, apikey.Actor{ID: "x", Role: apikey.Owner, Account: "bad account"}, apikey.Production)
	assert.ErrorIs(t, err, apikey.ErrInvalidAccount)
}

// TestCloseAccount: every key of every environment revoked, defaults
// included, one event each; the account takes nothing new; others are
// untouched.
func TestCloseAccount(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	acme := apikey.Actor{ID: "acme-admin", Role: apikey.Owner, Account: "acme"}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		_, err := f.m.Bootstrap(ctx, acme, env)
		require.NoError(t, err)
	}
	for range 3 {
		_, err := f.m.Create(ctx, acme, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
		require.NoError(t, err)
	}
	_, err := f.m.CloseAccount(ctx, owner, "acme")
	assert.ErrorIs(t, err, apikey.ErrNotFound, "an owner of another account does not see acme")
	_, err = f.m.CloseAccount(ctx, apikey.Actor{ID: "m", Role: apikey.Member, Account: "acme"}, "acme")
	assert.ErrorIs(t, err, apikey.ErrForbidden)

	before := len(f.events)
	revoked, err := f.m.CloseAccount(ctx, acme, "acme")
	require.NoError(t, err)
	assert.Equal(t, 2+2+3, revoked)
	revokes := 0
	for _, e := range f.events[before:] {
		assert.Equal(t, "acme", e.Account)
		if e.Action == apikey.ActionRevoke {
			revokes++
		}
	}
	assert.Equal(t, revoked, revokes, "one audit event per key")
	for _, env := range []string{apikey.Production, apikey.Staging} {
		list, err := f.m.List(ctx, acme, env, apikey.Page{})
		require.NoError(t, err)
		for _, v := range list.Keys {
			assert.Equal(t, apikey.Revoked, v.Status, "%s", v.Prefix)
		}
		s, err := f.m.Settings(ctx, acme, env)
		require.NoError(t, err)
		assert.False(t, s.ClosedAt.IsZero())
	}
	_, err = f.m.Bootstrap(ctx, acme, "development")
	assert.ErrorIs(t, err, apikey.ErrAccountClosed)
	_, err = f.m.Create(ctx, acme, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	assert.ErrorIs(t, err, apikey.ErrAccountClosed)
	_, err = f.m.SetAllowedOrigins(ctx, acme, apikey.Production, []string{"https://a.example.com"})
	assert.ErrorIs(t, err, apikey.ErrAccountClosed)
	again, err := f.m.CloseAccount(ctx, apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}, "acme")
	require.NoError(t, err)
	assert.Zero(t, again, "closing twice revokes nothing more")

	v, err := f.m.Get(ctx, owner, f.server.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Active, v.Status, "the other account is untouched")
}

// FuzzPageCursor: a cursor is untrusted input (it comes back in query
// strings): any string is either a page or ErrInvalidCursor, never a panic
// or another error.
func FuzzPageCursor(f *testing.F) {
	m := newFixture(f, apikey.ManagerOptions{})
	first, err := m.m.List(ctx, readOnly, apikey.Production, apikey.Page{Limit: 1})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"", first.Next, "MTIzLmFiYw", "!!", "LTEuMDEyMzQ1Njc4OWFi", "OTIyMzM3MjAzNjg1NDc3NTgwOC4wMTIzNDU2Nzg5YWI"} {
		f.Add(seed, 1)
	}
	f.Fuzz(func(t *testing.T, after string, limit int) {
		for _, list := range []func() error{
			func() error {
				_, err := m.m.List(ctx, readOnly, apikey.Production, apikey.Page{After: after, Limit: limit})
				return err
			},
			func() error {
				_, err := m.m.Environments(ctx, readOnly, apikey.Page{After: after, Limit: limit})
				return err
			},
			func() error {
				_, err := m.m.Accounts(ctx, apikey.Actor{ID: "ops", Role: apikey.ReadOnly, Account: apikey.AnyAccount}, apikey.Page{After: after, Limit: limit})
				return err
			},
		} {
			if err := list(); err != nil && !errors.Is(err, apikey.ErrInvalidCursor) {
				t.Fatalf("unexpected error: %v", err)
			}
		}
	})
}
