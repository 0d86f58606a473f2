package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

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

func TestActualCORSRequestExposesGraceHeader(t *testing.T) {
	f := newFixture(t, nil)
	w := serve(f.v.CORS(f.v.Require(anyType)(okHandler)), request(f.keys["production/client"].Reveal(), "Origin", "https://app.example.com"))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "https://app.example.com", w.Header().Get("Access-Control-Allow-Origin"))
	assert.Equal(t, middleware.HeaderKeyExpires, w.Header().Get("Access-Control-Expose-Headers"))
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
	other, err := middleware.New(middleware.Options{Store: f.store.Store, Hasher: f.hasher, Now: f.clock.Now, FeedInterval: 10 * time.Millisecond})
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

func TestSettingsNotLoadedFailClosed(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{"https://x.example"})
	require.NoError(t, err)
	f.store.down.Store(true)
	var bg []error
	var mu sync.Mutex
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: f.hasher, Now: f.clock.Now,
		OnBackgroundError: func(err error) { mu.Lock(); bg = append(bg, err); mu.Unlock() }})
	require.NoError(t, err, "New succeeds while the store is down")
	defer v.Close()
	mu.Lock()
	require.NotEmpty(t, bg)
	mu.Unlock()
	f.store.down.Store(false)
	w := serve(v.Require(anyType)(okHandler), request(f.keys["staging/client"].Reveal(), "Origin", "https://x.example"))
	require.Equal(t, http.StatusServiceUnavailable, w.Code, "origins unknown: fail closed")
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

// TestHooksNeverSeeSecrets runs every kind of request and checks that no
// hook argument, error text or problem body holds a secret.
func TestHooksNeverSeeSecrets(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	record := func(args ...any) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%+v", args))
	}
	var counts = map[string]int{}
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(_ context.Context, a middleware.Attempt, id middleware.Identity) {
			counts["authenticated"]++
			record(a, id)
		}
		o.OnRejected = func(_ context.Context, a middleware.Attempt, err error) {
			counts["rejected"]++
			record(a, err, err.Error())
		}
		o.OnBackgroundError = func(err error) { record(err.Error()) }
	})
	server := f.keys["production/server"]
	_, err := f.manager.Rotate(context.Background(), owner, apikey.RotateRequest{KeyID: server.ID(), Grace: time.Hour})
	require.NoError(t, err)
	secrets := []string{server.Reveal(), forge(apikey.Server, server.ID(), 'x'), f.keys["production/client"].Reveal()}
	h := f.v.Handler(okHandler)
	var bodies []string
	for _, s := range secrets {
		for _, r := range []*http.Request{request(s), request(s, "Origin", "https://evil.example"), request(s + "x"), request(s[:40])} {
			bodies = append(bodies, serve(h, r).Body.String())
		}
	}
	f.store.down.Store(true)
	k, _ := apikey.GenerateKey(apikey.Client)
	secrets = append(secrets, k.Reveal())
	bodies = append(bodies, serve(h, request(k.Reveal())).Body.String())

	assert.Positive(t, counts["authenticated"])
	assert.Positive(t, counts["rejected"])
	for _, s := range secrets {
		secret := s[len("server-")+apikey.IDLength+1:][:apikey.SecretLength]
		for _, text := range append(seen, bodies...) {
			require.NotContains(t, text, secret)
		}
	}
}
