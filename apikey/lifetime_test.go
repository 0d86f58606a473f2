package apikey_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

const day = 24 * time.Hour

func TestValidateLifetime(t *testing.T) {
	tests := []struct {
		name   string
		policy apikey.LifetimePolicy
		field  string // "" when valid
	}{
		{"none", apikey.LifetimePolicy{}, ""},
		{"both", apikey.LifetimePolicy{DefaultExpiry: 30 * day, MaxLifetime: 365 * day}, ""},
		{"equal", apikey.LifetimePolicy{DefaultExpiry: 90 * day, MaxLifetime: 90 * day}, ""},
		{"default only", apikey.LifetimePolicy{DefaultExpiry: 30 * day}, ""},
		{"max only", apikey.LifetimePolicy{MaxLifetime: 365 * day}, ""},
		{"ten years", apikey.LifetimePolicy{DefaultExpiry: apikey.MaxKeyLifetime, MaxLifetime: apikey.MaxKeyLifetime}, ""},
		{"one second", apikey.LifetimePolicy{MaxLifetime: time.Second}, ""},
		{"negative default", apikey.LifetimePolicy{DefaultExpiry: -time.Second}, "default_expiry_seconds must be 0 (none) to 315360000"},
		{"negative max", apikey.LifetimePolicy{MaxLifetime: -day}, "max_lifetime_seconds must be 0 (none) to 315360000"},
		{"max too long", apikey.LifetimePolicy{MaxLifetime: apikey.MaxKeyLifetime + time.Second}, "max_lifetime_seconds must be 0"},
		{"default too long", apikey.LifetimePolicy{DefaultExpiry: apikey.MaxKeyLifetime + time.Second}, "default_expiry_seconds must be 0"},
		{"fraction", apikey.LifetimePolicy{DefaultExpiry: 1500 * time.Millisecond}, "default_expiry_seconds must be whole seconds"},
		{"default beyond max", apikey.LifetimePolicy{DefaultExpiry: 31 * day, MaxLifetime: 30 * day},
			"default_expiry_seconds must be at most max_lifetime_seconds (2592000)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := apikey.ValidateLifetime(tt.policy)
			if tt.field == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, apikey.ErrInvalidLifetime)
			assert.ErrorContains(t, err, tt.field)
			assert.True(t, apikey.IsRequestError(err))
		})
	}
}

func TestLifetimePolicyJSON(t *testing.T) {
	tests := []struct {
		name string
		json string
		want apikey.LifetimePolicy
	}{
		{"both", `{"default_expiry_seconds":2592000,"max_lifetime_seconds":31536000}`,
			apikey.LifetimePolicy{DefaultExpiry: 30 * day, MaxLifetime: 365 * day}},
		{"none", `{"default_expiry_seconds":0,"max_lifetime_seconds":0}`, apikey.LifetimePolicy{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.want)
			require.NoError(t, err)
			assert.JSONEq(t, tt.json, string(b))
			var got apikey.LifetimePolicy
			require.NoError(t, json.Unmarshal([]byte(tt.json), &got))
			assert.Equal(t, tt.want, got)
		})
	}

	t.Run("out of range stays out of range", func(t *testing.T) {
		var got apikey.LifetimePolicy
		require.NoError(t, json.Unmarshal([]byte(`{"default_expiry_seconds":-5,"max_lifetime_seconds":9223372036854775807,"later":1}`), &got))
		assert.ErrorContains(t, apikey.ValidateLifetime(got), "default_expiry_seconds")
		got.DefaultExpiry = 0
		assert.ErrorContains(t, apikey.ValidateLifetime(got), "max_lifetime_seconds")
	})
	t.Run("settings omit no policy", func(t *testing.T) {
		b, err := json.Marshal(apikey.Settings{Account: "acme", Environment: apikey.Production})
		require.NoError(t, err)
		assert.NotContains(t, string(b), "lifetime")
		b, err = json.Marshal(apikey.Settings{Lifetime: apikey.LifetimePolicy{MaxLifetime: day}})
		require.NoError(t, err)
		assert.Contains(t, string(b), `"lifetime":{"default_expiry_seconds":0,"max_lifetime_seconds":86400}`)
	})
}

func TestSetLifetimePolicy(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	policy := apikey.LifetimePolicy{DefaultExpiry: 30 * day, MaxLifetime: 90 * day}
	old, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err)

	s, err := f.m.SetLifetimePolicy(ctx, owner, apikey.Production, policy)
	require.NoError(t, err)
	assert.Equal(t, policy, s.Lifetime)
	got, err := f.m.Settings(ctx, readOnly, apikey.Production)
	require.NoError(t, err)
	assert.Equal(t, policy, got.Lifetime)
	last := f.events[len(f.events)-1]
	assert.Equal(t, apikey.ActionSetLifetime, last.Action)
	assert.Equal(t, apikey.Production, last.Environment)
	assert.Equal(t, "default expiry 720h; max lifetime 2160h", last.Detail)
	assert.True(t, f.record(t, old.View.ID).ExpiresAt.IsZero(), "a policy does not rewrite existing keys")

	key := apikey.Actor{ID: "server-x", Role: apikey.Owner, Scopes: []string{"*"}}
	tests := []struct {
		name   string
		actor  apikey.Actor
		env    string
		policy apikey.LifetimePolicy
		want   error
	}{
		{"member", member, apikey.Production, policy, apikey.ErrForbidden},
		{"read-only", readOnly, apikey.Production, policy, apikey.ErrForbidden},
		{"a key", key, apikey.Production, policy, apikey.ErrBeyondActor},
		{"invalid", owner, apikey.Production, apikey.LifetimePolicy{DefaultExpiry: -1}, apikey.ErrInvalidLifetime},
		{"unknown environment", owner, apikey.Staging, policy, apikey.ErrUnknownEnvironment},
		{"invalid environment", owner, "Bad Env", policy, apikey.ErrInvalidEnvironment},
		{"other account", apikey.Actor{ID: "eve", Role: apikey.Owner, Account: "globex"}, apikey.Production, policy, apikey.ErrUnknownEnvironment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.m.SetLifetimePolicy(ctx, tt.actor, tt.env, tt.policy)
			assert.ErrorIs(t, err, tt.want)
		})
	}

	s, err = f.m.SetLifetimePolicy(ctx, owner, apikey.Production, apikey.LifetimePolicy{})
	require.NoError(t, err)
	assert.True(t, s.Lifetime.IsZero(), "the zero policy removes it")
	assert.Equal(t, "no lifetime policy", f.events[len(f.events)-1].Detail)

	_, err = f.m.CloseAccount(ctx, owner, apikey.DefaultAccount)
	require.NoError(t, err)
	_, err = f.m.SetLifetimePolicy(ctx, owner, apikey.Production, policy)
	assert.ErrorIs(t, err, apikey.ErrAccountClosed)
}

func TestCreateUnderLifetimePolicy(t *testing.T) {
	tests := []struct {
		name    string
		policy  apikey.LifetimePolicy
		actor   apikey.Actor
		expires time.Duration // from now; 0 asks for none
		want    time.Duration // the expiry from now; 0 for none
		err     error
		detail  string
	}{
		{name: "no policy, no expiry", actor: owner},
		{name: "no policy, an expiry", actor: owner, expires: 400 * day, want: 400 * day},
		{name: "default expiry", policy: apikey.LifetimePolicy{DefaultExpiry: 30 * day, MaxLifetime: 90 * day}, actor: owner, want: 30 * day},
		{name: "default only", policy: apikey.LifetimePolicy{DefaultExpiry: 7 * day}, actor: owner, want: 7 * day},
		{name: "default only, a longer expiry", policy: apikey.LifetimePolicy{DefaultExpiry: 7 * day}, actor: owner,
			expires: 700 * day, want: 700 * day},
		{name: "max only: the max", policy: apikey.LifetimePolicy{MaxLifetime: 90 * day}, actor: owner, want: 90 * day},
		{name: "within", policy: apikey.LifetimePolicy{DefaultExpiry: 30 * day, MaxLifetime: 90 * day}, actor: owner,
			expires: 60 * day, want: 60 * day},
		{name: "at the max", policy: apikey.LifetimePolicy{MaxLifetime: 90 * day}, actor: owner, expires: 90 * day, want: 90 * day},
		{name: "beyond", policy: apikey.LifetimePolicy{DefaultExpiry: 30 * day, MaxLifetime: 90 * day}, actor: owner,
			expires: 90*day + time.Second, err: apikey.ErrBeyondLifetime,
			detail: "maximum lifetime is 2160h (max_lifetime_seconds 7776000): a key created now may last until 2026-04-01T12:00:00Z"},
		{name: "key actor within its own expiry", policy: apikey.LifetimePolicy{DefaultExpiry: day},
			actor: apikey.Actor{ID: "server-x", Role: apikey.Owner, Scopes: []string{"*"}, Expires: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)},
			want:  day},
		{name: "key actor: the default outlives it", policy: apikey.LifetimePolicy{DefaultExpiry: 30 * day},
			actor: apikey.Actor{ID: "server-x", Role: apikey.Owner, Scopes: []string{"*"}, Expires: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)},
			err:   apikey.ErrBeyondActor},
		{name: "key actor without policy, no expiry", actor: apikey.Actor{ID: "server-x", Role: apikey.Owner, Scopes: []string{"*"},
			Expires: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)}, err: apikey.ErrBeyondActor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, apikey.ManagerOptions{})
			_, err := f.m.SetLifetimePolicy(ctx, owner, apikey.Production, tt.policy)
			require.NoError(t, err)
			now := f.m.Now()
			req := apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:read"}}
			if tt.expires != 0 {
				req.ExpiresAt = now.Add(tt.expires)
			}
			k, err := f.m.Create(ctx, tt.actor, req)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				assert.ErrorContains(t, err, tt.detail)
				return
			}
			require.NoError(t, err)
			if tt.want == 0 {
				assert.True(t, k.View.ExpiresAt.IsZero())
			} else {
				assert.Equal(t, now.Add(tt.want), k.View.ExpiresAt)
			}
			assert.Equal(t, k.View.ExpiresAt, f.record(t, k.View.ID).ExpiresAt)
		})
	}
}

func TestRotateUnderLifetimePolicy(t *testing.T) {
	policy := apikey.LifetimePolicy{DefaultExpiry: 30 * day, MaxLifetime: 90 * day}
	tests := []struct {
		name string
		// expires is the old key's expiry from its creation (0: none),
		// created before the policy was set when early.
		expires time.Duration
		early   bool
		age     time.Duration // how old the key is when rotated
		grace   time.Duration // 0: expire now
		want    time.Duration // the replacement's expiry from the rotation
		oldEnd  time.Duration // the old key's expiry from the rotation
		err     error
	}{
		{name: "keeps the old expiry", expires: 60 * day, age: 10 * day, grace: day, want: 50 * day, oldEnd: day},
		{name: "grace clamped to the old expiry", expires: 60 * day, age: 59 * day, grace: 7 * day, want: day, oldEnd: day},
		{name: "an old key without expiry: the default", early: true, age: 10 * day, grace: day, want: 30 * day, oldEnd: day},
		{name: "an old key with a long expiry: the max", expires: 400 * day, early: true, age: 10 * day, grace: day,
			want: 90 * day, oldEnd: day},
		{name: "grace beyond the old key's lifetime", early: true, age: 89 * day, grace: 2 * day, err: apikey.ErrBeyondLifetime},
		{name: "grace to its lifetime's end", early: true, age: 89 * day, grace: day, want: 30 * day, oldEnd: day},
		{name: "past its lifetime: expire now", early: true, age: 100 * day, want: 30 * day},
		{name: "past its lifetime: a grace", early: true, age: 100 * day, grace: time.Hour, err: apikey.ErrBeyondLifetime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, apikey.ManagerOptions{})
			if !tt.early {
				_, err := f.m.SetLifetimePolicy(ctx, owner, apikey.Production, policy)
				require.NoError(t, err)
			}
			req := apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client, Name: "widget"}
			if tt.expires != 0 {
				req.ExpiresAt = f.m.Now().Add(tt.expires)
			}
			old, err := f.m.Create(ctx, owner, req)
			require.NoError(t, err)
			if tt.early {
				_, err := f.m.SetLifetimePolicy(ctx, owner, apikey.Production, policy)
				require.NoError(t, err)
			}
			f.clock.Advance(tt.age)
			now := f.m.Now()
			k, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.View.ID, Grace: tt.grace, ExpireNow: tt.grace == 0})
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				assert.ErrorContains(t, err, "rotated-out key "+old.View.Prefix+" may last until "+
					old.View.CreatedAt.Add(90*day).Format(time.RFC3339))
				assert.True(t, f.record(t, old.View.ID).RotatedAt.IsZero(), "nothing changed")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, now.Add(tt.want), k.View.ExpiresAt, "the replacement's expiry")
			assert.Equal(t, "widget", k.View.Name)
			rotated := f.record(t, old.View.ID)
			assert.Equal(t, now.Add(tt.oldEnd), rotated.ExpiresAt, "the old key's end")
			assert.False(t, rotated.ExpiryLimit.After(old.View.CreatedAt.Add(90*day)), "its limit is within its lifetime")
		})
	}

	t.Run("default keys are the exception", func(t *testing.T) {
		f := newFixture(t, apikey.ManagerOptions{})
		_, err := f.m.SetLifetimePolicy(ctx, owner, apikey.Production, apikey.LifetimePolicy{MaxLifetime: day})
		require.NoError(t, err)
		f.clock.Advance(400 * day)
		k, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: 7 * day})
		require.NoError(t, err)
		assert.True(t, k.View.Default)
		assert.True(t, k.View.ExpiresAt.IsZero(), "the new default key has no expiry")
		rotated := f.record(t, f.server.View.ID)
		assert.Equal(t, f.m.Now().Add(7*day), rotated.ExpiresAt, "the grace policy alone bounds the old default key")
		_, err = f.m.ChangeGrace(ctx, owner, f.server.View.ID, 30*day, apikey.APIPolicy)
		require.NoError(t, err, "and its grace changes")
	})
}

func TestChangeGraceUnderLifetimePolicy(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	// A key created and rotated before the policy, with a long expiry.
	old, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client,
		ExpiresAt: f.m.Now().Add(400 * day)})
	require.NoError(t, err)
	f.clock.Advance(50 * day)
	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.View.ID, Grace: day})
	require.NoError(t, err)
	_, err = f.m.SetLifetimePolicy(ctx, owner, apikey.Production, apikey.LifetimePolicy{MaxLifetime: 60 * day})
	require.NoError(t, err)

	tests := []struct {
		name  string
		grace time.Duration
		want  time.Duration // the end, from the rotation
		err   error
	}{
		{"shorter", time.Hour, time.Hour, nil},
		{"to its lifetime's end", 10 * day, 10 * day, nil},
		{"beyond its lifetime", 10*day + time.Second, 0, apikey.ErrBeyondLifetime},
		{"far beyond", 300 * day, 0, apikey.ErrBeyondLifetime},
	}
	rotatedAt := f.record(t, old.View.ID).RotatedAt
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := f.m.ChangeGrace(ctx, owner, old.View.ID, tt.grace, apikey.APIPolicy)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				assert.ErrorContains(t, err, "maximum lifetime is 1440h")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, rotatedAt.Add(tt.want), v.ExpiresAt)
		})
	}
}

func TestRename(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	extra, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"orders:read"}, Name: "old"})
	require.NoError(t, err)

	v, err := f.m.Rename(ctx, owner, extra.View.Prefix, "billing worker")
	require.NoError(t, err)
	assert.Equal(t, "billing worker", v.Name)
	assert.Equal(t, "billing worker", f.record(t, extra.View.ID).Name)
	last := f.events[len(f.events)-1]
	assert.Equal(t, apikey.ActionRename, last.Action)
	assert.Equal(t, extra.View.ID, last.KeyID)
	assert.Equal(t, `name "billing worker"`, last.Detail)

	v, err = f.m.Rename(ctx, owner, f.server.View.ID, "")
	require.NoError(t, err)
	assert.Empty(t, v.Name, "a default key may be renamed, and a name removed")
	assert.Equal(t, "name removed", f.events[len(f.events)-1].Detail)

	revoked, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err)
	_, err = f.m.Revoke(ctx, owner, revoked.View.ID)
	require.NoError(t, err)

	narrow := apikey.Actor{ID: "server-x", Role: apikey.Owner, Scopes: []string{"orders:read"}}
	tests := []struct {
		name  string
		actor apikey.Actor
		id    string
		to    string
		want  error
	}{
		{"member", member, extra.View.ID, "x", apikey.ErrForbidden},
		{"read-only", readOnly, extra.View.ID, "x", apikey.ErrForbidden},
		{"too long", owner, extra.View.ID, string(make([]byte, apikey.MaxNameLength+1)), apikey.ErrInvalidName},
		{"a control character", owner, extra.View.ID, "a\x1bb", apikey.ErrInvalidName},
		{"revoked", owner, revoked.View.ID, "x", apikey.ErrAlreadyRevoked},
		{"unknown", owner, "server-AAAAAAAAAAAA", "x", apikey.ErrNotFound},
		{"malformed id", owner, "not an id", "x", apikey.ErrInvalidKeyID},
		{"a key without its scope", narrow, f.client.View.ID, "x", apikey.ErrBeyondActor},
		{"other account", apikey.Actor{ID: "eve", Role: apikey.Owner, Account: "globex"}, extra.View.ID, "x", apikey.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.m.Rename(ctx, tt.actor, tt.id, tt.to)
			assert.ErrorIs(t, err, tt.want)
		})
	}
	assert.Equal(t, "billing worker", f.record(t, extra.View.ID).Name, "no refused rename changed it")
}

// TestBootstrapCreatesEnvironments: Bootstrap is how an environment
// beyond the built-in ones is created: the name is validated, and a
// closed account takes none.
func TestBootstrapCreatesEnvironments(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	tests := []struct {
		name string
		env  string
		want error
	}{
		{"a new one", "qa-eu_1", nil},
		{"again", "qa-eu_1", apikey.ErrAlreadyBootstrapped},
		{"upper case", "QA", apikey.ErrInvalidEnvironment},
		{"a digit first", "1qa", apikey.ErrInvalidEnvironment},
		{"empty", "", apikey.ErrInvalidEnvironment},
		{"too long", "a23456789012345678901234567890123", apikey.ErrInvalidEnvironment},
		{"a space", "q a", apikey.ErrInvalidEnvironment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issued, err := f.m.Bootstrap(ctx, owner, tt.env)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			require.Len(t, issued, 2)
			s, err := f.m.Settings(ctx, owner, tt.env)
			require.NoError(t, err)
			assert.True(t, s.Lifetime.IsZero(), "a new environment has no lifetime policy")
		})
	}
	_, err := f.m.CloseAccount(ctx, owner, apikey.DefaultAccount)
	require.NoError(t, err)
	_, err = f.m.Bootstrap(ctx, owner, "late")
	assert.ErrorIs(t, err, apikey.ErrAccountClosed)
}

// A key with no expiry, rotated while its environment had no lifetime
// policy, is held to a maximum lifetime set later when its grace changes.
// A non-default key without expiry rotated while the environment had no
// lifetime policy has no ExpiryLimit; ChangeGrace then skips the policy
// set later and keeps the key for up to a year, although MaxLifetime says
// "neither a rotation's grace nor a grace change keeps a key past it".
func TestChangeGraceHonoursLaterMaxLifetime(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	extra, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:read"}})
	require.NoError(t, err)
	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: extra.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	_, err = f.m.SetLifetimePolicy(ctx, owner, apikey.Production, apikey.LifetimePolicy{MaxLifetime: 30 * 24 * time.Hour})
	require.NoError(t, err)
	view, err := f.m.ChangeGrace(ctx, owner, extra.View.ID, 365*24*time.Hour, apikey.APIPolicy)
	require.ErrorIs(t, err, apikey.ErrBeyondLifetime, "grace extended to %s, past the 30-day maximum lifetime", view.ExpiresAt)
}
