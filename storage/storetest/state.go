package storetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// testDisableAndSuspend checks the reversible switches through a Manager:
// a key's DisabledAt and an account's SuspendedAt are stored and cleared,
// other accounts are untouched, resuming changes no key, and each change
// writes change-feed entries (when the store has a feed): the key's, with
// its DisabledAt if the entry carries the record, and one settings entry
// per environment of the account.
func testDisableAndSuspend(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m := twoAccounts(t, s)
	operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
	feed, hasFeed := s.(storage.ChangeFeed)
	since := func() int64 {
		if !hasFeed {
			return 0
		}
		rev, err := feed.Revision(ctx)
		require.NoError(t, err)
		return rev
	}
	entries := func(from int64) []storage.Changed {
		if !hasFeed {
			return nil
		}
		out, _, err := feed.Changes(ctx, from, 100)
		require.NoError(t, err)
		return out
	}

	extra, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	start := since()
	view, err := m.Disable(ctx, acmeOwner, extra.View.ID)
	require.NoError(t, err)
	stored := mustKey(t, s, extra.View.ID)
	assert.True(t, view.DisabledAt.Equal(stored.DisabledAt), "DisabledAt stored")
	assert.False(t, stored.DisabledAt.IsZero())
	if hasFeed {
		changes := entries(start)
		require.Len(t, changes, 1, "one entry for the disabled key")
		assert.Equal(t, extra.View.ID, changes[0].KeyID)
		assert.Equal(t, acme, changes[0].Account)
		if changes[0].Key != nil {
			assert.True(t, stored.DisabledAt.Equal(changes[0].Key.DisabledAt), "the entry's record is disabled")
		}
	}
	start = since()
	_, err = m.Enable(ctx, acmeOwner, extra.View.ID)
	require.NoError(t, err)
	assert.True(t, mustKey(t, s, extra.View.ID).DisabledAt.IsZero(), "DisabledAt cleared")
	assert.Len(t, entries(start), map[bool]int{true: 1}[hasFeed], "one entry for the enabled key")

	keysBefore := map[string]int64{}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		for _, k := range allKeys(t, s, acme, env) {
			keysBefore[k.ID] = k.Revision
		}
	}
	for _, step := range []struct {
		name      string
		do        func() error
		suspended bool
	}{
		{"suspend", func() error { return m.SuspendAccount(ctx, operator, acme) }, true},
		{"resume", func() error { return m.ResumeAccount(ctx, operator, acme) }, false},
	} {
		start = since()
		require.NoError(t, step.do(), step.name)
		for _, env := range []string{apikey.Production, apikey.Staging} {
			assert.Equal(t, step.suspended, !mustSettings(t, s, acme, env).SuspendedAt.IsZero(), "%s: acme's %s", step.name, env)
			assert.True(t, mustSettings(t, s, globex, env).SuspendedAt.IsZero(), "%s: globex untouched", step.name)
		}
		if hasFeed {
			changed := map[string]bool{}
			for _, e := range entries(start) {
				assert.Empty(t, e.KeyID, "%s writes no key", step.name)
				assert.Equal(t, acme, e.Account)
				changed[e.Environment] = true
			}
			assert.Equal(t, map[string]bool{apikey.Production: true, apikey.Staging: true}, changed, "%s: one settings entry per environment", step.name)
		}
	}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		for _, k := range allKeys(t, s, acme, env) {
			assert.Equal(t, keysBefore[k.ID], k.Revision, "%s unchanged by suspend and resume", describe(k))
		}
	}
}
