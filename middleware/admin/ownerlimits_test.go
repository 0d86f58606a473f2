package admin_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestOwnerLimits: PUT /owners/{owner}/limits sets the limits every key of
// the owner shares and says how many keys carry them; GET reads them back,
// and each key's view carries them as owner_limits; {} removes them.
func TestOwnerLimits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var ids []string
	for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
		req := apikey.CreateRequest{Environment: apikey.Production, Type: typ, Owner: "team/alice"}
		if typ == apikey.Server {
			req.Scopes = []string{"orders:read"}
		}
		k, err := f.m.Create(ctx, owner.Actor, req)
		require.NoError(t, err)
		ids = append(ids, k.View.ID)
	}

	f.caller = owner
	status, body, _ := f.do(t, "PUT", "/owners/team%2Falice/limits", `{"rate":{"requests":100,"window_seconds":60},"quota":{"limit":5000}}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	want := map[string]any{"rate": map[string]any{"requests": float64(100), "window_seconds": float64(60)},
		"quota": map[string]any{"limit": float64(5000)}}
	assert.Equal(t, map[string]any{"owner": "team/alice", "limits": want, "keys": float64(2)}, body)

	f.caller = readOnly
	status, body, _ = f.do(t, "GET", "/owners/team%2Falice/limits", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, map[string]any{"owner": "team/alice", "limits": want}, body)
	for _, id := range ids {
		status, body, _ = f.do(t, "GET", "/keys/"+id, "")
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, want, body["owner_limits"], id)
	}

	f.caller = owner
	status, body, _ = f.do(t, "PUT", "/owners/team%2Falice/limits", `{}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, map[string]any{}, body["limits"])
	status, body, _ = f.do(t, "GET", "/keys/"+ids[0], "")
	require.Equal(t, http.StatusOK, status)
	assert.NotContains(t, body, "owner_limits")
}
