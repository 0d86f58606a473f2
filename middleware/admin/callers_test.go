package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

// TestCallers: GET /keys/{id}/callers answers who still uses a key
// rotated out to every role that may get the key: requests since the
// rotation, last seen, and the callers, most recent first, with how many
// more; an active key has none; a key outside the caller's account or
// environment is not found; a caller authenticated by a key reads its own
// key's callers only; a store that keeps no callers is 501.
func TestCallers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.m.Rotate(ctx, owner.Actor, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	seen := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	require.NoError(t, f.store.RecordCallers(ctx, []apikey.KeyCallers{{Account: apikey.DefaultAccount, KeyID: f.server.View.ID,
		Callers: []apikey.Caller{
			{Address: "192.0.2.7", UserAgent: "billing-cron/2.1", Requests: 3, FirstSeen: seen, LastSeen: seen.Add(3 * time.Minute)},
			{Address: "2001:db8::7", Requests: 1, FirstSeen: seen.Add(time.Minute), LastSeen: seen.Add(time.Minute)},
		}, Others: 2, OtherRequests: 4}}))
	srv := "/keys/" + f.server.View.ID + "/callers"
	confined := admin.Caller{Actor: readOnly.Actor, Environment: apikey.Staging}
	// Callers authenticated by a key, as admin.KeyScopes makes them.
	byKey := func(v apikey.View) admin.Caller {
		return admin.Caller{Actor: apikey.Actor{ID: v.Prefix, Role: apikey.ReadOnly, Scopes: []string{"admin:read"}, KeyID: v.ID}}
	}

	for _, tt := range []struct {
		name    string
		caller  admin.Caller
		path    string
		status  int
		code    string
		callers []string // address and user agent of each caller
		want    map[string]any
	}{
		{name: "read-only", caller: readOnly, path: srv, status: 200,
			callers: []string{"192.0.2.7 billing-cron/2.1", "2001:db8::7 "},
			want:    map[string]any{"status": "expiring", "requests": float64(8), "others": float64(2), "last_used_at": "2030-01-01T10:03:00Z"}},
		{name: "by prefix", caller: owner, path: "/keys/" + f.server.Key.Prefix() + "/callers", status: 200,
			callers: []string{"192.0.2.7 billing-cron/2.1", "2001:db8::7 "}},
		{name: "an active key", caller: readOnly, path: "/keys/" + f.client.View.ID + "/callers", status: 200,
			callers: []string{}, want: map[string]any{"status": "active", "requests": float64(0), "others": float64(0)}},
		{name: "an unknown key", caller: readOnly, path: "/keys/nosuchkey000/callers", status: 404, code: "not_found"},
		{name: "confined, another environment's key", caller: confined, path: srv, status: 404, code: "not_found"},
		{name: "a key, another key's callers", caller: byKey(f.client.View), path: srv, status: 403, code: "role_not_allowed"},
		{name: "a key, its own callers", caller: byKey(f.server.View), path: srv, status: 200,
			callers: []string{"192.0.2.7 billing-cron/2.1", "2001:db8::7 "}},
		{name: "a full key", caller: readOnly, path: "/keys/" + f.client.Key.Reveal() + "/callers", status: 422, code: "invalid_key_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.caller = tt.caller
			status, body, _ := f.do(t, "GET", tt.path, "")
			require.Equal(t, tt.status, status, "%v", body)
			if tt.code != "" {
				assert.Equal(t, tt.code, body["code"])
				return
			}
			list, ok := body["callers"].([]any)
			require.True(t, ok, "%v", body)
			got := []string{}
			for _, c := range list {
				c := c.(map[string]any)
				got = append(got, c["address"].(string)+" "+c["user_agent"].(string))
			}
			assert.Equal(t, tt.callers, got)
			for k, v := range tt.want {
				assert.Equal(t, v, body[k], k)
			}
			if tt.want != nil && tt.want["status"] == "active" {
				assert.NotContains(t, body, "rotated_at", "an active key was not rotated out")
			}
		})
	}

	t.Run("a store that keeps no callers", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: noUsage{f.store}})
		require.NoError(t, err)
		api, err := admin.New(admin.Options{Manager: m, SingleAccount: true,
			Authorize: func(*http.Request) (admin.Caller, error) { return readOnly, nil }})
		require.NoError(t, err)
		g := &fixture{api: api}
		status, body, _ := g.do(t, "GET", srv, "")
		require.Equal(t, http.StatusNotImplemented, status, "%v", body)
		assert.Equal(t, "callers_unavailable", body["code"])
	})
}

// TestEndGraceIfSilent: POST /keys/{id}/end-grace-if-silent ends the grace
// of a key rotated out that no caller used for the silence asked for, and
// refuses one used more recently (409 still_in_use, saying when), leaving
// it working; a missing silence is 422 silence_required, one out of range
// 422 silence_out_of_range.
func TestEndGraceIfSilent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	anHourAgo, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	require.NoError(t, err)
	_, err = anHourAgo.Rotate(ctx, owner.Actor, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: 72 * time.Hour})
	require.NoError(t, err)
	seen := time.Now().Add(-20 * time.Minute).UTC().Truncate(time.Second)
	require.NoError(t, f.store.RecordCallers(ctx, []apikey.KeyCallers{{Account: apikey.DefaultAccount, KeyID: f.server.View.ID,
		Callers: []apikey.Caller{{Address: "192.0.2.7", Requests: 1, FirstSeen: seen, LastSeen: seen}}}}))
	path := "/keys/" + f.server.View.ID + "/end-grace-if-silent"

	for req, code := range map[string]string{`{}`: "silence_required", `{"silent_for":"9m"}`: "silence_out_of_range",
		`{"silent_for":"8761h"}`: "silence_out_of_range"} {
		status, body, _ := f.do(t, "POST", path, req)
		require.Equal(t, http.StatusUnprocessableEntity, status, "%s: %v", req, body)
		assert.Equal(t, code, body["code"], req)
	}
	status, body, _ := f.do(t, "POST", path, `{"silent_for":"30m"}`)
	require.Equal(t, http.StatusConflict, status, "%v", body)
	assert.Equal(t, "still_in_use", body["code"])
	assert.Contains(t, body["detail"], "last seen at "+seen.Format(time.RFC3339))
	v, err := f.m.Get(ctx, owner.Actor, f.server.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Expiring, v.Status, "the key keeps its grace")

	status, body, _ = f.do(t, "POST", path, `{"silent_for":"15m"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "expired", body["status"])
	v, err = f.m.Get(ctx, owner.Actor, f.server.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Expired, v.Status)
}
