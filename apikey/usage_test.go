package apikey_test

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// storeOnly hides every optional capability of the store it holds.
type storeOnly struct{ apikey.Store }

func TestUsage(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.Bootstrap(ctx, owner, apikey.Staging)
	require.NoError(t, err)
	acme := apikey.Actor{ID: "acme-owner", Role: apikey.Owner, Account: "acme"}
	other, err := f.m.Bootstrap(ctx, acme, apikey.Production)
	require.NoError(t, err)
	staging, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
	require.NoError(t, err)

	h0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	count := func(account, env, id string, h int, outcome string, n int64) apikey.UsageCount {
		return apikey.UsageCount{Account: account, Environment: env, KeyID: id, Hour: h0.Add(time.Duration(h) * time.Hour), Outcome: outcome, Count: n}
	}
	server, client := f.server.View.ID, f.client.View.ID
	def := apikey.DefaultAccount
	mine := []apikey.UsageCount{
		count(def, apikey.Production, server, 0, "admitted", 5),
		count(def, apikey.Production, server, 0, "rate_limited", 1),
		count(def, apikey.Production, client, 1, "admitted", 7),
		count(def, apikey.Staging, staging.View.ID, 1, "admitted", 2),
		count(def, apikey.Production, server, 2, "admitted", 3),
	}
	require.NoError(t, f.store.RecordUsage(ctx, append(mine, count("acme", apikey.Production, other[0].View.ID, 0, "admitted", 9))))
	slices.SortFunc(mine, func(a, b apikey.UsageCount) int { // the order of pages (ids are random)
		return cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(a.KeyID, b.KeyID), strings.Compare(a.Outcome, b.Outcome))
	})
	hour1 := mine[2:4] // the counts of hour 1, in order

	// Hours -1 to 2.
	day := apikey.UsageRequest{From: h0.Add(-time.Minute), To: h0.Add(2*time.Hour + time.Minute)}

	t.Run("every role reads its account", func(t *testing.T) {
		for _, a := range []apikey.Actor{owner, member, readOnly} {
			got, err := f.m.Usage(ctx, a, day, apikey.Page{})
			require.NoError(t, err, a.Role)
			assert.Equal(t, apikey.UsageList{Counts: mine}, got, a.Role)
		}
		got, err := f.m.Usage(ctx, acme, day, apikey.Page{})
		require.NoError(t, err)
		require.Len(t, got.Counts, 1)
		assert.Equal(t, "acme", got.Counts[0].Account)
	})
	t.Run("pages", func(t *testing.T) {
		var all []apikey.UsageCount
		page := apikey.Page{Limit: 2}
		for range 10 {
			got, err := f.m.Usage(ctx, owner, day, page)
			require.NoError(t, err)
			all = append(all, got.Counts...)
			if got.Next == "" {
				break
			}
			assert.Len(t, got.Counts, 2)
			page.After = got.Next
		}
		assert.Equal(t, mine, all)
		_, err := f.m.Usage(ctx, owner, day, apikey.Page{After: "not-a-cursor"})
		assert.ErrorIs(t, err, apikey.ErrInvalidCursor)
	})
	t.Run("range", func(t *testing.T) {
		got, err := f.m.Usage(ctx, owner, apikey.UsageRequest{From: h0.Add(90 * time.Minute), To: h0.Add(2 * time.Hour)}, apikey.Page{})
		require.NoError(t, err)
		assert.Equal(t, hour1, got.Counts, "the hour that holds From, not the one that starts at To")
		for _, req := range []apikey.UsageRequest{{}, {From: h0}, {To: h0}, {From: h0, To: h0}, {From: h0.Add(time.Hour), To: h0}} {
			_, err := f.m.Usage(ctx, owner, req, apikey.Page{})
			require.ErrorIs(t, err, apikey.ErrInvalidTimeRange)
			assert.True(t, apikey.IsRequestError(err))
		}
	})
	t.Run("environment and key", func(t *testing.T) {
		req := day
		req.Environment = apikey.Staging
		got, err := f.m.Usage(ctx, readOnly, req, apikey.Page{})
		require.NoError(t, err)
		assert.Equal(t, []apikey.UsageCount{count(def, apikey.Staging, staging.View.ID, 1, "admitted", 2)}, got.Counts)
		req.Environment = "nowhere"
		_, err = f.m.Usage(ctx, readOnly, req, apikey.Page{})
		assert.ErrorIs(t, err, apikey.ErrUnknownEnvironment)

		req = day
		req.KeyID = "server-" + server
		got, err = f.m.Usage(ctx, member, req, apikey.Page{})
		require.NoError(t, err)
		assert.Equal(t, []apikey.UsageCount{
			count(def, apikey.Production, server, 0, "admitted", 5),
			count(def, apikey.Production, server, 0, "rate_limited", 1),
			count(def, apikey.Production, server, 2, "admitted", 3),
		}, got.Counts)
		req.KeyID = other[0].View.ID
		_, err = f.m.Usage(ctx, owner, req, apikey.Page{})
		assert.ErrorIs(t, err, apikey.ErrNotFound, "a key of another account")
		req.KeyID = "server-" + client
		_, err = f.m.Usage(ctx, owner, req, apikey.Page{})
		assert.ErrorIs(t, err, apikey.ErrNotFound, "a prefix of the other type")
	})
	t.Run("a key reads only its own", func(t *testing.T) {
		keyActor := apikey.Actor{ID: "server-" + server, Role: apikey.ReadOnly, Scopes: []string{"api_keys:read"}, KeyID: server}
		req := day
		req.KeyID = server
		got, err := f.m.Usage(ctx, keyActor, req, apikey.Page{})
		require.NoError(t, err)
		assert.Len(t, got.Counts, 3)
		for _, c := range []struct {
			name  string
			actor apikey.Actor
			key   string
		}{
			{"another key", keyActor, client},
			{"the whole account", keyActor, ""},
			{"an actor without its key id", apikey.Actor{ID: "k", Role: apikey.Owner, Scopes: []string{"*"}}, server},
		} {
			req.KeyID = c.key
			_, err := f.m.Usage(ctx, c.actor, req, apikey.Page{})
			assert.ErrorIs(t, err, apikey.ErrBeyondActor, c.name)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		_, err := f.m.Usage(ctx, apikey.Actor{ID: "x", Role: "guest"}, day, apikey.Page{})
		assert.ErrorIs(t, err, apikey.ErrForbidden)
		_, err = f.m.Usage(ctx, apikey.Actor{ID: "op", Role: apikey.Owner, Account: apikey.AnyAccount}, day, apikey.Page{})
		assert.ErrorIs(t, err, apikey.ErrInvalidAccount, "an operator names no account here")
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: storeOnly{f.store}})
		require.NoError(t, err)
		_, err = m.Usage(ctx, owner, day, apikey.Page{})
		assert.ErrorIs(t, err, errors.ErrUnsupported)
		assert.False(t, apikey.IsRequestError(err))
	})
}

// FuzzUsageCursor: a usage cursor is untrusted input: any string is either
// a page or ErrInvalidCursor, never a panic or another error.
func FuzzUsageCursor(f *testing.F) {
	m := newFixture(f, apikey.ManagerOptions{})
	h := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	var counts []apikey.UsageCount
	for _, outcome := range []string{"admitted", "quota_exhausted", "a.b"} {
		counts = append(counts, apikey.UsageCount{Account: apikey.DefaultAccount, Environment: apikey.Production,
			KeyID: m.server.View.ID, Hour: h, Outcome: outcome, Count: 1})
	}
	if err := m.store.RecordUsage(ctx, counts); err != nil {
		f.Fatal(err)
	}
	req := apikey.UsageRequest{From: h, To: h.Add(time.Hour)}
	first, err := m.m.Usage(ctx, readOnly, req, apikey.Page{Limit: 1})
	if err != nil || first.Next == "" {
		f.Fatal(err, first)
	}
	for _, seed := range []string{"", first.Next, "MTIzLmFiYw", "!!", "LTEuMDEyMzQ1Njc4OWFiLng", "MTc2NzI2MTYwMDAwMDAwMC4uLg"} {
		f.Add(seed, 1)
	}
	f.Fuzz(func(t *testing.T, after string, limit int) {
		_, err := m.m.Usage(ctx, readOnly, req, apikey.Page{After: after, Limit: limit})
		if err != nil && !errors.Is(err, apikey.ErrInvalidCursor) {
			t.Fatalf("unexpected error: %v", err)
		}
	})
}
