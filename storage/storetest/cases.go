package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// base is a fixed UTC time with microsecond precision, as stores keep it.
var base = time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC)

var owner = apikey.Actor{ID: "storetest-owner", Role: apikey.Owner}

var idCounter struct {
	sync.Mutex
	n int
}

// record returns a record with a fresh id; it is not stored.
func record(env string, t apikey.KeyType, isDefault bool) apikey.Record {
	idCounter.Lock()
	idCounter.n++
	id := fmt.Sprintf("st%010d", idCounter.n)
	idCounter.Unlock()
	r := apikey.Record{
		ID: id, Type: t, Environment: env, Name: "test key", Default: isDefault,
		CreatedAt: base, CreatedBy: owner.ID,
		Hash: apikey.NewOpaque("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"),
	}
	if t == apikey.Server {
		r.Scopes = []string{"customers:write", "invoices:read"}
	} else {
		r.Recoverable = apikey.NewOpaque("client-public")
	}
	return r
}

func apply(t *testing.T, s apikey.Store, c apikey.Change) {
	t.Helper()
	require.NoError(t, s.Apply(context.Background(), c))
}

func mustKey(t *testing.T, s apikey.Store, id string) apikey.Record {
	t.Helper()
	r, err := s.Key(context.Background(), id)
	require.NoError(t, err)
	return r
}

// assertSameRecord compares records field by field, times with Equal.
func assertSameRecord(t *testing.T, want, got apikey.Record) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.Type, got.Type)
	assert.Equal(t, want.Environment, got.Environment)
	assert.Equal(t, want.Name, got.Name)
	assert.Equal(t, len(want.Scopes), len(got.Scopes), "scopes")
	assert.Equal(t, fmt.Sprint(want.Scopes), fmt.Sprint(got.Scopes), "scopes")
	assert.Equal(t, want.Default, got.Default)
	assert.Equal(t, want.Hash.Reveal(), got.Hash.Reveal())
	assert.Equal(t, want.Recoverable.Reveal(), got.Recoverable.Reveal())
	assert.Equal(t, want.CreatedBy, got.CreatedBy)
	for _, tm := range []struct {
		name      string
		want, got time.Time
	}{
		{"CreatedAt", want.CreatedAt, got.CreatedAt},
		{"ExpiresAt", want.ExpiresAt, got.ExpiresAt},
		{"RotatedAt", want.RotatedAt, got.RotatedAt},
		{"ExpiryLimit", want.ExpiryLimit, got.ExpiryLimit},
		{"RevokedAt", want.RevokedAt, got.RevokedAt},
		{"LastUsedAt", want.LastUsedAt, got.LastUsedAt},
	} {
		assert.True(t, tm.want.Equal(tm.got), "%s: want %v, got %v", tm.name, tm.want, tm.got)
	}
}

func testNotFound(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	_, err := s.Key(ctx, "nosuchkey000")
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	_, err = s.Settings(ctx, "nosuchenv")
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	err = s.Apply(ctx, apikey.Change{Update: []apikey.Record{{ID: "nosuchkey000", Revision: 1, Type: apikey.Server, Environment: "x"}}})
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	keys, err := s.Keys(ctx, "nosuchenv")
	require.NoError(t, err)
	assert.Empty(t, keys)
	envs, err := s.Environments(ctx)
	require.NoError(t, err)
	assert.Empty(t, envs)
}

func testRoundTrip(t *testing.T, c Config) {
	s := c.New(t)
	full := record("production", apikey.Server, false)
	full.ExpiresAt = base.Add(48 * time.Hour)
	full.RotatedAt = base.Add(time.Hour)
	full.ExpiryLimit = base.Add(72 * time.Hour)
	full.RevokedAt = base.Add(2 * time.Hour)
	full.LastUsedAt = base.Add(3 * time.Hour)
	full.Recoverable = apikey.OpaqueBytes([]byte{0, 1, 2, 255})
	minimal := record("production", apikey.Client, true)
	minimal.Name, minimal.CreatedBy = "", ""
	apply(t, s, apikey.Change{Insert: []apikey.Record{full, minimal}})

	for _, want := range []apikey.Record{full, minimal} {
		got := mustKey(t, s, want.ID)
		assertSameRecord(t, want, got)
		assert.Positive(t, got.Revision, "stored records carry a revision")
		assert.Equal(t, time.UTC, got.CreatedAt.Location(), "times come back in UTC")
	}

	// Returned records are copies. (Hash and Recoverable, apikey.Opaque
	// values, are immutable.)
	got := mustKey(t, s, full.ID)
	got.Scopes[0] = "mutated:write"
	assertSameRecord(t, full, mustKey(t, s, full.ID))

	// An update changes the revision.
	before := mustKey(t, s, full.ID)
	before.Name = "renamed"
	apply(t, s, apikey.Change{Update: []apikey.Record{before}})
	after := mustKey(t, s, full.ID)
	assert.Equal(t, "renamed", after.Name)
	assert.Greater(t, after.Revision, before.Revision)
}

func testKeysByEnvironment(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	a := record("production", apikey.Server, true)
	b := record("production", apikey.Client, true)
	b.CreatedAt = base.Add(-time.Minute)
	other := record("staging", apikey.Server, true)
	apply(t, s, apikey.Change{Insert: []apikey.Record{a, b, other}})
	keys, err := s.Keys(ctx, "production")
	require.NoError(t, err)
	require.Len(t, keys, 2)
	assert.Equal(t, b.ID, keys[0].ID, "creation order")
	assert.Equal(t, a.ID, keys[1].ID)
	keys, err = s.Keys(ctx, "staging")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, other.ID, keys[0].ID)
}

func testDuplicateID(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	r := record("production", apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	dup := record("staging", apikey.Client, false)
	dup.ID = r.ID
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{dup}}), apikey.ErrConflict)
	assert.Equal(t, "production", mustKey(t, s, r.ID).Environment, "the first record stays")
}

func testStaleRevision(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	r := record("production", apikey.Server, false)
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
	r := record("production", apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}})
	stale := mustKey(t, s, r.ID)
	fresh := stale
	fresh.Name = "moved on"
	apply(t, s, apikey.Change{Update: []apikey.Record{fresh}})

	// A change whose update is stale writes none of its parts.
	added := record("production", apikey.Server, false)
	stale.Name = "stale"
	err := s.Apply(ctx, apikey.Change{
		Insert:   []apikey.Record{added},
		Update:   []apikey.Record{stale},
		Settings: []apikey.Settings{{Environment: "production", UpdatedAt: base}},
		Events:   []apikey.Event{{Time: base, Actor: owner, Action: apikey.ActionCreate, Environment: "production", KeyID: added.ID}},
	})
	require.ErrorIs(t, err, apikey.ErrConflict)
	_, err = s.Key(ctx, added.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "insert rolled back")
	_, err = s.Settings(ctx, "production")
	assert.ErrorIs(t, err, apikey.ErrNotFound, "settings rolled back")
	assert.Equal(t, "moved on", mustKey(t, s, r.ID).Name)
	if log, ok := s.(storage.AuditLog); ok {
		events, err := log.Events(ctx, "", 0)
		require.NoError(t, err)
		assert.Empty(t, events, "events rolled back")
	}
}

func testOneDefaultPerType(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	server := record("production", apikey.Server, true)
	client := record("production", apikey.Client, true)
	staging := record("staging", apikey.Server, true)
	apply(t, s, apikey.Change{Insert: []apikey.Record{server, client, staging}})

	second := record("production", apikey.Server, true)
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{second}}), apikey.ErrConflict)
	both := []apikey.Record{record("development", apikey.Server, true), record("development", apikey.Server, true)}
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: both}), apikey.ErrConflict, "two defaults in one change")

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
}

func testSettings(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	apply(t, s, apikey.Change{Settings: []apikey.Settings{
		{Environment: "staging", UpdatedAt: base},
		{Environment: "production", AllowedOrigins: []string{"https://app.example.com", "https://*.example.com"}, UpdatedAt: base},
	}})
	got, err := s.Settings(ctx, "production")
	require.NoError(t, err)
	assert.Equal(t, []string{"https://app.example.com", "https://*.example.com"}, got.AllowedOrigins)
	assert.True(t, base.Equal(got.UpdatedAt))
	assert.Positive(t, got.Revision)

	envs, err := s.Environments(ctx)
	require.NoError(t, err)
	require.Len(t, envs, 2)
	assert.Equal(t, "production", envs[0].Environment, "sorted by name")
	assert.Equal(t, "staging", envs[1].Environment)
	assert.Empty(t, envs[1].AllowedOrigins)

	dup := apikey.Settings{Environment: "production", UpdatedAt: base}
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Settings: []apikey.Settings{dup}}), apikey.ErrConflict, "create twice")

	stale := got
	got.AllowedOrigins = []string{"http://localhost:3000"}
	apply(t, s, apikey.Change{Settings: []apikey.Settings{got}})
	stale.AllowedOrigins = nil
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Settings: []apikey.Settings{stale}}), apikey.ErrConflict, "stale revision")
	now, err := s.Settings(ctx, "production")
	require.NoError(t, err)
	assert.Equal(t, []string{"http://localhost:3000"}, now.AllowedOrigins)
}

func testLastUsedKeptOnUpdate(t *testing.T, c Config) {
	s := c.New(t)
	r := record("production", apikey.Server, false)
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
	r := record("production", apikey.Server, true)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}, Settings: []apikey.Settings{{Environment: "production", UpdatedAt: base}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := s.Key(ctx, r.ID)
	assert.ErrorIs(t, err, context.Canceled, "Key")
	_, err = s.Keys(ctx, "production")
	assert.ErrorIs(t, err, context.Canceled, "Keys")
	_, err = s.Settings(ctx, "production")
	assert.ErrorIs(t, err, context.Canceled, "Settings")
	_, err = s.Environments(ctx)
	assert.ErrorIs(t, err, context.Canceled, "Environments")
	added := record("production", apikey.Server, false)
	assert.ErrorIs(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{added}}), context.Canceled, "Apply")
	_, err = s.Key(context.Background(), added.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "a canceled Apply writes nothing")
	if feed, ok := s.(storage.ChangeFeed); ok {
		_, _, err = feed.Changes(ctx, 0, 10)
		assert.ErrorIs(t, err, context.Canceled, "Changes")
	}
	if log, ok := s.(storage.AuditLog); ok {
		_, err = log.Events(ctx, "", 0)
		assert.ErrorIs(t, err, context.Canceled, "Events")
	}
	if rec, ok := s.(storage.LastUsedRecorder); ok {
		assert.ErrorIs(t, rec.RecordLastUsed(ctx, map[string]time.Time{r.ID: base}), context.Canceled, "RecordLastUsed")
	}
}

func testAuditLog(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	log, ok := s.(storage.AuditLog)
	if !ok {
		t.Skip("store does not implement storage.AuditLog (optional)")
	}
	for i, env := range []string{"production", "staging", "production"} {
		apply(t, s, apikey.Change{Events: []apikey.Event{{
			Time: base.Add(time.Duration(i) * time.Second), Actor: owner, Action: apikey.ActionRotate,
			Environment: env, KeyID: fmt.Sprintf("key%d", i), Detail: "expires soon",
		}}})
	}
	events, err := log.Events(ctx, "production", 0)
	require.NoError(t, err)
	require.Len(t, events, 2)
	assert.Equal(t, "key2", events[0].KeyID, "newest first")
	assert.Equal(t, owner, events[0].Actor)
	assert.Equal(t, apikey.ActionRotate, events[0].Action)
	assert.Equal(t, "expires soon", events[0].Detail)
	assert.True(t, base.Add(2*time.Second).Equal(events[0].Time))
	all, err := log.Events(ctx, "", 2)
	require.NoError(t, err)
	require.Len(t, all, 2, "limit")
	assert.Equal(t, "key1", all[1].KeyID)
}

func testLastUsedRecorder(t *testing.T, c Config) {
	s := c.New(t)
	rec, ok := s.(storage.LastUsedRecorder)
	if !ok {
		t.Skip("store does not implement storage.LastUsedRecorder (optional)")
	}
	ctx := context.Background()
	a, b := record("production", apikey.Server, false), record("production", apikey.Client, false)
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
	feed, ok := s.(storage.ChangeFeed)
	if !ok {
		t.Skip("store does not implement storage.ChangeFeed (optional)")
	}
	ctx := context.Background()
	start, err := feed.Revision(ctx)
	require.NoError(t, err)
	entries, next, err := feed.Changes(ctx, start, 100)
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.Equal(t, start, next)

	r := record("production", apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{r}, Settings: []apikey.Settings{{Environment: "staging", UpdatedAt: base}}})
	stored := mustKey(t, s, r.ID)
	stored.RevokedAt = base
	apply(t, s, apikey.Change{Update: []apikey.Record{stored}})
	apply(t, s, apikey.Change{Events: []apikey.Event{{Time: base, Actor: owner, Action: apikey.ActionReveal, Environment: "production"}}})

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
			assert.Equal(t, "production", e.Environment)
		case "":
			settingEntries++
			assert.Equal(t, "staging", e.Environment)
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
