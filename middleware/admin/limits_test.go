package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

// limitsJSON is a body of every kind of limit, as the view shows it.
const limitsJSON = `{"rate":{"requests":100,"window_seconds":60,"burst":20},"quota":{"limit":10000,"refill":10000,"period":"month"},"allowed_ips":["10.0.0.0/8","2001:db8::/32"]}`

var wantLimits = apikey.Limits{
	Rate:       apikey.RateLimit{Requests: 100, Window: time.Minute, Burst: 20},
	Quota:      apikey.Quota{Limit: 10000, Refill: 10000, Period: apikey.Monthly},
	AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
}

// storedLimits returns the limits the store holds for a key.
func storedLimits(t *testing.T, f *fixture, id string) apikey.Limits {
	t.Helper()
	rec, err := f.store.Key(context.Background(), id)
	require.NoError(t, err)
	return rec.Limits
}

// TestSetLimits: PUT /keys/{id}/limits replaces a key's limits and answers
// its view with them; {} removes them, and the view then has no "limits".
// Every value out of range is refused with 422 invalid_limits and a detail
// that names the field, and changes nothing.
func TestSetLimits(t *testing.T) {
	f := newFixture(t)
	server, client := "/keys/"+f.server.Key.Prefix()+"/limits", "/keys/"+f.client.Key.Prefix()+"/limits"
	tooMany := make([]string, apikey.MaxAllowedIPs+1)
	for i := range tooMany {
		tooMany[i] = `"10.0.` + string(rune('0'+i/10)) + string(rune('0'+i%10)) + `.0/24"`
	}
	tests := []struct {
		name, path, body string
		want             apikey.Limits // when field is ""
		field            string        // the field an invalid_limits detail names
	}{
		{name: "every limit", path: server, body: limitsJSON, want: wantLimits},
		{name: "the empty object removes them", path: server, body: `{}`},
		{name: "null members remove them", path: server, body: `{"rate":null,"quota":null,"allowed_ips":null}`},
		{name: "a rate alone, burst 0", path: client, body: `{"rate":{"requests":5,"window_seconds":1}}`,
			want: apikey.Limits{Rate: apikey.RateLimit{Requests: 5, Window: time.Second}}},
		{name: "a quota that never refills", path: client, body: `{"quota":{"limit":500}}`,
			want: apikey.Limits{Quota: apikey.Quota{Limit: 500}}},
		{name: "ranges masked and deduplicated", path: server, body: `{"allowed_ips":["10.1.2.3/8","10.0.0.0/8","::ffff:192.0.2.0/120"]}`,
			want: apikey.Limits{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.0/24")}}},

		{name: "negative requests", path: server, body: `{"rate":{"requests":-1,"window_seconds":60}}`, field: "rate.requests"},
		{name: "requests 0", path: server, body: `{"rate":{"requests":0,"window_seconds":60}}`, field: "rate.requests"},
		{name: "an empty rate", path: server, body: `{"rate":{}}`, field: "rate.requests"},
		{name: "requests beyond a billion", path: server, body: `{"rate":{"requests":1000000001,"window_seconds":60}}`, field: "rate.requests"},
		{name: "requests beyond an int64", path: server, body: `{"rate":{"requests":99999999999999999999,"window_seconds":60}}`, field: "rate.requests"},
		{name: "requests a fraction", path: server, body: `{"rate":{"requests":2.5,"window_seconds":60}}`, field: "rate.requests"},
		{name: "window missing", path: server, body: `{"rate":{"requests":10}}`, field: "rate.window_seconds"},
		{name: "window 0", path: server, body: `{"rate":{"requests":10,"window_seconds":0}}`, field: "rate.window_seconds"},
		{name: "window 1.5 seconds", path: server, body: `{"rate":{"requests":10,"window_seconds":1.5}}`, field: "rate.window_seconds"},
		{name: "window with an exponent", path: server, body: `{"rate":{"requests":10,"window_seconds":6e1}}`, field: "rate.window_seconds"},
		{name: "window negative", path: server, body: `{"rate":{"requests":10,"window_seconds":-60}}`, field: "rate.window_seconds"},
		{name: "window beyond a day", path: server, body: `{"rate":{"requests":10,"window_seconds":86401}}`, field: "rate.window_seconds"},
		{name: "window beyond a duration", path: server, body: `{"rate":{"requests":10,"window_seconds":9223372036854775807}}`, field: "rate.window_seconds"},
		{name: "burst negative", path: server, body: `{"rate":{"requests":10,"window_seconds":60,"burst":-1}}`, field: "rate.burst"},
		{name: "quota limit 0", path: server, body: `{"quota":{"limit":0}}`, field: "quota.limit"},
		{name: "an empty quota", path: server, body: `{"quota":{}}`, field: "quota.limit"},
		{name: "quota limit negative", path: server, body: `{"quota":{"limit":-5}}`, field: "quota.limit"},
		{name: "quota beyond a trillion", path: server, body: `{"quota":{"limit":1000000000001}}`, field: "quota.limit"},
		{name: "refill beyond the limit", path: server, body: `{"quota":{"limit":10,"refill":11,"period":"day"}}`, field: "quota.refill"},
		{name: "refill negative", path: server, body: `{"quota":{"limit":10,"refill":-1,"period":"day"}}`, field: "quota.refill"},
		{name: "period missing with a refill", path: server, body: `{"quota":{"limit":10,"refill":10}}`, field: "quota.period"},
		{name: "period unknown", path: server, body: `{"quota":{"limit":10,"refill":10,"period":"week"}}`, field: "quota.period"},
		{name: "period without a refill", path: server, body: `{"quota":{"limit":10,"period":"day"}}`, field: "quota.period"},
		{name: "not CIDR", path: server, body: `{"allowed_ips":["10.0.0.0/8","10.0.0.0/33"]}`, field: "allowed_ips[1]"},
		{name: "an address without a length", path: server, body: `{"allowed_ips":["10.0.0.1"]}`, field: "allowed_ips[0]"},
		{name: "an address with a zone", path: server, body: `{"allowed_ips":["fe80::1%eth0/64"]}`, field: "allowed_ips[0]"},
		{name: "an empty range", path: server, body: `{"allowed_ips":[""]}`, field: "allowed_ips[0]"},
		{name: "an allowlist on a publishable key", path: client, body: `{"allowed_ips":["10.0.0.0/8"]}`, field: "allowed_ips"},
		{name: "more than 64 ranges", path: server, body: `{"allowed_ips":[` + strings.Join(tooMany, ",") + `]}`, field: "allowed_ips"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := f.server.View.ID
			if tt.path == client {
				id = f.client.View.ID
			}
			_, err := f.m.SetLimits(context.Background(), owner.Actor, id, wantLimits.Clone())
			if tt.path == client {
				_, err = f.m.SetLimits(context.Background(), owner.Actor, id, apikey.Limits{Quota: apikey.Quota{Limit: 7}})
			}
			require.NoError(t, err)
			before := storedLimits(t, f, id)

			status, body, _ := f.do(t, "PUT", tt.path, tt.body)
			if tt.field != "" {
				require.Equal(t, http.StatusUnprocessableEntity, status, "%v", body)
				assert.Equal(t, "invalid_limits", body["code"])
				detail, _ := body["detail"].(string)
				assert.True(t, strings.HasPrefix(detail, "apikey: invalid limits: "+tt.field+" "), "the detail names %s: %q", tt.field, detail)
				assert.True(t, before.Equal(storedLimits(t, f, id)), "a refusal changes nothing")
				return
			}
			require.Equal(t, http.StatusOK, status, "%v", body)
			assert.Equal(t, id, body["id"])
			assert.True(t, tt.want.Equal(storedLimits(t, f, id)), "stored: %v", storedLimits(t, f, id))
			if tt.want.IsZero() {
				assert.NotContains(t, body, "limits", "a key without limits has no limits member")
				return
			}
			raw, err := json.Marshal(body["limits"])
			require.NoError(t, err)
			var got apikey.Limits
			require.NoError(t, json.Unmarshal(raw, &got))
			assert.True(t, tt.want.Equal(got), "the view's limits: %s", raw)
		})
	}
}

// TestSetLimitsFields: a member of the wrong type, anywhere in the limits,
// is refused with 400 invalid_request and a detail that names it by its
// path; an unknown member too, without repeating its name.
func TestSetLimitsFields(t *testing.T) {
	f := newFixture(t)
	key := f.server.Key.Reveal()
	path := "/keys/" + f.server.Key.Prefix() + "/limits"
	for _, tt := range []struct{ body, detail string }{
		{`{"rate":{"requests":"100","window_seconds":60}}`, "rate.requests: want a number"},
		{`{"rate":{"requests":100,"window_seconds":"1m"}}`, "rate.window_seconds: want a number"},
		{`{"rate":{"requests":100,"window_seconds":60,"burst":[1]}}`, "rate.burst: want a number"},
		{`{"quota":{"limit":true}}`, "quota.limit: want a number"},
		{`{"quota":{"limit":10,"refill":{"n":1}}}`, "quota.refill: want a number"},
		{`{"quota":{"limit":10,"refill":10,"period":1}}`, "quota.period: want a string"},
		{`{"allowed_ips":[1]}`, "allowed_ips: want an array of strings"},
		{`{"rate":{"requests":100,"window_seconds":60,"` + key + `":1}}`, `unknown field in rate: want "requests", "window_seconds", "burst"`},
		{`{"quota":{"Limit":10}}`, `unknown field in quota: want "limit", "refill", "period"`},
		{`{"limits":{}}`, `unknown field: want "rate", "quota", "allowed_ips"`},
	} {
		t.Run(tt.body, func(t *testing.T) {
			status, body, _ := f.do(t, "PUT", path, tt.body)
			require.Equal(t, http.StatusBadRequest, status, "%v", body)
			assert.Equal(t, "invalid_request", body["code"])
			assert.Equal(t, tt.detail, body["detail"])
		})
	}
	t.Run("create", func(t *testing.T) {
		status, body, _ := f.do(t, "POST", "/environments/production/keys", `{"type":"client","limits":{"rate":{"requests":"x"}}}`)
		require.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "limits.rate.requests: want a number", body["detail"])
		status, body, _ = f.do(t, "POST", "/environments/production/keys", `{"type":"client","limits":{"rate":{"rps":1}}}`)
		require.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, `unknown field in limits.rate: want "requests", "window_seconds", "burst"`, body["detail"])
	})
	t.Run("no body", func(t *testing.T) {
		status, body, _ := f.do(t, "PUT", path, "")
		require.Equal(t, http.StatusBadRequest, status, "removing limits takes {}, never an empty body")
		assert.Equal(t, "a JSON object is required", body["detail"])
	})
	t.Run("too large", func(t *testing.T) {
		status, body, _ := f.do(t, "PUT", path, `{"allowed_ips":["`+strings.Repeat("1", 70<<10)+`"]}`)
		require.Equal(t, http.StatusRequestEntityTooLarge, status)
		assert.Equal(t, "request_too_large", body["code"])
	})
}

// TestSetLimitsRefused: only owners set limits, never a key-authenticated
// caller (its own key's included), never on a revoked key or a key the
// caller cannot see; a refusal changes nothing.
func TestSetLimitsRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	revoked, err := f.m.Create(ctx, owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.NoError(t, err)
	_, err = f.m.Revoke(ctx, owner.Actor, revoked.View.ID)
	require.NoError(t, err)
	writer := admin.Caller{ // as admin.KeyScopes makes it of a full-access key
		Actor:       apikey.Actor{ID: f.server.Key.Prefix(), Role: apikey.Owner, Scopes: []string{apikey.AllScopes}},
		Environment: apikey.Production,
	}
	member := admin.Caller{Actor: apikey.Actor{ID: "mo", Role: apikey.Member}}
	for _, tt := range []struct {
		name   string
		caller admin.Caller
		key    string
		status int
		code   string
	}{
		{"read-only", readOnly, f.server.Key.Prefix(), 403, "role_not_allowed"},
		{"member", member, f.server.Key.Prefix(), 403, "role_not_allowed"},
		{"a key, on another key", writer, f.client.Key.Prefix(), 403, "role_not_allowed"},
		{"a key, on itself", writer, f.server.Key.Prefix(), 403, "role_not_allowed"},
		{"a revoked key", owner, revoked.Key.Prefix(), 409, "already_revoked"},
		{"a key of another environment", admin.Caller{Actor: owner.Actor, Environment: apikey.Staging}, f.server.Key.Prefix(), 404, "not_found"},
		{"an unknown key", owner, "client-nosuchkey000", 404, "not_found"},
		{"a full key", owner, f.server.Key.Reveal(), 422, "invalid_key_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.caller = tt.caller
			status, body, _ := f.do(t, "PUT", "/keys/"+tt.key+"/limits", `{"quota":{"limit":5}}`)
			require.Equal(t, tt.status, status, "%v", body)
			assert.Equal(t, tt.code, body["code"])
		})
	}
	assert.True(t, storedLimits(t, f, f.server.View.ID).IsZero())
	assert.True(t, storedLimits(t, f, f.client.View.ID).IsZero())
}

// TestViewLimits: create takes limits; GET and the list show them, and
// leave "limits" out of a key that has none; the audit log records the
// change.
func TestViewLimits(t *testing.T) {
	f := newFixture(t)
	status, body, _ := f.do(t, "POST", "/environments/production/keys", `{"type":"server","scopes":["*"],"limits":`+limitsJSON+`}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	view := body["view"].(map[string]any)
	id := view["id"].(string)
	assert.True(t, wantLimits.Equal(storedLimits(t, f, id)))
	raw, err := json.Marshal(view["limits"])
	require.NoError(t, err)
	assert.JSONEq(t, limitsJSON, string(raw))

	status, body, _ = f.do(t, "POST", "/environments/production/keys", `{"type":"client","limits":{}}`)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	assert.NotContains(t, body["view"], "limits")
	status, body, _ = f.do(t, "POST", "/environments/production/keys", `{"type":"client","limits":{"allowed_ips":["10.0.0.0/8"]}}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%v", body)
	assert.Equal(t, "invalid_limits", body["code"])
	status, body, _ = f.do(t, "POST", "/environments/production/keys", `{"type":"client","limits":{"quota":{"limit":1.5}}}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%v", body)
	assert.Equal(t, "apikey: invalid limits: quota.limit must be an integer (no fraction or exponent)", body["detail"])

	f.caller = readOnly
	status, body, _ = f.do(t, "GET", "/keys/"+id, "")
	require.Equal(t, http.StatusOK, status)
	raw, err = json.Marshal(body["limits"])
	require.NoError(t, err)
	assert.JSONEq(t, limitsJSON, string(raw))
	status, body, _ = f.do(t, "GET", "/keys/"+f.server.View.ID, "")
	require.Equal(t, http.StatusOK, status)
	assert.NotContains(t, body, "limits")

	status, body, _ = f.do(t, "GET", "/environments/production/keys", "")
	require.Equal(t, http.StatusOK, status)
	withLimits := 0
	for _, k := range body["keys"].([]any) {
		if _, ok := k.(map[string]any)["limits"]; ok {
			withLimits++
			assert.Equal(t, id, k.(map[string]any)["id"])
		}
	}
	assert.Equal(t, 1, withLimits, "the list shows the limits of the one key that has them")

	f.caller = owner
	status, _, _ = f.do(t, "PUT", "/keys/"+id+"/limits", `{"rate":{"requests":5,"window_seconds":1}}`)
	require.Equal(t, http.StatusOK, status)
	status, body, _ = f.do(t, "GET", "/audit?limit=1", "")
	require.Equal(t, http.StatusOK, status)
	event := body["events"].([]any)[0].(map[string]any)
	assert.Equal(t, "set_limits", event["action"])
	assert.Equal(t, id, event["key_id"])
	assert.Equal(t, "rate 5/1s burst 5", event["detail"])
}
