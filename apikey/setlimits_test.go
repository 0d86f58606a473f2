package apikey_test

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

func TestRateLimitJSON(t *testing.T) {
	tests := []struct {
		name string
		rate apikey.RateLimit
		json string
	}{
		{"with burst", apikey.RateLimit{Requests: 100, Window: time.Minute, Burst: 20}, `{"requests":100,"window_seconds":60,"burst":20}`},
		{"without burst", apikey.RateLimit{Requests: 5, Window: time.Second}, `{"requests":5,"window_seconds":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.rate)
			require.NoError(t, err)
			assert.JSONEq(t, tt.json, string(b))
			var back apikey.RateLimit
			require.NoError(t, json.Unmarshal(b, &back))
			assert.Equal(t, tt.rate, back)
		})
	}
	l := apikey.Limits{Rate: apikey.RateLimit{Requests: 1, Window: time.Hour}, Quota: apikey.Quota{Limit: 9}}
	b, err := json.Marshal(l)
	require.NoError(t, err)
	assert.JSONEq(t, `{"rate":{"requests":1,"window_seconds":3600},"quota":{"limit":9}}`, string(b))
	b, err = json.Marshal(apikey.Limits{})
	require.NoError(t, err)
	assert.JSONEq(t, `{}`, string(b), "unset limits are omitted")
}

// TestRateLimitJSONOutOfRange: a window of seconds that would overflow a
// time.Duration, or a negative one, stays out of range after decoding and
// is refused by ValidateLimits naming rate.window_seconds.
func TestRateLimitJSONOutOfRange(t *testing.T) {
	for _, in := range []string{
		`{"requests":1,"window_seconds":9223372036854775807}`,
		`{"requests":1,"window_seconds":9223372037}`, // wraps around to a small positive Duration if multiplied naively
		`{"requests":1,"window_seconds":86401}`,
		`{"requests":1,"window_seconds":-1}`,
		`{"requests":1,"window_seconds":0}`,
	} {
		var r apikey.RateLimit
		require.NoError(t, json.Unmarshal([]byte(in), &r), in)
		_, err := apikey.ValidateLimits(apikey.Server, apikey.Limits{Rate: r})
		require.ErrorIs(t, err, apikey.ErrInvalidLimits, in)
		assert.ErrorContains(t, err, "rate.window_seconds", in)
	}
	var r apikey.RateLimit
	assert.Error(t, json.Unmarshal([]byte(`{"requests":1,"window_seconds":1.5}`), &r), "whole seconds only")
}

func TestCreateWithLimits(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	limits := apikey.Limits{
		Rate:       apikey.RateLimit{Requests: 100, Window: time.Minute},
		Quota:      apikey.Quota{Limit: 1000, Refill: 1000, Period: apikey.Monthly},
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8"), netip.MustParsePrefix("10.0.0.0/8")},
	}
	issued, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{apikey.AllScopes}, Limits: limits})
	require.NoError(t, err)
	want := limits
	want.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} // masked, deduplicated
	assert.Equal(t, want, issued.View.Limits)
	assert.Equal(t, want, f.record(t, issued.View.ID).Limits)

	// The rotated key's replacement keeps its limits.
	rotated, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: issued.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, want, f.record(t, rotated.View.ID).Limits)

	for _, c := range []struct {
		name  string
		typ   apikey.KeyType
		l     apikey.Limits
		field string
	}{
		{"zero window", apikey.Server, apikey.Limits{Rate: apikey.RateLimit{Requests: 1}}, "rate.window_seconds"},
		{"negative quota", apikey.Server, apikey.Limits{Quota: apikey.Quota{Limit: -1}}, "quota.limit"},
		{"refill without period", apikey.Server, apikey.Limits{Quota: apikey.Quota{Limit: 5, Refill: 5}}, "quota.period"},
		{"allowlist on a publishable key", apikey.Client, apikey.Limits{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "allowed_ips"},
	} {
		req := apikey.CreateRequest{Environment: apikey.Production, Type: c.typ, Limits: c.l}
		if c.typ == apikey.Server {
			req.Scopes = []string{apikey.AllScopes}
		}
		_, err := f.m.Create(ctx, owner, req)
		require.ErrorIs(t, err, apikey.ErrInvalidLimits, c.name)
		assert.ErrorContains(t, err, c.field, c.name)
		assert.True(t, apikey.IsRequestError(err), "%s is a request error", c.name)
	}
}

func TestSetLimits(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	limits := apikey.Limits{Quota: apikey.Quota{Limit: 50, Refill: 10, Period: apikey.Daily}}
	before := f.record(t, f.client.View.ID)
	view, err := f.m.SetLimits(ctx, owner, "client-"+f.client.View.ID, limits)
	require.NoError(t, err)
	assert.Equal(t, limits, view.Limits)
	after := f.record(t, f.client.View.ID)
	assert.Equal(t, limits, after.Limits)
	assert.Greater(t, after.Revision, before.Revision, "stored with a new revision")
	last := f.events[len(f.events)-1]
	assert.Equal(t, apikey.ActionSetLimits, last.Action)
	assert.Equal(t, f.client.View.ID, last.KeyID)
	assert.Equal(t, "quota 50 +10/day", last.Detail)

	// The change reaches the feed, with the new limits.
	changes, _, err := f.store.Changes(ctx, before.Revision, 0)
	require.NoError(t, err)
	require.NotEmpty(t, changes)
	require.NotNil(t, changes[len(changes)-1].Key)
	assert.Equal(t, limits, changes[len(changes)-1].Key.Limits)

	// The zero Limits removes them.
	view, err = f.m.SetLimits(ctx, owner, f.client.View.ID, apikey.Limits{})
	require.NoError(t, err)
	assert.True(t, view.Limits.IsZero())
	assert.Equal(t, "no limits", f.events[len(f.events)-1].Detail)

	// Invalid limits name the field and change nothing.
	_, err = f.m.SetLimits(ctx, owner, f.client.View.ID,
		apikey.Limits{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	require.ErrorIs(t, err, apikey.ErrInvalidLimits)
	assert.ErrorContains(t, err, "allowed_ips")
	assert.True(t, f.record(t, f.client.View.ID).Limits.IsZero())

	// Members, read-only users and key actors may not; revoked keys are
	// final.
	for _, a := range []apikey.Actor{member, readOnly} {
		_, err = f.m.SetLimits(ctx, a, f.client.View.ID, limits)
		assert.ErrorIs(t, err, apikey.ErrForbidden, a.Role)
	}
	keyActor := apikey.Actor{ID: "server-key", Role: apikey.Owner, Scopes: []string{apikey.AllScopes}}
	_, err = f.m.SetLimits(ctx, keyActor, f.client.View.ID, apikey.Limits{})
	assert.ErrorIs(t, err, apikey.ErrBeyondActor)
	extra, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err)
	_, err = f.m.Revoke(ctx, owner, extra.View.ID)
	require.NoError(t, err)
	_, err = f.m.SetLimits(ctx, owner, extra.View.ID, limits)
	assert.ErrorIs(t, err, apikey.ErrAlreadyRevoked)
	_, err = f.m.SetLimits(ctx, owner, "nosuchkey000", limits)
	assert.ErrorIs(t, err, apikey.ErrNotFound)
}
