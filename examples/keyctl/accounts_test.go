package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/admin"
)

// TestTwoAccountsEndToEnd: two accounts with the same environment names,
// made with keyctl, served by the middleware and the management API over
// the same database. Each sees, uses and changes only its own keys.
func TestTwoAccountsEndToEnd(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	keys := map[string]apikey.Key{} // "acme production server", ...
	for _, account := range []string{"acme", "globex"} {
		code, out, errOut := keyctl(t, db, "--account", account, "bootstrap", "production", "staging")
		require.Equal(t, exitOK, code, errOut)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			fields := strings.Fields(line) // "<environment> <type> <key>"
			require.Len(t, fields, 3, line)
			k, err := apikey.ParseKey(fields[2])
			require.NoError(t, err)
			keys[account+" "+fields[0]+" "+fields[1]] = k
		}
	}
	require.Len(t, keys, 8)
	acme, globex := keys["acme production server"], keys["globex production server"]

	// keyctl: each account lists its own keys, and the other's are not found.
	code, out, _ := keyctl(t, db, "--account", "acme", "list", "production")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, acme.Prefix())
	assert.NotContains(t, out, globex.Prefix())
	code, _, errOut := keyctl(t, db, "--account", "acme", "get", globex.Prefix())
	assert.Equal(t, exitRefused, code, "another account's key does not exist for acme")
	assert.Contains(t, errOut, "not found")
	code, out, _ = keyctl(t, db, "--account", "*", "accounts")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "acme\nglobex\n", out, "an operator lists the accounts")
	code, _, _ = keyctl(t, db, "--account", "acme", "accounts")
	assert.Equal(t, exitRefused, code, "listing accounts is for operators")

	// The middleware and the management API over the same database.
	ctx := context.Background()
	store, err := exampledb.OpenFor(ctx, db, exampledb.Migrate)
	require.NoError(t, err)
	defer store.DB().Close()
	v, err := middleware.New(middleware.Options{Store: store})
	require.NoError(t, err)
	defer v.Close()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, OnEvent: v.Invalidate})
	require.NoError(t, err)
	api, err := admin.New(admin.Options{Manager: m, Audit: store, Authorize: admin.KeyScopes})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/whoami", v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.FromContext(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]string{"account": id.Account, "environment": id.Environment})
	})))
	mux.Handle("/admin/", v.Handler(http.StripPrefix("/admin", api)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path string, key apikey.Key) (int, map[string]any) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("X-API-Key", key.Reveal())
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, body
	}

	for account, key := range map[string]apikey.Key{"acme": acme, "globex": globex} {
		code, who := call("GET", "/v1/whoami", key)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, map[string]any{"account": account, "environment": "production"}, who,
			"the identity names the key's account")
	}
	code, list := call("GET", "/admin/environments/production/keys", acme)
	require.Equal(t, http.StatusOK, code)
	for _, k := range list["keys"].([]any) {
		assert.Equal(t, "acme", k.(map[string]any)["account"], "acme's key lists acme's keys only")
	}
	for _, path := range []string{"/admin/keys/" + globex.Prefix(), "/admin/keys/" + globex.ID()} {
		code, _ = call("GET", path, acme)
		assert.Equal(t, http.StatusNotFound, code, "acme's key does not see globex's key %s", path)
	}
	code, _ = call("POST", "/admin/keys/"+keys["globex staging client"].Prefix()+"/revoke", acme)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = call("GET", "/admin/environments/staging/keys", acme)
	assert.Equal(t, http.StatusNotFound, code, "a key is confined to its own environment")

	// Closing one account with keyctl: its keys are refused, the other's work.
	code, out, errOut = keyctl(t, db, "--account", "globex", "close", "globex")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "4 keys revoked")
	require.Eventually(t, func() bool {
		code, _ := call("GET", "/v1/whoami", globex)
		return code == http.StatusUnauthorized
	}, middleware.DefaultFeedInterval*5, middleware.DefaultFeedInterval/20, "the close reaches this process through the change feed")
	code, _ = call("GET", "/v1/whoami", acme)
	assert.Equal(t, http.StatusOK, code, "acme is untouched")
}
