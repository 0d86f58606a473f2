package middleware

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// panicking implements every interface the adapters wrap, and panics in
// every method with a value that holds a key.
type panicking struct{ key string }

func (p panicking) Key(context.Context, string) (apikey.Record, error) { panic(p.key) }
func (p panicking) DefaultKey(context.Context, string, string, apikey.KeyType) (apikey.Record, error) {
	panic(p.key)
}
func (p panicking) Keys(context.Context, apikey.KeyQuery) ([]apikey.Record, error) { panic(p.key) }
func (p panicking) Settings(context.Context, string, string) (apikey.Settings, error) {
	panic(p.key)
}
func (p panicking) Environments(context.Context, apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	panic(p.key)
}
func (p panicking) Accounts(context.Context, string, int) ([]string, error) { panic(p.key) }
func (p panicking) Apply(context.Context, apikey.Change) error              { panic(p.key) }
func (p panicking) Revision(context.Context) (int64, error)                 { panic(p.key) }
func (p panicking) Changes(context.Context, int64, int) ([]storage.Changed, int64, error) {
	panic(p.key)
}
func (p panicking) RecordLastUsed(context.Context, map[string]time.Time) error { panic(p.key) }
func (p panicking) Hash([]byte) (string, error)                                { panic(p.key) }
func (p panicking) Verify([]byte, string) (bool, bool, error)                  { panic(p.key) }
func (p panicking) Outdated(string) (bool, error)                              { panic(p.key) }

// failing is a Hasher whose errors hold the secret they were given.
type failing struct{ wrapped error }

func (f failing) Hash(secret []byte) (string, error) {
	return "", errors.Join(f.wrapped, errors.New(string(secret)))
}
func (f failing) Verify(secret []byte, _ string) (bool, bool, error) {
	return false, false, errors.Join(f.wrapped, errors.New(string(secret)))
}

// TestAdaptersRecover: every method of the recovering adapters turns a
// panic into an error wrapping errPanicked, with the key in the panic
// value cut to its prefix; the hasher's keeps only the panic value's type,
// and only the sentinel of its errors.
func TestAdaptersRecover(t *testing.T) {
	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	p := panicking{key.Reveal()}
	store, feed, rec, hasher := safeStore{p}, safeFeed{p}, safeRecorder{p}, newSafeHasher(p)
	checker, ok := hasher.(apikey.OutdatedChecker)
	require.True(t, ok, "the adapter of an OutdatedChecker is one")
	ctx := context.Background()
	calls := map[string]func() error{
		"Key":            func() error { _, err := store.Key(ctx, "x"); return err },
		"DefaultKey":     func() error { _, err := store.DefaultKey(ctx, "a", "e", apikey.Server); return err },
		"Keys":           func() error { _, err := store.Keys(ctx, apikey.KeyQuery{}); return err },
		"Settings":       func() error { _, err := store.Settings(ctx, "a", "e"); return err },
		"Environments":   func() error { _, err := store.Environments(ctx, apikey.EnvironmentQuery{}); return err },
		"Accounts":       func() error { _, err := store.Accounts(ctx, "", 1); return err },
		"Apply":          func() error { return store.Apply(ctx, apikey.Change{}) },
		"Revision":       func() error { _, err := feed.Revision(ctx); return err },
		"Changes":        func() error { _, _, err := feed.Changes(ctx, 0, 1); return err },
		"RecordLastUsed": func() error { return rec.RecordLastUsed(ctx, nil) },
		"Hash":           func() error { _, err := hasher.Hash([]byte(key.Reveal())); return err },
		"Verify":         func() error { _, _, err := hasher.Verify([]byte(key.Reveal()), "h"); return err },
		"Outdated":       func() error { _, err := checker.Outdated("h"); return err },
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
		h := newSafeHasher(failing{tt.wrapped})
		_, isChecker := h.(apikey.OutdatedChecker)
		require.False(t, isChecker, "the adapter of a plain Hasher is no OutdatedChecker")
		_, err := h.Hash([]byte(key.Reveal()))
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
