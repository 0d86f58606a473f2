package middleware

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// TestAdaptersRecover: every method of the recovering adapters turns a
// panic into an error wrapping errPanicked, with the key in the panic
// value cut to its prefix; the hasher's keeps only the panic value's type,
// and only the sentinel of its errors.
func TestAdaptersRecover(t *testing.T) {
	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	// Every method of the store, its feed and recorder, and the hasher
	// panics with a value that holds the key.
	fs := faultstore.New(memory.New())
	fs.Before(func(context.Context, *faultstore.Call) error { panic(key.Reveal()) })
	fh := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	fh.Before(func(context.Context, *faultstore.Call) error { panic(key.Reveal()) })
	store, hasher := newSafeStore(fs), safeHasher{fh}
	ctx := context.Background()
	calls := map[string]func() error{
		"Key":            func() error { _, err := store.Key(ctx, "x"); return err },
		"Settings":       func() error { _, err := store.Settings(ctx, "a", "e"); return err },
		"Environments":   func() error { _, err := store.Environments(ctx, apikey.EnvironmentQuery{}); return err },
		"Apply":          func() error { return store.Apply(ctx, apikey.Change{}) },
		"Revision":       func() error { _, err := store.Revision(ctx); return err },
		"Changes":        func() error { _, _, err := store.Changes(ctx, 0, 1); return err },
		"RecordLastUsed": func() error { return store.RecordLastUsed(ctx, nil) },
		"Hash":           func() error { _, err := hasher.Hash([]byte(key.Reveal())); return err },
		"Verify":         func() error { _, _, err := hasher.Verify([]byte(key.Reveal()), "h"); return err },
		"Outdated":       func() error { _, err := hasher.Outdated("h"); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.ErrorIs(t, err, errPanicked)
			assert.NotContains(t, err.Error(), key.Reveal()[apikey.PrefixLength:])
		})
	}

	for _, tt := range []struct {
		wrapped, want error
	}{
		{apikey.ErrInvalidHash, apikey.ErrInvalidHash},
		{apikey.ErrInvalidParams, apikey.ErrInvalidParams},
		{errors.New("other"), nil},
	} {
		// A plain Hasher whose errors hold the secret they were given.
		fh := faultstore.NewHasher(struct{ apikey.Hasher }{apikey.Argon2id{Params: apikey.TestParams}})
		fh.Before(func(_ context.Context, c *faultstore.Call) error {
			return errors.Join(tt.wrapped, errors.New(string(c.Secret)))
		}, faultstore.OpHash, faultstore.OpVerify)
		h := safeHasher{fh.Exact()}
		outdated, err := h.Outdated("h")
		require.NoError(t, err)
		require.True(t, outdated, "a plain Hasher's Verify decides")
		_, err = h.Hash([]byte(key.Reveal()))
		require.Error(t, err)
		assert.NotContains(t, err.Error(), key.Reveal())
		_, _, err = h.Verify([]byte(key.Reveal()), "h")
		require.Error(t, err)
		assert.NotContains(t, err.Error(), key.Reveal())
		if tt.want != nil {
			assert.Equal(t, tt.want, err)
		}
	}
}
