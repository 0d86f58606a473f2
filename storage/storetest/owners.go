package storetest

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// testOwnerKeys: an owner's keys of every environment of its account, by
// id as bytes, strictly after the cursor, full pages, revoked keys left
// out on request, nothing of another owner or account.
func testOwnerKeys(t *testing.T, c Config) {
	s := c.New(t)
	idx := as[storage.OwnerIndex](t, s)
	ctx := context.Background()
	var want, revoked []apikey.Record
	var c1, c2 apikey.Change
	for i, prefix := range []string{"aa", "Zz", "b0", "AB", "st", "00", "zz", "st"} {
		env := []string{apikey.Production, apikey.Staging, "qa"}[i%3]
		r := record(acme, env, []apikey.KeyType{apikey.Server, apikey.Client}[i%2], false)
		r.ID, r.Owner = newID(prefix), "user-1"
		if i%4 == 3 {
			r.RevokedAt = base
			revoked = append(revoked, r)
		}
		want = append(want, r)
		if i%2 == 0 {
			c1.Insert = append(c1.Insert, r)
		} else {
			c2.Insert = append(c2.Insert, r)
		}
	}
	// Noise: the same owner in another account, another owner (a prefix,
	// another case), keys without owner.
	for _, n := range []struct{ account, owner string }{{globex, "user-1"}, {acme, "user-10"}, {acme, "User-1"}, {acme, ""}, {acme, "user-"}} {
		r := record(n.account, apikey.Production, apikey.Server, false)
		r.Owner = n.owner
		c1.Insert = append(c1.Insert, r)
	}
	apply(t, s, c1)
	apply(t, s, c2)
	slices.SortFunc(want, func(a, b apikey.Record) int { return strings.Compare(a.ID, b.ID) })
	active := slices.DeleteFunc(slices.Clone(want), func(r apikey.Record) bool { return !r.RevokedAt.IsZero() })

	got, err := idx.OwnerKeys(ctx, apikey.OwnerQuery{Account: acme, Owner: "user-1", Limit: 100})
	require.NoError(t, err)
	require.Equal(t, ids(want), ids(got), "by id, as bytes, across environments")
	for i := range want {
		assertSameRecord(t, want[i], got[i])
	}
	for _, notRevoked := range []bool{false, true} {
		expect := want
		if notRevoked {
			expect = active
		}
		for limit := 1; limit <= len(expect)+1; limit++ {
			q := apikey.OwnerQuery{Account: acme, Owner: "user-1", NotRevoked: notRevoked, Limit: limit}
			var all []apikey.Record
			for pages := 0; ; pages++ {
				require.Less(t, pages, len(expect)+2, "limit %d: paging does not end", limit)
				page, err := idx.OwnerKeys(ctx, q)
				require.NoError(t, err)
				require.Len(t, page, min(limit, len(expect)-len(all)), "limit %d, not revoked %v: full pages", limit, notRevoked)
				if len(page) == 0 {
					break
				}
				all = append(all, page...)
				q.After = page[len(page)-1].ID
			}
			assert.Equal(t, ids(expect), ids(all), "limit %d, not revoked %v", limit, notRevoked)
		}
	}
	// Strictly after an id, whether or not a key has it.
	page, err := idx.OwnerKeys(ctx, apikey.OwnerQuery{Account: acme, Owner: "user-1", After: want[2].ID, Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, ids(want[3:]), ids(page))
	page, err = idx.OwnerKeys(ctx, apikey.OwnerQuery{Account: acme, Owner: "user-1", After: want[2].ID + "0", Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, ids(want[3:]), ids(page))

	for _, other := range []struct{ account, owner string }{{globex, "user-1"}, {acme, "user-10"}, {acme, "User-1"}, {acme, "user-"}} {
		page, err := idx.OwnerKeys(ctx, apikey.OwnerQuery{Account: other.account, Owner: other.owner, Limit: 100})
		require.NoError(t, err)
		require.Len(t, page, 1, "%s/%s", other.account, other.owner)
		assert.Equal(t, other.owner, page[0].Owner)
		assert.Equal(t, other.account, page[0].Account)
	}

	// A changed owner moves the key.
	moved := mustKey(t, s, want[0].ID)
	moved.Owner = "user-2"
	apply(t, s, apikey.Change{Update: []apikey.Record{moved}})
	page, err = idx.OwnerKeys(ctx, apikey.OwnerQuery{Account: acme, Owner: "user-1", Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, ids(want[1:]), ids(page))
	page, err = idx.OwnerKeys(ctx, apikey.OwnerQuery{Account: acme, Owner: "user-2", Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, []string{moved.ID}, ids(page))
}

// testExpiringKeys: the keys of an account (or environment) that are not
// revoked and expire up to Until, after the position, by expiry then id,
// full pages; keys without expiry, revoked keys and other accounts' keys
// never.
func testExpiringKeys(t *testing.T, c Config) {
	s := c.New(t)
	idx := as[storage.ExpiryIndex](t, s)
	ctx := context.Background()
	var all []apikey.Record
	var change apikey.Change
	for i, k := range []struct {
		prefix  string
		in      time.Duration
		revoked bool
		env     string
	}{
		{"aa", time.Hour, false, apikey.Production}, {"Zz", time.Hour, false, apikey.Staging}, {"b0", time.Hour, false, apikey.Production},
		{"st", 2 * time.Hour, false, apikey.Production}, {"st", -time.Hour, false, apikey.Production},
		{"st", 3 * time.Hour, true, apikey.Production}, {"st", 5 * time.Hour, false, apikey.Staging},
		{"st", 30 * time.Hour, false, apikey.Production}, {"st", time.Microsecond, false, apikey.Staging},
		{"st", 0, false, apikey.Production},
	} {
		r := record(acme, k.env, []apikey.KeyType{apikey.Server, apikey.Client}[i%2], false)
		r.ID = newID(k.prefix)
		if k.in != 0 {
			r.ExpiresAt = base.Add(k.in)
		}
		if k.revoked {
			r.RevokedAt = base
		}
		if i == 3 { // a rotated-out key: its grace ends at ExpiresAt
			r.RotatedAt, r.ExpiryLimit = base.Add(-time.Hour), base.Add(90*time.Hour)
		}
		all = append(all, r)
		change.Insert = append(change.Insert, r)
		noise := r
		noise.ID, noise.Account = newID("gx"), globex
		change.Insert = append(change.Insert, noise)
	}
	apply(t, s, change)
	expiring := func(env string, from, until time.Time) []apikey.Record {
		var out []apikey.Record
		for _, r := range all {
			if !r.ExpiresAt.IsZero() && r.RevokedAt.IsZero() && !r.ExpiresAt.Before(from) && !r.ExpiresAt.After(until) &&
				(env == "" || r.Environment == env) {
				out = append(out, r)
			}
		}
		slices.SortFunc(out, func(a, b apikey.Record) int {
			return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.ID, b.ID))
		})
		return out
	}
	for _, tt := range []struct {
		name        string
		env         string
		from, until time.Time
	}{
		{"account, a day", "", base, base.Add(24 * time.Hour)},
		{"account, until included", "", base, base.Add(2 * time.Hour)},
		{"account, from included", "", base.Add(time.Hour), base.Add(48 * time.Hour)},
		{"production", apikey.Production, base, base.Add(48 * time.Hour)},
		{"staging", apikey.Staging, base, base.Add(48 * time.Hour)},
		{"past included when asked", "", base.Add(-2 * time.Hour), base.Add(time.Hour)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := expiring(tt.env, tt.from, tt.until)
			require.NotEmpty(t, want)
			for limit := 1; limit <= len(want)+1; limit++ {
				q := apikey.ExpiryQuery{Account: acme, Environment: tt.env, After: apikey.ExpiryPosition{ExpiresAt: tt.from},
					Until: tt.until, Limit: limit}
				var got []apikey.Record
				for pages := 0; ; pages++ {
					require.Less(t, pages, len(want)+2, "limit %d: paging does not end", limit)
					page, err := idx.ExpiringKeys(ctx, q)
					require.NoError(t, err)
					require.Len(t, page, min(limit, len(want)-len(got)), "limit %d: full pages", limit)
					if len(page) == 0 {
						break
					}
					got = append(got, page...)
					last := page[len(page)-1]
					q.After = apikey.ExpiryPosition{ExpiresAt: last.ExpiresAt, ID: last.ID}
				}
				require.Equal(t, ids(want), ids(got), "limit %d", limit)
				for i := range want {
					assertSameRecord(t, want[i], got[i])
				}
			}
		})
	}
	// Revoking a key takes it out; a changed expiry moves it.
	first := expiring("", base, base.Add(24*time.Hour))
	r0, r1 := mustKey(t, s, first[0].ID), mustKey(t, s, first[1].ID)
	r0.RevokedAt = base
	r1.ExpiresAt = base.Add(20 * time.Hour)
	apply(t, s, apikey.Change{Update: []apikey.Record{r0, r1}})
	page, err := idx.ExpiringKeys(ctx, apikey.ExpiryQuery{Account: acme, After: apikey.ExpiryPosition{ExpiresAt: base},
		Until: base.Add(24 * time.Hour), Limit: 100})
	require.NoError(t, err)
	want := append(ids(first[2:]), r1.ID)
	assert.Equal(t, want, ids(page))
	page, err = idx.ExpiringKeys(ctx, apikey.ExpiryQuery{Account: "Acme", After: apikey.ExpiryPosition{ExpiresAt: base},
		Until: base.Add(24 * time.Hour), Limit: 100})
	require.NoError(t, err)
	assert.Empty(t, page, "account ids are case-sensitive")
}

// testPurgeKeys: keys revoked or expired before the time are deleted, the
// earliest first, at most limit per call, imported keys never; they are
// gone from every read,
// the feed has an entry without Key for each, their events stay, and a
// lineage's quota balance stays while a key of it survives.
func testPurgeKeys(t *testing.T, c Config) {
	s := c.New(t)
	p := as[storage.KeyPurger](t, s)
	ctx := context.Background()
	cutoff := base.Add(-24 * time.Hour)
	var dead, alive []apikey.Record
	var change apikey.Change
	for i, k := range []struct {
		revoked, expires time.Duration // before base; 0 for unset
		purged           bool
	}{
		{revoked: 48 * time.Hour, purged: true},
		{expires: 72 * time.Hour, purged: true},
		{revoked: 30 * time.Hour, expires: time.Hour, purged: true},
		{revoked: time.Hour, expires: 30 * time.Hour, purged: true}, // expired before being revoked
		{revoked: time.Hour},
		{expires: time.Hour},
		{expires: -time.Hour},
		{},
		{revoked: 25 * time.Hour, purged: true},
	} {
		account := []string{acme, globex}[i%2]
		r := record(account, []string{apikey.Production, apikey.Staging}[i%3%2], apikey.Server, false)
		if k.revoked != 0 {
			r.RevokedAt = base.Add(-k.revoked)
		}
		if k.expires != 0 {
			r.ExpiresAt = base.Add(-k.expires)
		}
		change.Insert = append(change.Insert, r)
		change.Events = append(change.Events, apikey.Event{Time: base, Actor: owner, Action: apikey.ActionCreate,
			Account: account, Environment: r.Environment, KeyID: r.ID, KeyType: r.Type})
		if k.purged {
			dead = append(dead, r)
		} else {
			alive = append(alive, r)
		}
	}
	// An imported key is never purged: its record refuses its digest to a
	// later import.
	imported := record(acme, apikey.Production, apikey.Server, false)
	imported.Hash = apikey.NewOpaque("$sha256$" + strings.Repeat("A", 43))
	imported.RevokedAt, imported.ExpiresAt = base.Add(-72*time.Hour), base.Add(-72*time.Hour)
	require.True(t, imported.Imported())
	change.Insert = append(change.Insert, imported)
	alive = append(alive, imported)
	apply(t, s, change)
	feed, hasFeed := s.(storage.ChangeFeed)
	var since int64
	if hasFeed {
		var err error
		since, err = feed.Revision(ctx)
		require.NoError(t, err)
	}

	got, err := p.PurgeKeys(ctx, cutoff, 2)
	require.NoError(t, err)
	require.Len(t, got, 2, "at most limit keys")
	for _, k := range got {
		_, err := s.Key(ctx, k.ID)
		assert.ErrorIs(t, err, apikey.ErrNotFound, "a purged key is gone")
	}
	rest, err := p.PurgeKeys(ctx, cutoff, 100)
	require.NoError(t, err)
	assert.Len(t, rest, len(dead)-2, "then the rest")
	again, err := p.PurgeKeys(ctx, cutoff, 100)
	require.NoError(t, err)
	assert.Empty(t, again, "nothing is left")

	purged := map[string]apikey.PurgedKey{}
	for _, k := range append(got, rest...) {
		purged[k.ID] = k
	}
	for _, r := range dead {
		k, ok := purged[r.ID]
		if assert.True(t, ok, "%s is purged", describe(r)) {
			assert.Equal(t, apikey.PurgedKey{Account: r.Account, Environment: r.Environment, ID: r.ID}, k)
		}
		_, err := s.Key(ctx, r.ID)
		assert.ErrorIs(t, err, apikey.ErrNotFound)
	}
	for _, r := range alive {
		assertSameRecord(t, r, mustKey(t, s, r.ID))
	}
	for _, env := range []struct{ account, env string }{{acme, apikey.Production}, {acme, apikey.Staging}, {globex, apikey.Production}, {globex, apikey.Staging}} {
		for _, r := range allKeys(t, s, env.account, env.env) {
			_, gone := purged[r.ID]
			assert.False(t, gone, "Keys lists no purged key")
		}
	}
	if log, ok := s.(storage.AuditLog); ok {
		events, err := log.Events(ctx, storage.EventQuery{Account: acme})
		require.NoError(t, err)
		assert.Len(t, events, 5, "a purged key's events stay")
	}
	if hasFeed {
		changes, _, err := feed.Changes(ctx, since, 100)
		require.NoError(t, err)
		require.Len(t, changes, len(dead), "one feed entry per purged key")
		for i, ch := range changes {
			assert.Equal(t, since+int64(i)+1, ch.Revision, "revisions are dense")
			assert.Contains(t, purged, ch.KeyID)
			assert.Equal(t, purged[ch.KeyID].Account, ch.Account)
			assert.Nil(t, ch.Key, "a purged key's entry carries no record: readers evict it")
		}
	}
}

// testPurgeKeepsLineageQuota: purging a rotation lineage's first key keeps
// the balance its surviving replacement spends from; purging the lineage's
// last key removes it.
func testPurgeKeepsLineageQuota(t *testing.T, c Config) {
	s := c.New(t)
	p := as[storage.KeyPurger](t, s)
	l := as[storage.QuotaLedger](t, s)
	q := apikey.Quota{Limit: 10, Refill: 10, Period: apikey.Daily}
	first := mustKey(t, s, quotaKey(t, s, q))
	at := time.Now().UTC().Truncate(time.Microsecond)
	assert.Equal(t, int64(6), lease(t, l, first.ID, 6, at).Granted)

	next := record(acme, apikey.Production, apikey.Server, false)
	next.Limits, next.Lineage = first.Limits, first.ID
	first.RotatedAt, first.ExpiresAt = at.Add(-48*time.Hour), at.Add(-47*time.Hour)
	apply(t, s, apikey.Change{Update: []apikey.Record{first}, Insert: []apikey.Record{next}})

	got, err := p.PurgeKeys(context.Background(), at.Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{first.ID}, purgedIDs(got))
	assert.Equal(t, int64(4), lease(t, l, next.ID, 10, at).Granted, "the replacement keeps the lineage's balance")

	cur := mustKey(t, s, next.ID)
	cur.RevokedAt = at.Add(-2 * time.Hour)
	apply(t, s, apikey.Change{Update: []apikey.Record{cur}})
	got, err = p.PurgeKeys(context.Background(), at.Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{next.ID}, purgedIDs(got))
	_, err = l.LeaseQuota(context.Background(), next.ID, 1, at)
	assert.ErrorIs(t, err, apikey.ErrNotFound)

	// A key issued later with the first key's id as its lineage (which no
	// Manager does) would start a fresh balance: the old one is gone.
	again := record(acme, apikey.Production, apikey.Server, false)
	again.Limits, again.Lineage = first.Limits, first.ID
	apply(t, s, apikey.Change{Insert: []apikey.Record{again}})
	assert.Equal(t, int64(10), lease(t, l, again.ID, 10, at).Granted, "the purged lineage's balance was deleted")
}

func purgedIDs(keys []apikey.PurgedKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	return out
}

// testPurgeConcurrent: purging from several processes while others
// rotate, revoke and create keys: every dead key is deleted once, no live
// key is, and every environment keeps one active default key of each type.
func testPurgeConcurrent(t *testing.T, c Config) {
	s := c.New(t)
	stores := c.peers(t, s, 4)
	ms := managers(t, stores)
	ctx := context.Background()
	past := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Microsecond)
	bootstrap(t, ms[0], acmeOwner, apikey.Production)
	var change apikey.Change
	const deadKeys = 60
	for i := range deadKeys {
		r := record(acme, apikey.Production, apikey.Server, false)
		r.CreatedAt = past
		if i%2 == 0 {
			r.RevokedAt = past.Add(time.Hour)
		} else {
			r.ExpiresAt = past.Add(time.Hour)
		}
		change.Insert = append(change.Insert, r)
	}
	apply(t, s, change)

	op := apikey.Actor{ID: "purger", Role: apikey.Owner, Account: apikey.AnyAccount}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	deleted := make(chan int, 2)
	for i := range 2 {
		wg.Go(func() {
			n, err := ms[i].Purge(ctx, op, 24*time.Hour)
			deleted <- n
			errs <- err
		})
	}
	for i := 2; i < 4; i++ {
		wg.Go(func() {
			for range 3 {
				if _, err := ms[i].Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production,
					Type: apikey.Server, Grace: time.Hour}); err != nil {
					errs <- err
				}
				k, err := ms[i].Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production,
					Type: apikey.Server, Scopes: []string{"orders:read"}})
				if err != nil {
					errs <- err
					continue
				}
				if _, err := ms[i].Revoke(ctx, acmeOwner, k.View.ID); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	close(deleted)
	for err := range errs {
		require.NoError(t, err)
	}
	total := 0
	for n := range deleted {
		total += n
	}
	assert.Equal(t, deadKeys, total, "every dead key is deleted once")
	keys := allKeys(t, s, acme, apikey.Production)
	// The bootstrapped defaults, and per rotating writer three
	// replacements and three revoked keys: none died before the cutoff.
	assert.Len(t, keys, 2+2*(3+3), "live and recently dead keys stay")
	assertOneActiveDefault(t, s, acme, apikey.Production)
}

// testManagerOwners: Manager.OwnerKeys pages an owner's keys across
// environments; RevokeOwner revokes them in one write, skips default
// keys, audits each; concurrent calls revoke each key once.
func testManagerOwners(t *testing.T, c Config) {
	s := c.New(t)
	stores := c.peers(t, s, 3)
	ms := managers(t, stores)
	ctx := context.Background()
	bootstrap(t, ms[0], acmeOwner, apikey.Production, apikey.Staging)
	bootstrap(t, ms[0], globexOwner, apikey.Production)
	var want []string
	for i := range 7 {
		env := []string{apikey.Production, apikey.Staging}[i%2]
		k, err := ms[0].Create(ctx, acmeOwner, apikey.CreateRequest{Environment: env, Type: apikey.Server,
			Scopes: []string{"orders:read"}, Owner: "user-7"})
		require.NoError(t, err)
		want = append(want, k.View.ID)
	}
	_, err := ms[0].Create(ctx, globexOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"orders:read"}, Owner: "user-7"})
	require.NoError(t, err)
	def := mustDefault(t, s, acme, apikey.Staging, apikey.Client)
	_, err = ms[0].SetOwner(ctx, acmeOwner, def.ID, "user-7")
	require.NoError(t, err)
	want = append(want, def.ID)
	slices.Sort(want)

	var got []string
	for page := (apikey.Page{Limit: 3}); ; {
		list, err := ms[1].OwnerKeys(ctx, acmeOwner, "user-7", page)
		require.NoError(t, err)
		for _, v := range list.Keys {
			got = append(got, v.ID)
		}
		if list.Next == "" {
			break
		}
		page.After = list.Next
	}
	assert.Equal(t, want, got)

	results := make([]apikey.OwnerRevocation, len(ms))
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() { results[i], errs[i] = ms[i].RevokeOwner(ctx, acmeOwner, "user-7") })
	}
	wg.Wait()
	total := 0
	for i := range ms {
		require.NoError(t, errs[i])
		total += results[i].Revoked
		assert.Equal(t, []string{def.Prefix()}, results[i].SkippedDefaults, "the default key is skipped")
	}
	assert.Equal(t, 7, total, "each key is revoked once, whatever the races")
	for _, id := range want {
		r := mustKey(t, s, id)
		assert.Equal(t, id != def.ID, !r.RevokedAt.IsZero(), "%s", describe(r))
	}
	globexKeys, err := ms[0].OwnerKeys(ctx, globexOwner, "user-7", apikey.Page{})
	require.NoError(t, err)
	require.Len(t, globexKeys.Keys, 1)
	assert.Equal(t, apikey.Active, globexKeys.Keys[0].Status, "another account's keys of the same owner stay")
	if log, ok := s.(storage.AuditLog); ok {
		events, err := log.Events(ctx, storage.EventQuery{Account: acme})
		require.NoError(t, err)
		revokes, summaries := 0, 0
		for _, e := range events {
			switch e.Action {
			case apikey.ActionRevoke:
				revokes++
			case apikey.ActionRevokeOwner:
				summaries++
				assert.Contains(t, e.Detail, "user-7")
			}
		}
		assert.Equal(t, 7, revokes, "one event per revoked key")
		assert.Equal(t, len(ms), summaries, "one summary per call")
	}
}

// testManagerRevokeOwnerRace: a key issued to an owner by another process
// between RevokeOwner's listing and its write (a Create, a SetOwner) is
// revoked too when RevokeOwner returns: it lists again after each write.
func testManagerRevokeOwnerRace(t *testing.T, c Config) {
	s := c.New(t)
	idx := as[storage.OwnerIndex](t, s)
	peer := manager(t, c.peers(t, s, 2)[1]) // another process
	ctx := context.Background()
	bootstrap(t, peer, acmeOwner, apikey.Production, apikey.Staging)
	first, err := peer.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"orders:read"}, Owner: "leaver"})
	require.NoError(t, err)
	moved, err := peer.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server,
		Scopes: []string{"orders:read"}, Owner: "stayer"})
	require.NoError(t, err)

	var issued []string
	racing := &listingHook{OwnerIndex: idx, after: func(listing int) {
		if listing != 1 {
			return
		}
		k, err := peer.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client,
			Owner: "leaver"})
		require.NoError(t, err)
		_, err = peer.SetOwner(ctx, acmeOwner, moved.View.ID, "leaver")
		require.NoError(t, err)
		issued = append(issued, k.View.ID, moved.View.ID)
	}}
	m := manager(t, struct {
		apikey.Store
		storage.OwnerIndex
	}{s, racing})
	res, err := m.RevokeOwner(ctx, acmeOwner, "leaver")
	require.NoError(t, err)
	require.Len(t, issued, 2, "the keys were issued during the call")
	assert.Equal(t, 3, res.Revoked)
	for _, id := range append(issued, first.View.ID) {
		r := mustKey(t, s, id)
		assert.False(t, r.RevokedAt.IsZero(), "%s of the owner is revoked when RevokeOwner returns", describe(r))
	}
	assert.Equal(t, apikey.Active, mustKey(t, s, mustDefault(t, s, acme, apikey.Staging, apikey.Client).ID).Status(time.Now()),
		"default keys stay")
}

// listingHook is an owner index that calls after, with their count, after
// each listing of keys that are not revoked.
type listingHook struct {
	storage.OwnerIndex
	mu       sync.Mutex
	listings int
	after    func(listing int)
}

func (h *listingHook) OwnerKeys(ctx context.Context, q apikey.OwnerQuery) ([]apikey.Record, error) {
	out, err := h.OwnerIndex.OwnerKeys(ctx, q)
	if q.NotRevoked {
		h.mu.Lock()
		h.listings++
		n := h.listings
		h.mu.Unlock()
		h.after(n)
	}
	return out, err
}
