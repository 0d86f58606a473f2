package apikey_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

func TestValidateEndpointURL(t *testing.T) {
	tests := []struct {
		url      string
		internal bool
		wantErr  string // "" for valid
	}{
		{"https://hooks.example.com/in?t=1", false, ""},
		{"https://hooks.example.com:8443/", false, ""},
		{"https://93.184.216.34/hook", false, ""},
		{"http://hooks.example.com/in", false, "must use https"},
		{"http://hooks.example.com/in", true, ""},
		{"ftp://hooks.example.com/", true, "must use https"},
		{"https://user:pass@hooks.example.com/", false, "user information"},
		{"https://hooks.example.com/#frag", false, "fragment"},
		{"https:///path", false, "no host"},
		{"/relative", false, "absolute"},
		{"", false, "1 to 2048 bytes"},
		{"https://hooks.example.com/" + strings.Repeat("a", apikey.MaxEndpointURL), false, "1 to 2048 bytes"},
		{"https://localhost/", false, "localhost"},
		{"https://api.localhost./", false, "localhost"},
		{"https://localhost:8080/", true, ""},
		{"https://127.0.0.1/", false, "internal address"},
		{"https://10.1.2.3/", false, "internal address"},
		{"https://169.254.169.254/latest/meta-data", false, "internal address"},
		{"https://[::1]/", false, "internal address"},
		{"https://[::ffff:10.0.0.1]/", false, "internal address"},
		{"https://[fd00::1]/", false, "internal address"},
		{"https://0.0.0.0/", false, "internal address"},
		{"http://127.0.0.1:9000/", true, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.60s/%t", tt.url, tt.internal), func(t *testing.T) {
			err := apikey.ValidateEndpointURL(tt.url, tt.internal)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, apikey.ErrInvalidEndpoint)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// endpointManager returns a Manager on a memory store, with a sealer when
// sealed.
func endpointManager(t *testing.T, sealed bool) (*apikey.Manager, *memory.Store) {
	t.Helper()
	store := memory.New()
	opts := apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}}
	if sealed {
		s, err := apikey.NewAESGCMSealer(make([]byte, 32))
		require.NoError(t, err)
		opts.Sealer = s
	}
	m, err := apikey.NewManager(opts)
	require.NoError(t, err)
	return m, store
}

var acmeOwnerActor = apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}

func TestCreateEndpointValidates(t *testing.T) {
	m, _ := endpointManager(t, false)
	ctx := context.Background()
	tests := []struct {
		name  string
		req   apikey.EndpointRequest
		field string
	}{
		{"http", apikey.EndpointRequest{URL: "http://hooks.example.com/"}, "url"},
		{"unknown action", apikey.EndpointRequest{URL: "https://hooks.example.com/", Actions: []apikey.Action{"explode"}}, "actions"},
		{"bad environment", apikey.EndpointRequest{URL: "https://hooks.example.com/", Environment: "Not Valid!"}, "environment"},
		{"too many actions", apikey.EndpointRequest{URL: "https://hooks.example.com/",
			Actions: make([]apikey.Action, apikey.MaxEndpointActions+1)}, "actions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.CreateEndpoint(ctx, acmeOwnerActor, tt.req)
			require.ErrorIs(t, err, apikey.ErrInvalidEndpoint)
			assert.Contains(t, err.Error(), ": "+tt.field+" ")
		})
	}
	e, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/",
		Actions: []apikey.Action{apikey.ActionRevoke, apikey.ActionRevoke, apikey.ActionExpiring}, Environment: "staging"})
	require.NoError(t, err)
	assert.Equal(t, []apikey.Action{apikey.ActionRevoke, apikey.ActionExpiring}, e.Endpoint.Actions, "each once")
	assert.True(t, e.Endpoint.Enabled)
}

func TestEndpointsBoundedPerAccount(t *testing.T) {
	m, _ := endpointManager(t, false)
	ctx := context.Background()
	for range apikey.MaxEndpoints {
		_, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
		require.NoError(t, err)
	}
	_, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.ErrorIs(t, err, apikey.ErrTooManyEndpoints)
	_, err = m.CreateEndpoint(ctx, apikey.Actor{ID: "bob", Role: apikey.Owner, Account: "globex"},
		apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.NoError(t, err, "another account has its own bound")
	list, next, err := m.Endpoints(ctx, acmeOwnerActor, apikey.Page{Limit: 4})
	require.NoError(t, err)
	assert.Len(t, list, 4)
	seen := 4
	for next != "" {
		list, next, err = m.Endpoints(ctx, acmeOwnerActor, apikey.Page{After: next, Limit: 4})
		require.NoError(t, err)
		seen += len(list)
	}
	assert.Equal(t, apikey.MaxEndpoints, seen)
}

func TestEndpointRoles(t *testing.T) {
	m, _ := endpointManager(t, false)
	ctx := context.Background()
	e, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.NoError(t, err)
	id := e.Endpoint.ID
	on := true
	actors := []struct {
		name   string
		actor  apikey.Actor
		change bool
	}{
		{"owner", acmeOwnerActor, true},
		{"member", apikey.Actor{ID: "m", Role: apikey.Member, Account: "acme"}, false},
		{"read-only", apikey.Actor{ID: "r", Role: apikey.ReadOnly, Account: "acme"}, false},
		{"owner key with every scope", apikey.Actor{ID: "k", Role: apikey.Owner, Account: "acme", Scopes: []string{"*"}}, true},
		{"owner key with some scopes", apikey.Actor{ID: "k", Role: apikey.Owner, Account: "acme", Scopes: []string{"orders:write"}}, false},
	}
	for _, a := range actors {
		t.Run(a.name, func(t *testing.T) {
			list, _, err := m.Endpoints(ctx, a.actor, apikey.Page{})
			require.NoError(t, err, "every role lists")
			require.NotEmpty(t, list)
			assert.True(t, list[0].Secret.IsZero())
			_, err = m.Endpoint(ctx, a.actor, id)
			require.NoError(t, err, "every role reads")
			calls := map[string]error{}
			_, calls["create"] = m.CreateEndpoint(ctx, a.actor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
			_, calls["update"] = m.UpdateEndpoint(ctx, a.actor, id, apikey.EndpointUpdate{Enabled: &on})
			_, calls["rotate"] = m.RotateEndpointSecret(ctx, a.actor, id, 0)
			for name, err := range calls {
				if a.change {
					assert.NoError(t, err, name)
				} else {
					assert.ErrorIs(t, err, apikey.ErrForbidden, name)
				}
			}
		})
	}
	_, err = m.Endpoint(ctx, apikey.Actor{ID: "g", Role: apikey.Owner, Account: "globex"}, id)
	require.ErrorIs(t, err, apikey.ErrNotFound)
	require.ErrorIs(t, m.DeleteEndpoint(ctx, apikey.Actor{ID: "g", Role: apikey.Owner, Account: "globex"}, id), apikey.ErrNotFound)
	require.ErrorIs(t, m.DeleteEndpoint(ctx, apikey.Actor{ID: "m", Role: apikey.Member, Account: "acme"}, id), apikey.ErrForbidden)
	require.NoError(t, m.DeleteEndpoint(ctx, acmeOwnerActor, id))
	_, err = m.Endpoint(ctx, acmeOwnerActor, "ep_nothex")
	require.ErrorIs(t, err, apikey.ErrInvalidEndpoint)
}

func TestEndpointSecretNeverPrinted(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprint("sealed=", sealed), func(t *testing.T) {
			m, store := endpointManager(t, sealed)
			ctx := context.Background()
			issued, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
			require.NoError(t, err)
			secret := issued.Secret.Reveal()
			require.True(t, strings.HasPrefix(secret, "whsec_"))
			stored, err := store.Endpoint(ctx, issued.Endpoint.ID)
			require.NoError(t, err)
			assert.Equal(t, sealed, stored.SecretSealed)
			assert.Equal(t, !sealed, strings.HasPrefix(stored.Secret.Reveal(), "whsec_"), "sealed unless no sealer")

			js, err := json.Marshal(stored)
			require.NoError(t, err)
			var logged strings.Builder
			slog.New(slog.NewTextHandler(&logged, nil)).Info("endpoint", "e", stored, "issued", issued)
			for _, out := range []string{fmt.Sprint(stored), fmt.Sprintf("%+v %#v %v", stored, issued, issued), string(js), logged.String()} {
				assert.NotContains(t, out, secret[len("whsec_"):])
				assert.NotContains(t, out, stored.Secret.Reveal())
			}

			var sealer apikey.Sealer
			if sealed {
				sealer, _ = apikey.NewAESGCMSealer(make([]byte, 32))
				_, err := apikey.EndpointSecrets(stored, nil, time.Now())
				require.ErrorIs(t, err, apikey.ErrNotRevealable, "a sealed secret needs the sealer")
			}
			got, err := apikey.EndpointSecrets(stored, sealer, time.Now())
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, secret, got[0].Reveal())
		})
	}
}

func TestRotateEndpointSecret(t *testing.T) {
	m, store := endpointManager(t, true)
	sealer, _ := apikey.NewAESGCMSealer(make([]byte, 32))
	ctx := context.Background()
	issued, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.NoError(t, err)
	id := issued.Endpoint.ID
	_, err = m.RotateEndpointSecret(ctx, acmeOwnerActor, id, apikey.MaxSecretOverlap+time.Second)
	require.ErrorIs(t, err, apikey.ErrInvalidEndpoint)
	second, err := m.RotateEndpointSecret(ctx, acmeOwnerActor, id, time.Hour)
	require.NoError(t, err)
	assert.False(t, second.Endpoint.PreviousSecretUntil.IsZero())
	stored, err := store.Endpoint(ctx, id)
	require.NoError(t, err)
	now := stored.UpdatedAt
	secrets, err := apikey.EndpointSecrets(stored, sealer, now)
	require.NoError(t, err)
	require.Len(t, secrets, 2)
	assert.Equal(t, second.Secret.Reveal(), secrets[0].Reveal())
	assert.Equal(t, issued.Secret.Reveal(), secrets[1].Reveal())
	secrets, err = apikey.EndpointSecrets(stored, sealer, now.Add(time.Hour))
	require.NoError(t, err)
	assert.Len(t, secrets, 1, "the overlap has passed")

	third, err := m.RotateEndpointSecret(ctx, acmeOwnerActor, id, 0)
	require.NoError(t, err)
	stored, err = store.Endpoint(ctx, id)
	require.NoError(t, err)
	secrets, err = apikey.EndpointSecrets(stored, sealer, now)
	require.NoError(t, err)
	require.Len(t, secrets, 1, "zero replaces at once")
	assert.Equal(t, third.Secret.Reveal(), secrets[0].Reveal())
}

func TestEndpointsUnsupported(t *testing.T) {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: storeOnly{memory.New()}})
	require.NoError(t, err)
	_, err = m.CreateEndpoint(context.Background(), acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.ErrorIs(t, err, errors.ErrUnsupported)
}

func TestEndpointAccepts(t *testing.T) {
	e := apikey.WebhookEndpoint{Enabled: true, Environment: "staging", Actions: []apikey.Action{apikey.ActionRevoke}}
	assert.True(t, e.Accepts(apikey.Event{Action: apikey.ActionRevoke, Environment: "staging"}))
	assert.False(t, e.Accepts(apikey.Event{Action: apikey.ActionCreate, Environment: "staging"}))
	assert.False(t, e.Accepts(apikey.Event{Action: apikey.ActionRevoke, Environment: "production"}))
	e.Enabled = false
	assert.False(t, e.Accepts(apikey.Event{Action: apikey.ActionRevoke, Environment: "staging"}))
	assert.True(t, apikey.WebhookEndpoint{Enabled: true}.Accepts(apikey.Event{Action: apikey.ActionSuspend}))
}
