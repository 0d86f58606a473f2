package jsonstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/custom-store/jsonstore"
	"github.com/keystile/keystile/storage/storetest"
)

var owner = apikey.Actor{ID: "jsonstore-test", Role: apikey.Owner}

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

// TestConformance runs the suite, each subtest on a fresh file. There is no
// Config.Peer: a second Store on the same file would stand for a second
// process, which this store does not support.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New: func(tb testing.TB) apikey.Store {
			return open(tb, filepath.Join(tb.TempDir(), "keystile.json"))
		},
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keystile.json")
	s := open(t, path)
	m := manager(t, s)
	_, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	_, err = m.SetAllowedOrigins(ctx, owner, apikey.Production, []string{"https://app.example.com"})
	require.NoError(t, err)
	rotated, err := m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.RecordLastUsed(ctx, map[string]time.Time{rotated.View.ID: m.Now()}))

	keys, err := s.Keys(ctx, apikey.Production)
	require.NoError(t, err)
	settings, err := s.Environments(ctx)
	require.NoError(t, err)
	events, err := s.Events(ctx, "", 0)
	require.NoError(t, err)

	reopened := open(t, path)
	gotKeys, err := reopened.Keys(ctx, apikey.Production)
	require.NoError(t, err)
	assert.Equal(t, stored(keys), stored(gotKeys), "keys, with hashes, recoverable keys and revisions")
	require.Len(t, gotKeys, 3)
	for _, k := range gotKeys {
		assert.False(t, k.Hash.IsZero())
		assert.Equal(t, k.ID == rotated.View.ID, !k.LastUsedAt.IsZero(), "last use of %s", k)
	}
	gotSettings, err := reopened.Environments(ctx)
	require.NoError(t, err)
	assert.Equal(t, settings, gotSettings)
	gotEvents, err := reopened.Events(ctx, "", 0)
	require.NoError(t, err)
	assert.Equal(t, events, gotEvents)
	assert.Len(t, gotEvents, 5, "bootstrap twice, allowed origins, rotate, create")

	// The revision counter survived too: the reopened store goes on where
	// the first left off, and the lifecycle still works on it.
	again, err := manager(t, reopened).Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
	require.NoError(t, err)
	rec, err := reopened.Key(ctx, again.View.ID)
	require.NoError(t, err)
	for _, k := range keys {
		assert.Greater(t, rec.Revision, k.Revision)
	}
}

func TestFileHoldsNoSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keystile.json")
	issued, err := manager(t, open(t, path)).Bootstrap(ctx, owner, apikey.Development)
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

	err := s.Apply(ctx, apikey.Change{
		Settings: []apikey.Settings{{Environment: apikey.Staging, UpdatedAt: time.Now().UTC()}},
		Events:   []apikey.Event{{Time: time.Now().UTC(), Actor: owner, Action: apikey.ActionBootstrap, Environment: apikey.Staging}},
	})
	require.Error(t, err)
	_, err = s.Settings(ctx, apikey.Staging)
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	events, err := s.Events(ctx, "", 0)
	require.NoError(t, err)
	assert.Empty(t, events)
}

func TestOpenRejectsCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keystile.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"keys": [`), 0o600))
	_, err := jsonstore.Open(path)
	assert.Error(t, err)
}
