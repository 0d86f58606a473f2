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

func TestLimitsWithin(t *testing.T) {
	rate := func(n int, window time.Duration, burst int) apikey.RateLimit {
		return apikey.RateLimit{Requests: n, Window: window, Burst: burst}
	}
	ips := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	actor := apikey.Limits{
		Rate:       rate(100, time.Minute, 10),
		Quota:      apikey.Quota{Limit: 1000, Refill: 100, Period: apikey.Daily},
		AllowedIPs: ips("10.0.0.0/8", "2001:db8::/32"),
	}
	within := apikey.Limits{Rate: rate(1, time.Second, 0), Quota: apikey.Quota{Limit: 10, Refill: 10, Period: apikey.Daily},
		AllowedIPs: ips("10.1.0.0/16")}
	tests := []struct {
		name  string
		l, o  apikey.Limits
		field string // in the error; "" when within
	}{
		{"nothing within nothing", apikey.Limits{}, apikey.Limits{}, ""},
		{"anything within nothing", actor, apikey.Limits{}, ""},
		{"itself", actor, actor, ""},
		{"tighter everywhere", within, actor, ""},
		{"the same rate in other units", apikey.Limits{Rate: rate(6000, time.Hour, 10), Quota: within.Quota, AllowedIPs: within.AllowedIPs}, actor, ""},
		{"no rate", apikey.Limits{Quota: within.Quota, AllowedIPs: within.AllowedIPs}, actor, "rate: needs"},
		{"a faster rate", apikey.Limits{Rate: rate(2, time.Second, 1), Quota: within.Quota, AllowedIPs: within.AllowedIPs}, actor, "rate: at most 100 requests per 60s"},
		{"a larger burst", apikey.Limits{Rate: rate(1, time.Second, 11), Quota: within.Quota, AllowedIPs: within.AllowedIPs}, actor, "rate.burst"},
		{"no quota", apikey.Limits{Rate: within.Rate, AllowedIPs: within.AllowedIPs}, actor, "quota: needs"},
		{"a larger quota", apikey.Limits{Rate: within.Rate, Quota: apikey.Quota{Limit: 1001}, AllowedIPs: within.AllowedIPs}, actor, "quota.limit"},
		{"a larger refill", apikey.Limits{Rate: within.Rate, Quota: apikey.Quota{Limit: 10, Refill: 101, Period: apikey.Daily}, AllowedIPs: within.AllowedIPs}, actor, "quota.refill"},
		{"another period", apikey.Limits{Rate: within.Rate, Quota: apikey.Quota{Limit: 10, Refill: 1, Period: apikey.Monthly}, AllowedIPs: within.AllowedIPs}, actor, "quota.refill"},
		{"a refill of a quota that never refills", apikey.Limits{Quota: apikey.Quota{Limit: 10, Refill: 1, Period: apikey.Daily}}, apikey.Limits{Quota: apikey.Quota{Limit: 10}}, "quota.refill: none"},
		{"no allowlist", apikey.Limits{Rate: within.Rate, Quota: within.Quota}, actor, "allowed_ips: needs"},
		{"a wider range", apikey.Limits{Rate: within.Rate, Quota: within.Quota, AllowedIPs: ips("10.0.0.0/7")}, actor, "allowed_ips: 10.0.0.0/7"},
		{"another range", apikey.Limits{Rate: within.Rate, Quota: within.Quota, AllowedIPs: ips("2001:db8::/48", "192.0.2.0/24")}, actor, "allowed_ips: 192.0.2.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Within(tt.o)
			if tt.field == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.field)
		})
	}
}

// TestKeyActorBoundByItsLimits: an actor authenticated by a key with
// limits creates and rotates only keys bounded at least as tightly, and
// bootstraps nothing (default keys have no limits); a person, or a key
// without limits, is not bound.
func TestKeyActorBoundByItsLimits(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	limits := apikey.Limits{Quota: apikey.Quota{Limit: 100}}
	limited := apikey.Actor{ID: "server-limited", Role: apikey.Owner, Scopes: []string{apikey.AllScopes}, Limits: limits}
	create := func(a apikey.Actor, l apikey.Limits) error {
		_, err := f.m.Create(ctx, a, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, Limits: l})
		return err
	}
	err := create(limited, apikey.Limits{})
	require.ErrorIs(t, err, apikey.ErrBeyondActor)
	assert.ErrorContains(t, err, "quota: needs a quota")
	assert.ErrorIs(t, create(limited, apikey.Limits{Quota: apikey.Quota{Limit: 101}}), apikey.ErrBeyondActor)
	require.NoError(t, create(limited, apikey.Limits{Quota: apikey.Quota{Limit: 100}}))
	require.NoError(t, create(owner, apikey.Limits{}), "a person")
	unlimitedKey := limited
	unlimitedKey.Limits = apikey.Limits{}
	require.NoError(t, create(unlimitedKey, apikey.Limits{}), "a key without limits")

	_, err = f.m.Rotate(ctx, limited, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: time.Hour})
	assert.ErrorIs(t, err, apikey.ErrBeyondActor, "the default key has no limits")
	_, err = f.m.Bootstrap(ctx, limited, "sandbox")
	assert.ErrorIs(t, err, apikey.ErrBeyondActor)
	_, err = f.m.Rotate(ctx, unlimitedKey, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: time.Hour})
	assert.NoError(t, err)
}

// TestRotationSharesQuota: the replacement of a rotated key continues the
// old key's quota balance (Record.Lineage), both spend from it during the
// grace, and the rotated key's quota cannot change on its own.
func TestRotationSharesQuota(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	lim := apikey.Limits{Quota: apikey.Quota{Limit: 10}}
	old, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"orders:write"}, Limits: lim})
	require.NoError(t, err)
	now := f.clock.Now()
	l, err := f.store.LeaseQuota(ctx, old.View.ID, 8, now)
	require.NoError(t, err)
	require.Equal(t, int64(8), l.Granted)

	next, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	rec, err := f.store.Key(ctx, next.View.ID)
	require.NoError(t, err)
	assert.Equal(t, old.View.ID, rec.Lineage)
	l, err = f.store.LeaseQuota(ctx, next.View.ID, 10, now)
	require.NoError(t, err)
	assert.Equal(t, int64(2), l.Granted, "the replacement continues the balance")
	l, err = f.store.LeaseQuota(ctx, old.View.ID, 10, now)
	require.NoError(t, err)
	assert.Zero(t, l.Granted, "the rotated key spends the same balance")

	_, err = f.m.SetLimits(ctx, owner, old.View.ID, apikey.Limits{Quota: apikey.Quota{Limit: 100}})
	assert.ErrorIs(t, err, apikey.ErrAlreadyRotated, "the rotated key's quota is its replacement's")
	_, err = f.m.SetLimits(ctx, owner, old.View.ID, apikey.Limits{Quota: lim.Quota,
		Rate: apikey.RateLimit{Requests: 5, Window: time.Second}})
	assert.NoError(t, err, "its other limits may change")

	again, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: next.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	rec, err = f.store.Key(ctx, again.View.ID)
	require.NoError(t, err)
	assert.Equal(t, old.View.ID, rec.Lineage, "the lineage is the first key's")
}

// TestLimitsJSONStrict: null leaves a rate or quota as it was, and a field
// that rate or quota does not know is refused, naming which.
func TestLimitsJSON(t *testing.T) {
	r := apikey.RateLimit{Requests: 5, Window: time.Second}
	require.NoError(t, json.Unmarshal([]byte(`null`), &r))
	assert.Equal(t, apikey.RateLimit{Requests: 5, Window: time.Second}, r, "null leaves the rate")
	q := apikey.Quota{Limit: 9}
	require.NoError(t, json.Unmarshal([]byte(` null `), &q))
	assert.Equal(t, apikey.Quota{Limit: 9}, q, "null leaves the quota")
	var l apikey.Limits
	require.NoError(t, json.Unmarshal([]byte(`{"rate":null,"quota":null}`), &l))
	assert.True(t, l.IsZero())

	// A field this version does not know (written by a later one, into a
	// stored record) is ignored, as it is in every stored JSON value; the
	// management API refuses unknown fields in what callers send.
	require.NoError(t, json.Unmarshal([]byte(`{"rate":{"requests":1,"window_seconds":1,"burst":5,"later":1},"quota":{"limit":10,"refill":5,"period":"day","later":2}}`), &l))
	assert.Equal(t, apikey.Limits{Rate: apikey.RateLimit{Requests: 1, Window: time.Second, Burst: 5},
		Quota: apikey.Quota{Limit: 10, Refill: 5, Period: apikey.Daily}}, l)
	for _, in := range []string{`{"rate":{"requests":"1"}}`, `{"quota":{"limit":1.5}}`, `{"rate":[]}`} {
		require.Error(t, json.Unmarshal([]byte(in), &l), in)
	}
}

// FuzzLimitsJSON: decoding any input never panics, and limits that decode
// and validate encode to JSON that decodes back to the same limits.
func FuzzLimitsJSON(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `{"rate":null}`, `{"rate":{"requests":1,"window_seconds":60,"burst":3}}`,
		`{"quota":{"limit":10,"refill":5,"period":"day"}}`, `{"quota":{"limit":1,"x":1}}`, `{"rate":{"window_seconds":9223372036854775807}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var l apikey.Limits
		if json.Unmarshal([]byte(in), &l) != nil {
			return
		}
		valid, err := apikey.ValidateLimits(apikey.Server, l)
		if err != nil {
			return
		}
		b, err := json.Marshal(valid)
		require.NoError(t, err)
		var back apikey.Limits
		require.NoError(t, json.Unmarshal(b, &back), string(b))
		assert.True(t, valid.Equal(back), "%s", b)
	})
}
