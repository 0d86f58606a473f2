package apikey_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// interleaving runs a hook once, in the middle of a store call: before the
// first Apply that creates an environment's settings (beforeBootstrap), or
// after the first listing of environments (afterListing).
type interleaving struct {
	*memory.Store
	once            sync.Once
	beforeBootstrap func()
	afterListing    func()
}

func (s *interleaving) Apply(ctx context.Context, c apikey.Change) error {
	if s.beforeBootstrap != nil && len(c.Settings) == 1 && c.Settings[0].Revision == 0 {
		s.once.Do(s.beforeBootstrap)
	}
	return s.Store.Apply(ctx, c)
}

func (s *interleaving) Environments(ctx context.Context, q apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	page, err := s.Store.Environments(ctx, q)
	if s.afterListing != nil {
		s.once.Do(s.afterListing)
	}
	return page, err
}

// TestCloseAccountWinsTheBootstrapRace: a Bootstrap and a CloseAccount in
// two processes, in either interleaving, never leave an open environment
// with a working key behind a closed account.
func TestCloseAccountWinsTheBootstrapRace(t *testing.T) {
	newManager := func(t *testing.T, s apikey.Store) *apikey.Manager {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
		require.NoError(t, err)
		return m
	}
	t.Run("close between the check of Bootstrap and its write", func(t *testing.T) {
		s := &interleaving{Store: memory.New()}
		other := newManager(t, s.Store) // another process
		_, err := other.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		s.beforeBootstrap = func() {
			_, err := other.CloseAccount(ctx, owner, apikey.DefaultAccount)
			assert.NoError(t, err)
		}
		_, err = newManager(t, s).Bootstrap(ctx, owner, apikey.Staging)
		require.ErrorIs(t, err, apikey.ErrAccountClosed)
		_, err = s.Settings(ctx, apikey.DefaultAccount, apikey.Staging)
		assert.ErrorIs(t, err, apikey.ErrNotFound, "no environment was created")
	})
	t.Run("bootstrap between the listing of CloseAccount and its close", func(t *testing.T) {
		s := &interleaving{Store: memory.New()}
		other := newManager(t, s.Store)
		_, err := other.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		var staging []apikey.Issued
		s.afterListing = func() {
			staging, err = other.Bootstrap(ctx, owner, apikey.Staging)
			assert.NoError(t, err)
		}
		revoked, err := newManager(t, s).CloseAccount(ctx, owner, apikey.DefaultAccount)
		require.NoError(t, err)
		require.Len(t, staging, 2)
		assert.Equal(t, 4, revoked, "the keys of both environments")
		st, err := s.Settings(ctx, apikey.DefaultAccount, apikey.Staging)
		require.NoError(t, err)
		assert.False(t, st.ClosedAt.IsZero(), "the environment bootstrapped during the close is closed")
		for _, is := range staging {
			rec, err := s.Key(ctx, is.View.ID)
			require.NoError(t, err)
			assert.Equal(t, apikey.Revoked, rec.Status(rec.RevokedAt), "%s is revoked", rec.Prefix())
		}
	})
}
