package storetest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

func compareKeys(a, b apikey.Record) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
}

func position(r apikey.Record) apikey.KeyPosition {
	return apikey.KeyPosition{CreatedAt: r.CreatedAt, ID: r.ID}
}

// testKeysPaging checks Keys: creation order (CreatedAt, then ID as bytes),
// strictly after the cursor, exactly min(Limit, what is left), an empty
// page at the end, and nothing of another environment or account.
func testKeysPaging(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	// Keys created in the same microsecond are ordered by id; ids of mixed
	// case sort as bytes ("AB" < "Zz" < "aa" < "b0").
	var want []apikey.Record
	for i, k := range []struct {
		prefix string
		at     time.Duration
	}{
		{"aa", 0}, {"Zz", 0}, {"b0", 0}, {"AB", 0}, {"st", time.Second}, {"st", -time.Second},
		{"zz", 2 * time.Second}, {"00", 2 * time.Second}, {"st", time.Microsecond}, {"st", 3 * time.Second},
	} {
		r := record(acme, apikey.Production, []apikey.KeyType{apikey.Server, apikey.Client}[i%2], false)
		r.ID, r.CreatedAt = newID(k.prefix), base.Add(k.at)
		want = append(want, r)
	}
	// Inserted out of order, over several changes, among keys of the same
	// environment name in another account and of another environment.
	var noise []apikey.Record
	for _, env := range []struct{ account, env string }{{globex, apikey.Production}, {acme, apikey.Staging}, {"acme.io", apikey.Production}} {
		for _, w := range want[:4] {
			r := record(env.account, env.env, apikey.Server, false)
			r.CreatedAt = w.CreatedAt
			noise = append(noise, r)
		}
	}
	apply(t, s, apikey.Change{Insert: append([]apikey.Record{want[5], want[2]}, noise[:6]...)})
	apply(t, s, apikey.Change{Insert: []apikey.Record{want[9], want[0], want[7]}})
	apply(t, s, apikey.Change{Insert: append([]apikey.Record{want[1], want[8], want[3], want[6], want[4]}, noise[6:]...)})
	slices.SortFunc(want, compareKeys)

	q := apikey.KeyQuery{Account: acme, Environment: apikey.Production, Limit: 100}
	got, err := s.Keys(ctx, q)
	require.NoError(t, err)
	require.Equal(t, ids(want), ids(got), "creation order: CreatedAt, then id compared as bytes")
	for i := range want {
		assertSameRecord(t, want[i], got[i])
	}

	// Every page size pages through the same list.
	for limit := 1; limit <= len(want)+1; limit++ {
		q := apikey.KeyQuery{Account: acme, Environment: apikey.Production, Limit: limit}
		var all []apikey.Record
		for pages := 0; ; pages++ {
			require.Less(t, pages, len(want)+2, "limit %d: paging does not end", limit)
			page, err := s.Keys(ctx, q)
			require.NoError(t, err)
			require.Len(t, page, min(limit, len(want)-len(all)), "limit %d: a page holds Limit keys, or what is left", limit)
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			q.After = position(page[len(page)-1])
		}
		assert.Equal(t, ids(want), ids(all), "limit %d", limit)
	}

	// Strictly after a position, whether or not a key is there.
	for i, w := range want {
		page, err := s.Keys(ctx, apikey.KeyQuery{Account: acme, Environment: apikey.Production, After: position(w), Limit: 2})
		require.NoError(t, err)
		assert.Equal(t, ids(want[i+1:min(i+3, len(want))]), ids(page), "after %s", describe(w))
	}
	between := []struct {
		name  string
		after apikey.KeyPosition
		first int // index in want of the first key after it
	}{
		{"before every key", apikey.KeyPosition{CreatedAt: base.Add(-time.Hour), ID: "zzzzzzzzzzzz"}, 0},
		{"same time, smaller id", apikey.KeyPosition{CreatedAt: base, ID: "A"}, 1},
		{"same time, between ids", apikey.KeyPosition{CreatedAt: base, ID: "Zzz"}, 3},
		{"between times", apikey.KeyPosition{CreatedAt: base.Add(500 * time.Millisecond), ID: "000000000000"}, 6},
		{"after every key", apikey.KeyPosition{CreatedAt: base.Add(time.Hour)}, len(want)},
	}
	for _, b := range between {
		page, err := s.Keys(ctx, apikey.KeyQuery{Account: acme, Environment: apikey.Production, After: b.after, Limit: 100})
		require.NoError(t, err)
		assert.Equal(t, ids(want[b.first:]), ids(page), b.name)
	}

	// The other environments hold only their own keys.
	for _, env := range []struct{ account, env string }{{globex, apikey.Production}, {acme, apikey.Staging}, {"acme.io", apikey.Production}} {
		page, err := s.Keys(ctx, apikey.KeyQuery{Account: env.account, Environment: env.env, Limit: 100})
		require.NoError(t, err)
		require.Len(t, page, 4, "%s/%s", env.account, env.env)
		for _, r := range page {
			assert.Equal(t, env.account, r.Account)
			assert.Equal(t, env.env, r.Environment)
		}
	}
	page, err := s.Keys(ctx, apikey.KeyQuery{Account: "Acme", Environment: apikey.Production, Limit: 100})
	require.NoError(t, err)
	assert.Empty(t, page, "account ids are case-sensitive")
}

// The environments of testEnvironmentsPaging and testAccountsPaging, in
// order: accounts as bytes ("Zeta" < "acme" < "acme.io" < "globex"), then
// environment names.
var pagedEnvironments = []apikey.EnvironmentPosition{
	{Account: "Zeta", Environment: apikey.Production},
	{Account: acme, Environment: apikey.Development},
	{Account: acme, Environment: apikey.Production},
	{Account: acme, Environment: "qa"},
	{Account: acme, Environment: apikey.Staging},
	{Account: "acme.io", Environment: "a"},
	{Account: globex, Environment: apikey.Production},
	{Account: globex, Environment: "qa"},
}

// storeEnvironments creates pagedEnvironments' settings, out of order, in
// several changes.
func storeEnvironments(t *testing.T, s apikey.Store) {
	settings := func(is ...int) []apikey.Settings {
		var out []apikey.Settings
		for _, i := range is {
			p := pagedEnvironments[i]
			out = append(out, apikey.Settings{Account: p.Account, Environment: p.Environment, UpdatedAt: base,
				AllowedOrigins: []string{"https://" + p.Environment + ".example.com"}})
		}
		return out
	}
	apply(t, s, apikey.Change{Settings: settings(7, 2)})
	apply(t, s, apikey.Change{Settings: settings(4, 0, 5)})
	apply(t, s, apikey.Change{Settings: settings(1, 6, 3)})
}

func positions(envs []apikey.Settings) []apikey.EnvironmentPosition {
	out := make([]apikey.EnvironmentPosition, len(envs))
	for i, e := range envs {
		out[i] = apikey.EnvironmentPosition{Account: e.Account, Environment: e.Environment}
	}
	return out
}

// testEnvironmentsPaging checks Environments: ordered by account, then
// environment, strictly after the cursor, exactly min(Limit, what is left),
// of one account when Account is set.
func testEnvironmentsPaging(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	storeEnvironments(t, s)
	all := pagedEnvironments

	got, err := s.Environments(ctx, apikey.EnvironmentQuery{Limit: 100})
	require.NoError(t, err)
	require.Equal(t, all, positions(got), "ordered by account, then environment, as bytes")
	for _, e := range got {
		assert.Equal(t, []string{"https://" + e.Environment + ".example.com"}, e.AllowedOrigins)
		assert.Positive(t, e.Revision)
	}

	acmeEnvs := all[1:5]
	for _, tt := range []struct {
		name    string
		account string
		want    []apikey.EnvironmentPosition
	}{
		{"every account", "", all},
		{"one account", acme, acmeEnvs},
		{"an account with one environment", "acme.io", all[5:6]},
		{"no such account", "initech", nil},
		{"account ids are case-sensitive", "ACME", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for limit := 1; limit <= len(tt.want)+1; limit++ {
				q := apikey.EnvironmentQuery{Account: tt.account, Limit: limit}
				if tt.account != "" && limit%2 == 0 {
					// The Manager starts an account's list at (account, "").
					q.After = apikey.EnvironmentPosition{Account: tt.account}
				}
				var got []apikey.EnvironmentPosition
				for pages := 0; ; pages++ {
					require.Less(t, pages, len(all)+2, "limit %d: paging does not end", limit)
					page, err := s.Environments(ctx, q)
					require.NoError(t, err)
					require.Len(t, page, min(limit, len(tt.want)-len(got)), "limit %d: a page holds Limit environments, or what is left", limit)
					if len(page) == 0 {
						break
					}
					got = append(got, positions(page)...)
					q.After = got[len(got)-1]
				}
				assert.Equal(t, tt.want, got, "limit %d", limit)
			}
		})
	}

	// Strictly after a position, whether or not an environment is there.
	for _, tt := range []struct {
		name    string
		account string
		after   apikey.EnvironmentPosition
		want    []apikey.EnvironmentPosition
	}{
		{"after an environment", "", all[2], all[3:]},
		{"after an account's last environment", "", all[4], all[5:]},
		{"between environments", "", apikey.EnvironmentPosition{Account: acme, Environment: "q"}, all[3:]},
		{"between accounts", "", apikey.EnvironmentPosition{Account: "b"}, all[6:]},
		{"after every environment", "", apikey.EnvironmentPosition{Account: "zz"}, nil},
		{"one account, after an environment", acme, all[2], all[3:5]},
		{"one account, after its last", acme, all[4], nil},
	} {
		got, err := s.Environments(ctx, apikey.EnvironmentQuery{Account: tt.account, After: tt.after, Limit: 100})
		require.NoError(t, err)
		if len(tt.want) == 0 {
			assert.Empty(t, got, tt.name)
		} else {
			assert.Equal(t, tt.want, positions(got), tt.name)
		}
	}
}

// testAccountsPaging checks Accounts: the distinct accounts that have
// environments, ordered as bytes, strictly after the cursor, exactly
// min(limit, what is left).
func testAccountsPaging(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	storeEnvironments(t, s)
	want := []string{"Zeta", acme, "acme.io", globex}

	got, err := s.Accounts(ctx, "", 100)
	require.NoError(t, err)
	require.Equal(t, want, got, "distinct, ordered as bytes")

	for limit := 1; limit <= len(want)+1; limit++ {
		var all []string
		after := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, len(want)+2, "limit %d: paging does not end", limit)
			page, err := s.Accounts(ctx, after, limit)
			require.NoError(t, err)
			require.Len(t, page, min(limit, len(want)-len(all)), "limit %d: a page holds limit accounts, or what is left", limit)
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1]
		}
		assert.Equal(t, want, all, "limit %d", limit)
	}
	for _, tt := range []struct {
		after string
		want  []string
	}{
		{"Zeta", want[1:]},
		{"acme", want[2:]},
		{"acme.", want[2:]},
		{"b", want[3:]},
		{"globex", nil},
	} {
		got, err := s.Accounts(ctx, tt.after, 100)
		require.NoError(t, err)
		if len(tt.want) == 0 {
			assert.Empty(t, got, "after %q", tt.after)
		} else {
			assert.Equal(t, tt.want, got, "after %q", tt.after)
		}
	}
}

// testAuditLog checks storage.AuditLog: newest first, each event with its
// Seq (its place in its account's log), an account's events paged with
// Before, filtered by account and environment.
func testAuditLog(t *testing.T, c Config) {
	s := c.New(t)
	type where struct{ account, env string }
	places := []where{
		{acme, apikey.Production}, {globex, apikey.Production}, {acme, apikey.Staging},
		{acme, apikey.Production}, {globex, apikey.Staging}, {acme, apikey.Production},
		{globex, apikey.Production}, {acme, apikey.Staging},
	}
	var written []apikey.Event // oldest first
	for i, p := range places {
		written = append(written, apikey.Event{
			Time: base.Add(time.Duration(i) * time.Second), Actor: apikey.Actor{ID: "actor-" + p.account, Role: apikey.Owner, Account: p.account},
			Action: apikey.ActionRotate, Account: p.account, Environment: p.env,
			KeyID: newID("ev"), KeyType: []apikey.KeyType{apikey.Server, apikey.Client}[i%2], Detail: "expires soon",
		})
	}
	written[2].KeyID, written[2].KeyType, written[2].Action = "", "", apikey.ActionSetOrigins // environment-wide
	apply(t, s, apikey.Change{Events: written[:1]})
	apply(t, s, apikey.Change{Events: written[1:4]}) // several events in one change keep their order
	for _, e := range written[4:] {
		apply(t, s, apikey.Change{Events: []apikey.Event{e}})
	}

	all := events(t, s, storage.EventQuery{})
	require.Len(t, all, len(written))
	counted := map[string]int64{} // events of each account, oldest first
	wantSeq := map[string]int64{} // by key id
	for _, e := range written {
		counted[e.Account]++
		wantSeq[e.KeyID] = counted[e.Account]
	}
	for i, got := range all {
		want := written[len(written)-1-i]
		assert.Equal(t, want.KeyID, got.KeyID, "newest first")
		assert.Equal(t, wantSeq[want.KeyID], got.Seq, "events come back with their place in their account's log")
		assert.True(t, want.Time.Equal(got.Time))
		assert.Equal(t, want.Actor, got.Actor)
		assert.Equal(t, want.Action, got.Action)
		assert.Equal(t, want.Account, got.Account)
		assert.Equal(t, want.Environment, got.Environment)
		assert.Equal(t, want.KeyType, got.KeyType)
		assert.Equal(t, want.Detail, got.Detail)
	}
	seqOf := map[string]int64{} // by key id; one event has none
	for _, e := range all {
		seqOf[e.KeyID] = e.Seq
	}

	// Every account's events, for operators: newest first, not paged.
	for _, env := range []string{"", apikey.Production} {
		var want []string
		for _, e := range slices.Backward(written) {
			if env == "" || e.Environment == env {
				want = append(want, e.KeyID)
			}
		}
		for limit := 1; limit <= len(want)+1; limit++ {
			page := events(t, s, storage.EventQuery{Environment: env, Limit: limit})
			assert.Equal(t, want[:min(limit, len(want))], eventKeys(page), "every account's events in %q, limit %d", env, limit)
		}
		_, err := s.(storage.AuditLog).Events(context.Background(), storage.EventQuery{Environment: env, Before: 2})
		assert.ErrorIs(t, err, apikey.ErrInvalidCursor, "Before needs an account")
	}

	for _, tt := range []struct {
		name string
		q    storage.EventQuery
		want func(apikey.Event) bool
	}{
		{"one account", storage.EventQuery{Account: acme}, func(e apikey.Event) bool { return e.Account == acme }},
		{"one account's environment", storage.EventQuery{Account: globex, Environment: apikey.Staging},
			func(e apikey.Event) bool { return e.Account == globex && e.Environment == apikey.Staging }},
		{"no such account", storage.EventQuery{Account: "initech"}, func(apikey.Event) bool { return false }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, e := range slices.Backward(written) {
				if tt.want(e) {
					want = append(want, e.KeyID)
				}
			}
			for limit := 1; limit <= len(want)+1; limit++ {
				q := tt.q
				q.Limit = limit
				var got []string
				for pages := 0; ; pages++ {
					require.Less(t, pages, len(written)+2, "limit %d: paging does not end", limit)
					page := events(t, s, q)
					require.Len(t, page, min(limit, len(want)-len(got)), "limit %d: a page holds Limit events, or what is left", limit)
					if len(page) == 0 {
						break
					}
					for _, e := range page {
						got = append(got, e.KeyID)
						assert.Equal(t, seqOf[e.KeyID], e.Seq, "an event's Seq is the same in every query")
						assert.Less(t, e.Seq, cmp.Or(q.Before, int64(1)<<62), "Before: strictly older")
					}
					q.Before = page[len(page)-1].Seq
				}
				assert.Equal(t, want, got, "limit %d", limit)
			}
			assert.Len(t, events(t, s, tt.q), len(want), "Limit 0 means no limit")
		})
	}
	assert.Empty(t, events(t, s, storage.EventQuery{Account: acme, Before: 1}), "nothing before an account's first event")
}

func eventKeys(events []apikey.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.KeyID
	}
	return out
}

// testAuditLogPerAccount: a tenant's audit log, its Seq numbers and its
// page cursors are the same whatever other accounts did. The same acme
// events are written to two stores, alone in one and interleaved with
// globex's events (in separate changes and within the same change) in the
// other; every page of acme's events, with every limit, compares equal.
func testAuditLogPerAccount(t *testing.T, c Config) {
	alone, mixed := c.New(t), c.New(t)
	event := func(i int, account, env string) apikey.Event {
		return apikey.Event{
			Time: base.Add(time.Duration(i) * time.Second), Actor: apikey.Actor{ID: "actor", Role: apikey.Owner, Account: account},
			Action: apikey.ActionCreate, Account: account, Environment: env, KeyID: fmt.Sprintf("ev%010d", i), KeyType: apikey.Server,
		}
	}
	var acmeEvents []apikey.Event
	for i := range 7 {
		acmeEvents = append(acmeEvents, event(i, acme, []string{apikey.Production, apikey.Staging}[i%3/2]))
	}
	apply(t, alone, apikey.Change{Events: acmeEvents[:2]})
	for _, e := range acmeEvents[2:] {
		apply(t, alone, apikey.Change{Events: []apikey.Event{e}})
	}
	for i := range 5 {
		apply(t, mixed, apikey.Change{Events: []apikey.Event{event(100+i, globex, apikey.Production)}})
	}
	apply(t, mixed, apikey.Change{Events: []apikey.Event{event(200, globex, apikey.Production), acmeEvents[0], event(201, globex, apikey.Staging), acmeEvents[1]}})
	for i, e := range acmeEvents[2:] {
		for j := range i + 1 {
			apply(t, mixed, apikey.Change{Events: []apikey.Event{event(300+10*i+j, globex, apikey.Production)}})
		}
		apply(t, mixed, apikey.Change{Events: []apikey.Event{e}})
	}

	for _, env := range []string{"", apikey.Production, apikey.Staging} {
		for limit := 1; limit <= len(acmeEvents)+1; limit++ {
			q := storage.EventQuery{Account: acme, Environment: env, Limit: limit}
			var cursors []int64
			for pages := 0; ; pages++ {
				require.Less(t, pages, len(acmeEvents)+2, "paging does not end")
				want, got := events(t, alone, q), events(t, mixed, q)
				require.Equal(t, len(want), len(got), "%+v", q)
				for i := range want {
					assert.Equal(t, want[i], got[i], "%+v: event %d, Seq included, as if globex did nothing", q, i)
				}
				if len(got) == 0 {
					break
				}
				q.Before = got[len(got)-1].Seq
				cursors = append(cursors, q.Before)
			}
			if env == "" && limit == 1 {
				assert.Equal(t, []int64{7, 6, 5, 4, 3, 2, 1}, cursors, "acme's events are numbered 1 to 7, whatever globex did")
			}
		}
	}
}
