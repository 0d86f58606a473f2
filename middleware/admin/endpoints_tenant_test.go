package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

// TestWebhooksAreAccountBound: an endpoint of one account is not found
// (404) by every route of another account's owner, who knows its id, and is
// not in that account's list; a member and a read-only caller of the
// account change nothing (403) but read it; a caller confined to an
// environment is refused every route (403).
func TestWebhooksAreAccountBound(t *testing.T) {
	f := newFixture(t)
	globex := admin.Caller{Actor: apikey.Actor{ID: "bob", Role: apikey.Owner}, Account: "globex"}
	f.caller = globex
	status, created, _ := f.do(t, "POST", "/webhooks", `{"url":"https://hooks.globex.example/in"}`)
	require.Equal(t, http.StatusCreated, status, "%v", created)
	id := created["endpoint"].(map[string]any)["id"].(string)

	routes := []struct{ method, path, body string }{
		{"GET", "/webhooks/" + id, ""},
		{"PUT", "/webhooks/" + id, `{"url":"https://attacker.example/"}`},
		{"POST", "/webhooks/" + id + "/rotate-secret", ""},
		{"GET", "/webhooks/" + id + "/dead-letters", ""},
		{"POST", "/webhooks/" + id + "/replay", ""},
		{"DELETE", "/webhooks/" + id, ""},
	}
	f.caller = owner // the default account's owner
	for _, r := range routes {
		status, p, _ := f.do(t, r.method, r.path, r.body)
		assert.Equal(t, http.StatusNotFound, status, "%s %s: %v", r.method, r.path, p)
		assert.NotContains(t, p["detail"], "globex")
	}
	status, list, _ := f.do(t, "GET", "/webhooks", "")
	require.Equal(t, http.StatusOK, status)
	assert.Empty(t, list["endpoints"])

	for _, role := range []apikey.Role{apikey.Member, apikey.ReadOnly} {
		f.caller = admin.Caller{Actor: apikey.Actor{ID: "carol", Role: role}, Account: "globex"}
		for _, r := range routes {
			status, p, _ := f.do(t, r.method, r.path, r.body)
			if r.method == "GET" {
				assert.Equal(t, http.StatusOK, status, "%s: %s %s: %v", role, r.method, r.path, p)
			} else {
				assert.Equal(t, http.StatusForbidden, status, "%s: %s %s: %v", role, r.method, r.path, p)
			}
		}
		status, p, _ := f.do(t, "POST", "/webhooks", `{"url":"https://hooks.globex.example/2"}`)
		assert.Equal(t, http.StatusForbidden, status, "%s creates: %v", role, p)
	}

	f.caller = globex
	f.caller.Environment = apikey.Production
	for _, r := range append(routes, struct{ method, path, body string }{"GET", "/webhooks", ""}) {
		status, p, _ := f.do(t, r.method, r.path, r.body)
		assert.Equal(t, http.StatusForbidden, status, "confined: %s %s: %v", r.method, r.path, p)
	}

	f.caller = globex
	status, got, _ := f.do(t, "GET", "/webhooks/"+id, "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "https://hooks.globex.example/in", got["url"], "unchanged by the others")
}

// TestWebhookBodiesNameTheField: a body with a member of the wrong type or
// an unknown member is refused (422) naming the field, never echoing a
// value; a malformed id names "id"; an overlap out of bounds names
// "overlap".
func TestWebhookBodiesNameTheField(t *testing.T) {
	f := newFixture(t)
	status, created, _ := f.do(t, "POST", "/webhooks", `{"url":"https://hooks.example.com/in"}`)
	require.Equal(t, http.StatusCreated, status)
	id := created["endpoint"].(map[string]any)["id"].(string)
	tests := []struct{ method, path, body, detail string }{
		{"POST", "/webhooks", `{"url":5}`, "url"},
		{"POST", "/webhooks", `{"url":"https://hooks.example.com/","actions":"revoke"}`, "actions"},
		{"POST", "/webhooks", `{"url":"https://hooks.example.com/","enabled":"yes"}`, "enabled"},
		{"POST", "/webhooks", `{"url":"https://hooks.example.com/","secret":"whsec_mine"}`, "unknown field"},
		{"POST", "/webhooks", `{}`, "url"},
		{"PUT", "/webhooks/" + id, `{"environment":7}`, "environment"},
		{"PUT", "/webhooks/ep_nothex", `{"enabled":true}`, "id"},
		{"POST", "/webhooks/" + id + "/rotate-secret", `{"overlap":"169h"}`, "overlap"},
		{"POST", "/webhooks/" + id + "/rotate-secret", `{"overlap":"-1s"}`, "overlap"},
		{"POST", "/webhooks/" + id + "/replay", `{"event_id":5}`, "event_id"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.body, func(t *testing.T) {
			status, p, _ := f.do(t, tt.method, tt.path, tt.body)
			assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, status, "%v", p)
			detail, _ := p["detail"].(string)
			assert.Contains(t, detail, tt.detail)
			assert.NotContains(t, detail, "whsec_mine")
		})
	}
	status, _, _ = f.do(t, "POST", "/webhooks", `{"url":"https://hooks.example.com/`+strings.Repeat("a", 8<<20)+`"}`)
	assert.Contains(t, []int{http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity}, status, "a huge body")
}

// TestWebhookURLSeenByOwnersOnly: GET /webhooks and GET /webhooks/{id}
// answer an endpoint's whole URL to its owner (and a key holding every
// scope) only; a member, a read-only caller and a key with narrower scopes
// read scheme and host, with url_redacted, never the path or query token.
func TestWebhookURLSeenByOwnersOnly(t *testing.T) {
	f := newFixture(t)
	const whole = "https://hooks.example.com/in?token=tenant-secret-token"
	status, created, _ := f.do(t, "POST", "/webhooks", `{"url":"`+whole+`"}`)
	require.Equal(t, http.StatusCreated, status, "%v", created)
	id := created["endpoint"].(map[string]any)["id"].(string)

	callers := []struct {
		name   string
		caller admin.Caller
		whole  bool
	}{
		{"owner", owner, true},
		{"owner key with every scope", admin.Caller{Actor: apikey.Actor{ID: "k", Role: apikey.Owner, Scopes: []string{"*"}}}, true},
		{"owner key with some scopes", admin.Caller{Actor: apikey.Actor{ID: "k", Role: apikey.Owner, Scopes: []string{"orders:read"}}}, false},
		{"member", admin.Caller{Actor: apikey.Actor{ID: "m", Role: apikey.Member}}, false},
		{"read-only", admin.Caller{Actor: apikey.Actor{ID: "r", Role: apikey.ReadOnly}}, false},
	}
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			f.caller = c.caller
			status, one, _ := f.do(t, "GET", "/webhooks/"+id, "")
			require.Equal(t, http.StatusOK, status, "%v", one)
			status, list, _ := f.do(t, "GET", "/webhooks", "")
			require.Equal(t, http.StatusOK, status, "%v", list)
			require.Len(t, list["endpoints"], 1)
			listed := list["endpoints"].([]any)[0].(map[string]any)
			for _, e := range []map[string]any{one, listed} {
				if c.whole {
					assert.Equal(t, whole, e["url"])
					assert.Nil(t, e["url_redacted"])
				} else {
					assert.Equal(t, "https://hooks.example.com", e["url"])
					assert.Equal(t, true, e["url_redacted"])
				}
			}
			if !c.whole {
				raw, err := json.Marshal([]any{one, list})
				require.NoError(t, err)
				assert.NotContains(t, string(raw), "tenant-secret-token")
				assert.NotContains(t, string(raw), "/in")
			}
		})
	}
}
