package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// TestWebhookSecretShownOnce: POST /webhooks answers the signing secret;
// listing, reading, updating and the audit log never hold it; a rotation
// answers a new one.
func TestWebhookSecretShownOnce(t *testing.T) {
	f := newFixture(t)
	status, created, _ := f.do(t, "POST", "/webhooks", `{"url":"https://hooks.example.com/in"}`)
	require.Equal(t, http.StatusCreated, status, "%v", created)
	secret, _ := created["secret"].(string)
	require.True(t, strings.HasPrefix(secret, "whsec_"), "the secret, once")
	endpoint := created["endpoint"].(map[string]any)
	id := endpoint["id"].(string)
	key := secret[len("whsec_"):]

	for _, req := range []struct{ method, path, body string }{
		{"GET", "/webhooks", ""},
		{"GET", "/webhooks/" + id, ""},
		{"PUT", "/webhooks/" + id, `{"enabled":false}`},
		{"GET", "/webhooks/" + id + "/dead-letters", ""},
		{"GET", "/audit", ""},
	} {
		w := httptest.NewRecorder()
		f.api.ServeHTTP(w, httptest.NewRequest(req.method, req.path, strings.NewReader(req.body)))
		require.Less(t, w.Code, 300, "%s %s: %s", req.method, req.path, w.Body)
		assert.NotContains(t, w.Body.String(), key, "%s %s", req.method, req.path)
		assert.NotContains(t, w.Body.String(), "whsec_", "%s %s", req.method, req.path)
	}
	status, rotated, _ := f.do(t, "POST", "/webhooks/"+id+"/rotate-secret", `{"overlap":"1h"}`)
	require.Equal(t, http.StatusOK, status)
	assert.NotEqual(t, secret, rotated["secret"])
	assert.NotEmpty(t, rotated["endpoint"].(map[string]any)["previous_secret_until"])

	events, err := f.store.Events(context.Background(), storage.EventQuery{Account: apikey.DefaultAccount, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, apikey.ActionRotateEndpointSecret, events[0].Action)
	assert.Equal(t, apikey.ActionUpdateEndpoint, events[1].Action)
	assert.Equal(t, apikey.ActionCreateEndpoint, events[2].Action)
}

// TestWebhookErrorsNameTheField: refusals of an endpoint name the field,
// and the bound of endpoints per account is its own code.
func TestWebhookErrorsNameTheField(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		body, code, detail string
	}{
		{`{"url":"http://hooks.example.com/"}`, "invalid_endpoint", "url must use https"},
		{`{"url":"https://user:pw@hooks.example.com/"}`, "invalid_endpoint", "url may not hold user information"},
		{`{"url":"https://10.0.0.1/"}`, "invalid_endpoint", "url may not name an internal address"},
		{`{"url":"https://hooks.example.com/","actions":["nope"]}`, "invalid_endpoint", `actions names an unknown action "nope"`},
		{`{"url":"https://hooks.example.com/","environment":"Prod!"}`, "invalid_endpoint", "environment is not a valid environment name"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			status, p, _ := f.do(t, "POST", "/webhooks", tt.body)
			assert.Equal(t, http.StatusUnprocessableEntity, status)
			assert.Equal(t, tt.code, p["code"])
			assert.Contains(t, p["detail"], tt.detail)
		})
	}
	for range apikey.MaxEndpoints {
		status, _, _ := f.do(t, "POST", "/webhooks", `{"url":"https://hooks.example.com/"}`)
		require.Equal(t, http.StatusCreated, status)
	}
	status, p, _ := f.do(t, "POST", "/webhooks", `{"url":"https://hooks.example.com/"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Equal(t, "too_many_endpoints", p["code"])
}
