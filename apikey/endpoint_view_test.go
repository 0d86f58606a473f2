package apikey_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestEndpointURLSeenByOwnersOnly: Endpoint and Endpoints give the whole
// URL, query token included, only to an actor that may change endpoints
// (an owner; a key holding every scope, with an expiry or not); a member,
// a read-only caller and an owner's key with narrower scopes get scheme
// and host only, as the audit events name it, with URLRedacted set.
func TestEndpointURLSeenByOwnersOnly(t *testing.T) {
	m, store := endpointManager(t, false)
	ctx := context.Background()
	const whole = "https://hooks.example.com:8443/in/acme?token=tenant-secret-token"
	issued, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: whole})
	require.NoError(t, err)
	id := issued.Endpoint.ID
	assert.Equal(t, whole, issued.Endpoint.URL, "the owner who creates it sees it")

	tests := []struct {
		name  string
		actor apikey.Actor
		whole bool
	}{
		{"owner", acmeOwnerActor, true},
		{"owner key with every scope", apikey.Actor{ID: "k", Role: apikey.Owner, Account: "acme", Scopes: []string{"*"}}, true},
		{"expiring owner key with every scope", apikey.Actor{ID: "k", Role: apikey.Owner, Account: "acme", Scopes: []string{"*"},
			Expires: time.Now().Add(time.Hour)}, true},
		{"owner key with some scopes", apikey.Actor{ID: "k", Role: apikey.Owner, Account: "acme", Scopes: []string{"orders:write"}}, false},
		{"member", apikey.Actor{ID: "m", Role: apikey.Member, Account: "acme"}, false},
		{"member key with every scope", apikey.Actor{ID: "m", Role: apikey.Member, Account: "acme", Scopes: []string{"*"}}, false},
		{"read-only", apikey.Actor{ID: "r", Role: apikey.ReadOnly, Account: "acme"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			one, err := m.Endpoint(ctx, tt.actor, id)
			require.NoError(t, err)
			list, _, err := m.Endpoints(ctx, tt.actor, apikey.Page{})
			require.NoError(t, err)
			require.Len(t, list, 1)
			for _, e := range []apikey.WebhookEndpoint{one, list[0]} {
				b, err := json.Marshal(e)
				require.NoError(t, err)
				if tt.whole {
					assert.Equal(t, whole, e.URL)
					assert.False(t, e.URLRedacted)
					assert.NotContains(t, string(b), "url_redacted")
					continue
				}
				assert.Equal(t, "https://hooks.example.com:8443", e.URL)
				assert.True(t, e.URLRedacted)
				assert.NotContains(t, string(b), "tenant-secret-token")
				assert.NotContains(t, string(b), "/in/acme")
				assert.Contains(t, string(b), `"url_redacted":true`)
			}
		})
	}

	stored, err := store.Endpoint(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, whole, stored.URL, "redaction is of the view, never of the store")
}
