package middleware_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// TestValidateOnce: Handler on a router group and Require on a route
// validate a request once: the route only checks its policy, and the hooks
// run once.
func TestValidateOnce(t *testing.T) {
	var authenticated, rejected atomic.Int64
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(context.Context, middleware.Attempt, middleware.Identity) { authenticated.Add(1) }
		o.OnRejected = func(context.Context, middleware.Attempt, error) { rejected.Add(1) }
	})
	group := f.v.Handler
	route := f.v.Require(middleware.Policy{Scope: "orders:write"})
	h := group(route(okHandler))
	reader := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:read"}})

	before := f.hasher.verifies.Load()
	w := serve(h, request(f.keys["production/server"].Reveal()))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.EqualValues(t, 1, authenticated.Load(), "OnAuthenticated once")
	assert.Equal(t, before+1, f.hasher.verifies.Load(), "one verification")

	w = serve(h, request(reader.Reveal()))
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, "insufficient_scope", decodeProblem(t, w).Code, "the route's policy still applies")
	assert.EqualValues(t, 2, authenticated.Load(), "the group accepted it")
	assert.EqualValues(t, 1, rejected.Load(), "the route refused it, once")

	// Another Validator's identity is not trusted: the route validates.
	other := newFixture(t, nil)
	h = other.v.Handler(f.v.Require(middleware.Policy{})(okHandler))
	assert.Equal(t, http.StatusUnauthorized, serve(h, request(other.keys["production/server"].Reveal())).Code,
		"f's validator does not know other's key")
}

// TestAuthenticateThenAuthorize: Authenticate on a router group accepts
// both key types and authorizes nothing; each route's Require checks its
// own policy only. A route that names both types admits a publishable key;
// a route with the zero Policy in the same group refuses it, and the
// refusal names the policy that refused. The hooks run once per request.
func TestAuthenticateThenAuthorize(t *testing.T) {
	var authenticated atomic.Int64
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(context.Context, middleware.Attempt, middleware.Identity) { authenticated.Add(1) }
	})
	group := http.NewServeMux()
	group.Handle("/both", f.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Client, apikey.Server}})(okHandler))
	group.Handle("/server", f.v.Require(middleware.Policy{})(okHandler))
	group.Handle("/any", okHandler) // no Require: authenticated, not authorized
	h := f.v.Authenticate(group)
	at := func(path, key string, headers ...string) *http.Request {
		r := request(key, headers...)
		r.URL.Path = path
		return r
	}
	client, server := f.keys["production/client"].Reveal(), f.keys["production/server"].Reveal()

	w := serve(h, at("/both", client))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.EqualValues(t, 1, authenticated.Load(), "OnAuthenticated once")
	assert.Equal(t, http.StatusOK, serve(h, at("/both", server)).Code)
	w = serve(h, at("/server", client))
	require.Equal(t, http.StatusForbidden, w.Code)
	p := decodeProblem(t, w)
	assert.Equal(t, "key_type_not_allowed", p.Code)
	assert.Equal(t, "policy {types: server} does not accept client keys", p.Detail)
	assert.Equal(t, http.StatusOK, serve(h, at("/server", server)).Code)
	assert.Equal(t, http.StatusOK, serve(h, at("/any", client)).Code, "Authenticate authorizes nothing")

	// Authentication keeps the browser rules.
	assert.Equal(t, http.StatusForbidden, serve(h, at("/any", client, "Origin", "https://evil.example")).Code)
	assert.Equal(t, http.StatusForbidden, serve(h, at("/any", server, "Origin", "https://app.example.com")).Code)
	assert.Equal(t, http.StatusUnauthorized, serve(h, at("/any", "")).Code)
	assert.Contains(t, varyValues(serve(h, at("/any", "")).Header()), "X-API-Key")

	// Handler on the group (the zero Policy) refuses publishable keys
	// before any route, and says which policy refused.
	w = serve(f.v.Handler(group), at("/both", client))
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, "policy {types: server} does not accept client keys", decodeProblem(t, w).Detail)
}

// TestNewContextIsNotTrusted: an Identity put in the context with
// NewContext reaches FromContext, but never stands in for a key.
func TestNewContextIsNotTrusted(t *testing.T) {
	f := newFixture(t, nil)
	id := middleware.Identity{KeyID: f.keys["production/server"].ID(), Prefix: f.keys["production/server"].Prefix(),
		Type: apikey.Server, Environment: apikey.Production, Scopes: []string{apikey.AllScopes}}
	ctx := middleware.NewContext(context.Background(), id)
	got, ok := middleware.FromContext(ctx)
	require.True(t, ok)
	assert.Equal(t, id, got)

	r := request("").WithContext(ctx)
	assert.Equal(t, http.StatusUnauthorized, serve(f.v.Handler(okHandler), r).Code)
	fromCheck, err := f.v.Check(request(f.keys["production/server"].Reveal()), middleware.Policy{})
	require.NoError(t, err)
	r = request("").WithContext(middleware.NewContext(context.Background(), fromCheck))
	assert.Equal(t, http.StatusUnauthorized, serve(f.v.Handler(okHandler), r).Code, "a copy of a real Identity is not trusted either")
}

// TestCORSWrapsARouter: with method-scoped routes, a preflight gets 405 from
// the router unless CORS wraps the router, which answers it for the origins
// that environments allow; the actual request is validated by the route.
func TestCORSWrapsARouter(t *testing.T) {
	f := newFixture(t, nil)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/products", f.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Client}, Scope: "products:read"})(okHandler))
	pre := func(origin string) *http.Request {
		r := request("", "Origin", origin, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x-api-key")
		r.Method, r.URL.Path = http.MethodOptions, "/v1/products"
		return r
	}
	assert.Equal(t, http.StatusMethodNotAllowed, serve(mux, pre("https://app.example.com")).Code, "the bare router")

	h := f.v.CORS(mux)
	w := serve(h, pre("https://app.example.com"))
	assert.Equal(t, http.StatusNoContent, w.Code)
	assert.Equal(t, "https://app.example.com", w.Header().Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "x-api-key", w.Header().Get("Access-Control-Allow-Headers"))
	w = serve(h, pre("https://evil.example"))
	assert.Empty(t, w.Header().Get("Access-Control-Allow-Origin"), "no environment allows it")

	get := request(f.keys["production/client"].Reveal(), "Origin", "https://app.example.com")
	get.URL.Path = "/v1/products"
	w = serve(h, get)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "https://app.example.com", w.Header().Get("Access-Control-Allow-Origin"))
	get = request(f.keys["staging/client"].Reveal(), "Origin", "https://app.example.com")
	get.URL.Path = "/v1/products"
	assert.Equal(t, http.StatusForbidden, serve(h, get).Code, "staging does not allow the origin")
}

// TestStats: the counters follow what the requests did.
func TestStats(t *testing.T) {
	var background atomic.Int64
	f := newFixture(t, func(o *middleware.Options) {
		o.ThrottleFailures = 2
		o.OnBackgroundError = func(error) { background.Add(1) }
	})
	h := f.v.Handler(okHandler)
	server := f.keys["production/server"]
	zero := f.v.Stats()
	assert.Zero(t, zero.CacheHits+zero.CacheMisses+zero.Hashes+zero.Throttled)

	for range 3 { // one miss and one argon2 run, then two hits
		require.Equal(t, http.StatusOK, serve(h, request(server.Reveal())).Code)
	}
	serve(h, request(""))                                   // missing_key
	serve(h, request(f.keys["production/client"].Reveal())) // key_type_not_allowed
	for _, c := range []byte("abc") {                       // two wrong secrets, then throttled
		serve(h, request(forge(apikey.Server, server.ID(), c))) // each a miss
	}
	s := f.v.Stats()
	assert.EqualValues(t, 2, s.CacheHits)
	assert.EqualValues(t, 1+1+3, s.CacheMisses)
	assert.EqualValues(t, 1+1+2, s.Hashes, "server, client, two wrong secrets")
	assert.Positive(t, s.HashTime)
	assert.Zero(t, s.HashesRunning)
	assert.Zero(t, s.HashesWaiting)
	assert.EqualValues(t, 1, s.Throttled)
	assert.Equal(t, map[string]uint64{
		"missing_key": 1, "malformed_key": 0, "invalid_key": 2, "expired_key": 0, "revoked_key": 0,
		"key_type_not_allowed": 1, "insufficient_scope": 0, "environment_not_allowed": 0,
		"origin_not_allowed": 0, "server_key_from_browser": 0, "too_many_failures": 1,
		"unavailable": 0, "busy": 0, "other": 0,
	}, s.Refusals)
	assert.Equal(t, 2, s.CachedKeys)
	assert.Equal(t, 2, s.CachedFailures)

	// The feed: its revision advances as changes are made.
	_, err := f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{"https://s.example"})
	require.NoError(t, err)
	rev, err := f.store.Revision(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return f.v.Stats().FeedRevision == rev }, 5*time.Second, 5*time.Millisecond)
	assert.GreaterOrEqual(t, f.v.Stats().FeedLag, time.Duration(0))

	// Background errors are counted, and still reported.
	f.store.down.Store(true)
	f.v.Invalidate(apikey.Event{Action: apikey.ActionSetOrigins, Environment: apikey.Staging}) // a reload that fails
	assert.Positive(t, f.v.Stats().BackgroundErrors)
	assert.Positive(t, background.Load(), "and still reported")
}
