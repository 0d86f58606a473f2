package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/memory"
)

// TestThrottleNotFlushedByRealKeys: a tenant that holds more real keys than
// the cache (extra keys have no limit, publishable keys are public) cannot
// push the victim's key out of the set of verified keys, and then spend the
// victim's public key id budget to get it refused.
func TestThrottleNotFlushedByRealKeys(t *testing.T) {
	const size = 4
	f := newFixture(t, func(o *middleware.Options) {
		o.CacheSize = size
		o.ThrottleWindow = time.Hour
	})
	h := f.v.Require(anyType)(okHandler)
	victim := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(h, request(victim.Reveal())).Code)

	// The attacker's own account/environment: staging here.
	for range size + 1 {
		k := f.create(apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
		require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
	}
	for i := range middleware.DefaultThrottleFailures + 1 {
		serve(h, request(forge(apikey.Server, victim.ID(), byte('a'+i))))
	}
	w := serve(h, request(victim.Reveal()))
	assert.Equal(t, http.StatusOK, w.Code, "verified key refused: %s", w.Body.String())
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

// panicHasher panics with the secret it was given, in hex or as bytes.
type panicHasher struct {
	apikey.Argon2id
	how string
}

func (h panicHasher) Verify(secret []byte, encoded string) (bool, bool, error) {
	switch h.how {
	case "bytes":
		panic(secret)
	case "hex":
		panic(fmt.Sprintf("argon2: bad input %x", secret))
	default:
		panic(fmt.Errorf("argon2: bad input %s", secret))
	}
}

// TestHasherPanicNeverPrintsTheSecret: a custom hasher that panics with the
// secret it was given, as text, bytes or hex, never gets it printed.
func TestHasherPanicNeverPrintsTheSecret(t *testing.T) {
	for _, how := range []string{"string", "bytes", "hex"} {
		t.Run(how, func(t *testing.T) {
			f := newFixture(t, nil)
			key := f.keys["production/server"]
			var mu sync.Mutex
			var got []string
			v, err := middleware.New(middleware.Options{
				Store: f.store, Now: f.clock.Now,
				Hasher:            panicHasher{Argon2id: apikey.Argon2id{Params: apikey.TestParams}, how: how},
				OnBackgroundError: func(err error) { mu.Lock(); got = append(got, err.Error()); mu.Unlock() },
			})
			require.NoError(t, err)
			defer v.Close()
			assert.Equal(t, http.StatusServiceUnavailable, serve(v.Handler(okHandler), request(key.Reveal())).Code)
			secret := key.Reveal()[apikey.PrefixLength+1 : apikey.PrefixLength+1+apikey.SecretLength]
			hexSecret := fmt.Sprintf("%x", secret)
			var bytesSecret []string
			for _, b := range []byte(secret[:8]) {
				bytesSecret = append(bytesSecret, fmt.Sprint(b))
			}
			mu.Lock()
			defer mu.Unlock()
			require.NotEmpty(t, got)
			for _, msg := range got {
				assert.NotContains(t, msg, secret)
				assert.NotContains(t, msg, hexSecret)
				assert.NotContains(t, msg, strings.Join(bytesSecret, " "))
			}
		})
	}
}

// TestSubRequestWithAnotherKeyIsValidated: a request made in a handler with
// the outer request's context (a batch endpoint) but another key is
// validated on its own, not taken for the outer request.
func TestSubRequestWithAnotherKeyIsValidated(t *testing.T) {
	f := newFixture(t, nil)
	inner := f.v.Require(middleware.Policy{})(okHandler)
	outer := f.v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub := request("garbage-not-a-key").WithContext(r.Context())
		inner.ServeHTTP(w, sub)
	}))
	w := serve(outer, request(f.keys["production/server"].Reveal()))
	assert.Equal(t, http.StatusUnauthorized, w.Code, w.Body.String())
	assert.Equal(t, "malformed_key", decodeProblem(t, w).Code)
}

// flakyPanicHasher panics for its first n verifications, then verifies.
type flakyPanicHasher struct {
	apikey.Argon2id
	mu sync.Mutex
	n  int
}

func (h *flakyPanicHasher) Verify(secret []byte, encoded string) (bool, bool, error) {
	h.mu.Lock()
	p := h.n > 0
	h.n--
	h.mu.Unlock()
	if p {
		panic("boom")
	}
	return h.Argon2id.Verify(secret, encoded)
}

// TestHasherPanicReleasesSlots: hasher panics release the throttle slot and
// the argon2 slot.
func TestHasherPanicReleasesSlots(t *testing.T) {
	f := newFixture(t, nil)
	key := f.keys["production/server"]
	hh := &flakyPanicHasher{Argon2id: apikey.Argon2id{Params: apikey.TestParams}, n: 3 * middleware.DefaultThrottleFailures}
	v, err := middleware.New(middleware.Options{
		Store: f.store, Now: f.clock.Now, Hasher: hh, MaxConcurrentHashes: 1,
		OnBackgroundError: func(error) {},
	})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)
	for range 3 * middleware.DefaultThrottleFailures {
		assert.Equal(t, http.StatusServiceUnavailable, serve(h, request(key.Reveal())).Code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	assert.Equal(t, http.StatusOK, serve(h, request(key.Reveal()).WithContext(ctx)).Code)
	s := v.Stats()
	assert.Zero(t, s.HashesRunning)
	assert.Zero(t, s.HashesWaiting)
}

type slowStore struct{ *flakyStore }

func (s slowStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	rec, err := s.flakyStore.Key(ctx, id)
	time.Sleep(200 * time.Microsecond)
	return rec, err
}

// TestNoRequestServedAfterRevocation: no request that starts after Revoke
// and Invalidate returned is served, under concurrency, with and without
// caching.
func TestNoRequestServedAfterRevocation(t *testing.T) {
	for _, size := range []int{0, -1, 1} {
		for iter := range 15 {
			f := newFixture(t, nil)
			key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
			other := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
			v, err := middleware.New(middleware.Options{Store: slowStore{f.store}, Hasher: f.hasher, Now: f.clock.Now,
				CacheSize: size, CacheTTL: time.Millisecond})
			require.NoError(t, err)
			h := v.Handler(okHandler)
			var revoked atomicBool
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 6 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						k := key
						if g == 0 {
							k = other
						}
						after := revoked.get()
						code := serve(h, request(k.Reveal())).Code
						if after && k.Equal(key) && code == http.StatusOK {
							t.Errorf("size %d iter %d: served after revocation", size, iter)
						}
						f.clock.Advance(time.Millisecond)
					}
				})
			}
			time.Sleep(time.Duration(iter%5) * time.Millisecond)
			_, err = f.manager.Revoke(context.Background(), owner, key.ID())
			require.NoError(t, err)
			v.Invalidate(apikey.Event{Action: apikey.ActionRevoke, Environment: apikey.Production, KeyID: key.ID()})
			revoked.set()
			time.Sleep(5 * time.Millisecond)
			close(stop)
			wg.Wait()
			v.Close()
		}
	}
}

type atomicBool struct {
	mu sync.Mutex
	b  bool
}

func (a *atomicBool) get() bool { a.mu.Lock(); defer a.mu.Unlock(); return a.b }
func (a *atomicBool) set()      { a.mu.Lock(); a.b = true; a.mu.Unlock() }

// conflictOnceStore fails the first hash-changing Apply with ErrConflict, as
// a concurrent change of the key would.
type conflictOnceStore struct {
	*memory.Store
	failed atomic.Bool
}

func (s *conflictOnceStore) Apply(ctx context.Context, c apikey.Change) error {
	if len(c.Update) == 1 && len(c.Events) == 0 && s.failed.CompareAndSwap(false, true) {
		return apikey.ErrConflict
	}
	return s.Store.Apply(ctx, c)
}

// TestDroppedHashUpgradeIsRetried: an upgrade of an outdated hash that
// lost a race is tried again when the key is loaded again, although the
// key is then recognised without argon2.
func TestDroppedHashUpgradeIsRetried(t *testing.T) {
	st := &conflictOnceStore{Store: memory.New()}
	clk := newClock()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: st, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clk.Now})
	require.NoError(t, err)
	is, err := m.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	key := is[0].Key
	before, _ := st.Key(context.Background(), key.ID())
	strong := apikey.TestParams
	strong.Iterations = 2
	v, err := middleware.New(middleware.Options{Store: st, Hasher: apikey.Argon2id{Params: strong}, Now: clk.Now, CacheTTL: time.Second})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	require.Eventually(t, st.failed.Load, 5*time.Second, time.Millisecond, "the first upgrade lost a race")
	clk.Advance(2 * time.Second) // the cache entry expires: loaded again
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	require.Eventually(t, func() bool {
		after, _ := st.Key(context.Background(), key.ID())
		return !after.Hash.Equal(before.Hash)
	}, 5*time.Second, time.Millisecond, "the upgrade was tried again")
}
