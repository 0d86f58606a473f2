package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

// TestDisableEnable: a key disabled through the API is refused by the
// middleware with key_disabled and works again once enabled; a default
// key is 409 rotate_first; a key-authenticated caller switches only keys
// within its scopes; every role but owners is refused.
func TestDisableEnable(t *testing.T) {
	tn := newTenants(t)
	owner := tn.keys["acme/production/server"].Key.Reveal() // a full-access key: acts as an owner
	scoped := tn.keys["acme/production/scoped"]
	useScoped := func() int {
		r := httptest.NewRequest("GET", "/environments", nil)
		r.Header.Set("X-API-Key", scoped.Key.Reveal())
		w := httptest.NewRecorder()
		tn.h.ServeHTTP(w, r)
		return w.Code
	}
	require.Equal(t, http.StatusForbidden, useScoped(), "the scoped key authenticates (and lacks the admin scope)")

	for _, tt := range []struct {
		name, key, path string
		status          int
		code, state     string
	}{
		{"disable", owner, "/keys/" + scoped.Key.Prefix() + "/disable", 200, "", "disabled"},
		{"disable again", owner, "/keys/" + scoped.View.ID + "/disable", 200, "", "disabled"},
		{"enable", owner, "/keys/" + scoped.View.ID + "/enable", 200, "", "active"},
		{"enable again", owner, "/keys/" + scoped.View.ID + "/enable", 200, "", "active"},
		{"a default key", owner, "/keys/" + tn.keys["acme/production/client"].View.ID + "/disable", 409, "rotate_first", ""},
		{"another account's key", owner, "/keys/" + tn.keys["globex/production/scoped"].View.ID + "/disable", 404, "not_found", ""},
		{"a full key in the path", owner, "/keys/" + scoped.Key.Reveal() + "/disable", 422, "invalid_key_id", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := tn.send(t, tt.key, "POST", tt.path, "")
			require.Equal(t, tt.status, status, "%v", body)
			if tt.code != "" {
				assert.Equal(t, tt.code, body["code"])
				return
			}
			assert.Equal(t, tt.state, body["status"])
			_, hasDisabledAt := body["disabled_at"]
			assert.Equal(t, tt.state == "disabled", hasDisabledAt)
			want := map[string]int{"disabled": http.StatusUnauthorized, "active": http.StatusForbidden}[tt.state]
			assert.Equal(t, want, useScoped(), "the middleware in front")
		})
	}

	var caller admin.Caller
	api, err := admin.New(admin.Options{Manager: tn.m, Authorize: func(*http.Request) (admin.Caller, error) { return caller, nil }})
	require.NoError(t, err)
	for _, role := range []apikey.Role{apikey.Member, apikey.ReadOnly} {
		caller = admin.Caller{Actor: apikey.Actor{ID: "bob", Role: role}, Account: "acme"}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest("POST", "/keys/"+scoped.View.ID+"/disable", nil))
		assert.Equal(t, http.StatusForbidden, w.Code, "%s: %s", role, w.Body)
		assert.Contains(t, w.Body.String(), `"code":"role_not_allowed"`)
	}
}

// TestSuspendResume: operators suspend and resume an account through the
// API; its members may not. While suspended, its keys are refused by the
// middleware (403 account_suspended) and its owners' changes with the same
// code, but they can read; resuming restores every key; closed accounts
// are 409 account_closed.
func TestSuspendResume(t *testing.T) {
	tn := newTenants(t)
	var caller admin.Caller
	api, err := admin.New(admin.Options{Manager: tn.m, Audit: tn.store, CloseAccounts: true,
		Authorize: func(*http.Request) (admin.Caller, error) { return caller, nil }})
	require.NoError(t, err)
	do := func(c admin.Caller, method, path, body string) (int, map[string]any) {
		t.Helper()
		caller = c
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		var out map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
		return w.Code, out
	}
	acmeOwner := admin.Caller{Actor: apikey.Actor{ID: "alice", Role: apikey.Owner}, Account: "acme"}
	operator := admin.Caller{Actor: apikey.Actor{ID: "ops", Role: apikey.Owner}, Operator: true}
	operatorReader := admin.Caller{Actor: apikey.Actor{ID: "ops", Role: apikey.ReadOnly}, Operator: true}
	keyStatus := func(key string) (int, string) {
		r := httptest.NewRequest("GET", "/environments", nil)
		r.Header.Set("X-API-Key", tn.keys[key].Key.Reveal())
		w := httptest.NewRecorder()
		tn.h.ServeHTTP(w, r)
		var p map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		code, _ := p["code"].(string)
		return w.Code, code
	}

	for _, tt := range []struct {
		name   string
		caller admin.Caller
		path   string
		status int
		code   string
	}{
		{"the account's owner", acmeOwner, "/accounts/acme/suspend", 403, "role_not_allowed"},
		{"a read-only operator", operatorReader, "/accounts/acme/suspend", 403, "role_not_allowed"},
		{"an unknown account", operator, "/accounts/initech/suspend", 404, "not_found"},
		{"an invalid account", operator, "/accounts/Not%20An%20Id/suspend", 422, "invalid_account"},
		{"resume by the account's owner", acmeOwner, "/accounts/acme/resume", 403, "role_not_allowed"},
	} {
		status, body := do(tt.caller, "POST", tt.path, "")
		assert.Equal(t, tt.status, status, "%s: %v", tt.name, body)
		assert.Equal(t, tt.code, body["code"], tt.name)
	}

	status, body := do(operator, "POST", "/accounts/acme/suspend", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, map[string]any{"account": "acme", "suspended": true}, body)
	status, code := keyStatus("acme/production/server")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, "account_suspended", code)
	status, _ = keyStatus("globex/production/server")
	assert.Equal(t, http.StatusOK, status, "another account is untouched")

	status, body = do(acmeOwner, "POST", "/environments/staging/keys", `{"type":"client"}`)
	assert.Equal(t, http.StatusForbidden, status, "%v", body)
	assert.Equal(t, "account_suspended", body["code"])
	status, body = do(acmeOwner, "PUT", "/environments/staging/origins", `{"allowed_origins":[]}`)
	assert.Equal(t, http.StatusForbidden, status, "%v", body)
	assert.Equal(t, "account_suspended", body["code"])
	status, body = do(acmeOwner, "GET", "/environments", "")
	require.Equal(t, http.StatusOK, status, "owners still read: %v", body)
	for _, e := range body["environments"].([]any) {
		assert.NotEmpty(t, e.(map[string]any)["suspended_at"], "settings show the suspension")
	}
	status, body = do(acmeOwner, "GET", "/audit", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "suspend_account", body["events"].([]any)[0].(map[string]any)["action"])

	status, body = do(operator, "POST", "/accounts/acme/resume", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, map[string]any{"account": "acme", "suspended": false}, body)
	status, _ = keyStatus("acme/production/server")
	assert.Equal(t, http.StatusOK, status, "resumed")

	status, body = do(operator, "POST", "/accounts/acme/suspend", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	status, body = do(operator, "POST", "/accounts/acme/close", `{"confirm":"acme"}`)
	require.Equal(t, http.StatusOK, status, "closing a suspended account works: %v", body)
	for _, path := range []string{"/accounts/acme/suspend", "/accounts/acme/resume"} {
		status, body = do(operator, "POST", path, "")
		assert.Equal(t, http.StatusConflict, status, "%s: %v", path, body)
		assert.Equal(t, "account_closed", body["code"])
	}
}
