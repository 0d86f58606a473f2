package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

// TestLifetimeRefusals: a lifetime policy out of range is refused with a
// detail that names the field; a key beyond the maximum with one that
// names it; a key-authenticated caller may not set a policy.
func TestLifetimeRefusals(t *testing.T) {
	tests := []struct {
		name   string
		caller admin.Caller
		method string
		path   string
		body   string
		status int
		code   string
		detail string
	}{
		{"default beyond max", owner, "PUT", "/environments/production/lifetime", `{"default_expiry_seconds":86401,"max_lifetime_seconds":86400}`,
			422, "invalid_lifetime", "default_expiry_seconds must be at most max_lifetime_seconds (86400)"},
		{"negative", owner, "PUT", "/environments/production/lifetime", `{"default_expiry_seconds":-1}`,
			422, "invalid_lifetime", "default_expiry_seconds must be 0 (none) to 315360000 (87600h)"},
		{"huge", owner, "PUT", "/environments/production/lifetime", `{"max_lifetime_seconds":99999999999999999999999}`,
			422, "invalid_lifetime", "max_lifetime_seconds must be 0 (none) to 315360000"},
		{"an exponent", owner, "PUT", "/environments/production/lifetime", `{"max_lifetime_seconds":1e6}`,
			422, "invalid_lifetime", "max_lifetime_seconds must be an integer"},
		{"a key", admin.Caller{Actor: apikey.Actor{ID: "server-x", Role: apikey.Owner, Scopes: []string{"*"}}},
			"PUT", "/environments/production/lifetime", `{}`, 403, "role_not_allowed", "an acting key may not change the lifetime policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.caller = tt.caller
			status, problem, _ := f.do(t, tt.method, tt.path, tt.body)
			assert.Equal(t, tt.status, status)
			assert.Equal(t, tt.code, problem["code"])
			assert.Contains(t, problem["detail"], tt.detail)
		})
	}
}

// TestLifetimeApplies: a policy set through the API shows in the
// environment's settings and bounds the keys created and rotated after
// it; a rename and a new environment answer as documented.
func TestLifetimeApplies(t *testing.T) {
	f := newFixture(t)
	status, body, _ := f.do(t, "PUT", "/environments/production/lifetime", `{"default_expiry_seconds":3600,"max_lifetime_seconds":86400}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, map[string]any{"default_expiry_seconds": 3600.0, "max_lifetime_seconds": 86400.0}, body["lifetime"])
	_, body, _ = f.do(t, "GET", "/environments/production/origins", "")
	assert.Equal(t, map[string]any{"default_expiry_seconds": 3600.0, "max_lifetime_seconds": 86400.0}, body["lifetime"])
	_, body, _ = f.do(t, "GET", "/environments/staging/origins", "")
	assert.NotContains(t, body, "lifetime", "an environment without a policy shows none")

	status, body, _ = f.do(t, "POST", "/environments/production/keys", `{"type":"client"}`)
	require.Equal(t, http.StatusCreated, status)
	view := body["view"].(map[string]any)
	assert.NotEmpty(t, view["expires_at"], "the default expiry")
	status, problem, _ := f.do(t, "POST", "/environments/production/keys", `{"type":"client","expires_in":"25h"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Equal(t, "beyond_lifetime", problem["code"])
	assert.Contains(t, problem["detail"], "maximum lifetime is 24h (max_lifetime_seconds 86400)")

	status, body, _ = f.do(t, "PUT", "/keys/"+view["prefix"].(string)+"/name", `{"name":"widget"}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "widget", body["name"])

	status, body, _ = f.do(t, "POST", "/environments", `{"environment":"qa"}`)
	require.Equal(t, http.StatusCreated, status)
	assert.Equal(t, "qa", body["environment"])
	issued := body["issued"].([]any)
	require.Len(t, issued, 2)
	for i, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
		k := issued[i].(map[string]any)
		key, err := apikey.ParseKey(k["full_key"].(string))
		require.NoError(t, err)
		assert.Equal(t, typ, key.Type())
		assert.Equal(t, true, k["view"].(map[string]any)["default"])
		assert.True(t, strings.HasPrefix(k["full_key"].(string), string(typ)+"-"))
	}
	s, err := f.m.Settings(context.Background(), owner.Actor, "qa")
	require.NoError(t, err)
	assert.True(t, s.Lifetime.IsZero())
}
