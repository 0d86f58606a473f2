package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/admintest"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/memory"
)

var (
	owner    = admin.Caller{Actor: apikey.Actor{ID: "alice", Role: apikey.Owner}}
	readOnly = admin.Caller{Actor: apikey.Actor{ID: "carol", Role: apikey.ReadOnly}}
	operator = admin.Caller{Actor: apikey.Actor{ID: "ops", Role: apikey.Owner}, Operator: true}
)

type fixture struct {
	store   *memory.Store
	m       *apikey.Manager
	api     *admin.API
	caller  admin.Caller
	server  apikey.Issued
	client  apikey.Issued
	staging []apikey.Issued
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{store: memory.New(), caller: owner}
	var err error
	f.m, err = apikey.NewManager(apikey.ManagerOptions{Store: f.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	keys, err := f.m.Bootstrap(context.Background(), owner.Actor, apikey.Production)
	require.NoError(t, err)
	f.server, f.client = keys[0], keys[1]
	f.staging, err = f.m.Bootstrap(context.Background(), owner.Actor, apikey.Staging)
	require.NoError(t, err)
	f.api, err = admin.New(admin.Options{
		Manager:       f.m,
		Audit:         f.store,
		Authorize:     func(*http.Request) (admin.Caller, error) { return f.caller, nil },
		SingleAccount: true,
		CloseAccounts: true,
	})
	require.NoError(t, err)
	return f
}

// do sends a request and decodes a JSON response into a map.
func (f *fixture) do(t *testing.T, method, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	f.api.ServeHTTP(w, r)
	var out map[string]any
	if w.Body.Len() > 0 {
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
	}
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	return w.Code, out, w.Header()
}

func TestNewValidates(t *testing.T) {
	_, err := admin.New(admin.Options{})
	assert.Error(t, err)
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	require.NoError(t, err)
	_, err = admin.New(admin.Options{Manager: m})
	assert.Error(t, err, "Authorize is required")
	_, err = admin.New(admin.Options{Manager: m, Authorize: admin.KeyScopes, MaxBodyBytes: -1})
	assert.Error(t, err, "a negative body limit")
}

// TestRoutes runs the route table of internal/admintest: a request of
// every route, and refusals of each kind. The openapitest module runs the
// same table against the OpenAPI document.
func TestRoutes(t *testing.T) {
	admintest.Run(t, admintest.NewFixture(t), nil)
}

// TestKeyNames names the key of every /keys/{id} route by its key id and by
// its displayable prefix, which both work, and by what does not name it: a
// prefix of the other type or an unknown id (404 not_found, as for a key
// that does not exist), a full key or anything else that is not a key id
// (422 invalid_key_id). No refusal repeats what was given or changes the
// key.
func TestKeyNames(t *testing.T) {
	ctx := context.Background()
	routes := []struct {
		name   string
		method string
		action string // after /keys/{id}
		body   string
		ok     int
		key    func(*testing.T, *fixture) apikey.Issued // the key acted on, in a state where the call succeeds
	}{
		{"get", "GET", "", "", 200, func(_ *testing.T, f *fixture) apikey.Issued { return f.server }},
		{"rotate", "POST", "/rotate", `{"grace":"1h"}`, 201, func(_ *testing.T, f *fixture) apikey.Issued { return f.server }},
		{"change grace", "PUT", "/grace", `{"grace":"2h"}`, 200, func(t *testing.T, f *fixture) apikey.Issued {
			_, err := f.m.Rotate(ctx, owner.Actor, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: time.Hour})
			require.NoError(t, err)
			return f.server
		}},
		{"revoke", "POST", "/revoke", ``, 200, extraKey},
		{"set scopes", "PUT", "/scopes", `{"scopes":["customers:write"]}`, 200, extraKey},
		{"reveal", "POST", "/reveal", ``, 200, func(_ *testing.T, f *fixture) apikey.Issued { return f.client }},
		{"set limits", "PUT", "/limits", `{"quota":{"limit":5}}`, 200, extraKey},
		{"usage", "GET", "/usage?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z", ``, 200, func(_ *testing.T, f *fixture) apikey.Issued { return f.server }},
		{"callers", "GET", "/callers", ``, 200, func(_ *testing.T, f *fixture) apikey.Issued { return f.server }},
	}
	other := map[apikey.KeyType]apikey.KeyType{apikey.Server: apikey.Client, apikey.Client: apikey.Server}
	names := []struct {
		name string
		of   func(apikey.Key) string
		code string // "": the route's success
	}{
		{"key id", func(k apikey.Key) string { return k.ID() }, ""},
		{"prefix", func(k apikey.Key) string { return k.Prefix() }, ""},
		{"prefix of the other type", func(k apikey.Key) string { return apikey.Prefix(other[k.Type()], k.ID()) }, "not_found"},
		{"unknown key id", func(apikey.Key) string { return "nosuchkey000" }, "not_found"},
		{"full key", func(k apikey.Key) string { return k.Reveal() }, "invalid_key_id"},
		{"id and secret", func(k apikey.Key) string { return k.Reveal()[len("server-"):] }, "invalid_key_id"},
		{"prefix twice", func(k apikey.Key) string { return apikey.Prefix(other[k.Type()], k.Prefix()) }, "invalid_key_id"},
		{"short id", func(k apikey.Key) string { return k.ID()[1:] }, "invalid_key_id"},
		{"symbol in id", func(k apikey.Key) string { return k.ID()[:11] + "*" }, "invalid_key_id"},
	}
	for _, route := range routes {
		for _, name := range names {
			t.Run(route.name+"/"+name.name, func(t *testing.T) {
				f := newFixture(t)
				k := route.key(t, f)
				before, err := f.m.Get(ctx, owner.Actor, k.View.ID)
				require.NoError(t, err)
				given := name.of(k.Key)
				status, body, _ := f.do(t, route.method, "/keys/"+url.PathEscape(given)+route.action, route.body)
				if name.code == "" {
					assert.Equal(t, route.ok, status, "%v", body)
					return
				}
				want := map[string]int{"not_found": 404, "invalid_key_id": 422}[name.code]
				assert.Equal(t, want, status, "%v", body)
				assert.Equal(t, name.code, body["code"])
				raw, err := json.Marshal(body)
				require.NoError(t, err)
				assert.NotContains(t, string(raw), k.Key.Reveal()[apikey.PrefixLength:apikey.PrefixLength+16], "never a piece of the secret")
				if len(given) >= apikey.IDLength {
					assert.NotContains(t, string(raw), given, "never what was given")
				}
				after, err := f.m.Get(ctx, owner.Actor, k.View.ID)
				require.NoError(t, err)
				assert.Equal(t, before, after, "the key is unchanged")
			})
		}
	}
}

// extraKey creates a scoped server key that is not a default key.
func extraKey(t *testing.T, f *fixture) apikey.Issued {
	t.Helper()
	k, err := f.m.Create(context.Background(), owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	return k
}

// TestFullAccessIsNeverImplicit sends empty and missing scope lists where a
// server key's scopes are set: each is refused, and only the explicit scope
// "*" gives full access.
func TestFullAccessIsNeverImplicit(t *testing.T) {
	f := newFixture(t)
	scoped, err := f.m.Create(context.Background(), owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	keys := func() int {
		list, err := f.m.List(context.Background(), owner.Actor, apikey.Production, apikey.Page{Limit: apikey.MaxPageSize})
		require.NoError(t, err)
		return len(list.Keys)
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   string
	}{
		{"set an empty list", "PUT", "/keys/" + scoped.View.ID + "/scopes", `{"scopes":[]}`},
		{"set a null list", "PUT", "/keys/" + scoped.View.ID + "/scopes", `{"scopes":null}`},
		{"set with scopes missing", "PUT", "/keys/" + scoped.View.ID + "/scopes", `{}`},
		{"create with scopes missing", "POST", "/environments/production/keys", `{"type":"server","name":"worker"}`},
		{"create with an empty list", "POST", "/environments/production/keys", `{"type":"server","scopes":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := keys()
			status, body, _ := f.do(t, tt.method, tt.path, tt.body)
			require.Equal(t, http.StatusUnprocessableEntity, status, "%v", body)
			assert.Equal(t, "scopes_required", body["code"])
			assert.Contains(t, body["detail"], `"*"`, "the refusal says how to ask for full access")
			got, err := f.m.Get(context.Background(), owner.Actor, scoped.View.ID)
			require.NoError(t, err)
			assert.Equal(t, []string{"customers:read"}, got.Scopes, "the key's scopes are unchanged")
			assert.Equal(t, before, keys(), "no key was created")
		})
	}
	status, body, _ := f.do(t, "PUT", "/keys/"+scoped.View.ID+"/scopes", `{"scopes":["*"]}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, []any{apikey.AllScopes}, body["scopes"], "full access is the explicit scope")
	status, body, _ = f.do(t, "POST", "/environments/production/keys", `{"type":"server","scopes":["*"]}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	assert.Equal(t, []any{apikey.AllScopes}, body["view"].(map[string]any)["scopes"])
}

// TestRevokeExtraPermanentKey revokes a key created without an expiry that
// is not a default key: it needs no rotation first. Default keys still do.
func TestRevokeExtraPermanentKey(t *testing.T) {
	f := newFixture(t)
	status, body, _ := f.do(t, "POST", "/environments/production/keys", `{"type":"server","name":"worker","scopes":["customers:read"]}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	view := body["view"].(map[string]any)
	require.Nil(t, view["expires_at"], "created without an expiry")
	id := view["id"].(string)

	status, body, _ = f.do(t, "POST", "/keys/"+id+"/revoke", ``)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "revoked", body["status"])
	got, err := f.m.Get(context.Background(), owner.Actor, id)
	require.NoError(t, err)
	assert.Equal(t, apikey.Revoked, got.Status)

	for _, k := range []apikey.Issued{f.server, f.client} {
		status, body, _ = f.do(t, "POST", "/keys/"+k.View.ID+"/revoke", ``)
		assert.Equal(t, http.StatusConflict, status, "%v", body)
		assert.Equal(t, "rotate_first", body["code"], "a default key is rotated first")
	}
}

// TestRotateNeedsExplicitGrace: a rotation with no grace is refused and
// changes nothing; "0s" is the explicit way to end the old key at once.
func TestRotateNeedsExplicitGrace(t *testing.T) {
	for _, route := range []struct {
		name string
		path func(f *fixture) string
	}{
		{"by key", func(f *fixture) string { return "/keys/" + f.server.View.ID + "/rotate" }},
		{"default by type", func(*fixture) string { return "/environments/production/keys/server/rotate" }},
	} {
		t.Run(route.name, func(t *testing.T) {
			f := newFixture(t)
			for _, body := range []string{``, ` `, `{}`, `{"grace":null}`} {
				status, problem, _ := f.do(t, "POST", route.path(f), body)
				require.Equal(t, http.StatusUnprocessableEntity, status, "body %q: %v", body, problem)
				assert.Equal(t, "grace_required", problem["code"], "body %q", body)
				assert.Contains(t, problem["detail"], `0s (expire now), 1h, 24h, 72h or 168h`, "the refusal lists the choices")
				assert.Contains(t, problem["detail"], `(api policy: 8760h)`, "and the policy's maximum")
				old, err := f.m.Get(context.Background(), owner.Actor, f.server.View.ID)
				require.NoError(t, err)
				assert.Equal(t, apikey.Active, old.Status, "body %q: the old key still works", body)
				assert.True(t, old.Default, "body %q: and is still the default", body)
			}

			status, body, _ := f.do(t, "POST", route.path(f), `{"grace":"0s"}`)
			require.Equal(t, http.StatusCreated, status, "%v", body)
			old, err := f.m.Get(context.Background(), owner.Actor, f.server.View.ID)
			require.NoError(t, err)
			assert.Equal(t, apikey.Expired, old.Status, "an explicit 0s expires the old key now")
		})
	}
}

// TestChangeGraceNeedsExplicitGrace: a grace change with no grace is
// refused rather than read as zero, which would end the key at once.
func TestChangeGraceNeedsExplicitGrace(t *testing.T) {
	f := newFixture(t)
	status, body, _ := f.do(t, "POST", "/keys/"+f.server.View.ID+"/rotate", `{"grace":"24h"}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	before, err := f.m.Get(context.Background(), owner.Actor, f.server.View.ID)
	require.NoError(t, err)
	for _, body := range []string{`{}`, `{"grace":null}`} {
		status, problem, _ := f.do(t, "PUT", "/keys/"+f.server.View.ID+"/grace", body)
		require.Equal(t, http.StatusUnprocessableEntity, status, "body %q: %v", body, problem)
		assert.Equal(t, "grace_required", problem["code"], "body %q", body)
		after, err := f.m.Get(context.Background(), owner.Actor, f.server.View.ID)
		require.NoError(t, err)
		assert.Equal(t, apikey.Expiring, after.Status, "body %q: the key still works", body)
		assert.True(t, before.ExpiresAt.Equal(after.ExpiresAt), "body %q: its expiry is unchanged", body)
	}
	status, body, _ = f.do(t, "PUT", "/keys/"+f.server.View.ID+"/grace", `{"grace":"0s"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "expired", body["status"], "an explicit 0s ends the grace now")
}

// TestPolicy: Options.Policy bounds rotations and grace changes, as a
// console's 0-7 days.
func TestPolicy(t *testing.T) {
	f := newFixture(t)
	var err error
	f.api, err = admin.New(admin.Options{
		Manager:       f.m,
		Authorize:     func(*http.Request) (admin.Caller, error) { return f.caller, nil },
		Policy:        apikey.ConsolePolicy,
		SingleAccount: true,
	})
	require.NoError(t, err)
	id := f.server.View.ID

	status, problem, _ := f.do(t, "POST", "/keys/"+id+"/rotate", `{"grace":"169h"}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%v", problem)
	assert.Equal(t, "grace_out_of_range", problem["code"])
	assert.Contains(t, problem["detail"], "console policy")
	status, problem, _ = f.do(t, "POST", "/keys/"+id+"/rotate", `{}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%v", problem)
	assert.Contains(t, problem["detail"], "(console policy: 168h)")

	status, body, _ := f.do(t, "POST", "/keys/"+id+"/rotate", `{"grace":"168h"}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	status, problem, _ = f.do(t, "PUT", "/keys/"+id+"/grace", `{"grace":"200h"}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%v", problem)
	assert.Equal(t, "grace_out_of_range", problem["code"])
	status, problem, _ = f.do(t, "PUT", "/keys/"+id+"/grace", `{}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%v", problem)
	assert.Contains(t, problem["detail"], "(console policy: 168h)")
	status, body, _ = f.do(t, "PUT", "/keys/"+id+"/grace", `{"grace":"72h"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)

	_, err = admin.New(admin.Options{Manager: f.m, Authorize: admin.KeyScopes, Policy: apikey.GracePolicy{Max: -time.Hour}})
	assert.Error(t, err, "a negative maximum")
}

func TestListNeverShowsSecrets(t *testing.T) {
	f := newFixture(t)
	f.caller = readOnly
	for _, path := range []string{"/environments/production/keys", "/keys/" + f.server.View.ID, "/audit", "/environments"} {
		r := httptest.NewRequest("GET", path, nil)
		w := httptest.NewRecorder()
		f.api.ServeHTTP(w, r)
		require.Equal(t, 200, w.Code, path)
		for _, k := range []apikey.Issued{f.server, f.client} {
			assert.NotContains(t, w.Body.String(), k.Key.Reveal()[20:], path)
		}
		assert.NotContains(t, w.Body.String(), "argon2id", path)
	}
}

func TestBodyLimit(t *testing.T) {
	f := newFixture(t)
	big := `{"type":"server","name":"` + strings.Repeat("x", 70<<10) + `"}`
	status, body, _ := f.do(t, "POST", "/environments/production/keys", big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status)
	assert.Equal(t, "request_too_large", body["code"])
}

// brokenStore fails every call, like a database that went away.
type brokenStore struct{ *memory.Store }

func (brokenStore) Keys(context.Context, apikey.KeyQuery) ([]apikey.Record, error) {
	return nil, assert.AnError
}
func (brokenStore) Settings(context.Context, string, string) (apikey.Settings, error) {
	return apikey.Settings{}, assert.AnError
}

func TestStorageFailureIs503(t *testing.T) {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: brokenStore{memory.New()}})
	require.NoError(t, err)
	api, err := admin.New(admin.Options{Manager: m, SingleAccount: true, Authorize: func(*http.Request) (admin.Caller, error) { return owner, nil }})
	require.NoError(t, err)
	w := httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest("GET", "/environments/production/keys", nil))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.NotEmpty(t, w.Header().Get("Retry-After"))
	assert.Contains(t, w.Body.String(), "storage_unavailable")
	assert.NotContains(t, w.Body.String(), assert.AnError.Error(), "storage errors are not shown to callers")

	w = httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest("GET", "/audit", nil))
	assert.Equal(t, http.StatusNotImplemented, w.Code, "no audit log configured")
}

// TestKeyScopes runs the ready authorizer behind the real middleware.
func TestKeyScopes(t *testing.T) {
	f := newFixture(t)
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	t.Cleanup(func() { v.Close() })
	api, err := admin.New(admin.Options{Manager: f.m, Audit: f.store, Authorize: admin.KeyScopes})
	require.NoError(t, err)
	h := v.Handler(api)

	create := func(scopes ...string) string {
		k, err := f.m.Create(context.Background(), owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: scopes})
		require.NoError(t, err)
		return k.Key.Reveal()
	}
	reader, writer, other := create(admin.ScopeRead), create(admin.ScopeWrite), create("customers:write")
	expiring, err := f.m.Create(context.Background(), owner.Actor, apikey.CreateRequest{Environment: apikey.Production,
		Type: apikey.Server, Scopes: []string{admin.ScopeWrite}, ExpiresAt: f.m.Now().Add(time.Hour)})
	require.NoError(t, err)
	// rotatedOut is a full-access key in its grace period.
	full, err := f.m.Create(context.Background(), owner.Actor, apikey.CreateRequest{Environment: apikey.Production,
		Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	require.NoError(t, err)
	_, err = f.m.Rotate(context.Background(), owner.Actor, apikey.RotateRequest{KeyID: full.Key.ID(), Grace: time.Hour})
	require.NoError(t, err)
	rotatedOut := full.Key.ID()
	bounded, err := f.m.Create(context.Background(), owner.Actor, apikey.CreateRequest{Environment: apikey.Production,
		Type: apikey.Server, Scopes: []string{admin.ScopeWrite},
		Limits: apikey.Limits{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}})
	require.NoError(t, err)
	tests := []struct {
		name   string
		key    string
		method string
		path   string
		body   string
		status int
	}{
		{"full-access key lists", f.server.Key.Reveal(), "GET", "/environments/production/keys", "", 200},
		{"read scope lists", reader, "GET", "/environments/production/keys", "", 200},
		{"read scope cannot create", reader, "POST", "/environments/production/keys", `{"type":"client"}`, 403},
		{"write scope cannot mint a publishable key, which reads everything", writer, "POST", "/environments/production/keys", `{"type":"client"}`, 403},
		{"write scope cannot mint a full-access key", writer, "POST", "/environments/production/keys", `{"type":"server","scopes":["*"]}`, 403},
		{"write scope cannot mint other scopes", writer, "POST", "/environments/production/keys", `{"type":"server","scopes":["customers:write"]}`, 403},
		{"write scope mints what it holds", writer, "POST", "/environments/production/keys", `{"type":"server","scopes":["api_keys:read"]}`, 201},
		{"write scope cannot rotate the full-access default", writer, "POST", "/environments/production/keys/server/rotate", `{"grace":"1h"}`, 403},
		{"write scope cannot raise its own scopes", writer, "PUT", "/keys/" + mustParse(t, writer).ID() + "/scopes", `{"scopes":["*"]}`, 403},
		{"write scope cannot rotate a stronger key", writer, "POST", "/keys/" + mustParse(t, other).ID() + "/rotate", `{"grace":"1h"}`, 403},
		{"write scope cannot extend a full-access key's grace", writer, "PUT", "/keys/" + rotatedOut + "/grace", `{"grace":"8760h"}`, 403},
		{"an expiring key cannot mint a key without expiry", expiring.Key.Reveal(), "POST", "/environments/production/keys", `{"type":"client"}`, 403},
		{"an expiring key cannot mint a key that outlives it", expiring.Key.Reveal(), "POST", "/environments/production/keys", `{"type":"client","expires_in":"2h"}`, 403},
		{"an expiring key mints keys that end before it", expiring.Key.Reveal(), "POST", "/environments/production/keys", `{"type":"server","scopes":["api_keys:read"],"expires_in":"30m"}`, 201},
		{"a key with an address allowlist cannot mint one without", bounded.Key.Reveal(), "POST", "/environments/production/keys", `{"type":"server","scopes":["api_keys:read"]}`, 403},
		{"a key with an address allowlist mints keys bounded as tightly", bounded.Key.Reveal(), "POST", "/environments/production/keys", `{"type":"server","scopes":["api_keys:read"],"limits":{"allowed_ips":["192.0.2.0/25"]}}`, 201},
		{"full access may do all of it", f.server.Key.Reveal(), "POST", "/environments/production/keys", `{"type":"server","scopes":["*"]}`, 201},
		{"other scopes are refused", other, "GET", "/environments/production/keys", "", 403},
		{"publishable keys are refused", f.client.Key.Reveal(), "GET", "/environments/production/keys", "", 403},
		{"a key never reaches another environment", writer, "GET", "/environments/staging/keys", "", 404},
		{"no key", "", "GET", "/environments/production/keys", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.key != "" {
				r.Header.Set("X-API-Key", tt.key)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tt.status, w.Code, w.Body.String())
		})
	}
	events, err := f.store.Events(context.Background(), storage.EventQuery{Environment: apikey.Production})
	require.NoError(t, err)
	actors := map[string]bool{}
	for _, e := range events {
		actors[e.Actor.ID] = true
	}
	assert.True(t, actors[apikey.Prefix(apikey.Server, mustParse(t, writer).ID())], "audit events name the key that acted")
}

// TestExpiryIsNeverDropped: an expiry that is given is kept or refused
// with an error naming its field, never read as "no expiry".
func TestExpiryIsNeverDropped(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		body, field string
	}{
		{`{"type":"client","expires_in":"0s"}`, "expires_in"},
		{`{"type":"client","expires_in":"0"}`, "expires_in"},
		{`{"type":"client","expires_in":"-1ns"}`, "expires_in"},
		{`{"type":"server","scopes":["*"],"expires_in":"-8760h"}`, "expires_in"},
		{`{"type":"client","expires_at":"0001-01-01T00:00:00Z"}`, "expires_at"},
		{`{"type":"client","expires_at":"1970-01-01T00:00:00Z"}`, "expires_at"},
		{`{"type":"client","expires_at":"` + f.m.Now().Add(-time.Second).Format(time.RFC3339) + `"}`, "expires_at"},
	} {
		t.Run(tt.body, func(t *testing.T) {
			status, problem, h := f.do(t, "POST", "/environments/production/keys", tt.body)
			require.Equal(t, http.StatusUnprocessableEntity, status, "%v", problem)
			assert.Equal(t, "invalid_expiry", problem["code"])
			assert.Contains(t, problem["detail"], tt.field)
			assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
		})
	}
	status, body, h := f.do(t, "POST", "/environments/production/keys", `{"type":"client","expires_in":"1s"}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	assert.NotEmpty(t, body["view"].(map[string]any)["expires_at"])
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), "success answers too")
	status, body, _ = f.do(t, "POST", "/environments/production/keys", `{"type":"client","expires_in":null}`)
	require.Equal(t, http.StatusCreated, status, "null is no expiry, as leaving the field out: %v", body)
	assert.Nil(t, body["view"].(map[string]any)["expires_at"])
}

// TestKeyScopesWithoutKeyChallenges: the API mounted without the
// middleware in front answers KeyScopes' 401 as the middleware does, with
// its WWW-Authenticate challenge.
func TestKeyScopesWithoutKeyChallenges(t *testing.T) {
	f := newFixture(t)
	api, err := admin.New(admin.Options{Manager: f.m, Authorize: admin.KeyScopes})
	require.NoError(t, err)
	w := httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/environments", nil))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, `APIKey header="X-API-Key"`, w.Header().Get("WWW-Authenticate"))
	assert.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	assert.Contains(t, w.Body.String(), `"code":"missing_key"`)
}

// TestRotatedOutKeyCannotManageKeys: a key in its grace period, even one
// with full access or "api_keys:write", may still read keys but not change
// any, so that it cannot extend its own grace or rotate its replacement.
// It goes through the real middleware, with the Manager's changes
// invalidating the validator's cache as in production.
func TestRotatedOutKeyCannotManageKeys(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	v, err := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	t.Cleanup(func() { v.Close() })
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, OnEvent: v.Invalidate})
	require.NoError(t, err)
	api, err := admin.New(admin.Options{Manager: m, Audit: store, Authorize: admin.KeyScopes})
	require.NoError(t, err)
	h := v.Handler(api)
	send := func(key, method, path, body string) (int, map[string]any) {
		t.Helper()
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("X-API-Key", key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var out map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
		return w.Code, out
	}

	boot, err := m.Bootstrap(ctx, owner.Actor, apikey.Production)
	require.NoError(t, err)
	oldDefault, client := boot[0].Key, boot[1].Key
	writer, err := m.Create(ctx, owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Name: "key manager", Scopes: []string{admin.ScopeWrite}})
	require.NoError(t, err)
	worker, err := m.Create(ctx, owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{admin.ScopeWrite}, ExpiresAt: m.Now().Add(time.Hour)})
	require.NoError(t, err)

	// Both managing keys work before they are rotated out.
	for _, k := range []apikey.Key{oldDefault, writer.Key} {
		status, body := send(k.Reveal(), "GET", "/keys/"+k.ID(), "")
		require.Equal(t, http.StatusOK, status, "%v", body)
	}
	// The full-access default rotates itself out through the API; the
	// writer is rotated by the Manager. Each keeps a day of grace.
	status, body := send(oldDefault.Reveal(), "POST", "/keys/"+oldDefault.ID()+"/rotate", `{"grace":"24h"}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	newDefault := mustParse(t, body["full_key"].(string))
	_, err = m.Rotate(ctx, owner.Actor, apikey.RotateRequest{KeyID: writer.View.ID, Grace: 24 * time.Hour})
	require.NoError(t, err)

	for _, old := range []apikey.Key{oldDefault, writer.Key} {
		t.Run(old.Prefix(), func(t *testing.T) {
			before, err := m.List(ctx, owner.Actor, apikey.Production, apikey.Page{})
			require.NoError(t, err)
			status, body := send(old.Reveal(), "GET", "/environments/production/keys", "")
			require.Equal(t, http.StatusOK, status, "a rotated-out key may still list keys: %v", body)
			status, body = send(old.Reveal(), "GET", "/keys/"+old.ID(), "")
			require.Equal(t, http.StatusOK, status, "%v", body)
			assert.Equal(t, "expiring", body["status"])

			for _, w := range []struct{ name, method, path, body string }{
				{"extend its own grace", "PUT", "/keys/" + old.ID() + "/grace", `{"grace":"8760h"}`},
				{"rotate the new default", "POST", "/keys/" + newDefault.ID() + "/rotate", `{"grace":"1h"}`},
				{"rotate the default by type", "POST", "/environments/production/keys/server/rotate", `{"grace":"1h"}`},
				{"create", "POST", "/environments/production/keys", `{"type":"client"}`},
				{"revoke", "POST", "/keys/" + worker.View.ID + "/revoke", ``},
				{"set scopes", "PUT", "/keys/" + worker.View.ID + "/scopes", `{"scopes":["api_keys:read"]}`},
				{"set origins", "PUT", "/environments/production/origins", `{"allowed_origins":["https://evil.example"]}`},
				{"reveal", "POST", "/keys/" + client.ID() + "/reveal", ``},
			} {
				status, body := send(old.Reveal(), w.method, w.path, w.body)
				assert.Equal(t, http.StatusForbidden, status, "%s: %v", w.name, body)
				assert.Equal(t, "role_not_allowed", body["code"], w.name)
				assert.Contains(t, body["detail"], "rotated out", "%s: the refusal says why", w.name)
				assert.NotContains(t, body, "full_key", "%s: no key handed out", w.name)
			}
			after, err := m.List(ctx, owner.Actor, apikey.Production, apikey.Page{})
			require.NoError(t, err)
			assert.Equal(t, before, after, "no key changed")
			s, err := m.Settings(ctx, owner.Actor, apikey.Production)
			require.NoError(t, err)
			assert.Empty(t, s.AllowedOrigins, "no origin changed")
		})
	}

	// The replacement manages keys, the old key's grace included.
	status, body = send(newDefault.Reveal(), "PUT", "/keys/"+oldDefault.ID()+"/grace", `{"grace":"1h"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	status, body = send(newDefault.Reveal(), "POST", "/keys/"+worker.View.ID+"/revoke", ``)
	require.Equal(t, http.StatusOK, status, "%v", body)
}

func mustParse(t *testing.T, s string) apikey.Key {
	k, err := apikey.ParseKey(s)
	require.NoError(t, err)
	return k
}

// FuzzRequestBody sends arbitrary bodies to every route that reads one: the
// API answers with a status, never a panic or a 500.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{`{"type":"server","scopes":["customers:write"],"expires_in":"1h"}`, `{"grace":"24h"}`,
		`{"allowed_origins":["https://*.example.com"]}`, `{"scopes":[]}`, `{"expires_at":"2030-01-01T00:00:00Z"}`, `{"owner":"u_1"}`, `{"metadata":{"plan":"pro"}}`, `[]`, `null`, ``} {
		f.Add(s)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, body string) {
		for _, route := range []struct{ method, path string }{
			{"POST", "/environments/production/keys"},
			{"POST", "/environments/production/keys/client/rotate"},
			{"PUT", "/keys/" + fx.client.View.ID + "/grace"},
			{"PUT", "/environments/production/origins"},
			{"PUT", "/keys/" + fx.client.View.ID + "/owner"},
			{"PUT", "/keys/" + fx.client.View.ID + "/metadata"},
		} {
			w := httptest.NewRecorder()
			fx.api.ServeHTTP(w, httptest.NewRequest(route.method, route.path, strings.NewReader(body)))
			if w.Code >= 500 {
				t.Fatalf("%s %s with %q: status %d: %s", route.method, route.path, body, w.Code, w.Body)
			}
		}
	})
}

// TestKeyPastedIntoPathIsNotEchoed sends a full key where an environment or
// a key id belongs: refusals never repeat it.
func TestKeyPastedIntoPathIsNotEchoed(t *testing.T) {
	f := newFixture(t)
	secret := f.server.Key.Reveal()[20:]
	for _, c := range []struct {
		caller admin.Caller
		method string
		path   string
		body   string
	}{
		{admin.Caller{Actor: owner.Actor, Environment: apikey.Staging}, "GET", "/environments/" + f.server.Key.Reveal() + "/keys", ""},
		{owner, "GET", "/environments/" + f.server.Key.Reveal() + "/keys", ""},
		{owner, "GET", "/keys/" + f.server.Key.Reveal(), ""},
		{owner, "PUT", "/environments/production/origins", `{"allowed_origins":["` + f.server.Key.Reveal() + `"]}`},
		{owner, "POST", "/environments/production/keys", `{"type":"server","scopes":["` + f.server.Key.Reveal() + `"]}`},
		{owner, "POST", "/environments/production/keys", `{"` + f.server.Key.Reveal() + `":1}`},
		{owner, "POST", "/environments/production/keys", `{"type":"` + f.server.Key.Reveal() + `"}`},
	} {
		f.caller = c.caller
		w := httptest.NewRecorder()
		f.api.ServeHTTP(w, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
		assert.GreaterOrEqual(t, w.Code, 400, c.path)
		assert.NotContains(t, w.Body.String(), secret[:16], "%s %s %s", c.method, c.path, c.body)
	}
}
