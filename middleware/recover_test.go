package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
)

// TestSettingsLoadPanicIsAnError: a store that panics while the settings
// load is reported, and requests fail closed; New still succeeds.
func TestSettingsLoadPanicIsAnError(t *testing.T) {
	a := newAccounts(t)
	var mu sync.Mutex
	var errs []error
	store := faultstore.New(a.store)
	store.Before(func(context.Context, *faultstore.Call) error { panic("custom store bug") }, faultstore.OpEnvironments)
	v, err := middleware.New(middleware.Options{
		Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		OnBackgroundError: func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	h := v.Require(anyType)(okHandler)
	assert.Equal(t, http.StatusServiceUnavailable, serve(h, request(a.keys["acme/production/client"].Reveal(), "Origin", "https://acme.example")).Code)
	assert.Equal(t, http.StatusServiceUnavailable, serve(h, request(a.keys["acme/production/client"].Reveal())).Code,
		"no Origin: the account's suspension is not known: fail closed")
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, errs)
	assert.ErrorContains(t, errs[0], "panicked")
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
			hasher := newHasher(apikey.TestParams)
			hasher.Before(func(_ context.Context, c *faultstore.Call) error {
				switch how {
				case "bytes":
					panic(c.Secret)
				case "hex":
					panic(fmt.Sprintf("argon2: bad input %x", c.Secret))
				default:
					panic(fmt.Errorf("argon2: bad input %s", c.Secret))
				}
			}, faultstore.OpVerify)
			v, err := middleware.New(middleware.Options{
				Store: f.store, Now: f.clock.Now,
				Hasher:            hasher,
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

// TestPanickingStoreIsUnavailable: a panic in a Store method during
// verification is a 503 for the request and a background error without the
// secret, not a crash of the process.
func TestPanickingStoreIsUnavailable(t *testing.T) {
	f := newFixture(t, nil)
	key := f.keys["production/server"]
	store := faultstore.New(f.store.Inner())
	store.Before(func(context.Context, *faultstore.Call) error {
		panic("driver bug while reading " + key.Reveal()) // names a secret
	}, faultstore.OpKey)
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

	store.Clear(faultstore.OpKey) // the process kept serving: the key works again
	assert.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
}
