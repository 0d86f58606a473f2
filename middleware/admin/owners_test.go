package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/storage/memory"
)

// viewIDs reads the key ids of a page of keys.
func viewIDs(t *testing.T, body map[string]any) []string {
	t.Helper()
	list, ok := body["keys"].([]any)
	require.True(t, ok, "%v", body)
	out := []string{}
	for _, k := range list {
		out = append(out, k.(map[string]any)["id"].(string))
	}
	return out
}

// TestOwners: GET /owners/{owner}/keys pages the owner's keys of every
// environment; POST /owners/{owner}/revoke revokes them, skipping and
// naming the default key; GET /keys/expiring lists what expires soonest
// first.
func TestOwners(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var ids []string
	for _, env := range []string{apikey.Production, apikey.Staging, apikey.Staging} {
		k, err := f.m.Create(ctx, owner.Actor, apikey.CreateRequest{Environment: env, Type: apikey.Server,
			Scopes: []string{"orders:read"}, Owner: "team/alice", ExpiresAt: time.Now().Add(time.Duration(len(ids)+1) * time.Hour)})
		require.NoError(t, err)
		ids = append(ids, k.View.ID)
	}
	_, err := f.m.SetOwner(ctx, owner.Actor, f.client.View.ID, "team/alice")
	require.NoError(t, err)

	f.caller = readOnly
	status, body, _ := f.do(t, "GET", "/owners/team%2Falice/keys?limit=3", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	first := viewIDs(t, body)
	require.Len(t, first, 3)
	status, body, _ = f.do(t, "GET", "/owners/team%2Falice/keys?after="+body["next"].(string), "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.ElementsMatch(t, append(ids, f.client.View.ID), append(first, viewIDs(t, body)...))
	assert.Nil(t, body["next"], "the last page")

	status, body, _ = f.do(t, "GET", "/keys/expiring?within=150m", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, ids[:2], viewIDs(t, body), "soonest first, within the window")
	status, body, _ = f.do(t, "GET", "/keys/expiring?within=24h&environment=staging", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, ids[1:], viewIDs(t, body))

	f.caller = owner
	status, body, _ = f.do(t, "POST", "/owners/team%2Falice/revoke", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, map[string]any{"revoked": float64(3), "skipped_defaults": []any{f.client.View.Prefix}}, body)
	for _, id := range ids {
		v, err := f.m.Get(ctx, owner.Actor, id)
		require.NoError(t, err)
		assert.Equal(t, apikey.Revoked, v.Status)
	}
	status, body, _ = f.do(t, "GET", "/keys/expiring?within=24h", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Empty(t, viewIDs(t, body), "revoked keys do not expire")
}

func TestRevokeOwnerTooMany(t *testing.T) {
	f := newFixture(t)
	var c apikey.Change
	for i := range apikey.MaxOwnerRevocation + 1 {
		c.Insert = append(c.Insert, apikey.Record{ID: fmt.Sprintf("many%08d", i), Account: apikey.DefaultAccount,
			Type: apikey.Server, Environment: apikey.Production, Owner: "many", Scopes: []string{"*"},
			CreatedAt: time.Now().UTC(), Hash: apikey.NewOpaque("x")})
	}
	require.NoError(t, f.store.Apply(context.Background(), c))
	status, body, _ := f.do(t, "POST", "/owners/many/revoke", "")
	assert.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Equal(t, "too_many_keys", body["code"])
	assert.Contains(t, body["detail"], "10000")
}

// indexless is a store without the owner and expiry indexes.
type indexless struct{ apikey.Store }

func TestOwnersWithoutIndex(t *testing.T) {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: indexless{memory.New()}, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	api, err := admin.New(admin.Options{Manager: m, SingleAccount: true,
		Authorize: func(*http.Request) (admin.Caller, error) { return owner, nil }})
	require.NoError(t, err)
	f := &fixture{api: api}
	for _, tt := range []struct{ method, path string }{
		{"GET", "/owners/u/keys"}, {"POST", "/owners/u/revoke"}, {"GET", "/keys/expiring?within=1h"},
	} {
		status, body, _ := f.do(t, tt.method, tt.path, "")
		assert.Equal(t, http.StatusNotImplemented, status, tt.path)
		assert.Equal(t, "index_unavailable", body["code"], tt.path)
	}
}
