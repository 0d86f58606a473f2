package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/storage/memory"
)

func actorIn(account string) apikey.Actor {
	return apikey.Actor{ID: "alice", Role: apikey.Owner, Account: account}
}

// tenants is two accounts, acme and globex, with the same environment
// names (production and staging), behind the real middleware and the
// management API with KeyScopes, as a service would mount them.
type tenants struct {
	store *memory.Store
	m     *apikey.Manager
	v     *middleware.Validator
	h     http.Handler
	keys  map[string]apikey.Issued // "acme/production/server", ...
}

func newTenants(t *testing.T) *tenants {
	t.Helper()
	tn := &tenants{store: memory.New(), keys: map[string]apikey.Issued{}}
	var err error
	tn.v, err = middleware.New(middleware.Options{Store: tn.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tn.v.Close() })
	tn.m, err = apikey.NewManager(apikey.ManagerOptions{Store: tn.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, OnEvent: tn.v.Invalidate})
	require.NoError(t, err)
	ctx := context.Background()
	for _, account := range []string{"acme", "globex"} {
		for _, env := range []string{apikey.Production, apikey.Staging} {
			issued, err := tn.m.Bootstrap(ctx, actorIn(account), env)
			require.NoError(t, err)
			for _, is := range issued {
				tn.keys[account+"/"+env+"/"+string(is.Key.Type())] = is
			}
		}
		_, err := tn.m.SetAllowedOrigins(ctx, actorIn(account), apikey.Production, []string{"https://" + account + ".example"})
		require.NoError(t, err)
		scoped, err := tn.m.Create(ctx, actorIn(account), apikey.CreateRequest{
			Environment: apikey.Production, Type: apikey.Server, Name: "worker", Owner: account + "-ops", Scopes: []string{"invoices:read"}})
		require.NoError(t, err)
		tn.keys[account+"/production/scoped"] = scoped
	}
	api, err := admin.New(admin.Options{Manager: tn.m, Audit: tn.store, Authorize: admin.KeyScopes})
	require.NoError(t, err)
	tn.h = tn.v.Handler(api)
	return tn
}

// send makes a request with key and decodes the JSON answer.
func (tn *tenants) send(t *testing.T, key, method, path, body string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("X-API-Key", key)
	w := httptest.NewRecorder()
	tn.h.ServeHTTP(w, r)
	var out map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
	return w.Code, out
}

// TestAccountIsolation runs two accounts with the same environment names
// through the real middleware and the management API: a key of acme never
// sees, changes or lists globex's keys, environments or audit events, and
// globex's key ids are 404 to it, whatever the route.
func TestAccountIsolation(t *testing.T) {
	tn := newTenants(t)
	acme := tn.keys["acme/production/server"].Key.Reveal()
	theirs := []apikey.Issued{tn.keys["globex/production/server"], tn.keys["globex/production/client"], tn.keys["globex/production/scoped"]}

	// Lists show acme's own.
	status, body := tn.send(t, acme, "GET", "/environments/production/keys", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	keys := body["keys"].([]any)
	require.Len(t, keys, 3)
	for _, k := range keys {
		assert.Equal(t, "acme", k.(map[string]any)["account"])
	}
	status, body = tn.send(t, acme, "GET", "/environments", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	envs := body["environments"].([]any)
	require.Len(t, envs, 1, "confined to its key's environment")
	assert.Equal(t, "acme", envs[0].(map[string]any)["account"])
	assert.Equal(t, []any{"https://acme.example"}, envs[0].(map[string]any)["allowed_origins"])
	status, body = tn.send(t, acme, "GET", "/audit?limit=1000", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	require.NotEmpty(t, body["events"])
	for _, e := range body["events"].([]any) {
		assert.Equal(t, "acme", e.(map[string]any)["account"], "%v", e)
		assert.Equal(t, apikey.Production, e.(map[string]any)["environment"])
	}

	// Every key route answers 404 for globex's keys, and changes nothing.
	for _, k := range theirs {
		before, err := tn.m.Get(context.Background(), actorIn("globex"), k.View.ID)
		require.NoError(t, err)
		for _, r := range []struct{ method, action, body string }{
			{"GET", "", ""},
			{"POST", "/rotate", `{"grace":"0s"}`},
			{"PUT", "/grace", `{"grace":"1h"}`},
			{"POST", "/revoke", ``},
			{"PUT", "/scopes", `{"scopes":["*"]}`},
			{"PUT", "/owner", `{"owner":"mallory"}`},
			{"PUT", "/metadata", `{"metadata":{"stolen":"yes"}}`},
			{"POST", "/reveal", ``},
		} {
			for _, name := range []string{k.View.ID, k.Key.Prefix()} {
				status, body := tn.send(t, acme, r.method, "/keys/"+name+r.action, r.body)
				assert.Equal(t, http.StatusNotFound, status, "%s %s: %v", r.method, r.action, body)
				assert.Equal(t, "not_found", body["code"])
			}
		}
		after, err := tn.m.Get(context.Background(), actorIn("globex"), k.View.ID)
		require.NoError(t, err)
		assert.Equal(t, before, after, "globex's key is unchanged")
	}

	// Same environment name, other account: acme's changes stay in acme.
	status, body = tn.send(t, acme, "PUT", "/environments/production/origins", `{"allowed_origins":["https://new.acme.example"]}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "acme", body["account"])
	s, err := tn.m.Settings(context.Background(), actorIn("globex"), apikey.Production)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://globex.example"}, s.AllowedOrigins)
	status, body = tn.send(t, acme, "POST", "/environments/production/keys/client/rotate", `{"grace":"0s"}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	assert.Equal(t, "acme", body["view"].(map[string]any)["account"])
	gc, err := tn.m.Get(context.Background(), actorIn("globex"), tn.keys["globex/production/client"].View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Active, gc.Status, "globex's default publishable key was not rotated")

	// Account routes are not for keys.
	for _, r := range []struct{ method, path string }{
		{"GET", "/accounts"}, {"POST", "/accounts/globex/close"}, {"POST", "/accounts/acme/close"}, {"POST", "/account/close"},
	} {
		status, body := tn.send(t, acme, r.method, r.path, "")
		assert.Equal(t, http.StatusForbidden, status, "%s %s: %v", r.method, r.path, body)
	}

	// And globex's keys still work, with their own origins.
	for _, k := range []string{"globex/production/server", "globex/production/scoped"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-API-Key", tn.keys[k].Key.Reveal())
		_, err := tn.v.Check(r, middleware.Policy{})
		assert.NoError(t, err, k)
	}
}

// TestPaging pages through keys, environments and the audit log.
func TestPaging(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		_, err := f.m.Create(context.Background(), owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client, Name: string(rune('a' + i))})
		require.NoError(t, err)
	}
	// collect follows "next" with the given cursor parameter and returns
	// the items of every page and the number of pages.
	collect := func(t *testing.T, path, field, cursor string, limit int) ([]any, int) {
		t.Helper()
		var items []any
		next, pages := "", 0
		for {
			url := path + "?limit=" + strconv.Itoa(limit)
			if next != "" {
				url += "&" + cursor + "=" + next
			}
			status, body, _ := f.do(t, "GET", url, "")
			require.Equal(t, http.StatusOK, status, "%v", body)
			page := body[field].([]any)
			require.LessOrEqual(t, len(page), limit)
			items = append(items, page...)
			pages++
			n, ok := body["next"].(string)
			if !ok {
				return items, pages
			}
			require.NotEmpty(t, n)
			next = n
			require.Less(t, pages, 100)
		}
	}
	keys, pages := collect(t, "/environments/production/keys", "keys", "after", 2)
	assert.Len(t, keys, 7, "two defaults and five more")
	assert.Equal(t, 4, pages)
	seen := map[string]bool{}
	for _, k := range keys {
		id := k.(map[string]any)["id"].(string)
		assert.False(t, seen[id], "each key once")
		seen[id] = true
	}
	envs, _ := collect(t, "/environments", "environments", "after", 1)
	require.Len(t, envs, 2)
	assert.Equal(t, apikey.Production, envs[0].(map[string]any)["environment"])
	assert.Equal(t, apikey.Staging, envs[1].(map[string]any)["environment"])
	all, _ := collect(t, "/audit", "events", "before", 1000)
	paged, pages := collect(t, "/audit", "events", "before", 3)
	require.Len(t, all, 9, "four bootstrap events and five creations")
	assert.Equal(t, all, paged, "the same events, newest first")
	assert.Equal(t, 3, pages, "a full last page has no next")
	viaAfter, _ := collect(t, "/audit", "events", "after", 4)
	assert.Equal(t, all, viaAfter, "after is the same cursor as before")

	for _, tt := range []struct {
		path, code string
		status     int
	}{
		{"/environments/production/keys?after=garbage", "invalid_cursor", 422},
		{"/environments?after=!!", "invalid_cursor", 422},
		{"/audit?before=x", "invalid_cursor", 422},
		{"/audit?before=3&after=4", "invalid_cursor", 422},
		{"/environments/production/keys?limit=0", "invalid_request", 400},
		{"/environments/production/keys?limit=1001", "invalid_request", 400},
		{"/environments?limit=x", "invalid_request", 400},
	} {
		status, body, _ := f.do(t, "GET", tt.path, "")
		assert.Equal(t, tt.status, status, "%s: %v", tt.path, body)
		assert.Equal(t, tt.code, body["code"], tt.path)
	}
}

// TestOwnerAndMetadata sets a key's owner and metadata at creation and
// afterwards; lists show them; a value that looks like a key is refused.
func TestOwnerAndMetadata(t *testing.T) {
	f := newFixture(t)
	status, body, _ := f.do(t, "POST", "/environments/production/keys",
		`{"type":"server","name":"billing","owner":"user_42","metadata":{"plan":"pro","region":"eu"},"scopes":["invoices:read"]}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	view := body["view"].(map[string]any)
	id := view["id"].(string)
	assert.Equal(t, "user_42", view["owner"])
	assert.Equal(t, map[string]any{"plan": "pro", "region": "eu"}, view["metadata"])

	status, body, _ = f.do(t, "PUT", "/keys/"+id+"/owner", `{"owner":"user_43"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "user_43", body["owner"])
	status, body, _ = f.do(t, "PUT", "/keys/"+id+"/metadata", `{"metadata":{"plan":"enterprise"}}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, map[string]any{"plan": "enterprise"}, body["metadata"])
	status, body, _ = f.do(t, "GET", "/environments/production/keys", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	var listed map[string]any
	for _, k := range body["keys"].([]any) {
		if k.(map[string]any)["id"] == id {
			listed = k.(map[string]any)
		}
	}
	require.NotNil(t, listed)
	assert.Equal(t, "user_43", listed["owner"])
	assert.Equal(t, map[string]any{"plan": "enterprise"}, listed["metadata"])

	secret := f.server.Key.Reveal()
	for _, tt := range []struct {
		method, path, body, code string
		status                   int
	}{
		{"PUT", "/keys/" + id + "/metadata", `{"metadata":{"token":"` + secret + `"}}`, "invalid_metadata", 422},
		{"PUT", "/keys/" + id + "/metadata", `{"metadata":{"Bad Name":"x"}}`, "invalid_metadata", 422},
		{"PUT", "/keys/" + id + "/owner", `{"owner":"` + strings.Repeat("x", 129) + `"}`, "invalid_metadata", 422},
		{"PUT", "/keys/" + id + "/owner", `{"owner":"` + secret + `"}`, "invalid_metadata", 422},
		{"POST", "/environments/production/keys", `{"type":"client","owner":"` + secret + `"}`, "invalid_metadata", 422},
		{"PUT", "/keys/" + id + "/owner", `{}`, "invalid_request", 400},
		{"PUT", "/keys/" + id + "/metadata", `{"metadata":null}`, "invalid_request", 400},
	} {
		f.caller = owner
		status, body, _ := f.do(t, tt.method, tt.path, tt.body)
		assert.Equal(t, tt.status, status, "%s: %v", tt.body, body)
		assert.Equal(t, tt.code, body["code"], tt.body)
		raw, _ := json.Marshal(body)
		assert.NotContains(t, string(raw), secret[20:], "never echoed")
	}
	f.caller = readOnly
	status, body, _ = f.do(t, "PUT", "/keys/"+id+"/owner", `{"owner":"x"}`)
	assert.Equal(t, http.StatusForbidden, status, "%v", body)
	f.caller = owner
	status, body, _ = f.do(t, "PUT", "/keys/"+id+"/metadata", `{"metadata":{}}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Nil(t, body["metadata"], "{} removes it")
}

// TestCloseAccount: the account routes are for operators; an owner not
// confined to an environment may close its own account where the service
// enables it; afterwards the account takes no new key (409 account_closed)
// and its keys are refused.
func TestCloseAccount(t *testing.T) {
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

	status, body := do(acmeOwner, "GET", "/accounts", "")
	assert.Equal(t, http.StatusForbidden, status, "%v", body)
	status, body = do(operatorReader, "GET", "/accounts?limit=1", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, []any{"acme"}, body["accounts"])
	status, body = do(operatorReader, "GET", "/accounts?after="+body["next"].(string), "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, []any{"globex"}, body["accounts"])
	assert.Nil(t, body["next"])
	status, body = do(operatorReader, "POST", "/accounts/globex/close", `{"confirm":"globex"}`)
	assert.Equal(t, http.StatusForbidden, status, "read-only operators close nothing: %v", body)
	status, body = do(operator, "POST", "/accounts/initech/close", `{"confirm":"initech"}`)
	assert.Equal(t, http.StatusNotFound, status, "%v", body)
	status, body = do(operator, "POST", "/accounts/Not%20An%20Id/close", `{"confirm":"Not An Id"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, status, "%v", body)
	assert.Equal(t, "invalid_account", body["code"])

	// Confined to an environment: may not close the whole account.
	status, body = do(admin.Caller{Actor: acmeOwner.Actor, Account: "acme", Environment: apikey.Production}, "POST", "/account/close", `{"confirm":"acme"}`)
	assert.Equal(t, http.StatusForbidden, status, "%v", body)
	status, body = do(admin.Caller{Actor: apikey.Actor{ID: "bob", Role: apikey.Member}, Account: "acme"}, "POST", "/account/close", `{"confirm":"acme"}`)
	assert.Equal(t, http.StatusForbidden, status, "members close nothing: %v", body)

	status, body = do(acmeOwner, "POST", "/account/close", `{"confirm":"acme"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "acme", body["account"])
	assert.Equal(t, float64(5), body["revoked"], "two environments' defaults and the scoped key")
	status, body = do(acmeOwner, "POST", "/environments/production/keys", "")
	require.Equal(t, http.StatusBadRequest, status, "%v", body) // no body
	status, body = do(acmeOwner, "POST", "/environments/staging/keys", `{"type":"client"}`)
	assert.Equal(t, http.StatusConflict, status, "%v", body)
	assert.Equal(t, "account_closed", body["code"])
	status, body = do(acmeOwner, "PUT", "/environments/staging/origins", `{"allowed_origins":[]}`)
	assert.Equal(t, http.StatusConflict, status, "%v", body)

	for key, want := range map[string]int{"acme/production/server": 401, "acme/staging/client": 401, "globex/production/server": 200} {
		r := httptest.NewRequest("GET", "/environments", nil)
		r.Header.Set("X-API-Key", tn.keys[key].Key.Reveal())
		w := httptest.NewRecorder()
		tn.h.ServeHTTP(w, r)
		assert.Equal(t, want, w.Code, "%s: %s", key, w.Body)
	}

	status, body = do(operator, "POST", "/accounts/globex/close", `{"confirm":"globex"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, float64(5), body["revoked"])
}

// TestClosingAccountsIsDeliberate: closing an account is refused unless the
// service enables it (Options.CloseAccounts), and then unless the body
// names the account again; a refused request revokes nothing.
func TestClosingAccountsIsDeliberate(t *testing.T) {
	acmeOwner := admin.Caller{Actor: apikey.Actor{ID: "alice", Role: apikey.Owner}, Account: "acme"}
	operator := admin.Caller{Actor: apikey.Actor{ID: "ops", Role: apikey.Owner}, Operator: true}
	for _, tt := range []struct {
		name          string
		closeAccounts bool
		caller        admin.Caller
		path, body    string
		status        int
		code          string
	}{
		{"own account, off by default", false, acmeOwner, "/account/close", `{"confirm":"acme"}`, 403, "role_not_allowed"},
		{"another account, off by default", false, operator, "/accounts/acme/close", `{"confirm":"acme"}`, 403, "role_not_allowed"},
		{"own account, no body", true, acmeOwner, "/account/close", ``, 422, "confirmation_required"},
		{"own account, empty object", true, acmeOwner, "/account/close", `{}`, 422, "confirmation_required"},
		{"own account, another named", true, acmeOwner, "/account/close", `{"confirm":"globex"}`, 422, "confirmation_required"},
		{"own account, named in capitals", true, acmeOwner, "/account/close", `{"confirm":"ACME"}`, 422, "confirmation_required"},
		{"another account, no body", true, operator, "/accounts/acme/close", ``, 422, "confirmation_required"},
		{"another account, another named", true, operator, "/accounts/acme/close", `{"confirm":"globex"}`, 422, "confirmation_required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTenants(t)
			api, err := admin.New(admin.Options{Manager: tn.m, CloseAccounts: tt.closeAccounts,
				Authorize: func(*http.Request) (admin.Caller, error) { return tt.caller, nil }})
			require.NoError(t, err)
			w := httptest.NewRecorder()
			api.ServeHTTP(w, httptest.NewRequest("POST", tt.path, strings.NewReader(tt.body)))
			require.Equal(t, tt.status, w.Code, w.Body.String())
			var p map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
			assert.Equal(t, tt.code, p["code"])
			if !tt.closeAccounts {
				assert.Contains(t, p["detail"], "Options.CloseAccounts")
			}
			status, _ := tn.send(t, tn.keys["acme/production/server"].Key.Reveal(), "GET", "/environments", "")
			assert.Equal(t, http.StatusOK, status, "nothing was revoked")
		})
	}
}

// TestCallerAccount: the Caller's Account decides the account of every
// call; a Caller whose Actor says otherwise, that names no account in a
// service that did not choose SingleAccount, or that acts across accounts
// without Operator, is refused rather than widened.
func TestCallerAccount(t *testing.T) {
	tn := newTenants(t)
	var caller admin.Caller
	newAPI := func(single bool) http.Handler {
		api, err := admin.New(admin.Options{Manager: tn.m, Audit: tn.store, SingleAccount: single,
			Authorize: func(*http.Request) (admin.Caller, error) { return caller, nil }})
		require.NoError(t, err)
		return api
	}
	multi, single := newAPI(false), newAPI(true)
	reader := apikey.Actor{ID: "carol", Role: apikey.ReadOnly}
	for _, tt := range []struct {
		name    string
		api     http.Handler
		caller  admin.Caller
		status  int
		account string // of the keys listed, or words of the refusal's detail
	}{
		{"Account", multi, admin.Caller{Actor: reader, Account: "globex"}, 200, "globex"},
		{"Actor.Account", multi, admin.Caller{Actor: apikey.Actor{ID: "carol", Role: apikey.ReadOnly, Account: "acme"}}, 200, "acme"},
		{"both, the same", multi, admin.Caller{Actor: apikey.Actor{ID: "carol", Role: apikey.ReadOnly, Account: "acme"}, Account: "acme"}, 200, "acme"},
		{"both, different", multi, admin.Caller{Actor: apikey.Actor{ID: "carol", Role: apikey.ReadOnly, Account: "acme"}, Account: "globex"}, 403, "differ"},
		{"any account without Operator", multi, admin.Caller{Actor: apikey.Actor{ID: "carol", Role: apikey.ReadOnly, Account: apikey.AnyAccount}}, 403, "Caller.Operator"},
		{"Account any account", multi, admin.Caller{Actor: reader, Account: apikey.AnyAccount}, 403, "Caller.Account"},
		{"Account any account, operator", multi, admin.Caller{Actor: reader, Account: apikey.AnyAccount, Operator: true}, 403, "Caller.Account"},
		{"neither", multi, admin.Caller{Actor: reader}, 403, "SingleAccount"},
		{"neither, operator", multi, admin.Caller{Actor: apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}, Operator: true}, 403, "SingleAccount"},
		{"neither, single account: the default, which has no production here", single, admin.Caller{Actor: reader}, 404, ""},
		{"Account, single account", single, admin.Caller{Actor: reader, Account: "acme"}, 200, "acme"},
		{"Account any account, single account", single, admin.Caller{Actor: reader, Account: apikey.AnyAccount}, 403, "Caller.Account"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			caller = tt.caller
			w := httptest.NewRecorder()
			tt.api.ServeHTTP(w, httptest.NewRequest("GET", "/environments/production/keys", nil))
			require.Equal(t, tt.status, w.Code, w.Body.String())
			var body map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), w.Body.String())
			switch tt.status {
			case 200:
				require.NotEmpty(t, body["keys"])
				for _, k := range body["keys"].([]any) {
					assert.Equal(t, tt.account, k.(map[string]any)["account"])
				}
			case 403:
				assert.Equal(t, "role_not_allowed", body["code"])
				assert.Contains(t, body["detail"], tt.account)
			}
		})
	}
}

// TestAcrossAccountsNeedsOperator sends every route, with a key of acme
// where one is named, as callers an Authorize function may return by
// mistake: Caller.Account "*" (with or without Operator), Actor.Account
// "*" without Operator, and no account at all in a service that did not
// choose SingleAccount. Each is refused with 403 on every route, and
// nothing changes.
func TestAcrossAccountsNeedsOperator(t *testing.T) {
	owner := apikey.Actor{ID: "alice", Role: apikey.Owner}
	anyOwner := apikey.Actor{ID: "alice", Role: apikey.Owner, Account: apikey.AnyAccount}
	callers := map[string]admin.Caller{
		"Caller.Account *":             {Actor: owner, Account: apikey.AnyAccount},
		"Caller.Account *, operator":   {Actor: owner, Account: apikey.AnyAccount, Operator: true},
		"Actor.Account *":              {Actor: anyOwner},
		"Actor.Account *, Account set": {Actor: anyOwner, Account: "acme"},
		"no account":                   {Actor: owner},
	}
	for name, caller := range callers {
		t.Run(name, func(t *testing.T) {
			tn := newTenants(t)
			api, err := admin.New(admin.Options{Manager: tn.m, Audit: tn.store, CloseAccounts: true,
				Authorize: func(*http.Request) (admin.Caller, error) { return caller, nil }})
			require.NoError(t, err)
			scoped := tn.keys["acme/production/scoped"].Key.Prefix()
			client := tn.keys["acme/production/client"].Key.Prefix()
			routes := []struct{ method, path, body string }{
				{"GET", "/environments", ""},
				{"GET", "/environments/production/keys", ""},
				{"POST", "/environments/production/keys", `{"type":"client"}`},
				{"POST", "/environments/production/keys/client/rotate", `{"grace":"0s"}`},
				{"GET", "/keys/" + scoped, ""},
				{"POST", "/keys/" + scoped + "/rotate", `{"grace":"1h"}`},
				{"PUT", "/keys/" + scoped + "/grace", `{"grace":"1h"}`},
				{"POST", "/keys/" + scoped + "/revoke", ""},
				{"POST", "/keys/" + scoped + "/disable", ""},
				{"POST", "/keys/" + scoped + "/enable", ""},
				{"PUT", "/keys/" + scoped + "/scopes", `{"scopes":["*"]}`},
				{"PUT", "/keys/" + scoped + "/owner", `{"owner":"mallory"}`},
				{"PUT", "/keys/" + scoped + "/metadata", `{"metadata":{"by":"mallory"}}`},
				{"POST", "/keys/" + client + "/reveal", ""},
				{"GET", "/environments/production/origins", ""},
				{"PUT", "/environments/production/origins", `{"allowed_origins":["*"]}`},
				{"GET", "/audit", ""},
				{"POST", "/account/close", `{"confirm":"acme"}`},
			}
			if !caller.Operator {
				routes = append(routes,
					struct{ method, path, body string }{"GET", "/accounts", ""},
					struct{ method, path, body string }{"POST", "/accounts/acme/close", `{"confirm":"acme"}`},
					struct{ method, path, body string }{"POST", "/accounts/acme/suspend", ""},
					struct{ method, path, body string }{"POST", "/accounts/acme/resume", ""})
			}
			for _, r := range routes {
				w := httptest.NewRecorder()
				api.ServeHTTP(w, httptest.NewRequest(r.method, r.path, strings.NewReader(r.body)))
				assert.Equal(t, http.StatusForbidden, w.Code, "%s %s: %s", r.method, r.path, w.Body)
				assert.Contains(t, w.Body.String(), `"code":"role_not_allowed"`, "%s %s", r.method, r.path)
			}
			view, err := tn.m.Get(context.Background(), actorIn("acme"), scoped)
			require.NoError(t, err)
			assert.Equal(t, apikey.Active, view.Status)
			assert.Equal(t, "acme-ops", view.Owner)
			assert.Equal(t, []string{"invoices:read"}, view.Scopes)
			status, _ := tn.send(t, tn.keys["acme/production/server"].Key.Reveal(), "GET", "/environments", "")
			assert.Equal(t, http.StatusOK, status, "the account is open")
		})
	}
}
