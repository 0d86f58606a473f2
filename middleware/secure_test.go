package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// Regression tests for the "secure by default" rules: each failed on the
// code before its fix.

// TestThrottleNeverLocksOutVerifiedKey: flushing the throttle's table with
// junk key ids and then spending the real key id's failure budget must not
// get the real key, which verified in this process, refused once its cache
// entry expires, in this window or any later one.
func TestThrottleNeverLocksOutVerifiedKey(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) {
		o.CacheTTL = 10 * time.Second
		o.ThrottleWindow = time.Minute
	})
	h := f.v.Handler(okHandler)
	real := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code)

	// 10,001 well-formed junk ids (checksums are public): more than any
	// table of ids the throttle could keep.
	for i := range 10_001 {
		junk := forge(apikey.Server, fmt.Sprintf("junk%08d", i), 'j')
		require.Equal(t, http.StatusUnauthorized, serve(h, request(junk)).Code)
	}
	for window := range 3 {
		for i := range middleware.DefaultThrottleFailures + 2 {
			wrong := forge(apikey.Server, real.ID(), byte('a'+i))
			code := serve(h, request(wrong)).Code
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, code)
		}
		assert.Equal(t, http.StatusTooManyRequests, serve(h, request(forge(apikey.Server, real.ID(), 'z'))).Code,
			"window %d: the budget is spent", window)
		f.clock.Advance(11 * time.Second) // the real key's cache entry expired
		assert.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code, "window %d", window)
		f.clock.Advance(time.Minute)
	}
}

// gatedStore holds the validator's first Key read after it has read the
// record, until release is closed: the verification in flight then holds a
// record read before whatever happens meanwhile.
type gatedStore struct {
	*flakyStore
	once    sync.Once
	read    chan struct{} // closed once the first read has its record
	release chan struct{}
}

func (s *gatedStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	rec, err := s.flakyStore.Key(ctx, id)
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.read)
		<-s.release
	}
	return rec, err
}

// TestNoVerificationResultFromBeforeRevocation: a request that arrives after
// Revoke returned must not join a verification that read the key before the
// revocation.
func TestNoVerificationResultFromBeforeRevocation(t *testing.T) {
	f := newFixture(t, nil)
	key := f.create(apikey.CreateRequest{
		Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes},
		ExpiresAt: f.clock.Now().Add(time.Hour),
	})
	gated := &gatedStore{flakyStore: f.store, read: make(chan struct{}), release: make(chan struct{})}
	v, err := middleware.New(middleware.Options{Store: gated, Hasher: f.hasher, Now: f.clock.Now})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)

	first := make(chan int, 1)
	go func() { first <- serve(h, request(key.Reveal())).Code }()
	<-gated.read // the first request holds the record from before the revocation

	_, err = f.manager.Revoke(context.Background(), owner, key.ID())
	require.NoError(t, err)
	v.Invalidate(apikey.Event{Action: apikey.ActionRevoke, Environment: apikey.Production, KeyID: key.ID()})

	second := make(chan int, 1)
	go func() { second <- serve(h, request(key.Reveal())).Code }()
	select {
	case code := <-second: // it did not wait for the stale verification
		assert.Equal(t, http.StatusUnauthorized, code)
		close(gated.release)
	case <-time.After(200 * time.Millisecond): // it joined it: let it finish
		close(gated.release)
		assert.Equal(t, http.StatusUnauthorized, <-second, "a request after Revoke got a result read before it")
	}
	assert.Equal(t, http.StatusUnauthorized, <-first, "the result was read before an eviction of its key id")
}

// panickingStore panics in Key while panics is set, with a message that
// names a secret.
type panickingStore struct {
	*flakyStore
	secret string
	panics bool
}

func (s *panickingStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	if s.panics {
		panic("driver bug while reading " + s.secret)
	}
	return s.flakyStore.Key(ctx, id)
}

// TestPanickingStoreIsUnavailable: a panic in a Store method during
// verification is a 503 for the request and a background error without the
// secret, not a crash of the process.
func TestPanickingStoreIsUnavailable(t *testing.T) {
	f := newFixture(t, nil)
	key := f.keys["production/server"]
	store := &panickingStore{flakyStore: f.store, secret: key.Reveal(), panics: true}
	var mu sync.Mutex
	var background []error
	v, err := middleware.New(middleware.Options{
		Store: store, Hasher: f.hasher, Now: f.clock.Now,
		OnBackgroundError: func(err error) { mu.Lock(); background = append(background, err); mu.Unlock() },
	})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)

	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes { // concurrent requests share one verification
		wg.Go(func() { codes[i] = serve(h, request(key.Reveal())).Code })
	}
	wg.Wait()
	for _, code := range codes {
		assert.Equal(t, http.StatusServiceUnavailable, code)
	}
	w := serve(h, request(key.Reveal()))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.NotContains(t, w.Body.String(), key.Reveal())

	mu.Lock()
	require.NotEmpty(t, background)
	for _, err := range background {
		assert.Contains(t, err.Error(), "panic")
		assert.Contains(t, err.Error(), "driver bug")
		assert.NotContains(t, err.Error(), key.Reveal()[apikey.PrefixLength:])
	}
	mu.Unlock()

	store.panics = false // the process kept serving: the key works again
	assert.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
}

// TestPublishableKeysOptInPerRoute: a route admits client- keys only when
// its Policy names them; Handler (the zero Policy) admits server keys only.
func TestPublishableKeysOptInPerRoute(t *testing.T) {
	f := newFixture(t, nil)
	client, server := f.keys["production/client"].Reveal(), f.keys["production/server"].Reveal()
	both := []apikey.KeyType{apikey.Server, apikey.Client}
	tests := []struct {
		name         string
		h            http.Handler
		client, serv int
	}{
		{"Handler", f.v.Handler(okHandler), http.StatusForbidden, http.StatusOK},
		{"zero Policy", f.v.Require(middleware.Policy{})(okHandler), http.StatusForbidden, http.StatusOK},
		{"scope without types", f.v.Require(middleware.Policy{Scope: "orders:read"})(okHandler), http.StatusForbidden, http.StatusOK},
		{"client named", f.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Client}, Scope: "orders:read"})(okHandler), http.StatusOK, http.StatusForbidden},
		{"both named", f.v.Require(middleware.Policy{Types: both})(okHandler), http.StatusOK, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(tt.h, request(client))
			assert.Equal(t, tt.client, w.Code)
			if tt.client == http.StatusForbidden {
				assert.Contains(t, w.Body.String(), `"code":"key_type_not_allowed"`)
			}
			assert.Equal(t, tt.serv, serve(tt.h, request(server)).Code)
		})
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
		f := newFixture(t, func(o *middleware.Options) { o.AllowBearer = bearer })
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
