package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
)

// TestTenantWebhook: a tenant registers its own webhook endpoint through
// the management API, with the account's production key of full access,
// gets its signing secret once, and receives the account's events there,
// signed with that secret (verified with the Standard Webhooks library),
// webhook-id the event's id. Without -tenant-webhook-allow-loopback the
// loopback URL is refused at registration; a key of another environment,
// or one without full access, manages no endpoint.
func TestTenantWebhook(t *testing.T) {
	var (
		mu       sync.Mutex
		bodies   [][]byte
		headers  []http.Header
		received = make(chan struct{}, 16)
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, body)
		headers = append(headers, r.Header.Clone())
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		received <- struct{}{}
	}))
	defer rcv.Close()
	db := filepath.Join(t.TempDir(), "keystile.db")
	register := `{"url":"` + rcv.URL + `/tenant-hooks"}`

	s := start(t, db)
	ks := keys(t, s.stdout)
	prod, staging := ks["production server"], ks["staging server"]
	r := call(t, "POST", s.url+"/admin/webhooks", prod.Reveal(), register)
	assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.body)
	assert.Equal(t, "invalid_endpoint", r.problemCode(t), "a loopback URL, refused by default")
	r = call(t, "POST", s.url+"/admin/webhooks", staging.Reveal(), `{"url":"https://hooks.example.com/keystile"}`)
	assert.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	assert.Equal(t, "role_not_allowed", r.problemCode(t), "a staging key is confined to staging")
	r = call(t, "GET", s.url+"/admin/webhooks", staging.Reveal(), "")
	assert.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	// A production key without full access: confined, refused.
	limited := call(t, "POST", s.url+"/admin/environments/production/keys", prod.Reveal(), `{"type":"server","scopes":["api_keys:write"]}`)
	require.Equal(t, http.StatusCreated, limited.status, "%s", limited.body)
	var limitedKey struct {
		FullKey string `json:"full_key"`
	}
	require.NoError(t, json.Unmarshal(limited.body, &limitedKey))
	r = call(t, "GET", s.url+"/admin/webhooks", limitedKey.FullKey, "")
	assert.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	require.NoError(t, s.stop())

	// With the flag, the tenant registers its receiver on loopback. The
	// deliverer reads the endpoints when it starts (and every 30 seconds):
	// the test starts the server again rather than wait.
	s = start(t, db, "-tenant-webhook-allow-loopback")
	r = call(t, "POST", s.url+"/admin/webhooks", prod.Reveal(), register)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	var issued struct {
		Secret   string                 `json:"secret"`
		Endpoint apikey.WebhookEndpoint `json:"endpoint"`
	}
	require.NoError(t, json.Unmarshal(r.body, &issued))
	assert.Regexp(t, `^whsec_`, issued.Secret)
	r = call(t, "GET", s.url+"/admin/webhooks", prod.Reveal(), "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Contains(t, string(r.body), issued.Endpoint.ID)
	assert.NotContains(t, string(r.body), issued.Secret, "the secret is shown once")
	require.NoError(t, s.stop())
	assert.NotContains(t, s.stdout+s.stderr.String(), issued.Secret, "the secret is never printed")

	s = start(t, db, "-tenant-webhook-allow-loopback")
	assert.Contains(t, s.stderr.String(), "allow_loopback=true")
	r = call(t, "POST", s.url+"/admin/keys/"+staging.ID()+"/rotate", prod.Reveal(), `{"grace":"1h"}`)
	require.Equal(t, http.StatusNotFound, r.status, "a production key rotates no staging key: %s", r.body)
	r = call(t, "POST", s.url+"/admin/keys/"+prod.ID()+"/rotate", prod.Reveal(), `{"grace":"1h"}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	select {
	case <-received:
	case <-time.After(20 * time.Second):
		t.Fatalf("no webhook reached the tenant's receiver\n%s", s.stderr)
	}
	wh, err := standardwebhooks.NewWebhook(issued.Secret)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	var p events.Payload
	require.NoError(t, wh.Verify(bodies[0], headers[0]), "signed with the tenant's secret")
	require.NoError(t, json.Unmarshal(bodies[0], &p))
	assert.Equal(t, apikey.ActionRotate, p.Type)
	assert.Equal(t, prod.ID(), p.Data.KeyID)
	assert.Equal(t, apikey.DefaultAccount, p.Data.Account)
	assert.Equal(t, p.Data.ID(), headers[0].Get(standardwebhooks.HeaderWebhookID), "webhook-id is the event's id")
}
