package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
)

// TestOriginsPerAccount: two accounts with an environment of the same name
// allow different origins; a publishable key is checked against its own
// account's list, and a preflight (which carries no key) is answered for
// an origin that some account allows.
func TestOriginsPerAccount(t *testing.T) {
	a := newAccounts(t)
	v := a.validator(nil, true)
	h := v.Require(anyType)(okHandler)
	for _, tt := range []struct {
		key, origin string
		status      int
	}{
		{"acme/production/client", "https://acme.example", 200},
		{"acme/production/client", "https://globex.example", 403},
		{"globex/production/client", "https://globex.example", 200},
		{"globex/production/client", "https://acme.example", 403},
		{"acme/staging/client", "https://acme.example", 403},
	} {
		w := serve(h, request(a.keys[tt.key].Reveal(), "Origin", tt.origin))
		assert.Equal(t, tt.status, w.Code, "%s from %s: %s", tt.key, tt.origin, w.Body)
	}
	for _, tt := range []struct {
		name    string
		origin  string
		allowed bool
	}{
		{"acme's origin", "https://acme.example", true},
		{"globex's origin", "https://globex.example", true},
		{"nobody's origin", "https://initech.example", false},
	} {
		w := serve(v.CORS(h), preflight(tt.origin, "x-api-key"))
		assert.Equal(t, tt.allowed, w.Header().Get("Access-Control-Allow-Origin") == tt.origin, tt.name)
	}
}

// TestPreflightFollowsOriginChanges: the preflight index follows changes of
// an environment's list, and a closed account's origins no longer count.
func TestPreflightFollowsOriginChanges(t *testing.T) {
	a := newAccounts(t)
	v := a.validator(nil, true)
	h := v.CORS(v.Require(anyType)(okHandler))
	answered := func(origin string) bool {
		return serve(h, preflight(origin, "x-api-key")).Header().Get("Access-Control-Allow-Origin") == origin
	}
	ctx := context.Background()
	require.True(t, answered("https://acme.example"))
	_, err := a.m.SetAllowedOrigins(ctx, actorIn("acme"), apikey.Production, []string{"https://*.acme.example", "http://localhost:3000"})
	require.NoError(t, err)
	assert.False(t, answered("https://acme.example"), "removed")
	assert.True(t, answered("https://shop.acme.example"), "wildcard")
	assert.True(t, answered("https://a.b.acme.example"), "wildcard, deeper")
	assert.True(t, answered("http://localhost:3000"))
	assert.False(t, answered("http://localhost:3001"))
	_, err = a.m.SetAllowedOrigins(ctx, actorIn("globex"), apikey.Staging, []string{"http://localhost:3000"})
	require.NoError(t, err)

	_, err = a.m.CloseAccount(ctx, actorIn("acme"), "acme")
	require.NoError(t, err)
	assert.False(t, answered("https://shop.acme.example"), "a closed account's origins no longer count")
	assert.True(t, answered("http://localhost:3000"), "globex still allows it")
	assert.True(t, answered("https://globex.example"))
}

// TestNewEnvironmentLoadsAlone: a browser request with a publishable key of
// an environment that this process has not seen yet (bootstrapped
// elsewhere a moment ago) makes it read that environment's settings alone.
func TestNewEnvironmentLoadsAlone(t *testing.T) {
	a := newAccounts(t)
	counted := faultstore.New(a.store)
	// The feed is late: never read during the test. (A feed read held up
	// by a delay blocked the background loop, and the reload with it, when
	// the loop reached the feed before the request: under load.)
	b, err := middleware.New(middleware.Options{
		Store: counted.Exact(), Hasher: apikey.Argon2id{Params: apikey.TestParams}, FeedInterval: time.Hour,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	h := b.Require(anyType)(okHandler)
	envs := counted.Calls(faultstore.OpEnvironments)
	issued, err := a.m.Bootstrap(context.Background(), actorIn("acme"), "qa")
	require.NoError(t, err)
	_, err = a.m.SetAllowedOrigins(context.Background(), actorIn("acme"), "qa", []string{"https://qa.acme.example"})
	require.NoError(t, err)
	key := issued[1].Key.Reveal()
	w := serve(h, request(key, "Origin", "https://qa.acme.example"))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, "not loaded yet: fail closed")
	require.Eventually(t, func() bool {
		return serve(h, request(key, "Origin", "https://qa.acme.example")).Code == http.StatusOK
	}, 2*time.Second, time.Millisecond)
	assert.Zero(t, counted.Calls(faultstore.OpEnvironments)-envs, "no full reload")
}

// TestOriginTableSurvivesConcurrentChanges runs browser requests of two
// accounts while their origins change: under -race, the request path
// reads the table while the Manager's events and the change feed update
// it.
func TestOriginTableSurvivesConcurrentChanges(t *testing.T) {
	a := newAccounts(t)
	v := a.validator(nil, true)
	h := v.Require(anyType)(okHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, account := range []string{"acme", "globex"} {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				origins := []string{"https://" + account + ".example"}
				if i%2 == 1 {
					origins = append(origins, "https://*.extra.example")
				}
				_, err := a.m.SetAllowedOrigins(context.Background(), actorIn(account), apikey.Production, origins)
				assert.NoError(t, err)
			}
		})
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, account := range []string{"acme", "globex"} {
			w := serve(h, request(a.keys[account+"/production/client"].Reveal(), "Origin", "https://"+account+".example"))
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			serve(h, preflight("https://a.extra.example", "x-api-key"))
		}
	}
	cancel()
	wg.Wait()
	assert.Equal(t, 4, v.Stats().Environments)
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

// The fixture's production environment allows https://app.example.com,
// https://*.example.org and http://localhost:3000; staging has no list.
func TestOrigins(t *testing.T) {
	f := newFixture(t, nil)
	prod := f.keys["production/client"].Reveal()
	staging := f.keys["staging/client"].Reveal()
	h := f.v.CORS(f.v.Require(anyType)(okHandler))
	tests := []struct {
		name   string
		key    string
		origin string
		status int
	}{
		{"exact origin", prod, "https://app.example.com", 200},
		{"exact origin, other case", prod, "HTTPS://APP.EXAMPLE.COM", 200},
		{"exact origin with default port", prod, "https://app.example.com:443", 200},
		{"other host", prod, "https://evil.example.com", 403},
		{"other scheme", prod, "http://app.example.com", 403},
		{"other port", prod, "https://app.example.com:8443", 403},
		{"wildcard subdomain", prod, "https://shop.example.org", 200},
		{"wildcard deep subdomain", prod, "https://a.b.example.org", 200},
		{"wildcard apex is not covered", prod, "https://example.org", 403},
		{"wildcard suffix trick", prod, "https://evilexample.org", 403},
		{"localhost with its port", prod, "http://localhost:3000", 200},
		{"localhost other port", prod, "http://localhost:3001", 403},
		{"null origin", prod, "null", 403},
		{"garbage origin", prod, "not a url", 403},
		{"no Origin: not a browser", prod, "", 200},
		{"environment without a list admits no origin", staging, "https://anything.example", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.origin != "" {
				headers = []string{"Origin", tt.origin}
			}
			w := serve(h, request(tt.key, headers...))
			require.Equal(t, tt.status, w.Code, w.Body.String())
			assert.Contains(t, varyValues(w.Header()), "Origin")
			if tt.status == 403 {
				assert.Equal(t, "origin_not_allowed", decodeProblem(t, w).Code)
			}
		})
	}
}

func preflight(origin string, headers string) *http.Request {
	r := request("", "Origin", origin, "Access-Control-Request-Method", http.MethodPost)
	r.Method = http.MethodOptions
	if headers != "" {
		r.Header.Set("Access-Control-Request-Headers", headers)
	}
	return r
}

// TestPreflight: the CORS layer answers preflights for the router, without
// a key and without reaching the routes, for the origins that some
// environment allows (every origin with AllowServerKeyFromBrowser).
func TestPreflight(t *testing.T) {
	f := newFixture(t, nil)
	routes := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a preflight reached the routes") })
	h := f.v.CORS(routes)
	leaky := newFixture(t, func(o *middleware.Options) { o.AllowServerKeyFromBrowser = true })
	tests := []struct {
		name    string
		h       http.Handler
		origin  string
		headers string
		allowed bool
	}{
		{"allowed origin", h, "https://app.example.com", "content-type,x-api-key", true},
		{"allowed wildcard origin", h, "https://a.example.org", "x-api-key", true},
		{"foreign origin", h, "https://evil.example", "x-api-key", false},
		{"header not allowed", h, "https://app.example.com", "x-api-key,x-custom-header", false},
		{"server keys from browsers admit every origin", leaky.v.CORS(routes), "https://evil.example", "x-api-key", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(tt.h, preflight(tt.origin, tt.headers))
			require.Equal(t, http.StatusNoContent, w.Code)
			assert.True(t, strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin"))
			if !tt.allowed {
				assert.Empty(t, w.Header().Get("Access-Control-Allow-Origin"))
				return
			}
			assert.Equal(t, tt.origin, w.Header().Get("Access-Control-Allow-Origin"))
			assert.Equal(t, http.MethodPost, w.Header().Get("Access-Control-Allow-Methods"))
			assert.Equal(t, tt.headers, w.Header().Get("Access-Control-Allow-Headers"))
		})
	}
}

// The grace header and the rate limit's fields (and Retry-After, which is
// not safelisted) are readable by the page's scripts.
func TestActualCORSRequestExposesHeaders(t *testing.T) {
	f := newFixture(t, nil)
	w := serve(f.v.CORS(f.v.Require(anyType)(okHandler)), request(f.keys["production/client"].Reveal(), "Origin", "https://app.example.com"))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "https://app.example.com", w.Header().Get("Access-Control-Allow-Origin"))
	assert.Equal(t, middleware.HeaderKeyExpires+", Ratelimit, Ratelimit-Policy, Retry-After", w.Header().Get("Access-Control-Expose-Headers"))
}

func TestOriginChangeWithoutRestart(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour }) // Invalidate alone
	key := f.keys["staging/client"].Reveal()
	h := f.v.Require(anyType)(okHandler)
	require.Equal(t, http.StatusForbidden, serve(h, request(key, "Origin", "https://old.example")).Code, "no list: no origin")
	_, err := f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{"https://old.example"})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, serve(h, request(key, "Origin", "https://old.example")).Code)
	_, err = f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{"https://new.example"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return serve(h, request(key, "Origin", "https://old.example")).Code == http.StatusForbidden
	}, time.Second, 5*time.Millisecond)
	require.Equal(t, http.StatusOK, serve(h, request(key, "Origin", "https://new.example")).Code)
}

func TestOriginChangeReachesOtherProcesses(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{"https://old.example"})
	require.NoError(t, err)
	other, err := middleware.New(middleware.Options{Store: f.store.Inner(), Hasher: f.hasher, Now: f.clock.Now, FeedInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	defer other.Close()
	key := f.keys["staging/client"].Reveal()
	h := other.Require(anyType)(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(key, "Origin", "https://old.example")).Code)
	_, err = f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{"https://new.example"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return serve(h, request(key, "Origin", "https://old.example")).Code == http.StatusForbidden
	}, time.Second, 5*time.Millisecond)
}

// TestSettingsNotLoadedFailClosed: while the settings cannot be loaded, a
// publishable key from a browser gets 503; New still succeeds, and the
// settings load in the background once the store answers.
func TestSettingsNotLoadedFailClosed(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{"https://x.example"})
	require.NoError(t, err)
	fs := faultstore.New(f.store.Inner())
	fs.Down(faultstore.OpEnvironments, faultstore.OpSettings)
	var bg []error
	var mu sync.Mutex
	v, err := middleware.New(middleware.Options{Store: fs, Hasher: f.hasher, Now: f.clock.Now,
		OnBackgroundError: func(err error) { mu.Lock(); bg = append(bg, err); mu.Unlock() }})
	require.NoError(t, err, "New succeeds while the store is down")
	defer v.Close()
	mu.Lock()
	require.NotEmpty(t, bg)
	mu.Unlock()
	w := serve(v.Require(anyType)(okHandler), request(f.keys["staging/client"].Reveal(), "Origin", "https://x.example"))
	require.Equal(t, http.StatusServiceUnavailable, w.Code, "origins unknown: fail closed")
	fs.Up()
	require.Eventually(t, func() bool {
		return serve(v.Require(anyType)(okHandler), request(f.keys["staging/client"].Reveal(), "Origin", "https://x.example")).Code == http.StatusOK
	}, time.Second, 5*time.Millisecond, "the settings load in the background")
}

// TestLeakedServerKey: a server key that arrives with an Origin header is
// refused by default and reaches OnRejected with ErrServerKeyFromBrowser;
// with AllowServerKeyFromBrowser it is served and reaches OnAuthenticated
// with the Origin. Either way the hooks see it once.
func TestLeakedServerKey(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow=%v", allow), func(t *testing.T) {
			var leaked []middleware.Attempt
			var mu sync.Mutex
			f := newFixture(t, func(o *middleware.Options) {
				o.AllowServerKeyFromBrowser = allow
				o.OnAuthenticated = func(_ context.Context, a middleware.Attempt, id middleware.Identity) {
					mu.Lock()
					defer mu.Unlock()
					if a.Origin != "" && id.Type == apikey.Server {
						leaked = append(leaked, a)
					}
				}
				o.OnRejected = func(_ context.Context, a middleware.Attempt, err error) {
					mu.Lock()
					defer mu.Unlock()
					if errors.Is(err, middleware.ErrServerKeyFromBrowser) {
						leaked = append(leaked, a)
					}
				}
			})
			key := f.keys["production/server"]
			h := f.v.Handler(okHandler)
			require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code, "no Origin: no leak")
			w := serve(h, request(key.Reveal(), "Origin", "https://app.example.com"))
			if allow {
				require.Equal(t, http.StatusOK, w.Code)
			} else {
				require.Equal(t, http.StatusForbidden, w.Code)
				assert.Equal(t, "server_key_from_browser", decodeProblem(t, w).Code)
			}
			require.Len(t, leaked, 1)
			assert.Equal(t, key.Prefix(), leaked[0].Prefix)
			assert.Equal(t, "https://app.example.com", leaked[0].Origin)
			// A forged server key from a browser is not a leak.
			serve(h, request(forge(apikey.Server, key.ID(), 'f'), "Origin", "https://app.example.com"))
			assert.Len(t, leaked, 1)
		})
	}
}

// TestPreflightVariesOnKey: preflight answers (Require, Handler and
// Validator.CORS) vary on the key header too.
func TestPreflightVariesOnKey(t *testing.T) {
	f := newFixture(t, nil)
	pre := func() *http.Request {
		r := request("", "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "x-api-key")
		r.Method = http.MethodOptions
		return r
	}
	for name, h := range map[string]http.Handler{
		"Require": f.v.Require(anyType)(okHandler),
		"CORS":    f.v.CORS(http.NotFoundHandler()),
		"Handler": f.v.Handler(okHandler),
	} {
		w := serve(h, pre())
		vary := strings.Join(w.Header().Values("Vary"), ",")
		assert.Contains(t, vary, "X-API-Key", name)
	}
}

// TestNoOriginsMeansNoBrowser: an environment with no allowed origins (the
// fixture's staging) admits no browser origin, in requests and preflights.
func TestNoOriginsMeansNoBrowser(t *testing.T) {
	f := newFixture(t, nil)
	h := f.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Client}})(okHandler)
	staging := f.keys["staging/client"].Reveal()
	assert.Equal(t, http.StatusOK, serve(h, request(staging)).Code, "no Origin: not a browser")
	w := serve(h, request(staging, "Origin", "https://anywhere.example.net"))
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Contains(t, w.Body.String(), `"code":"origin_not_allowed"`)

	staged := f.v.CORS(okHandler)
	pre := request("", "Origin", "https://anywhere.example.net", "Access-Control-Request-Method", "GET")
	pre.Method = http.MethodOptions
	assert.Empty(t, serve(staged, pre).Header().Get("Access-Control-Allow-Origin"))

	// Any origin is an explicit choice: the entry "*".
	_, err := f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{apikey.AnyOrigin})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, serve(h, request(staging, "Origin", "https://anywhere.example.net")).Code)
	assert.Equal(t, http.StatusForbidden, serve(h, request(staging, "Origin", "null")).Code, "not a web origin")
	assert.Equal(t, "https://anywhere.example.net", serve(staged, pre).Header().Get("Access-Control-Allow-Origin"))
}

// TestResponsesVaryOnKey: every response of the middleware varies on the
// key's header (and Authorization when Bearer is on), so that no shared
// cache serves one key's response to another.
func TestResponsesVaryOnKey(t *testing.T) {
	for _, bearer := range []bool{false, true} {
		f := newFixture(t, func(o *middleware.Options) { o.Keys.AllowBearer = bearer })
		h := f.v.CORS(f.v.Handler(okHandler))
		want := []string{"Origin", "X-API-Key"}
		if bearer {
			want = append(want, "Authorization")
		}
		for name, r := range map[string]*http.Request{
			"valid":          request(f.keys["production/server"].Reveal()),
			"missing":        request(""),
			"invalid":        request(forge(apikey.Server, f.keys["production/server"].ID(), 'x')),
			"browser":        request(f.keys["production/server"].Reveal(), "Origin", "https://app.example.com"),
			"browser client": request(f.keys["production/client"].Reveal(), "Origin", "https://app.example.com"),
		} {
			w := serve(h, r)
			vary := varyValues(w.Header())
			for _, header := range want {
				assert.Contains(t, vary, header, "bearer %v, %s (%d)", bearer, name, w.Code)
			}
		}
	}
}

// TestBrowserSignals: the leaked-server-key rule recognises a browser by an
// Origin header or by a Fetch Metadata Sec-Fetch-Site header of any value,
// such as the same-origin GET that Chromium sends without an Origin.
// Sec-Fetch-Mode alone (Node.js's fetch sends it from servers) is no
// browser, and publishable keys are checked against the Origin only, so
// that mobile apps and servers, which send neither header, keep working.
// The hooks say whether a browser sent the request, and never see the key.
func TestBrowserSignals(t *testing.T) {
	type hooked struct {
		hook    string // "authenticated" or "rejected"
		attempt middleware.Attempt
		err     error
	}
	const (
		authenticated = "authenticated"
		rejected      = "rejected"
	)
	newRecorded := func(allow bool) (*fixture, func() []hooked) {
		var mu sync.Mutex
		var seen []hooked
		f := newFixture(t, func(o *middleware.Options) {
			o.AllowServerKeyFromBrowser = allow
			o.OnAuthenticated = func(_ context.Context, a middleware.Attempt, _ middleware.Identity) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, hooked{hook: authenticated, attempt: a})
			}
			o.OnRejected = func(_ context.Context, a middleware.Attempt, err error) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, hooked{hook: rejected, attempt: a, err: err})
			}
		})
		return f, func() []hooked {
			mu.Lock()
			defer mu.Unlock()
			out := seen
			seen = nil
			return out
		}
	}
	strict, strictSeen := newRecorded(false)
	loose, looseSeen := newRecorded(true)

	sameOriginGET := []string{"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty"}
	tests := []struct {
		name      string
		allow     bool   // AllowServerKeyFromBrowser
		key       string // "production/server" or "production/client"
		headers   []string
		status    int
		code      string
		hook      string
		browser   bool
		fetchSite string
	}{
		{"server key, no browser header", false, "production/server", nil, 200, "", authenticated, false, ""},
		{"server key, same-origin GET without Origin", false, "production/server", sameOriginGET, 403, "server_key_from_browser", rejected, true, "same-origin"},
		{"server key, Sec-Fetch-Site alone", false, "production/server", []string{"Sec-Fetch-Site", "same-origin"}, 403, "server_key_from_browser", rejected, true, "same-origin"},
		{"server key, user-started request (none)", false, "production/server", []string{"Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-User", "?1"}, 403, "server_key_from_browser", rejected, true, "none"},
		{"server key, same-site with Origin", false, "production/server", []string{"Sec-Fetch-Site", "same-site", "Origin", "https://app.example.com"}, 403, "server_key_from_browser", rejected, true, "same-site"},
		{"server key, cross-site with Origin", false, "production/server", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors", "Origin", "https://app.example.com"}, 403, "server_key_from_browser", rejected, true, "cross-site"},
		{"server key, Sec-Fetch-Site of another value", false, "production/server", []string{"Sec-Fetch-Site", "Same-Origin\x7f"}, 403, "server_key_from_browser", rejected, true, "other"},
		{"server key, Sec-Fetch-Site holding the key", false, "production/server", []string{"Sec-Fetch-Site", "$key"}, 403, "server_key_from_browser", rejected, true, "other"},
		{"server key, Sec-Fetch-Site empty", false, "production/server", []string{"Sec-Fetch-Site", ""}, 403, "server_key_from_browser", rejected, true, "other"},
		{"server key, Origin alone", false, "production/server", []string{"Origin", "https://app.example.com"}, 403, "server_key_from_browser", rejected, true, ""},
		{"server key, Sec-Fetch-Mode alone (Node.js fetch)", false, "production/server", []string{"Sec-Fetch-Mode", "cors"}, 200, "", authenticated, false, ""},
		{"server key, Sec-Fetch-Dest alone", false, "production/server", []string{"Sec-Fetch-Dest", "empty"}, 200, "", authenticated, false, ""},

		{"allowed: server key, same-origin GET", true, "production/server", sameOriginGET, 200, "", authenticated, true, "same-origin"},
		{"allowed: server key, user-started request", true, "production/server", []string{"Sec-Fetch-Site", "none"}, 200, "", authenticated, true, "none"},
		{"allowed: server key, no browser header", true, "production/server", nil, 200, "", authenticated, false, ""},

		{"client key, no browser header (mobile, server)", false, "production/client", nil, 200, "", authenticated, false, ""},
		{"client key, Sec-Fetch-Mode alone", false, "production/client", []string{"Sec-Fetch-Mode", "cors"}, 200, "", authenticated, false, ""},
		{"client key, same-origin GET without Origin", false, "production/client", sameOriginGET, 200, "", authenticated, true, "same-origin"},
		{"client key, allowed Origin", false, "production/client", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://app.example.com"}, 200, "", authenticated, true, "cross-site"},
		{"client key, foreign Origin", false, "production/client", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 403, "origin_not_allowed", rejected, true, "cross-site"},
		{"staging client key, same-origin GET (no list, no Origin)", false, "staging/client", sameOriginGET, 200, "", authenticated, true, "same-origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, seen := strict, strictSeen
			if tt.allow {
				f, seen = loose, looseSeen
			}
			seen() // drop what earlier rows left
			key := f.keys[tt.key]
			headers := slices.Clone(tt.headers)
			for i := range headers {
				headers[i] = strings.ReplaceAll(headers[i], "$key", key.Reveal())
			}
			w := serve(f.v.Require(anyType)(okHandler), request(key.Reveal(), headers...))
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.code != "" {
				assert.Equal(t, tt.code, decodeProblem(t, w).Code)
			}
			assert.NotContains(t, w.Body.String(), key.Reveal()[apikey.PrefixLength:])
			got := seen()
			require.Len(t, got, 1, "one hook call")
			assert.Equal(t, tt.hook, got[0].hook)
			assert.Equal(t, key.Prefix(), got[0].attempt.Prefix)
			assert.Equal(t, tt.browser, got[0].attempt.Browser, "Attempt.Browser")
			assert.Equal(t, tt.fetchSite, got[0].attempt.FetchSite, "Attempt.FetchSite")
			if tt.code == "server_key_from_browser" {
				assert.ErrorIs(t, got[0].err, middleware.ErrServerKeyFromBrowser)
			}
			secret := key.Reveal()[apikey.PrefixLength:]
			assert.NotContains(t, fmt.Sprintf("%+v %v", got[0].attempt, got[0].err), secret, "no secret in a hook")
		})
	}
}

// TestStoredWildcardOverPublicSuffix: allowed origins saved before
// wildcards were checked against the public suffix list, written straight
// into the store, admit nobody under a public suffix: a bucket on
// s3.amazonaws.com gets no preflight and its requests with the tenant's
// publishable key are refused, while a wildcard under the tenant's own
// domain in the same list keeps working. The unusable entries are
// reported.
func TestStoredWildcardOverPublicSuffix(t *testing.T) {
	a := newAccounts(t)
	ctx := context.Background()
	st, err := a.store.Settings(ctx, "acme", apikey.Production)
	require.NoError(t, err)
	st.AllowedOrigins = []string{
		"https://*.amazonaws.com", "https://*.s3.amazonaws.com", "https://*.windows.net",
		"https://*.core.windows.net", "https://*.digitaloceanspaces.com", "https://*.example.com",
	}
	require.NoError(t, a.store.Apply(ctx, apikey.Change{Settings: []apikey.Settings{st}}), "bypasses the Manager's validation")

	var mu sync.Mutex
	var reported []error
	v, err := middleware.New(middleware.Options{
		Store: a.store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		OnBackgroundError: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() },
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	h := v.CORS(v.Require(anyType)(okHandler))
	key := a.keys["acme/production/client"]

	tests := []struct {
		origin  string
		allowed bool
	}{
		{"https://attacker-bucket.s3.amazonaws.com", false},
		{"https://attacker.s3.us-east-1.amazonaws.com", false},
		{"https://attacker.blob.core.windows.net", false},
		{"https://attacker.nyc3.digitaloceanspaces.com", false},
		{"https://app.example.com", true},
		{"https://a.b.example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			w := serve(h, preflight(tt.origin, "x-api-key"))
			if tt.allowed {
				assert.Equal(t, tt.origin, w.Header().Get("Access-Control-Allow-Origin"), "preflight")
			} else {
				assert.Empty(t, w.Header().Get("Access-Control-Allow-Origin"), "preflight")
			}
			w = serve(h, request(key.Reveal(), "Origin", tt.origin, "Sec-Fetch-Site", "cross-site"))
			if tt.allowed {
				require.Equal(t, http.StatusOK, w.Code, w.Body.String())
				return
			}
			require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
			assert.Equal(t, "origin_not_allowed", decodeProblem(t, w).Code)
		})
	}
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, reported, "the unusable entries are reported")
	all := fmt.Sprint(reported)
	assert.Contains(t, all, "entry 1", all)
	assert.NotContains(t, all, "entry 6", all)
}

// TestResponsesVaryOnBrowserSignals: a key's check reads Origin and
// Sec-Fetch-Site (a server key from a browser is refused, a publishable
// key's origin is checked), so every response of a route varies on them,
// whether or not CORS wraps the router.
func TestResponsesVaryOnBrowserSignals(t *testing.T) {
	f := newFixture(t, nil)
	for name, h := range map[string]http.Handler{
		"Require":      f.v.Require(anyType)(okHandler),
		"Authenticate": f.v.Authenticate(okHandler),
		"Handler":      f.v.Handler(okHandler),
	} {
		for _, r := range []*http.Request{
			request(f.keys["production/server"].Reveal()),
			request(f.keys["production/server"].Reveal(), "Sec-Fetch-Site", "same-origin"),
			request(f.keys["production/client"].Reveal(), "Origin", "https://app.example.com"),
		} {
			w := serve(h, r)
			vary := varyValues(w.Header())
			for _, header := range []string{"Origin", "Sec-Fetch-Site", "X-API-Key"} {
				assert.Contains(t, vary, header, "%s (%d)", name, w.Code)
			}
		}
	}
}
