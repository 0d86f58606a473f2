package apikey_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestChangesRefuseRevokedFirst pins what the key changes that share
// Actor.mayChange refuse, and in which order: a revoked key with
// ErrAlreadyRevoked, also to an acting key that holds too little for it,
// and a live key that holds more than the acting key with ErrBeyondActor.
func TestChangesRefuseRevokedFirst(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	revoked, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err)
	_, err = f.m.Revoke(ctx, owner, revoked.View.ID)
	require.NoError(t, err)
	narrow := apikey.Actor{ID: "server-x", Role: apikey.Owner, Scopes: []string{"orders:read"}}

	for _, tt := range []struct {
		name   string
		change func(actor apikey.Actor, keyID string) error
	}{
		{"Rename", func(a apikey.Actor, id string) error { _, err := f.m.Rename(ctx, a, id, "x"); return err }},
		{"SetOwner", func(a apikey.Actor, id string) error { _, err := f.m.SetOwner(ctx, a, id, "user_42"); return err }},
		{"SetMetadata", func(a apikey.Actor, id string) error {
			_, err := f.m.SetMetadata(ctx, a, id, map[string]string{"plan": "pro"})
			return err
		}},
		{"Enable", func(a apikey.Actor, id string) error { _, err := f.m.Enable(ctx, a, id); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.change(owner, revoked.View.ID), apikey.ErrAlreadyRevoked)
			assert.ErrorIs(t, tt.change(narrow, revoked.View.ID), apikey.ErrAlreadyRevoked, "revoked is checked first")
			assert.ErrorIs(t, tt.change(narrow, f.client.View.ID), apikey.ErrBeyondActor)
		})
	}
}
