package jsonstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/custom-store/jsonstore"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/storetest"
)

var (
	owner       = apikey.Actor{ID: "jsonstore-test", Role: apikey.Owner} // the default account
	acmeOwner   = apikey.Actor{ID: "acme-owner", Role: apikey.Owner, Account: "acme"}
	globexOwner = apikey.Actor{ID: "globex-owner", Role: apikey.Owner, Account: "globex"}
)

// open opens a store on path and fails the test on error.
func open(tb testing.TB, path string) *jsonstore.Store {
	tb.Helper()
	s, err := jsonstore.Open(path)
	require.NoError(tb, err)
	return s
}

func manager(t *testing.T, s apikey.Store) *apikey.Manager {
	t.Helper()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	return m
}

// storedRecord is a record with its opaque parts revealed, for
// assert.Equal: apikey.Opaque values compare with Equal, not reflection.
type storedRecord struct {
	apikey.Record
	Hash, Recoverable string
}

func stored(recs []apikey.Record) []storedRecord {
	out := make([]storedRecord, len(recs))
	for i, r := range recs {
		out[i] = storedRecord{Hash: r.Hash.Reveal(), Recoverable: r.Recoverable.Reveal()}
		r.Hash, r.Recoverable = apikey.Opaque{}, apikey.Opaque{}
		out[i].Record = r
	}
	return out
}

// contents is everything a store answers, through its contract.
type contents struct {
	Accounts     []string
	Environments []apikey.Settings
	Keys         map[string][]storedRecord // by account/environment
	Defaults     map[string]string         // key id by account/environment/type
	Events       []apikey.Event
}

func read(t *testing.T, s *jsonstore.Store) contents {
	t.Helper()
	ctx := context.Background()
	c := contents{Keys: map[string][]storedRecord{}, Defaults: map[string]string{}}
	var err error
	c.Accounts, err = s.Accounts(ctx, "", 100)
	require.NoError(t, err)
	c.Environments, err = s.Environments(ctx, apikey.EnvironmentQuery{Limit: 100})
	require.NoError(t, err)
	for _, e := range c.Environments {
		where := e.Account + "/" + e.Environment
		keys, err := s.Keys(ctx, apikey.KeyQuery{Account: e.Account, Environment: e.Environment, Limit: 100})
		require.NoError(t, err)
		c.Keys[where] = stored(keys)
		for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
			if d, err := s.DefaultKey(ctx, e.Account, e.Environment, typ); err == nil {
				c.Defaults[where+"/"+string(typ)] = d.ID
			}
		}
	}
	c.Events, err = s.Events(ctx, storage.EventQuery{})
	require.NoError(t, err)
	return c
}

// TestConformance runs the suite, each subtest on a fresh file: the cases
// of apikey.Store and of the two optional interfaces this store implements,
// which it requires. There is no Config.Peer: a second Store on the same
// file would stand for a second process, which this store does not support.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New: func(tb testing.TB) apikey.Store {
			return open(tb, filepath.Join(tb.TempDir(), "keystile.json"))
		},
		Require: storetest.AuditLog | storetest.LastUsedRecorder,
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keystile.json")
	s := open(t, path)
	m := manager(t, s)
	for _, actor := range []apikey.Actor{acmeOwner, globexOwner} {
		_, err := m.Bootstrap(ctx, actor, apikey.Production)
		require.NoError(t, err)
	}
	_, err := m.SetAllowedOrigins(ctx, acmeOwner, apikey.Production, []string{"https://app.example.com"})
	require.NoError(t, err)
	created, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"invoices:read"}, Owner: "user_42", Metadata: map[string]string{"team": "billing"}})
	require.NoError(t, err)
	rotated, err := m.Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.RecordLastUsed(ctx, map[string]time.Time{rotated.View.ID: m.Now()}))
	closed, err := m.CloseAccount(ctx, globexOwner, "globex")
	require.NoError(t, err)
	require.Equal(t, 2, closed)

	want := read(t, s)
	got := read(t, open(t, path))
	assert.Equal(t, want, got, "keys with hashes, recoverable keys and revisions; settings; defaults; events with Seq")
	assert.Equal(t, []string{"acme", "globex"}, got.Accounts)
	assert.Len(t, got.Keys["acme/production"], 4)
	assert.Equal(t, rotated.View.ID, got.Defaults["acme/production/server"])
	assert.Len(t, got.Events, 11, "bootstrap 4, origins, create, rotate 2, close, revoke 2")
	for _, k := range got.Keys["acme/production"] {
		assert.NotEmpty(t, k.Hash)
		assert.Equal(t, k.ID == rotated.View.ID, !k.LastUsedAt.IsZero(), "last use of %s", k.Record)
		if k.ID == created.View.ID {
			assert.Equal(t, "user_42", k.Owner)
			assert.Equal(t, map[string]string{"team": "billing"}, k.Metadata)
		}
	}
	for _, e := range got.Environments {
		assert.Equal(t, e.Account == "globex", !e.ClosedAt.IsZero(), "%s/%s", e.Account, e.Environment)
	}

	// The revision counter survived too: the reopened store goes on where
	// the first left off, and the lifecycle still works on it.
	reopened := open(t, path)
	again, err := manager(t, reopened).Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
	require.NoError(t, err)
	rec, err := reopened.Key(ctx, again.View.ID)
	require.NoError(t, err)
	for _, keys := range want.Keys {
		for _, k := range keys {
			assert.Greater(t, rec.Revision, k.Revision)
		}
	}
	_, err = manager(t, reopened).Create(ctx, globexOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	assert.ErrorIs(t, err, apikey.ErrAccountClosed, "a closed account stays closed")
}

// TestOpenFormat1 opens a file written before accounts (format 1, no
// "version"): testdata/v1.json, written by examples/custom-store at commit
// 2d00591 (run twice, so that it holds a bootstrap and two rotations).
// Everything in it joins the default account, and the next write saves
// format 2.
func TestOpenFormat1(t *testing.T) {
	ctx := context.Background()
	old, err := os.ReadFile(filepath.Join("testdata", "v1.json"))
	require.NoError(t, err)
	require.NotContains(t, string(old), `"version"`)
	require.NotContains(t, string(old), `"account"`)
	path := filepath.Join(t.TempDir(), "keystile.json")
	require.NoError(t, os.WriteFile(path, old, 0o600))
	s := open(t, path)

	c := read(t, s)
	assert.Equal(t, []string{apikey.DefaultAccount}, c.Accounts)
	require.Len(t, c.Environments, 1)
	assert.Equal(t, apikey.DefaultAccount, c.Environments[0].Account)
	assert.Equal(t, apikey.Development, c.Environments[0].Environment)
	keys := c.Keys["default/development"]
	require.Len(t, keys, 4)
	var order []string
	for _, k := range keys {
		order = append(order, k.ID)
		assert.Equal(t, apikey.DefaultAccount, k.Account)
		assert.NotEmpty(t, k.Hash)
	}
	assert.Equal(t, []string{"VIySU9XAbMuc", "uBt6eYe6LLwG", "UV3Dj744cPfQ", "uL2nSk23HFHZ"}, order, "creation order, then id")
	assert.Equal(t, "uL2nSk23HFHZ", c.Defaults["default/development/server"])
	assert.Equal(t, "VIySU9XAbMuc", c.Defaults["default/development/client"])
	require.Len(t, c.Events, 6)
	for i, e := range c.Events {
		assert.Equal(t, int64(6-i), e.Seq, "newest first, numbered by their place")
		assert.Equal(t, apikey.DefaultAccount, e.Account)
		assert.NotEmpty(t, e.KeyType, "old events get their key's type")
		assert.Equal(t, e.KeyID == "VIySU9XAbMuc", e.KeyType == apikey.Client, e.KeyPrefix())
	}

	// The default account's actor works on it as before: the publishable
	// key's recoverable copy and hash came through.
	m := manager(t, s)
	key, err := m.Reveal(ctx, owner, "client-VIySU9XAbMuc")
	require.NoError(t, err)
	rec, err := s.Key(ctx, key.ID())
	require.NoError(t, err)
	match, _, err := apikey.Argon2id{}.Verify([]byte(key.Reveal()), rec.Hash.Reveal())
	require.NoError(t, err)
	assert.True(t, match, "the stored hash verifies the revealed key")
	_, err = m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Development, Type: apikey.Server, ExpireNow: true})
	require.NoError(t, err)

	// The next write saved format 2, with the accounts.
	saved, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(saved), `"version": 2`)
	assert.Contains(t, string(saved), `"account": "default"`)
	after := read(t, open(t, path))
	assert.Len(t, after.Keys["default/development"], 5)
	assert.Len(t, after.Events, 6+3, "the old events, the reveal, the rotation and its new key")
	assert.Equal(t, c.Events, after.Events[3:], "old events keep their Seq")
}

func TestOpenRejectsBadFile(t *testing.T) {
	const key = `{"id": "%s", "account": "%s", "type": "server", "environment": "production", "default": true,
		"created_at": "2026-11-25T12:00:00Z", "hash": "x", "revision": %s}`
	row := func(id, account, revision string) string {
		return fmt.Sprintf(key, id, account, revision)
	}
	for _, tt := range []struct{ name, file string }{
		{"not JSON", `{"keys": [`},
		{"a newer format", `{"version": 3, "revision": 0, "keys": [], "settings": [], "events": []}`},
		{"a duplicate key id", `{"version": 2, "revision": 2, "keys": [` + row("aaaaaaaaaaaa", "acme", "1") + `,` + row("aaaaaaaaaaaa", "globex", "2") + `]}`},
		{"two default keys of one type", `{"version": 2, "revision": 2, "keys": [` + row("aaaaaaaaaaaa", "acme", "1") + `,` + row("bbbbbbbbbbbb", "acme", "2") + `]}`},
		{"a key with no account", `{"version": 2, "revision": 1, "keys": [` + row("aaaaaaaaaaaa", "", "1") + `]}`},
		{"a revision past the file's", `{"version": 2, "revision": 1, "keys": [` + row("aaaaaaaaaaaa", "acme", "2") + `]}`},
		{"settings with no account", `{"version": 2, "revision": 1, "settings": [{"environment": "production", "revision": 1}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keystile.json")
			require.NoError(t, os.WriteFile(path, []byte(tt.file), 0o600))
			_, err := jsonstore.Open(path)
			require.Error(t, err)
			t.Log(err)
		})
	}
	// The same rows, valid, open.
	path := filepath.Join(t.TempDir(), "keystile.json")
	good := `{"version": 2, "revision": 2, "keys": [` + row("aaaaaaaaaaaa", "acme", "1") + `,` + row("bbbbbbbbbbbb", "globex", "2") + `]}`
	require.NoError(t, os.WriteFile(path, []byte(good), 0o600))
	_, err := jsonstore.Open(path)
	assert.NoError(t, err)
}

func TestFileHoldsNoSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keystile.json")
	issued, err := manager(t, open(t, path)).Bootstrap(ctx, acmeOwner, apikey.Development)
	require.NoError(t, err)
	require.Equal(t, apikey.Server, issued[0].Key.Type())

	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the file holds hashes")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(data), issued[0].Key.Reveal(), "the server key")
	assert.Contains(t, string(data), "$argon2id$", "the hashes are stored")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

func TestFailedWriteChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "gone")
	require.NoError(t, os.Mkdir(dir, 0o700))
	s := open(t, filepath.Join(dir, "keystile.json"))
	require.NoError(t, os.Remove(dir)) // the next write cannot create its temporary file

	now := time.Now().UTC()
	err := s.Apply(ctx, apikey.Change{
		Settings: []apikey.Settings{{Account: "acme", Environment: apikey.Staging, UpdatedAt: now}},
		Events:   []apikey.Event{{Time: now, Actor: acmeOwner, Action: apikey.ActionBootstrap, Account: "acme", Environment: apikey.Staging}},
	})
	require.Error(t, err)
	_, err = s.Settings(ctx, "acme", apikey.Staging)
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	accounts, err := s.Accounts(ctx, "", 10)
	require.NoError(t, err)
	assert.Empty(t, accounts)
	events, err := s.Events(ctx, storage.EventQuery{})
	require.NoError(t, err)
	assert.Empty(t, events)
}

// BenchmarkLargeEnvironment shows reads by index (DefaultKey, KeysPage)
// flat as the environment grows, and writes (Rotate) that rewrite the file.
func BenchmarkLargeEnvironment(b *testing.B) {
	storetest.BenchmarkLargeEnvironment(b, storetest.Config{
		New: func(tb testing.TB) apikey.Store {
			return open(tb, filepath.Join(tb.TempDir(), "keystile.json"))
		},
	})
}
