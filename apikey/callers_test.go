package apikey_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// TestEndGraceIfSilent: a key rotated out whose last use (its callers,
// its last-used time after the rotation, or with neither its rotation) is
// older than the silence asked for stops working at once; one used more
// recently is left as it is; the silence is bounded; the roles are those
// of a grace change.
func TestEndGraceIfSilent(t *testing.T) {
	rotatedAt := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		lastSeen  time.Duration // after the rotation; 0: no caller
		lastUsed  time.Duration // the key's last-used time, after the rotation (negative: before); 0: none
		now       time.Duration // after the rotation
		silentFor time.Duration
		actor     apikey.Actor
		active    bool // ask about the key's active replacement
		wantErr   error
	}{
		"silent since its last caller":        {lastSeen: time.Hour, now: 3 * time.Hour, silentFor: 2 * time.Hour},
		"seen within the silence":             {lastSeen: time.Hour, now: 2 * time.Hour, silentFor: 2 * time.Hour, wantErr: apikey.ErrNotSilent},
		"no caller since a rotation long ago": {now: 2 * time.Hour, silentFor: time.Hour},
		// Callers a validator did not write (its bound of keys, a store
		// wrapper, an older version): the last-used time tells.
		"used within the silence, no caller written":     {lastUsed: 90 * time.Minute, now: 2 * time.Hour, silentFor: time.Hour, wantErr: apikey.ErrNotSilent},
		"used after its last caller, within the silence": {lastSeen: time.Minute, lastUsed: 90 * time.Minute, now: 2 * time.Hour, silentFor: time.Hour, wantErr: apikey.ErrNotSilent},
		"last used before the rotation":                  {lastUsed: -time.Minute, now: 2 * time.Hour, silentFor: time.Hour},
		"last used long ago, after the rotation":         {lastUsed: time.Minute, now: 2 * time.Hour, silentFor: time.Hour},
		"no caller, rotated just now":                    {now: time.Minute, silentFor: time.Hour, wantErr: apikey.ErrNotSilent},
		"an active key":                                  {now: 2 * time.Hour, silentFor: time.Hour, active: true, wantErr: apikey.ErrNotRotated},
		"a silence below the minimum":                    {now: 2 * time.Hour, silentFor: apikey.MinSilence - time.Second, wantErr: apikey.ErrSilenceOutOfRange},
		"a silence beyond a year":                        {now: 2 * time.Hour, silentFor: 366 * 24 * time.Hour, wantErr: apikey.ErrSilenceOutOfRange},
		"read-only":                                      {now: 2 * time.Hour, silentFor: time.Hour, actor: apikey.Actor{ID: "carol", Role: apikey.ReadOnly}, wantErr: apikey.ErrForbidden},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
			now := rotatedAt
			store := memory.New()
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
				Now: func() time.Time { return now }})
			require.NoError(t, err)
			keys, err := m.Bootstrap(ctx, owner, apikey.Production)
			require.NoError(t, err)
			old := keys[0].View
			issued, err := m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.ID, Grace: 72 * time.Hour})
			require.NoError(t, err)
			if tt.lastSeen > 0 {
				require.NoError(t, store.RecordCallers(ctx, []apikey.KeyCallers{{Account: old.Account, KeyID: old.ID,
					Callers: []apikey.Caller{{Address: "192.0.2.7", Requests: 1, FirstSeen: rotatedAt, LastSeen: rotatedAt.Add(tt.lastSeen)}}}}))
			}
			if tt.lastUsed != 0 {
				require.NoError(t, store.RecordLastUsed(ctx, map[string]time.Time{old.ID: rotatedAt.Add(tt.lastUsed)}))
			}
			now = rotatedAt.Add(tt.now)
			actor := owner
			if tt.actor.ID != "" {
				actor = tt.actor
			}
			target := old.Prefix
			if tt.active {
				target = issued.View.Prefix
			}

			view, err := m.EndGraceIfSilent(ctx, actor, target, tt.silentFor)
			got, gerr := m.Get(ctx, owner, old.ID)
			require.NoError(t, gerr)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Equal(t, apikey.Expiring, got.Status, "the key keeps its grace")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, apikey.Expired, view.Status)
			assert.True(t, view.ExpiresAt.Equal(now), "expires now: %s", view.ExpiresAt)
			assert.Equal(t, apikey.Expired, got.Status)
		})
	}

	t.Run("a store that keeps no callers", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: storeOnly{memory.New()}, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
		require.NoError(t, err)
		owner := apikey.Actor{ID: "alice", Role: apikey.Owner}
		keys, err := m.Bootstrap(context.Background(), owner, apikey.Production)
		require.NoError(t, err)
		_, err = m.EndGraceIfSilent(context.Background(), owner, keys[0].View.ID, time.Hour)
		assert.True(t, errors.Is(err, errors.ErrUnsupported), "%v", err)
	})
}

// TestCallersReadByAnActingKey: an actor authenticated by a key reads only
// its own key's callers (Actor.KeyID), as its usage (ErrBeyondActor): the
// callers of another key rotated out hold client addresses and user
// agents. Ending another key's grace if silent follows the roles of a
// grace change, and its refusal does not say when the key was last used.
func TestCallersReadByAnActingKey(t *testing.T) {
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
		Scopes: []string{"admin:read", "admin:write"}})
	require.NoError(t, err)
	// The admin API's KeyScopes makes this actor of a key holding admin scopes.
	ciActor := apikey.Actor{ID: ci.View.Prefix, Role: apikey.Member, Scopes: []string{"admin:read", "admin:write"}, KeyID: ci.View.ID}

	_, err = m.Usage(ctx, ciActor, apikey.UsageRequest{KeyID: old.ID, From: seen.Add(-time.Hour), To: seen.Add(time.Hour)}, apikey.Page{})
	require.ErrorIs(t, err, apikey.ErrBeyondActor, "usage: a key reads its own only")
	report, err := m.Callers(ctx, ciActor, old.ID)
	require.ErrorIs(t, err, apikey.ErrBeyondActor, "callers: a key reads its own only")
	assert.Empty(t, report.Callers, "no other key's client addresses")
	_, err = m.Callers(ctx, ciActor, old.Prefix)
	require.ErrorIs(t, err, apikey.ErrBeyondActor, "by prefix too")

	own, err := m.Callers(ctx, ciActor, ci.View.ID)
	require.NoError(t, err, "its own key's")
	assert.Equal(t, ci.View.ID, own.KeyID)

	_, err = m.EndGraceIfSilent(ctx, ciActor, old.ID, apikey.MinSilence)
	require.ErrorIs(t, err, apikey.ErrNotSilent)
	assert.NotContains(t, err.Error(), seen.UTC().Format(time.RFC3339), "the refusal does not say when another key was last used")
	_, err = m.EndGraceIfSilent(ctx, owner, old.ID, apikey.MinSilence)
	require.ErrorIs(t, err, apikey.ErrNotSilent)
	assert.Contains(t, err.Error(), seen.UTC().Format(time.RFC3339), "an owner is told when")
}
