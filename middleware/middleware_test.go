package middleware_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
)

// TestResponses covers every status and code of a refused request, and the
// accepted cases around them.
func TestResponses(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	server := f.keys["production/server"].Reveal()
	client := f.keys["production/client"].Reveal()
	temp := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	revoked := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	_, err := f.manager.Revoke(ctx, owner, revoked.ID())
	require.NoError(t, err)
	expired := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Second)})
	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	badChecksum := server[:len(server)-1] + flip(server[len(server)-1])
	h := f.v.Require(anyType)(okHandler)
	f.clock.Advance(time.Second) // expired is now past its expiry

	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"valid server key", request(server), 200, ""},
		{"valid publishable key", request(client), 200, ""},
		{"valid key with expiry", request(temp.Reveal()), 200, ""},
		{"lower-case header name", request("", "x-api-key", server), 200, ""},
		{"surrounding spaces", request(" " + server + " "), 200, ""},
		{"missing key", request(""), 401, "missing_key"},
		{"empty header", request("", "X-API-Key", ""), 401, "missing_key"},
		{"key in the URL is never read", httptestURL("/things?api_key=" + server + "&key=" + server), 401, "missing_key"},
		{"bearer ignored unless enabled", request("", "Authorization", "Bearer "+server), 401, "missing_key"},
		{"too short", request("server-abc"), 401, "malformed_key"},
		{"wrong prefix", request("secret" + server[6:]), 401, "malformed_key"},
		{"bad checksum", request(badChecksum), 401, "malformed_key"},
		{"two X-API-Key headers", request(server, "X-API-Key", server), 401, "malformed_key"},
		{"unknown key", request(unknown.Reveal()), 401, "invalid_key"},
		{"wrong secret", request(forge(apikey.Server, f.keys["production/server"].ID(), 'z')), 401, "invalid_key"},
		{"wrong type for id", request(forge(apikey.Client, f.keys["production/server"].ID(), 'z')), 401, "invalid_key"},
		{"expired key", request(expired.Reveal()), 401, "expired_key"},
		{"revoked key", request(revoked.Reveal()), 401, "revoked_key"},
		{"server key from a browser", request(server, "Origin", "https://app.example.com"), 403, "server_key_from_browser"},
		{"publishable key from a foreign origin", request(client, "Origin", "https://evil.example"), 403, "origin_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, tt.req)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.code == "" {
				return
			}
			p := decodeProblem(t, w)
			assert.Equal(t, tt.code, p.Code)
			assert.Equal(t, tt.status, p.Status)
			assert.Equal(t, problem.TypePrefix+tt.code, p.Type)
			assert.NotEmpty(t, p.Title)
			if tt.status == 401 {
				assert.NotEmpty(t, w.Header().Get("WWW-Authenticate"))
			}
			assert.NotContains(t, w.Body.String(), server[20:], "the body must not echo a secret")
		})
	}
}

// TestStorageFailure checks that an outage is a 503 with Retry-After, never
// a 401, and is not cached.
func TestStorageFailure(t *testing.T) {
	f := newFixture(t, nil)
	h := f.v.Handler(okHandler)
	key := f.keys["production/server"].Reveal()
	f.store.down.Store(true)
	w := serve(h, request(key))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.Equal(t, "unavailable", decodeProblem(t, w).Code)
	assert.NotContains(t, w.Body.String(), "connection refused", "storage errors stay out of the body")

	f.store.down.Store(false)
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code, "the outage was not cached")
}

// TestStoreDownServesCachedUntilTTL checks that cached keys keep working
// during an outage for their cache lifetime (4/5 of the TTL or more), and
// nothing is served past the TTL.
func TestStoreDownServesCachedUntilTTL(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.CacheTTL = time.Minute })
	h := f.v.Handler(okHandler)
	key := f.keys["production/server"].Reveal()
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	f.store.down.Store(true)
	f.clock.Advance(47 * time.Second)
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code)
	f.clock.Advance(13 * time.Second)
	require.Equal(t, http.StatusServiceUnavailable, serve(h, request(key)).Code)
}

func TestPolicy(t *testing.T) {
	f := newFixture(t, nil)
	scoped := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:write", "orders:read"}})
	server := f.keys["production/server"].Reveal()
	client := f.keys["production/client"].Reveal()
	staging := f.keys["staging/server"].Reveal()

	serverOnly := []apikey.KeyType{apikey.Server}
	clientOnly := []apikey.KeyType{apikey.Client}
	tests := []struct {
		name   string
		policy middleware.Policy
		key    string
		status int
		code   string
	}{
		{"zero policy accepts server", middleware.Policy{}, server, 200, ""},
		{"zero policy refuses publishable", middleware.Policy{}, client, 403, "key_type_not_allowed"},
		{"a scope without types refuses publishable", middleware.Policy{Scope: "customers:read"}, client, 403, "key_type_not_allowed"},
		{"server only accepts server", middleware.Policy{Types: serverOnly}, server, 200, ""},
		{"server only refuses publishable", middleware.Policy{Types: serverOnly}, client, 403, "key_type_not_allowed"},
		{"client only refuses server", middleware.Policy{Types: clientOnly}, server, 403, "key_type_not_allowed"},
		{"full access holds any scope", middleware.Policy{Scope: "billing:write"}, server, 200, ""},
		{"exact scope", middleware.Policy{Scope: "customers:write"}, scoped.Reveal(), 200, ""},
		{"write implies read", middleware.Policy{Scope: "customers:read"}, scoped.Reveal(), 200, ""},
		{"read does not imply write", middleware.Policy{Scope: "orders:write"}, scoped.Reveal(), 403, "insufficient_scope"},
		{"other resource", middleware.Policy{Scope: "billing:read"}, scoped.Reveal(), 403, "insufficient_scope"},
		{"publishable keys read", middleware.Policy{Types: clientOnly, Scope: "customers:read"}, client, 200, ""},
		{"publishable keys do not write", middleware.Policy{Types: clientOnly, Scope: "customers:write"}, client, 403, "insufficient_scope"},
		{"accepted environment", middleware.Policy{Environments: []string{apikey.Production}}, server, 200, ""},
		{"other environment", middleware.Policy{Environments: []string{apikey.Production}}, staging, 403, "environment_not_allowed"},
		{"several environments", middleware.Policy{Environments: []string{apikey.Production, apikey.Staging}}, staging, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(f.v.Require(tt.policy)(okHandler), request(tt.key))
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.code != "" {
				assert.Equal(t, tt.code, decodeProblem(t, w).Code)
			}
			id, err := f.v.Check(request(tt.key), tt.policy)
			if tt.code == "" {
				require.NoError(t, err)
				assert.NotEmpty(t, id.KeyID)
			} else {
				require.Error(t, err)
				assert.Equal(t, tt.code, problem.Of(err).Code())
			}
		})
	}
}

func TestRequireRejectsInvalidPolicy(t *testing.T) {
	f := newFixture(t, nil)
	for name, p := range map[string]middleware.Policy{
		"bad type":        {Types: []apikey.KeyType{"admin"}},
		"bad scope":       {Scope: "everything"},
		"all scopes":      {Scope: "*"},
		"bad environment": {Environments: []string{"Prod!"}},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, p.Validate())
			require.Panics(t, func() { f.v.Require(p) })
			_, err := f.v.Check(request(f.keys["production/server"].Reveal()), p)
			require.Error(t, err)
			assert.Nil(t, problem.Of(err))
		})
	}
}

func TestIdentityInContext(t *testing.T) {
	f := newFixture(t, nil)
	scoped := f.create(apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"orders:read"}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	var got middleware.Identity
	h := f.v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ok bool
		got, ok = middleware.FromContext(r.Context())
		require.True(t, ok)
	}))
	require.Equal(t, http.StatusOK, serve(h, request(scoped.Reveal())).Code)
	assert.Equal(t, scoped.ID(), got.KeyID)
	assert.Equal(t, scoped.Prefix(), got.Prefix)
	assert.Equal(t, apikey.Server, got.Type)
	assert.Equal(t, apikey.Staging, got.Environment)
	assert.Equal(t, []string{"orders:read"}, got.Scopes)
	assert.True(t, got.ExpiresAt.Equal(f.clock.Now().Add(time.Hour)))
	assert.False(t, got.Expiring)
	assert.True(t, got.HasScope("orders:read"))
	assert.False(t, got.HasScope("orders:write"))

	got.Scopes[0] = "mutated"
	require.Equal(t, http.StatusOK, serve(h, request(scoped.Reveal())).Code)
	assert.Equal(t, []string{"orders:read"}, got.Scopes, "FromContext returns a copy")
}

func TestFromContextOutsideMiddleware(t *testing.T) {
	id, ok := middleware.FromContext(context.Background())
	assert.False(t, ok)
	assert.Zero(t, id)
	id, ok = middleware.FromContext(nil) //nolint:staticcheck // a nil context must not panic
	assert.False(t, ok)
	assert.Zero(t, id)
}

func TestBearer(t *testing.T) {
	key := ""
	tests := []struct {
		name    string
		enabled bool
		headers func() []string
		status  int
		code    string
	}{
		{"off by default", false, func() []string { return []string{"Authorization", "Bearer " + key} }, 401, "missing_key"},
		{"enabled", true, func() []string { return []string{"Authorization", "Bearer " + key} }, 200, ""},
		{"scheme is case-insensitive", true, func() []string { return []string{"Authorization", "bearer " + key} }, 200, ""},
		{"other schemes are ignored", true, func() []string { return []string{"Authorization", "Basic " + key} }, 401, "missing_key"},
		{"bearer junk", true, func() []string { return []string{"Authorization", "Bearer eyJhbGciOi"} }, 401, "malformed_key"},
		{"both sources", true, func() []string { return []string{"Authorization", "Bearer " + key, "X-API-Key", key} }, 401, "malformed_key"},
		{"X-API-Key still works", true, func() []string { return []string{"X-API-Key", key} }, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *middleware.Options) { o.AllowBearer = tt.enabled })
			key = f.keys["production/server"].Reveal()
			w := serve(f.v.Handler(okHandler), request("", tt.headers()...))
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.code != "" {
				assert.Equal(t, tt.code, decodeProblem(t, w).Code)
			}
		})
	}
}

func TestErrorHandlerLearnsTheReason(t *testing.T) {
	var reason *problem.Reason
	f := newFixture(t, func(o *middleware.Options) {
		o.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			reason = problem.Of(err)
			w.WriteHeader(http.StatusTeapot)
		}
	})
	w := serve(f.v.Handler(okHandler), request(""))
	assert.Equal(t, http.StatusTeapot, w.Code)
	assert.Equal(t, middleware.ErrMissingKey, reason)
}

func TestNewValidatesOptions(t *testing.T) {
	store := newFixture(t, nil).store
	for name, o := range map[string]middleware.Options{
		"no store":              {},
		"negative TTL":          {Store: store, CacheTTL: -1},
		"negative feed":         {Store: store, FeedInterval: -time.Second},
		"negative hashes":       {Store: store, MaxConcurrentHashes: -1},
		"negative budget":       {Store: store, ThrottleFailures: -1},
		"empty allowed method":  {Store: store, AllowedMethods: []string{""}},
		"negative last-used":    {Store: store, LastUsedInterval: -1},
		"negative settings age": {Store: store, SettingsInterval: -1},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := middleware.New(o)
			require.Error(t, err)
			require.Nil(t, v)
			assert.True(t, strings.HasPrefix(err.Error(), "middleware: "))
		})
	}
}

func TestClosedValidatorFailsClosed(t *testing.T) {
	f := newFixture(t, nil)
	require.NoError(t, f.v.Close())
	require.NoError(t, f.v.Close(), "Close is idempotent")
	w := serve(f.v.Handler(okHandler), request(f.keys["production/server"].Reveal()))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
}

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder) problem.Problem {
	t.Helper()
	require.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	var p problem.Problem
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
	return p
}

func httptestURL(target string) *http.Request {
	r := request("")
	r.URL, _ = r.URL.Parse(target)
	return r
}

// TestHooksSeeThePrefix checks the Attempt that the hooks receive, whether
// the outcome came from a verification or from the cache: the key's prefix
// for a well-formed key, nothing for a malformed one.
func TestHooksSeeThePrefix(t *testing.T) {
	var got []middleware.Attempt
	record := func(_ context.Context, a middleware.Attempt, _ error) { got = append(got, a) }
	f := newFixture(t, func(o *middleware.Options) {
		o.OnRejected = record
		o.OnAuthenticated = func(ctx context.Context, a middleware.Attempt, _ middleware.Identity) { record(ctx, a, nil) }
	})
	server := f.keys["production/server"]
	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	malformed := server.Reveal()[:apikey.KeyLength-1] + flip(server.Reveal()[apikey.KeyLength-1])
	h := f.v.Handler(okHandler)

	tests := []struct {
		name, key, prefix string
		status            int
	}{
		{"valid key, verified", server.Reveal(), server.Prefix(), 200},
		{"valid key, cached", server.Reveal(), server.Prefix(), 200},
		{"unknown key, looked up", unknown.Reveal(), unknown.Prefix(), 401},
		{"unknown key, cached failure", unknown.Reveal(), unknown.Prefix(), 401},
		{"bad checksum of a cached key", malformed, "", 401},
		{"too short", "server-abc", "", 401},
	}
	for _, tt := range tests {
		got = nil
		w := serve(h, request(tt.key))
		require.Equal(t, tt.status, w.Code, tt.name)
		require.Len(t, got, 1, tt.name)
		assert.Equal(t, tt.prefix, got[0].Prefix, tt.name)
	}
	assert.EqualValues(t, 1, f.hasher.verifies.Load(), "the second use of the key is served from the cache")
}
