package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
)

// The formats of keys issued before keystile that the tests declare.
var (
	skLive  = apikey.ImportFormat{Prefix: "sk_live_", Length: 32}
	hexKeys = apikey.ImportFormat{Prefix: "key_", Length: 32, Alphabet: "0123456789abcdef"}
)

// oldKey returns a key string of the sk_live_ format, different for each c.
func oldKey(c byte) string { return "sk_live_" + strings.Repeat(string(c), 32) }

// importer imports keys: an operator, acting across accounts.
var importer = apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}

func withImported(o *middleware.Options) { o.Keys.Imported = []apikey.ImportFormat{skLive, hexKeys} }

// importKey imports key into production with req's other fields.
func (f *fixture) importKey(key string, req apikey.ImportRequest) apikey.View {
	f.t.Helper()
	req.Digest = apikey.ImportDigest(key)
	req.Account = cmpOr(req.Account, apikey.DefaultAccount)
	req.Environment = cmpOr(req.Environment, apikey.Production)
	if req.Type == "" {
		req.Type, req.Scopes = apikey.Server, []string{apikey.AllScopes}
	}
	view, err := f.manager.Import(context.Background(), importer, req)
	require.NoError(f.t, err)
	return view
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestImportedKeys(t *testing.T) {
	f := newFixture(t, withImported)
	valid := f.importKey(oldKey('a'), apikey.ImportRequest{Owner: "user_42", Metadata: map[string]string{"plan": "pro"}})
	hexKey := "key_" + strings.Repeat("0f", 16)
	f.importKey(hexKey, apikey.ImportRequest{})
	revoked := f.importKey(oldKey('r'), apikey.ImportRequest{})
	_, err := f.manager.Revoke(context.Background(), owner, revoked.ID)
	require.NoError(t, err)
	f.importKey(oldKey('e'), apikey.ImportRequest{ExpiresAt: f.clock.Now().Add(time.Second)})
	f.importKey(oldKey('c'), apikey.ImportRequest{Type: apikey.Client})
	f.clock.Advance(time.Second)
	f.caughtUp()
	// A keystile key naming the id of an imported record, and the checksum
	// it needs.
	forged := forge(apikey.Server, valid.ID, 'x')

	for _, tc := range []struct {
		name     string
		key      string
		policy   middleware.Policy
		want     error // nil: admitted
		reads    int64 // Key reads of the first request
		imported bool
	}{
		{"imported", oldKey('a'), middleware.Policy{}, nil, 1, true},
		{"hex format", hexKey, middleware.Policy{}, nil, 1, true},
		{"unknown of the format", oldKey('u'), middleware.Policy{}, middleware.ErrInvalidKey, 1, false},
		{"revoked", oldKey('r'), middleware.Policy{}, middleware.ErrRevokedKey, 1, false},
		{"expired", oldKey('e'), middleware.Policy{}, middleware.ErrExpiredKey, 1, false},
		{"publishable, on a server route", oldKey('c'), middleware.Policy{}, middleware.ErrKeyType, 1, false},
		{"publishable (cached above)", oldKey('c'), anyType, nil, 0, true},
		{"too short", oldKey('a')[:39], middleware.Policy{}, middleware.ErrMalformedKey, 0, false},
		{"other prefix", "sk_test_" + strings.Repeat("a", 32), middleware.Policy{}, middleware.ErrMalformedKey, 0, false},
		{"outside the alphabet", "key_" + strings.Repeat("0F", 16), middleware.Policy{}, middleware.ErrMalformedKey, 0, false},
		{"keystile key with an imported id", forged, middleware.Policy{}, middleware.ErrInvalidKey, 1, false},
		{"keystile key", f.keys["production/server"].Reveal(), middleware.Policy{}, nil, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads, verifies := f.store.Calls(faultstore.OpKey), f.verifies()
			for i := range 2 { // the second is answered from the cache
				id, err := f.v.Check(request(tc.key), tc.policy)
				if tc.want == nil {
					require.NoError(t, err)
					assert.Equal(t, tc.imported, id.Imported)
				} else {
					require.ErrorIs(t, err, tc.want)
				}
				if i == 0 {
					assert.Equal(t, tc.reads, f.store.Calls(faultstore.OpKey)-reads, "Key reads")
				}
			}
			assert.Equal(t, tc.reads, f.store.Calls(faultstore.OpKey)-reads, "Key reads of the second request")
			if tc.key != f.keys["production/server"].Reveal() {
				assert.Equal(t, verifies, f.verifies(), "no argon2 for an imported or junk key")
			}
		})
	}

	id, err := f.v.Check(request(oldKey('a')), middleware.Policy{})
	require.NoError(t, err)
	assert.Equal(t, "server-"+valid.ID, id.Prefix)
	assert.Equal(t, valid.ID, id.KeyID)
	assert.Equal(t, "user_42", id.Owner)
	assert.Equal(t, map[string]string{"plan": "pro"}, id.Metadata)

	// Behind Authenticate, the inner Require authorizes the same imported key.
	h := f.v.Authenticate(f.v.Require(middleware.Policy{})(okHandler))
	w := serve(h, request(oldKey('a')))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "server-"+valid.ID, w.Body.String())
}

// TestImportedKeyWithoutFormat: a Validator that declares no format
// refuses imported keys as malformed, with no storage call.
func TestImportedKeyWithoutFormat(t *testing.T) {
	f := newFixture(t, nil)
	f.importKey(oldKey('a'), apikey.ImportRequest{})
	reads := f.store.Calls(faultstore.OpKey)
	_, err := f.v.Check(request(oldKey('a')), middleware.Policy{})
	require.ErrorIs(t, err, middleware.ErrMalformedKey)
	assert.Equal(t, reads, f.store.Calls(faultstore.OpKey))
}

func TestImportFormatOptions(t *testing.T) {
	f := newFixture(t, nil)
	_, err := middleware.New(middleware.Options{Store: f.store, Keys: middleware.KeyOptions{
		Imported: []apikey.ImportFormat{skLive, {Prefix: "server-", Length: 32}},
	}})
	require.ErrorIs(t, err, apikey.ErrInvalidImportFormat)
	assert.Contains(t, err.Error(), "Options.Keys.Imported[1]")
}

// TestRotateImportedKey: an imported key rotated with a grace keeps
// working until the grace ends, says so, and its replacement is a keystile
// key.
func TestRotateImportedKey(t *testing.T) {
	f := newFixture(t, withImported)
	view := f.importKey(oldKey('a'), apikey.ImportRequest{Scopes: []string{"charges:write"}})
	_, err := f.v.Check(request(oldKey('a')), middleware.Policy{})
	require.NoError(t, err)

	issued, err := f.manager.Rotate(context.Background(), owner, apikey.RotateRequest{KeyID: view.ID, Grace: time.Hour})
	require.NoError(t, err)
	w := serve(f.v.Handler(okHandler), request(oldKey('a')))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, f.clock.Now().Add(time.Hour).Format(time.RFC3339), w.Header().Get(middleware.HeaderKeyExpires))
	id, err := f.v.Check(request(issued.Key.Reveal()), middleware.Policy{Scope: "charges:write"})
	require.NoError(t, err)
	assert.False(t, id.Imported)

	f.clock.Advance(time.Hour)
	_, err = f.v.Check(request(oldKey('a')), middleware.Policy{})
	require.ErrorIs(t, err, middleware.ErrExpiredKey)
}

// TestImportedKeyFailuresThrottled: without the failure cache, a key id
// that keeps failing is throttled as every key id is.
func TestImportedKeyFailuresThrottled(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { withImported(o); o.ThrottleFailures = 2; o.FailureTTL = -1 })
	view := f.importKey(oldKey('a'), apikey.ImportRequest{})
	// Make the record's digest another key's: the presented key finds its
	// record by id but not its digest, as a colliding id would.
	f.store.After(func(_ context.Context, c *faultstore.Call) {
		if c.ID == view.ID && c.Err == nil {
			other := c.Record
			other.Hash = apikey.NewOpaque("$sha256$" + strings.Repeat("A", 43))
			c.Record = other
		}
	}, faultstore.OpKey)
	var throttled bool
	for range 4 {
		_, err := f.v.Check(request(oldKey('a')), middleware.Policy{})
		if errors.Is(err, middleware.ErrThrottled) {
			throttled = true
		} else {
			require.ErrorIs(t, err, middleware.ErrInvalidKey)
		}
	}
	assert.True(t, throttled, "failures of one imported key id are throttled")
	assert.Zero(t, f.verifies())
}

// TestImportedKeyCachedAllocs: checking a cached imported key costs the
// format match, one SHA-256 for the digest and one for the id, and
// allocates the id.
func TestImportedKeyCachedAllocs(t *testing.T) {
	f := newFixture(t, withImported)
	f.importKey(oldKey('a'), apikey.ImportRequest{})
	r := request(oldKey('a'))
	_, err := f.v.Check(r, middleware.Policy{})
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(100, func() { _, _ = f.v.Check(r, middleware.Policy{}) })
	rk := request(f.keys["production/server"].Reveal())
	_, err = f.v.Check(rk, middleware.Policy{})
	require.NoError(t, err)
	base := testing.AllocsPerRun(100, func() { _, _ = f.v.Check(rk, middleware.Policy{}) })
	assert.LessOrEqual(t, allocs, base+1, "the imported key's id is its only allocation more than a keystile key's")
}

// TestImportedKeyAdmittedOnceImported: a legacy key presented before its
// import is refused and its refusal cached, yet admitted once imported: at
// once in the importing process (Manager.Import's event evicts the key id,
// cached refusals included), and through the change feed in another.
func TestImportedKeyAdmittedOnceImported(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { withImported(o); o.FailureTTL = time.Hour })
	other, err := middleware.New(middleware.Options{Store: f.store, Hasher: f.hasher, Now: f.clock.Now,
		FeedInterval: 10 * time.Millisecond, FailureTTL: time.Hour, Keys: middleware.KeyOptions{Imported: []apikey.ImportFormat{skLive}}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	legacy := oldKey('m')
	for _, v := range []*middleware.Validator{f.v, other} {
		for range 2 { // the second is refused from the failure cache
			_, err := v.Check(request(legacy), middleware.Policy{})
			require.ErrorIs(t, err, middleware.ErrInvalidKey, "not imported yet")
		}
	}
	require.Equal(t, 1, f.v.Stats().CachedFailures, "the refusal is cached")
	view := f.importKey(legacy, apikey.ImportRequest{})
	id, err := f.v.Check(request(legacy), middleware.Policy{})
	require.NoError(t, err, "imported through this process's Manager, yet refused from the failure cache")
	assert.Equal(t, view.ID, id.KeyID)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := other.Check(request(legacy), middleware.Policy{})
		assert.NoError(c, err)
	}, 5*time.Second, 10*time.Millisecond, "another process admits the imported key through the change feed")
}
