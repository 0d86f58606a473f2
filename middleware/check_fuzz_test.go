package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/memory"
)

// FuzzCheck drives the whole middleware (Check and Handler) with arbitrary
// X-API-Key, Authorization and Origin values and methods against a memory
// store holding valid, scoped, expired and revoked keys. It checks that
// nothing panics, every refusal has a Reason with status 401, 403, 429 or
// 503, a request succeeds only with a valid key of the store, sent whole, and
// from a browser only as an allowed publishable key, and that no response or
// error holds a secret of the store.
func FuzzCheck(f *testing.F) {
	clock := newClock()
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	var all []apikey.Key // every key of the store
	valid := map[string]apikey.Key{}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		issued, err := m.Bootstrap(ctx, owner, env)
		if err != nil {
			f.Fatal(err)
		}
		for _, is := range issued {
			all = append(all, is.Key)
			valid[is.Key.Reveal()] = is.Key
		}
	}
	allowed := []string{"https://app.example.com", "https://*.example.org", "http://localhost:3000"}
	if _, err := m.SetAllowedOrigins(ctx, owner, apikey.Production, allowed); err != nil {
		f.Fatal(err)
	}
	create := func(req apikey.CreateRequest) apikey.Key {
		req.Environment = apikey.Production
		is, err := m.Create(ctx, owner, req)
		if err != nil {
			f.Fatal(err)
		}
		all = append(all, is.Key)
		return is.Key
	}
	scoped := create(apikey.CreateRequest{Type: apikey.Server, Scopes: []string{"orders:read"}})
	valid[scoped.Reveal()] = scoped
	create(apikey.CreateRequest{Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: clock.Now().Add(time.Second)}) // expires below
	revoked := create(apikey.CreateRequest{Type: apikey.Client, ExpiresAt: clock.Now().Add(time.Hour)})
	if _, err := m.Revoke(ctx, owner, revoked.ID()); err != nil {
		f.Fatal(err)
	}
	clock.Advance(time.Second)

	var validators []*middleware.Validator
	for _, bearer := range []bool{false, true} {
		v, err := middleware.New(middleware.Options{
			Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clock.Now,
			Keys: middleware.KeyOptions{AllowBearer: bearer}, MaxConcurrentHashes: 2, FeedInterval: time.Hour,
			OnBackgroundError: func(err error) {},
		})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = v.Close() })
		validators = append(validators, v)
	}
	var origins []apikey.Origin
	for _, a := range allowed {
		o, err := apikey.ParseOrigin(a)
		if err != nil {
			f.Fatal(err)
		}
		origins = append(origins, o)
	}

	for _, k := range append(all, forgeKey(all[0], 'x')) {
		s := k.Reveal()
		f.Add(s, "", "", uint8(0))
		f.Add(" "+s+"\t", "", "https://app.example.com", uint8(1))
		f.Add("", "Bearer "+s, "", uint8(1))
		f.Add(s, "bearer "+s, "null", uint8(3))
		f.Add(s[:len(s)-1]+"0", "", "http://localhost:3000", uint8(2))
		f.Add(s, "", "https://a.example.org", uint8(4))
	}
	for _, junk := range []string{"", "server-", "client-AAAAAAAAAAAA_", "\x00", "server-\xff\xfe", strings.Repeat("a", apikey.KeyLength)} {
		f.Add(junk, junk, junk, uint8(5))
	}
	methods := []string{http.MethodGet, http.MethodPost, http.MethodOptions}
	statuses := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusServiceUnavailable}

	f.Fuzz(func(t *testing.T, apiKey, auth, origin string, mode uint8) {
		v := validators[mode&1]
		method := methods[int(mode>>1)%len(methods)]
		newRequest := func() *http.Request {
			r := httptest.NewRequest(method, "/things", nil)
			if apiKey != "" {
				r.Header.Set("X-API-Key", apiKey)
			}
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
			if origin != "" {
				r.Header.Set("Origin", origin)
				if mode&8 != 0 {
					r.Header.Set("Access-Control-Request-Method", "GET")
				}
			}
			return r
		}

		id, err := v.Check(newRequest(), middleware.Policy{})
		if err != nil {
			reason := problem.Of(err)
			if reason == nil || !slices.Contains(statuses, reason.Status()) {
				t.Fatalf("refusal without a 401/403/429/503 reason: %v", err)
			}
			noSecret(t, all, "error", err.Error())
		} else {
			key, ok := presented(valid, apiKey, auth)
			if !ok || key.ID() != id.KeyID || key.Type() != id.Type {
				t.Fatalf("accepted %q / %q as %+v: not a valid key of the store", apiKey, auth, id)
			}
			if origin != "" {
				if id.Type != apikey.Client {
					t.Fatalf("accepted a %s key from a browser", id.Type)
				}
				if id.Environment == apikey.Production && !slices.ContainsFunc(origins, func(o apikey.Origin) bool { return o.Match(origin) }) {
					t.Fatalf("accepted a production publishable key from origin %q", origin)
				}
			}
		}

		w := serve(v.Handler(okHandler), newRequest())
		switch {
		case w.Code == http.StatusOK:
			if err != nil {
				t.Fatalf("Handler accepted what Check refused (%v)", err)
			}
		case w.Code == http.StatusNoContent && method == http.MethodOptions: // a preflight answered
		case slices.Contains(statuses, w.Code):
			if problemCode(w.Body.Bytes()) == "" {
				t.Fatalf("status %d without a problem code", w.Code)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w.Code != http.StatusOK {
			noSecret(t, all, "body", w.Body.String())
		}
		for name, values := range w.Header() {
			noSecret(t, all, "header "+name, strings.Join(values, ","))
		}
	})
}

// presented returns the valid key that a request carries, whole, in its
// X-API-Key or Authorization header.
func presented(valid map[string]apikey.Key, apiKey, auth string) (apikey.Key, bool) {
	if k, ok := valid[strings.TrimSpace(apiKey)]; ok {
		return k, true
	}
	_, token, _ := strings.Cut(strings.TrimSpace(auth), " ")
	k, ok := valid[strings.TrimSpace(token)]
	return k, ok
}

// noSecret fails if text holds a piece of a secret of keys (leakAt).
func noSecret(t *testing.T, keys []apikey.Key, where, text string) {
	t.Helper()
	for _, k := range keys {
		if leakAt(text, k.Reveal()) >= 0 {
			t.Fatalf("%s holds a secret of %s: %s", where, k, text)
		}
	}
}

// forgeKey returns k's id with a made-up secret.
func forgeKey(k apikey.Key, c byte) apikey.Key {
	key, err := apikey.ParseKey(forge(k.Type(), k.ID(), c))
	if err != nil {
		panic(err)
	}
	return key
}
