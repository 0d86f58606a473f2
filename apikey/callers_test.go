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

// TestEndGraceIfSilent: a key rotated out whose callers (or, with none,
// whose rotation) are older than the silence asked for stops working at
// once; one used more recently is left as it is; the silence is bounded;
// the roles are those of a grace change.
func TestEndGraceIfSilent(t *testing.T) {
	rotatedAt := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		lastSeen  time.Duration // after the rotation; 0: no caller
		now       time.Duration // after the rotation
		silentFor time.Duration
		actor     apikey.Actor
		active    bool // ask about the key's active replacement
		wantErr   error
	}{
		"silent since its last caller":        {lastSeen: time.Hour, now: 3 * time.Hour, silentFor: 2 * time.Hour},
		"seen within the silence":             {lastSeen: time.Hour, now: 2 * time.Hour, silentFor: 2 * time.Hour, wantErr: apikey.ErrNotSilent},
		"no caller since a rotation long ago": {now: 2 * time.Hour, silentFor: time.Hour},
		"no caller, rotated just now":         {now: time.Minute, silentFor: time.Hour, wantErr: apikey.ErrNotSilent},
		"an active key":                       {now: 2 * time.Hour, silentFor: time.Hour, active: true, wantErr: apikey.ErrNotRotated},
		"a silence below the minimum":         {now: 2 * time.Hour, silentFor: apikey.MinSilence - time.Second, wantErr: apikey.ErrGraceOutOfRange},
		"a silence beyond a year":             {now: 2 * time.Hour, silentFor: 366 * 24 * time.Hour, wantErr: apikey.ErrGraceOutOfRange},
		"read-only":                           {now: 2 * time.Hour, silentFor: time.Hour, actor: apikey.Actor{ID: "carol", Role: apikey.ReadOnly}, wantErr: apikey.ErrForbidden},
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
