package apikey_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// TestReviewAKeyReadsOnlyItsOwnCallers: an actor authenticated by a key
// reads only its own key's usage (Actor.KeyID, ErrBeyondActor); the
// callers of a key rotated out (client addresses and user agents, per
// request like usage) follow the same rule, also when the key has
// gone quiet.
func TestReviewAKeyReadsOnlyItsOwnCallers(t *testing.T) {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	keys, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	old := keys[0].View
	_, err = m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.ID, Grace: 72 * time.Hour})
	require.NoError(t, err)
	seen := time.Now().Add(-time.Minute)
	require.NoError(t, store.RecordCallers(ctx, []apikey.KeyCallers{{Account: old.Account, KeyID: old.ID,
		Callers: []apikey.Caller{{Address: "192.0.2.7", UserAgent: "billing-cron/2.1", Requests: 1, FirstSeen: seen, LastSeen: seen}}}}))
	ci, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Name: "ci",
		Scopes: []string{"admin:read"}})
	require.NoError(t, err)
	// The admin API's KeyScopes makes this actor of a key holding admin:read.
	ciActor := apikey.Actor{ID: ci.View.Prefix, Role: apikey.ReadOnly, Scopes: []string{"admin:read"}, KeyID: ci.View.ID}

	_, err = m.Usage(ctx, ciActor, apikey.UsageRequest{KeyID: old.ID, From: seen.Add(-time.Hour), To: seen.Add(time.Hour)}, apikey.Page{})
	require.ErrorIs(t, err, apikey.ErrBeyondActor, "usage: a key reads its own only")
	report, err := m.Callers(ctx, ciActor, old.ID)
	assert.ErrorIs(t, err, apikey.ErrBeyondActor, "callers: a key reads its own only")
	assert.Empty(t, report.Callers, "no other key's client addresses")
}
