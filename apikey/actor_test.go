package apikey_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestKeyActorNeverMintsMore: an actor authenticated by a key creates,
// rotates, extends and reveals nothing that expires later than its key or
// holds a scope its key lacks; each refusal is ErrBeyondActor (an
// ErrForbidden) and names the limit. A person (no Scopes, no Expires) is
// bound by its role alone.
func TestKeyActorNeverMintsMore(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) // the fixture's clock
	hour := now.Add(time.Hour)
	keyActor := func(expires time.Time, scopes ...string) apikey.Actor {
		return apikey.Actor{ID: "server-actor", Role: apikey.Owner, Scopes: scopes, Expires: expires}
	}
	writer := keyActor(hour, "api_keys:write", "customers:write") // expires in an hour
	full := keyActor(time.Time{}, "*")                            // full access, no expiry
	fullHour := keyActor(hour, "*")                               // full access, for an hour

	// Keys made by a person before each case: a scoped key expiring in 30
	// minutes, and the default server key rotated out with a day of grace.
	type keys struct {
		scoped, rotatedOut apikey.Issued
	}
	setup := func(t *testing.T, f *fixture) keys {
		scoped, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"customers:read"}, ExpiresAt: now.Add(30 * time.Minute)})
		require.NoError(t, err)
		_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: 24 * time.Hour})
		require.NoError(t, err)
		return keys{scoped: scoped, rotatedOut: f.server}
	}
	create := func(actor apikey.Actor, expires time.Time, scopes ...string) func(*testing.T, *fixture, keys) error {
		return func(t *testing.T, f *fixture, _ keys) error {
			typ := apikey.Server
			if scopes == nil {
				typ = apikey.Client
			}
			_, err := f.m.Create(ctx, actor, apikey.CreateRequest{Environment: apikey.Production, Type: typ, Scopes: scopes, ExpiresAt: expires})
			return err
		}
	}
	tests := []struct {
		name  string
		call  func(*testing.T, *fixture, keys) error
		limit string // in the refusal; "" when allowed
	}{
		{"create without expiry", create(writer, time.Time{}, "customers:read"), "expires at 2026-01-01T13:00:00Z; no expiry is later"},
		{"create a publishable key without expiry", create(fullHour, time.Time{}), "expires at 2026-01-01T13:00:00Z"},
		{"create a publishable key without full access", create(writer, hour), "publishable key reads every resource"},
		{"create a publishable key with full access", create(fullHour, hour), ""},
		{"create expiring later", create(writer, now.Add(2*time.Hour), "customers:read"), "expiry 2026-01-01T14:00:00Z is later"},
		{"create expiring with the actor", create(writer, hour, "customers:read"), ""},
		{"create expiring sooner, write implies read", create(writer, now.Add(time.Minute), "customers:read", "customers:write"), ""},
		{"create with a scope the actor lacks", create(writer, hour, "invoices:read"), "does not hold scope invoices:read"},
		{"create full access without holding it", create(writer, hour, "*"), "does not hold scope *"},
		{"create full access holding it", create(full, time.Time{}, "*"), ""},
		{"a person creates anything", create(owner, time.Time{}, "*"), ""},
		{"rotate the default key without full access", func(t *testing.T, f *fixture, _ keys) error {
			_, err := f.m.Rotate(ctx, writer, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
			return err
		}, "does not hold scope *"},
		{"rotate the default key with full access for an hour", func(t *testing.T, f *fixture, _ keys) error {
			_, err := f.m.Rotate(ctx, fullHour, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, Grace: time.Hour})
			return err
		}, "no expiry is later"},
		{"rotate the default key with full access and no expiry", func(t *testing.T, f *fixture, _ keys) error {
			_, err := f.m.Rotate(ctx, full, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
			return err
		}, ""},
		{"rotate a key within the actor's scopes and expiry", func(t *testing.T, f *fixture, k keys) error {
			_, err := f.m.Rotate(ctx, writer, apikey.RotateRequest{KeyID: k.scoped.View.ID, ExpireNow: true})
			return err
		}, ""},
		{"extend a full-access key's grace", func(t *testing.T, f *fixture, k keys) error {
			_, err := f.m.ChangeGrace(ctx, writer, k.rotatedOut.View.ID, 365*24*time.Hour, apikey.APIPolicy)
			return err
		}, "does not hold scope *"},
		{"extend a grace past the actor's expiry", func(t *testing.T, f *fixture, k keys) error {
			_, err := f.m.ChangeGrace(ctx, fullHour, k.rotatedOut.View.ID, 48*time.Hour, apikey.APIPolicy)
			return err
		}, "expiry 2026-01-03T12:00:00Z is later"},
		{"shorten a grace, still past the actor's expiry", func(t *testing.T, f *fixture, k keys) error {
			_, err := f.m.ChangeGrace(ctx, fullHour, k.rotatedOut.View.ID, 2*time.Hour, apikey.APIPolicy)
			return err
		}, ""},
		{"set full access without holding it", func(t *testing.T, f *fixture, k keys) error {
			_, err := f.m.SetScopes(ctx, writer, k.scoped.View.ID, []string{"*"})
			return err
		}, "does not hold scope *"},
		{"set scopes on a key holding more", func(t *testing.T, f *fixture, _ keys) error {
			strong, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"invoices:write"}})
			require.NoError(t, err)
			_, err = f.m.SetScopes(ctx, writer, strong.View.ID, []string{"customers:read"})
			return err
		}, "does not hold scope invoices:write"},
		{"set scopes within the actor's", func(t *testing.T, f *fixture, k keys) error {
			_, err := f.m.SetScopes(ctx, writer, k.scoped.View.ID, []string{"customers:write"})
			return err
		}, ""},
		{"set the owner of a key holding more", func(t *testing.T, f *fixture, k keys) error {
			_, err := f.m.SetOwner(ctx, writer, k.rotatedOut.View.ID, "mallory")
			return err
		}, "does not hold scope *"},
		{"set the metadata of a publishable key without full access", func(t *testing.T, f *fixture, _ keys) error {
			_, err := f.m.SetMetadata(ctx, writer, f.client.View.ID, map[string]string{"team": "x"})
			return err
		}, "publishable key reads every resource"},
		{"set the owner of a key within the actor's scopes", func(t *testing.T, f *fixture, k keys) error {
			_, err := f.m.SetOwner(ctx, writer, k.scoped.View.ID, "alice")
			return err
		}, ""},
		{"bootstrap without full access", func(t *testing.T, f *fixture, _ keys) error {
			_, err := f.m.Bootstrap(ctx, fullHour, apikey.Staging)
			return err
		}, "no expiry is later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, apikey.ManagerOptions{})
			k := setup(t, f)
			err := tt.call(t, f, k)
			if tt.limit == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, apikey.ErrBeyondActor)
			assert.ErrorIs(t, err, apikey.ErrForbidden)
			assert.True(t, apikey.IsRequestError(err))
			assert.Contains(t, err.Error(), tt.limit)
		})
	}
}

// TestKeyActorRevealsNothingStronger: a key reveals no server key holding
// a scope it lacks or outliving it; publishable keys are public.
func TestKeyActorRevealsNothingStronger(t *testing.T) {
	sealer, err := apikey.NewAESGCMSealer(make([]byte, 32))
	require.NoError(t, err)
	f := newFixture(t, apikey.ManagerOptions{Sealer: sealer})
	writer := apikey.Actor{ID: "server-actor", Role: apikey.Owner, Scopes: []string{"api_keys:write"}, Expires: f.clock.Now().Add(time.Hour)}
	_, err = f.m.Reveal(ctx, writer, f.server.View.ID)
	require.ErrorIs(t, err, apikey.ErrBeyondActor)
	assert.Contains(t, err.Error(), "does not hold scope *")
	_, err = f.m.Reveal(ctx, writer, f.client.View.ID)
	require.NoError(t, err)
}

// TestActorBoundsAreNotAudited: events record who acted, not its key's
// bounds.
func TestActorBoundsAreNotAudited(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	actor := apikey.Actor{ID: "server-actor", Role: apikey.Owner, Scopes: []string{"*"}, Expires: f.clock.Now().Add(time.Hour)}
	_, err := f.m.Create(ctx, actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client, ExpiresAt: f.clock.Now().Add(time.Minute)})
	require.NoError(t, err)
	last := f.events[len(f.events)-1]
	assert.Equal(t, apikey.Actor{ID: "server-actor", Role: apikey.Owner}, last.Actor)
}
