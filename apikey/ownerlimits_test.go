package apikey_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

var shared = apikey.Limits{
	Rate:  apikey.RateLimit{Requests: 100, Window: time.Minute},
	Quota: apikey.Quota{Limit: 1000, Refill: 1000, Period: apikey.Monthly},
}

func TestSetOwnerLimitsRules(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	f.create(t, apikey.CreateRequest{Owner: "user-1"})
	keyActor := apikey.Actor{ID: "server-key", Role: apikey.Owner, Scopes: []string{apikey.AllScopes}}
	tests := []struct {
		name   string
		actor  apikey.Actor
		owner  string
		limits apikey.Limits
		want   error
		field  string
	}{
		{"member", member, "user-1", shared, apikey.ErrForbidden, ""},
		{"read-only", readOnly, "user-1", shared, apikey.ErrForbidden, ""},
		{"acting key", keyActor, "user-1", shared, apikey.ErrBeyondActor, ""},
		{"no owner", owner, "", shared, apikey.ErrInvalidMetadata, "owner"},
		{"allowlist", owner, "user-1", apikey.Limits{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			apikey.ErrInvalidLimits, "allowed_ips"},
		{"zero requests", owner, "user-1", apikey.Limits{Rate: apikey.RateLimit{Window: time.Second}}, apikey.ErrInvalidLimits, "rate.requests"},
		{"refill above limit", owner, "user-1", apikey.Limits{Quota: apikey.Quota{Limit: 1, Refill: 2, Period: apikey.Daily}},
			apikey.ErrInvalidLimits, "quota.refill"},
		{"owner without keys", owner, "nobody", shared, apikey.ErrNotFound, ""},
		{"removing from an owner without keys", owner, "nobody", apikey.Limits{}, nil, ""},
		{"owner", owner, "user-1", shared, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.m.SetOwnerLimits(ctx, tt.actor, tt.owner, tt.limits)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestSetOwnerLimitsReachesEveryKey(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	a := f.create(t, apikey.CreateRequest{Owner: "user-1"})
	b := f.create(t, apikey.CreateRequest{Owner: "user-1", Type: apikey.Client})
	revoked := f.create(t, apikey.CreateRequest{Owner: "user-1"})
	_, err := f.m.Revoke(ctx, owner, revoked.View.ID)
	require.NoError(t, err)
	other := f.create(t, apikey.CreateRequest{Owner: "user-2"})

	f.events = nil
	n, err := f.m.SetOwnerLimits(ctx, owner, "user-1", shared)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the keys that are not revoked")
	for _, id := range []string{a.View.ID, b.View.ID} {
		assert.True(t, f.record(t, id).OwnerLimits.Equal(shared), id)
	}
	assert.True(t, f.record(t, revoked.View.ID).OwnerLimits.IsZero(), "a revoked key is left alone")
	assert.True(t, f.record(t, other.View.ID).OwnerLimits.IsZero(), "another owner's key is not touched")
	require.Len(t, f.events, 3, "one event per key and one for the call")
	for _, e := range f.events {
		assert.Equal(t, apikey.ActionSetOwnerLimits, e.Action)
	}
	assert.Equal(t, "owner user-1: rate 100/60s burst 100; quota 1000 +1000/month, on 2 keys", f.events[2].Detail)

	got, err := f.m.OwnerLimits(ctx, readOnly, "user-1")
	require.NoError(t, err, "every role may read them")
	assert.True(t, got.Equal(shared))
	none, err := f.m.OwnerLimits(ctx, readOnly, "user-2")
	require.NoError(t, err)
	assert.True(t, none.IsZero())

	// Keys issued to the owner later take them.
	c := f.create(t, apikey.CreateRequest{Owner: "user-1"})
	assert.True(t, c.View.OwnerLimits.Equal(shared), "created")
	assert.True(t, f.record(t, c.View.ID).OwnerLimits.Equal(shared))
	rotated, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: a.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	assert.True(t, f.record(t, rotated.View.ID).OwnerLimits.Equal(shared), "rotated")
	imported, err := f.m.Import(ctx, apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
		Digest: apikey.ImportDigest("sk_live_0123456789abcdefghijklmnopqrstuv"), Scopes: []string{"*"}, Owner: "user-1"})
	require.NoError(t, err)
	assert.True(t, imported.OwnerLimits.Equal(shared), "imported")
	_, err = f.m.Import(ctx, apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
		Digest: apikey.ImportDigest("sk_live_0123456789abcdefghijklmnopqrstuv"), Scopes: []string{"*"}, Owner: "user-1"})
	assert.ErrorIs(t, err, apikey.ErrConflict, "a duplicate import is still refused")

	// Changing a key's owner takes the new owner's limits, or none.
	moved, err := f.m.SetOwner(ctx, owner, other.View.ID, "user-1")
	require.NoError(t, err)
	assert.True(t, moved.OwnerLimits.Equal(shared))
	left, err := f.m.SetOwner(ctx, owner, b.View.ID, "user-3")
	require.NoError(t, err)
	assert.True(t, left.OwnerLimits.IsZero())
	nobody, err := f.m.SetOwner(ctx, owner, c.View.ID, "")
	require.NoError(t, err)
	assert.True(t, nobody.OwnerLimits.IsZero())

	// The zero Limits removes them.
	n, err = f.m.SetOwnerLimits(ctx, owner, "user-1", apikey.Limits{})
	require.NoError(t, err)
	assert.Equal(t, 4, n, "a, its replacement, the imported key and the moved key")
	for _, id := range []string{a.View.ID, rotated.View.ID, imported.ID, other.View.ID} {
		assert.True(t, f.record(t, id).OwnerLimits.IsZero(), id)
	}
}

func TestSetOwnerLimitsBounded(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	var c apikey.Change
	for i := range apikey.MaxOwnerKeys + 1 {
		c.Insert = append(c.Insert, apikey.Record{ID: fmt.Sprintf("bound%07d", i), Account: apikey.DefaultAccount,
			Type: apikey.Server, Environment: apikey.Production, Owner: "many", Scopes: []string{"*"}, CreatedAt: f.clock.Now(),
			Hash: apikey.NewOpaque("x")})
	}
	require.NoError(t, f.store.Apply(ctx, c))
	_, err := f.m.SetOwnerLimits(ctx, owner, "many", shared)
	require.ErrorIs(t, err, apikey.ErrTooManyKeys)
	assert.Contains(t, err.Error(), "10000 keys to set limits on")
	assert.True(t, f.record(t, "bound0000000").OwnerLimits.IsZero(), "nothing was written")
}

func TestOwnerBalanceID(t *testing.T) {
	id := apikey.OwnerBalanceID("acme", "user/1")
	assert.Equal(t, "owner:acme/user/1", id)
	assert.True(t, apikey.IsOwnerBalanceID(id))
	assert.False(t, apikey.IsOwnerBalanceID("abcdefABCDEF"), "a key id")
}
