package admin_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

// TestMemberRoutes: through the API, a member manages the keys of staging
// and not those of production, reveals publishable keys only and changes
// no account setting; each refusal is 403 role_not_allowed with a detail
// that says what was refused and why. The environments say which is
// production.
func TestMemberRoutes(t *testing.T) {
	member := admin.Caller{Actor: apikey.Actor{ID: "bob", Role: apikey.Member}}
	tests := []struct {
		name         string
		method, path string
		body         string
		key          func(*testing.T, *fixture) apikey.Issued // the key of {id}, if any
		status       int
		detail       string
	}{
		{"create in staging", "POST", "/environments/staging/keys", `{"type":"server","scopes":["orders:read"]}`, nil, 201, ""},
		{"create in production", "POST", "/environments/production/keys", `{"type":"client"}`, nil, 403,
			`members may not create keys in production environment "production"`},
		{"rotate the default key of staging", "POST", "/environments/staging/keys/server/rotate", `{"grace":"1h"}`, nil, 201, ""},
		{"rotate the default key of production", "POST", "/environments/production/keys/server/rotate", `{"grace":"1h"}`, nil, 403,
			`members may not rotate keys in production environment "production"`},
		{"revoke in staging", "POST", "/keys/{id}/revoke", "", stagingKey, 200, ""},
		{"revoke in production", "POST", "/keys/{id}/revoke", "", extraKey, 403,
			`members may not revoke keys in production environment "production"`},
		{"rename in production", "PUT", "/keys/{id}/name", `{"name":"x"}`, extraKey, 403, "members may not rename keys in production"},
		{"set limits in staging", "PUT", "/keys/{id}/limits", `{"quota":{"limit":10}}`, stagingKey, 200, ""},
		{"reveal a publishable key of production", "POST", "/keys/{id}/reveal", "", func(_ *testing.T, f *fixture) apikey.Issued { return f.client }, 200, ""},
		{"reveal a server key of staging", "POST", "/keys/{id}/reveal", "", func(_ *testing.T, f *fixture) apikey.Issued { return f.staging[0] }, 403,
			"members may not reveal server keys"},
		{"set origins of staging", "PUT", "/environments/staging/origins", `{"allowed_origins":[]}`, nil, 403,
			"members may not change allowed origins: only owners change account settings"},
		{"set the lifetime policy of staging", "PUT", "/environments/staging/lifetime", `{}`, nil, 403,
			"members may not change the lifetime policy"},
		{"create an environment", "POST", "/environments", `{"environment":"qa"}`, nil, 403, "members may not create environments"},
		{"close the account", "POST", "/account/close", `{"confirm":"default"}`, nil, 403, "members may not close the account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.caller = member
			path := tt.path
			if tt.key != nil {
				path = "/keys/" + tt.key(t, f).View.ID + tt.path[len("/keys/{id}"):]
			}
			status, body, _ := f.do(t, tt.method, path, tt.body)
			require.Equal(t, tt.status, status, body)
			if tt.status == 403 {
				assert.Equal(t, "role_not_allowed", body["code"])
				assert.Contains(t, body["detail"], tt.detail)
			}
		})
	}

	f := newFixture(t)
	f.caller = member
	status, body, _ := f.do(t, "GET", "/environments", "")
	require.Equal(t, 200, status)
	production := map[string]any{}
	for _, e := range body["environments"].([]any) {
		e := e.(map[string]any)
		production[e["environment"].(string)] = e["production"]
	}
	assert.Equal(t, map[string]any{"production": true, "staging": false}, production)
	status, body, _ = f.do(t, "GET", "/environments/staging/origins", "")
	require.Equal(t, 200, status)
	assert.Equal(t, false, body["production"])
}

// stagingKey creates, as an owner, a scoped server key in staging.
func stagingKey(t *testing.T, f *fixture) apikey.Issued {
	t.Helper()
	k, err := f.m.Create(context.Background(), owner.Actor, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	return k
}
