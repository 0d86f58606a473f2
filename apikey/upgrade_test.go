package apikey_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// plainHasher hides Argon2id's Outdated method, as a custom Hasher without
// it would: UpgradeHash then asks Verify.
type plainHasher struct{ apikey.Hasher }

// TestUpgradeHash: UpgradeHash rewrites a stored hash only when it is weaker
// than the hasher's parameters, and only if the record is unchanged since
// it was read; a conflict is a no-op that keeps the other writer's change.
func TestUpgradeHash(t *testing.T) {
	weak := apikey.TestParams
	stronger := weak
	stronger.Memory, stronger.Iterations = 16, 2
	moreMemory := weak
	moreMemory.Memory = 16
	morePasses := weak
	morePasses.Iterations = 2

	tests := []struct {
		name     string
		stored   apikey.Params // parameters of the stored hash
		hasher   apikey.Hasher
		between  func(t *testing.T, m *apikey.Manager, id string) // a change after the read
		upgraded bool
	}{
		{name: "weaker hash is upgraded", stored: weak, hasher: apikey.Argon2id{Params: stronger}, upgraded: true},
		{name: "weaker in memory only", stored: weak, hasher: apikey.Argon2id{Params: moreMemory}, upgraded: true},
		{name: "hasher without Outdated asks Verify", stored: weak, hasher: plainHasher{apikey.Argon2id{Params: stronger}}, upgraded: true},
		{name: "equal hash is kept", stored: weak, hasher: apikey.Argon2id{Params: weak}},
		{name: "stronger hash is never rewritten", stored: stronger, hasher: apikey.Argon2id{Params: weak}},
		{name: "stronger hash, hasher without Outdated", stored: stronger, hasher: plainHasher{apikey.Argon2id{Params: weak}}},
		{name: "neither weaker nor stronger is kept", stored: moreMemory, hasher: apikey.Argon2id{Params: morePasses}},
		{
			name: "a change since the read wins", stored: weak, hasher: apikey.Argon2id{Params: stronger},
			between: func(t *testing.T, m *apikey.Manager, id string) {
				_, err := m.SetOwner(ctx, owner, id, "someone")
				require.NoError(t, err)
			},
		},
		{
			name: "a revocation since the read wins", stored: weak, hasher: apikey.Argon2id{Params: stronger},
			between: func(t *testing.T, m *apikey.Manager, id string) {
				_, err := m.Revoke(ctx, owner, id)
				require.NoError(t, err)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := memory.New()
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: tt.stored}})
			require.NoError(t, err)
			_, err = m.Bootstrap(ctx, owner, apikey.Production)
			require.NoError(t, err)
			issued, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
			require.NoError(t, err)
			read, err := store.Key(ctx, issued.View.ID)
			require.NoError(t, err)
			if tt.between != nil {
				tt.between(t, m, issued.View.ID)
			}
			before, err := store.Key(ctx, issued.View.ID)
			require.NoError(t, err)

			got, upgraded, err := apikey.UpgradeHash(ctx, store, tt.hasher, read, issued.Key)
			require.NoError(t, err)
			assert.Equal(t, tt.upgraded, upgraded)
			after, err := store.Key(ctx, issued.View.ID)
			require.NoError(t, err)
			if !tt.upgraded {
				assert.True(t, after.Hash.Equal(before.Hash), "the stored hash is untouched")
				assert.Equal(t, before.Revision, after.Revision, "nothing written")
				assert.True(t, got.Hash.Equal(read.Hash), "the record is returned as read")
				return
			}
			assert.True(t, after.Hash.Equal(got.Hash), "the returned record holds the stored hash")
			assert.False(t, after.Hash.Equal(read.Hash))
			assert.Greater(t, after.Revision, read.Revision)
			match, outdated, err := tt.hasher.Verify([]byte(issued.Key.Reveal()), after.Hash.Reveal())
			require.NoError(t, err)
			assert.True(t, match, "the new hash is of the same key")
			assert.False(t, outdated, "made with the hasher's parameters")
			assert.Equal(t, read.Owner, after.Owner, "nothing else changed")
		})
	}
}

func TestUpgradeHashRefusesAnotherKey(t *testing.T) {
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	issued, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	server, err := store.Key(ctx, issued[0].View.ID)
	require.NoError(t, err)
	stronger := apikey.Argon2id{Params: apikey.Params{Memory: 16, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}}

	other, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	for name, h := range map[string]apikey.Hasher{"Argon2id": stronger, "without Outdated": plainHasher{stronger}} {
		t.Run(name+": another id", func(t *testing.T) {
			_, upgraded, err := apikey.UpgradeHash(ctx, store, h, server, other)
			require.ErrorIs(t, err, apikey.ErrKeyMismatch)
			assert.False(t, upgraded)
			assert.NotContains(t, err.Error(), other.Reveal())
		})
		t.Run(name+": another type", func(t *testing.T) {
			_, upgraded, err := apikey.UpgradeHash(ctx, store, h, server, issued[1].Key)
			require.ErrorIs(t, err, apikey.ErrKeyMismatch)
			assert.False(t, upgraded)
		})
		t.Run(name+": another secret", func(t *testing.T) {
			forged, err := apikey.AssembleKey(apikey.Server, server.ID, strings.Repeat("Z", apikey.SecretLength))
			require.NoError(t, err)
			_, upgraded, err := apikey.UpgradeHash(ctx, store, h, server, forged)
			require.ErrorIs(t, err, apikey.ErrKeyMismatch)
			assert.False(t, upgraded)
			assert.NotContains(t, err.Error(), forged.Reveal())
		})
	}
	after, err := store.Key(ctx, server.ID)
	require.NoError(t, err)
	assert.Equal(t, server.Revision, after.Revision)
}

func TestUpgradeHashStoreFailure(t *testing.T) {
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	issued, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	rec, err := store.Key(ctx, issued[0].View.ID)
	require.NoError(t, err)
	stronger := apikey.Argon2id{Params: apikey.Params{Memory: 16, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}}

	_, upgraded, err := apikey.UpgradeHash(ctx, failingStore{store}, stronger, rec, issued[0].Key)
	require.ErrorIs(t, err, assert.AnError)
	assert.False(t, upgraded)
	assert.NotContains(t, err.Error(), issued[0].Key.Reveal())

	done, cancel := context.WithCancel(ctx)
	cancel()
	_, upgraded, err = apikey.UpgradeHash(done, store, stronger, rec, issued[0].Key)
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, upgraded)
}
