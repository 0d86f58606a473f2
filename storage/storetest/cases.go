package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

func testNotFound(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	_, err := s.Key(ctx, "nosuchkey000")
	assert.ErrorIs(t, err, apikey.ErrNotFound, "Key")
	_, err = s.DefaultKey(ctx, acme, apikey.Production, apikey.Server)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "DefaultKey")
	_, err = s.Settings(ctx, acme, "nosuchenv")
	assert.ErrorIs(t, err, apikey.ErrNotFound, "Settings")
	err = s.Apply(ctx, apikey.Change{Update: []apikey.Record{{ID: "nosuchkey000", Revision: 1, Account: acme, Type: apikey.Server, Environment: "x"}}})
	assert.ErrorIs(t, err, apikey.ErrNotFound, "Apply: update of a missing record")
	keys, err := s.Keys(ctx, apikey.KeyQuery{Account: acme, Environment: "nosuchenv", Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, keys)
	envs, err := s.Environments(ctx, apikey.EnvironmentQuery{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, envs)
	accounts, err := s.Accounts(ctx, "", 10)
	require.NoError(t, err)
	assert.Empty(t, accounts)
	if log, ok := s.(storage.AuditLog); ok {
		events, err := log.Events(ctx, storage.EventQuery{})
		require.NoError(t, err)
		assert.Empty(t, events)
	}
}

func testRoundTrip(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	full := record(acme, apikey.Production, apikey.Server, false)
	full.Owner = "user_42 Zoë ☃"
	full.Metadata = map[string]string{"team": "billing", "plan": "pro — ünïcode", "empty": ""}
	full.ExpiresAt = base.Add(48 * time.Hour)
	full.RotatedAt = base.Add(time.Hour)
	full.ExpiryLimit = base.Add(72 * time.Hour)
	full.RevokedAt = base.Add(2 * time.Hour)
	full.DisabledAt = base.Add(90 * time.Minute)
	full.LastUsedAt = base.Add(3 * time.Hour)
	full.Recoverable = apikey.OpaqueBytes([]byte{0, 1, 2, 255})
	full.Limits = apikey.Limits{
		Rate:       apikey.RateLimit{Requests: 100, Window: time.Minute, Burst: 20},
		Quota:      apikey.Quota{Limit: 1000, Refill: 500, Period: apikey.Monthly},
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")},
	}
	full.OwnerLimits = apikey.Limits{
		Rate:  apikey.RateLimit{Requests: 1000, Window: time.Hour},
		Quota: apikey.Quota{Limit: 5000, Refill: 5000, Period: apikey.Daily},
	}
	minimal := record(acme, apikey.Production, apikey.Client, true)
	minimal.Name, minimal.CreatedBy = "", ""
	apply(t, s, apikey.Change{Insert: []apikey.Record{full, minimal}})

	for _, want := range []apikey.Record{full, minimal} {
		got := mustKey(t, s, want.ID)
		assertSameRecord(t, want, got)
		assert.Positive(t, got.Revision, "stored records carry a revision")
		assert.Equal(t, time.UTC, got.CreatedAt.Location(), "times come back in UTC")
	}

	// Returned records are copies, whichever method returns them. (Hash
	// and Recoverable, apikey.Opaque values, are immutable.)
	got := mustKey(t, s, full.ID)
	got.Scopes[0] = "mutated:write"
	got.Metadata["team"] = "mutated"
	got.Limits.AllowedIPs[0] = netip.MustParsePrefix("0.0.0.0/0")
	assertSameRecord(t, full, mustKey(t, s, full.ID))
	page, err := s.Keys(ctx, apikey.KeyQuery{Account: acme, Environment: apikey.Production, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page, 2)
	for _, r := range page {
		if r.ID == full.ID {
			r.Metadata["team"] = "mutated"
			r.Scopes[0] = "mutated:write"
		}
	}
	assertSameRecord(t, full, mustKey(t, s, full.ID))

	// Record.Clone copies the metadata map, so that stores may rely on it.
	clone := got.Clone()
	clone.Metadata["team"] = "cloned"
	clone.Scopes[0] = "cloned:write"
	assert.Equal(t, "mutated", got.Metadata["team"], "Clone deep-copies Metadata")
	assert.Equal(t, "mutated:write", got.Scopes[0], "Clone deep-copies Scopes")

	// An update changes the revision and writes owner and metadata.
	before := mustKey(t, s, full.ID)
	before.Name = "renamed"
	before.Owner = ""
	before.Metadata = map[string]string{"team": "payments"}
	apply(t, s, apikey.Change{Update: []apikey.Record{before}})
	after := mustKey(t, s, full.ID)
	assert.Equal(t, "renamed", after.Name)
	assert.Empty(t, after.Owner)
	assert.Equal(t, map[string]string{"team": "payments"}, after.Metadata, "metadata is replaced, not merged")
	assert.Greater(t, after.Revision, before.Revision)
	before = after
	before.Metadata = nil
	apply(t, s, apikey.Change{Update: []apikey.Record{before}})
	assert.Empty(t, mustKey(t, s, full.ID).Metadata, "metadata removed")

	// An update replaces the limits, and the zero Limits removes them.
	before = mustKey(t, s, full.ID)
	before.Limits = apikey.Limits{Rate: apikey.RateLimit{Requests: 1, Window: time.Second}}
	apply(t, s, apikey.Change{Update: []apikey.Record{before}})
	assertSameRecord(t, before, mustKey(t, s, full.ID))
	before = mustKey(t, s, full.ID)
	before.Limits = apikey.Limits{}
	apply(t, s, apikey.Change{Update: []apikey.Record{before}})
	assert.True(t, mustKey(t, s, full.ID).Limits.IsZero(), "limits removed")
}

// testDefaultKey checks the index of default keys: found by account,
// environment and type, and moved by every change that moves the default
// role, in whatever order the change lists its records.
func testDefaultKey(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	server := record(acme, apikey.Production, apikey.Server, true)
	client := record(acme, apikey.Production, apikey.Client, true)
	extra := record(acme, apikey.Production, apikey.Server, false)
	staging := record(acme, apikey.Staging, apikey.Server, true)
	apply(t, s, apikey.Change{Insert: []apikey.Record{extra, server, client, staging}})

	assertSameRecord(t, server, mustDefault(t, s, acme, apikey.Production, apikey.Server))
	assertSameRecord(t, client, mustDefault(t, s, acme, apikey.Production, apikey.Client))
	assertSameRecord(t, staging, mustDefault(t, s, acme, apikey.Staging, apikey.Server))
	for _, miss := range []struct {
		account, env string
		typ          apikey.KeyType
	}{
		{acme, apikey.Staging, apikey.Client},      // no default of that type
		{acme, apikey.Development, apikey.Server},  // no such environment
		{globex, apikey.Production, apikey.Server}, // no such account
		{apikey.DefaultAccount, apikey.Production, apikey.Server},
	} {
		_, err := s.DefaultKey(ctx, miss.account, miss.env, miss.typ)
		assert.ErrorIs(t, err, apikey.ErrNotFound, "%s/%s %s", miss.account, miss.env, miss.typ)
	}

	// An update of the default key shows, with its new revision.
	renamed := mustKey(t, s, server.ID)
	renamed.Name = "renamed"
	apply(t, s, apikey.Change{Update: []apikey.Record{renamed}})
	got := mustDefault(t, s, acme, apikey.Production, apikey.Server)
	assert.Equal(t, "renamed", got.Name)
	assert.Equal(t, mustKey(t, s, server.ID).Revision, got.Revision)

	// A rotation: the old default updated, the new one inserted.
	old := mustKey(t, s, server.ID)
	old.Default, old.RotatedAt, old.ExpiresAt = false, base.Add(time.Minute), base.Add(time.Hour)
	next := record(acme, apikey.Production, apikey.Server, true)
	apply(t, s, apikey.Change{Update: []apikey.Record{old}, Insert: []apikey.Record{next}})
	assert.Equal(t, next.ID, mustDefault(t, s, acme, apikey.Production, apikey.Server).ID, "the default moves to the new key")

	// The default role handed between two stored keys in one change, the
	// new default listed first, then last.
	from, to := mustKey(t, s, next.ID), mustKey(t, s, extra.ID)
	from.Default, to.Default = false, true
	apply(t, s, apikey.Change{Update: []apikey.Record{to, from}})
	assert.Equal(t, extra.ID, mustDefault(t, s, acme, apikey.Production, apikey.Server).ID, "swap, new default listed first")
	from, to = mustKey(t, s, extra.ID), mustKey(t, s, next.ID)
	from.Default, to.Default = false, true
	apply(t, s, apikey.Change{Update: []apikey.Record{from, to}})
	assert.Equal(t, next.ID, mustDefault(t, s, acme, apikey.Production, apikey.Server).ID, "swap, new default listed last")

	// A default that stops being one leaves its slot empty.
	last := mustKey(t, s, next.ID)
	last.Default = false
	apply(t, s, apikey.Change{Update: []apikey.Record{last}})
	_, err := s.DefaultKey(ctx, acme, apikey.Production, apikey.Server)
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	assert.Equal(t, client.ID, mustDefault(t, s, acme, apikey.Production, apikey.Client).ID, "the other type keeps its default")
}

func testDuplicateID(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	r := record(acme, apikey.Production, apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	dup := record(acme, apikey.Staging, apikey.Client, false)
	dup.ID = r.ID
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{dup}}), apikey.ErrConflict)
	dup.Account, dup.Environment = globex, apikey.Production
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{dup}}), apikey.ErrConflict,
		"key ids are unique across accounts")
	got := mustKey(t, s, r.ID)
	assert.Equal(t, apikey.Production, got.Environment, "the first record stays")
	assert.Equal(t, acme, got.Account)
}

func testStaleRevision(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	r := record(acme, apikey.Production, apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	first := mustKey(t, s, r.ID)
	second := first
	first.Name = "first writer"
	apply(t, s, apikey.Change{Update: []apikey.Record{first}})
	second.Name = "second writer"
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Update: []apikey.Record{second}}), apikey.ErrConflict)
	assert.Equal(t, "first writer", mustKey(t, s, r.ID).Name)
}

func testAtomicChange(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	r := record(acme, apikey.Production, apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	stale := mustKey(t, s, r.ID)
	fresh := stale
	fresh.Name = "moved on"
	apply(t, s, apikey.Change{Update: []apikey.Record{fresh}})

	// A change whose update is stale writes none of its parts.
	added := record(acme, apikey.Production, apikey.Server, true)
	stale.Name = "stale"
	err := s.Apply(ctx, apikey.Change{
		Insert:   []apikey.Record{added},
		Update:   []apikey.Record{stale},
		Settings: []apikey.Settings{{Account: acme, Environment: apikey.Production, UpdatedAt: base}},
		Events: []apikey.Event{{Time: base, Actor: acmeOwner, Action: apikey.ActionCreate, Account: acme,
			Environment: apikey.Production, KeyID: added.ID, KeyType: added.Type}},
	})
	require.ErrorIs(t, err, apikey.ErrConflict)
	_, err = s.Key(ctx, added.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "insert rolled back")
	_, err = s.DefaultKey(ctx, acme, apikey.Production, apikey.Server)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "default index rolled back")
	keys, err := s.Keys(ctx, apikey.KeyQuery{Account: acme, Environment: apikey.Production, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{r.ID}, ids(keys), "key index rolled back")
	_, err = s.Settings(ctx, acme, apikey.Production)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "settings rolled back")
	accounts, err := s.Accounts(ctx, "", 10)
	require.NoError(t, err)
	assert.Empty(t, accounts, "account index rolled back")
	assert.Equal(t, "moved on", mustKey(t, s, r.ID).Name)
	if log, ok := s.(storage.AuditLog); ok {
		events, err := log.Events(ctx, storage.EventQuery{})
		require.NoError(t, err)
		assert.Empty(t, events, "events rolled back")
	}
}

func testOneDefaultPerType(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	server := record(acme, apikey.Production, apikey.Server, true)
	client := record(acme, apikey.Production, apikey.Client, true)
	staging := record(acme, apikey.Staging, apikey.Server, true)
	apply(t, s, apikey.Change{Insert: []apikey.Record{server, client, staging}})

	// Another account's environment of the same name has its own defaults.
	apply(t, s, apikey.Change{Insert: []apikey.Record{record(globex, apikey.Production, apikey.Server, true)}})

	second := record(acme, apikey.Production, apikey.Server, true)
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{second}}), apikey.ErrConflict)
	both := []apikey.Record{record(acme, apikey.Development, apikey.Server, true), record(acme, apikey.Development, apikey.Server, true)}
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: both}), apikey.ErrConflict, "two defaults in one change")
	third := record(globex, apikey.Production, apikey.Server, true)
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{third}}), apikey.ErrConflict, "in the other account too")

	// Handing the default role to a new key in one change is fine.
	old := mustKey(t, s, server.ID)
	old.Default = false
	apply(t, s, apikey.Change{Update: []apikey.Record{old}, Insert: []apikey.Record{second}})
	assert.True(t, mustKey(t, s, second.ID).Default)
	assert.False(t, mustKey(t, s, server.ID).Default)

	// Making a non-default key default while another is default conflicts.
	again := mustKey(t, s, server.ID)
	again.Default = true
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Update: []apikey.Record{again}}), apikey.ErrConflict)
	assert.Equal(t, second.ID, mustDefault(t, s, acme, apikey.Production, apikey.Server).ID, "the refused change moved nothing")
}

func testSettings(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	apply(t, s, apikey.Change{Settings: []apikey.Settings{
		{Account: acme, Environment: apikey.Staging, UpdatedAt: base},
		{Account: acme, Environment: apikey.Production, AllowedOrigins: []string{"https://app.example.com", "https://*.example.com"}, UpdatedAt: base},
	}})
	got := mustSettings(t, s, acme, apikey.Production)
	assert.Equal(t, acme, got.Account)
	assert.Equal(t, apikey.Production, got.Environment)
	assert.Equal(t, []string{"https://app.example.com", "https://*.example.com"}, got.AllowedOrigins)
	assert.True(t, base.Equal(got.UpdatedAt))
	assert.True(t, got.ClosedAt.IsZero())
	assert.True(t, got.SuspendedAt.IsZero())
	assert.Positive(t, got.Revision)
	assert.Empty(t, mustSettings(t, s, acme, apikey.Staging).AllowedOrigins)

	// A copy: changing it changes nothing stored.
	got.AllowedOrigins[0] = "https://mutated.example.com"
	assert.Equal(t, "https://app.example.com", mustSettings(t, s, acme, apikey.Production).AllowedOrigins[0])
	got = mustSettings(t, s, acme, apikey.Production)

	dup := apikey.Settings{Account: acme, Environment: apikey.Production, UpdatedAt: base}
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Settings: []apikey.Settings{dup}}), apikey.ErrConflict, "create twice")
	// The same environment name in another account is another environment.
	apply(t, s, apikey.Change{Settings: []apikey.Settings{{Account: globex, Environment: apikey.Production, UpdatedAt: base}}})
	assert.Empty(t, mustSettings(t, s, globex, apikey.Production).AllowedOrigins)
	missing := apikey.Settings{Account: globex, Environment: apikey.Staging, UpdatedAt: base, Revision: got.Revision}
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Settings: []apikey.Settings{missing}}), apikey.ErrConflict,
		"a revision for settings that do not exist")

	stale := got
	got.AllowedOrigins = []string{"http://localhost:3000"}
	got.ClosedAt = base.Add(time.Hour)
	got.SuspendedAt = base.Add(30 * time.Minute)
	apply(t, s, apikey.Change{Settings: []apikey.Settings{got}})
	stale.AllowedOrigins = nil
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Settings: []apikey.Settings{stale}}), apikey.ErrConflict, "stale revision")
	now := mustSettings(t, s, acme, apikey.Production)
	assert.Equal(t, []string{"http://localhost:3000"}, now.AllowedOrigins)
	assert.True(t, base.Add(time.Hour).Equal(now.ClosedAt), "ClosedAt round-trips")
	assert.True(t, base.Add(30*time.Minute).Equal(now.SuspendedAt), "SuspendedAt round-trips")
	assert.Greater(t, now.Revision, got.Revision)
	assert.Empty(t, mustSettings(t, s, globex, apikey.Production).AllowedOrigins, "the other account's settings are untouched")
	assert.True(t, mustSettings(t, s, globex, apikey.Production).ClosedAt.IsZero())

	// Clearing a time stores "never".
	now.SuspendedAt = time.Time{}
	apply(t, s, apikey.Change{Settings: []apikey.Settings{now}})
	assert.True(t, mustSettings(t, s, acme, apikey.Production).SuspendedAt.IsZero(), "SuspendedAt cleared")
}

func testLastUsedKeptOnUpdate(t *testing.T, c Config) {
	s := c.New(t)
	r := record(acme, apikey.Production, apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	read := mustKey(t, s, r.ID)
	if rec, ok := s.(storage.LastUsedRecorder); ok {
		require.NoError(t, rec.RecordLastUsed(context.Background(), map[string]time.Time{r.ID: base.Add(time.Hour)}))
	} else {
		touched := read
		touched.LastUsedAt = base.Add(time.Hour)
		apply(t, s, apikey.Change{Update: []apikey.Record{touched}})
		read = mustKey(t, s, r.ID)
	}
	read.Name = "updated by a writer that read before the last use"
	read.LastUsedAt = time.Time{}
	err := s.Apply(context.Background(), apikey.Change{Update: []apikey.Record{read}})
	if errors.Is(err, apikey.ErrConflict) {
		t.Fatal("recording last use must not change a key's revision")
	}
	require.NoError(t, err)
	assert.True(t, base.Add(time.Hour).Equal(mustKey(t, s, r.ID).LastUsedAt), "the later last-used time is kept")
}

func testContextCanceled(t *testing.T, c Config) {
	s := c.New(t)
	r := record(acme, apikey.Production, apikey.Server, true)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}, Settings: []apikey.Settings{{Account: acme, Environment: apikey.Production, UpdatedAt: base}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := s.Key(ctx, r.ID)
	assert.ErrorIs(t, err, context.Canceled, "Key")
	_, err = s.DefaultKey(ctx, acme, apikey.Production, apikey.Server)
	assert.ErrorIs(t, err, context.Canceled, "DefaultKey")
	_, err = s.Keys(ctx, apikey.KeyQuery{Account: acme, Environment: apikey.Production, Limit: 10})
	assert.ErrorIs(t, err, context.Canceled, "Keys")
	_, err = s.Settings(ctx, acme, apikey.Production)
	assert.ErrorIs(t, err, context.Canceled, "Settings")
	_, err = s.Environments(ctx, apikey.EnvironmentQuery{Limit: 10})
	assert.ErrorIs(t, err, context.Canceled, "Environments")
	_, err = s.Accounts(ctx, "", 10)
	assert.ErrorIs(t, err, context.Canceled, "Accounts")
	added := record(acme, apikey.Production, apikey.Server, false)
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{added}}), context.Canceled, "Apply")
	_, err = s.Key(context.Background(), added.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "a canceled Apply writes nothing")
	if feed, ok := s.(storage.ChangeFeed); ok {
		_, _, err = feed.Changes(ctx, 0, 10)
		assert.ErrorIs(t, err, context.Canceled, "Changes")
		_, err = feed.Revision(ctx)
		assert.ErrorIs(t, err, context.Canceled, "Revision")
	}
	if log, ok := s.(storage.AuditLog); ok {
		_, err = log.Events(ctx, storage.EventQuery{})
		assert.ErrorIs(t, err, context.Canceled, "Events")
	}
	if rec, ok := s.(storage.LastUsedRecorder); ok {
		assert.ErrorIs(t, rec.RecordLastUsed(ctx, map[string]time.Time{r.ID: base}), context.Canceled, "RecordLastUsed")
	}
}

func testLastUsedRecorder(t *testing.T, c Config) {
	s := c.New(t)
	rec := as[storage.LastUsedRecorder](t, s)
	ctx := context.Background()
	a, b := record(acme, apikey.Production, apikey.Server, false), record(globex, apikey.Production, apikey.Client, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{a, b}})
	revision := mustKey(t, s, a.ID).Revision
	require.NoError(t, rec.RecordLastUsed(ctx, map[string]time.Time{a.ID: base.Add(time.Hour), b.ID: base, "unknownkey00": base}))
	require.NoError(t, rec.RecordLastUsed(ctx, map[string]time.Time{a.ID: base})) // older: ignored
	got := mustKey(t, s, a.ID)
	assert.True(t, base.Add(time.Hour).Equal(got.LastUsedAt), "last used never moves backwards")
	assert.Equal(t, revision, got.Revision, "last use does not change the revision")
	assert.True(t, base.Equal(mustKey(t, s, b.ID).LastUsedAt))
}

func testChangeFeed(t *testing.T, c Config) {
	s := c.New(t)
	feed := as[storage.ChangeFeed](t, s)
	ctx := context.Background()
	start, err := feed.Revision(ctx)
	require.NoError(t, err)
	entries, next, err := feed.Changes(ctx, start, 100)
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.Equal(t, start, next)

	r := record(acme, apikey.Production, apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}, Settings: []apikey.Settings{{Account: globex, Environment: apikey.Staging, UpdatedAt: base}}})
	stored := mustKey(t, s, r.ID)
	stored.RevokedAt = base
	apply(t, s, apikey.Change{Update: []apikey.Record{stored}})
	apply(t, s, apikey.Change{Events: []apikey.Event{{Time: base, Actor: acmeOwner, Action: apikey.ActionReveal, Account: acme, Environment: apikey.Production}}})

	entries, next, err = feed.Changes(ctx, start, 100)
	require.NoError(t, err)
	require.Len(t, entries, 3, "one entry per key or settings written; events alone write none")
	var keyEntries, settingEntries int
	for i, e := range entries {
		assert.Greater(t, e.Revision, start)
		if i > 0 {
			assert.Greater(t, e.Revision, entries[i-1].Revision, "ascending")
		}
		switch e.KeyID {
		case r.ID:
			keyEntries++
			assert.Equal(t, acme, e.Account, "a key's entry names its account")
			assert.Equal(t, apikey.Production, e.Environment)
			if e.Key != nil { // optional: the record as stored when read, or later
				current := mustKey(t, s, r.ID)
				assertSameRecord(t, current, *e.Key)
				assert.Equal(t, current.Revision, e.Key.Revision, "the entry's key is the current record, even on the older entry")
			}
		case "":
			settingEntries++
			assert.Equal(t, globex, e.Account, "a settings entry names its account")
			assert.Equal(t, apikey.Staging, e.Environment)
			assert.Nil(t, e.Key, "a settings entry carries no key")
		default:
			t.Errorf("unexpected entry %+v", e)
		}
	}
	assert.Equal(t, 2, keyEntries)
	assert.Equal(t, 1, settingEntries)
	assert.Equal(t, entries[2].Revision, next)
	assert.Equal(t, r.ID, entries[2].KeyID, "the revocation comes last")

	page, pageNext, err := feed.Changes(ctx, start, 1)
	require.NoError(t, err)
	require.Len(t, page, 1, "limit")
	assert.Equal(t, page[0].Revision, pageNext)
	rest, _, err := feed.Changes(ctx, pageNext, 100)
	require.NoError(t, err)
	assert.Len(t, rest, 2, "paging resumes after the last entry")

	latest, err := feed.Revision(ctx)
	require.NoError(t, err)
	assert.Equal(t, next, latest)

	_, resume, err := feed.Changes(ctx, latest+100, 10)
	assert.ErrorIs(t, err, storage.ErrFeedGap, "a reader ahead of the store must drop its caches")
	assert.Equal(t, latest, resume, "and resume from the current revision")
}

// describe names a record in assertion messages.
func describe(r apikey.Record) string {
	return fmt.Sprintf("%s (%s/%s, created %s)", r.Prefix(), r.Account, r.Environment, r.CreatedAt.Format(time.RFC3339Nano))
}
