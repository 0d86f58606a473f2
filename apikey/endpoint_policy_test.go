package apikey_test

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/storage/memory"
)

// TestValidateEndpointURLRefusesWhatDeliveryRefuses: a URL that
// ValidateEndpointURL accepts without allowInternal is one the deliverer's
// strict Policy (webhook's zero Policy) accepts too, so that a tenant
// learns at registration, with the field named, that an endpoint can never
// receive anything, instead of every event being dead-lettered. Each form
// here names an internal address, or is not a host a resolver reads as a
// DNS name.
func TestValidateEndpointURLRefusesWhatDeliveryRefuses(t *testing.T) {
	var strict webhook.Policy
	for _, raw := range []string{
		"https://100.64.0.1/",              // shared (CGNAT)
		"https://198.18.0.1/",              // benchmarking
		"https://192.0.2.1/",               // documentation
		"https://240.0.0.1/",               // reserved
		"https://255.255.255.255/",         // broadcast
		"https://192.0.0.170/",             // IETF protocol assignments
		"https://2130706433/",              // 127.0.0.1 in decimal
		"https://0x7f.1/",                  // 127.0.0.1 in hexadecimal, short form
		"https://0177.0.0.1/",              // 127.0.0.1 in octal
		"https://127.1/",                   // 127.0.0.1, short form
		"https://10.0.0.1./",               // trailing dot
		"https://[64:ff9b::7f00:1]/",       // NAT64 of 127.0.0.1
		"https://[2002:7f00:1::]/",         // 6to4 of 127.0.0.1
		"https://[::7f00:1]/",              // IPv4-compatible 127.0.0.1
		"https://[fe80::1%25eth0]/",        // link-local, with a zone
		"https://[fec0::1]/",               // site-local
		"https://[100::1]/",                // discard-only
		"https://[2001:db8::1]/",           // documentation
		"https://hooks.example.com:0/",     // port 0
		"https://hooks.example.com:65536/", // port out of range
		"https://exämple.com/",             // not punycode
		"https://hooks_1.example.com/",     // not a DNS name
		"https://-hooks.example.com/",      // label starting with '-'
		"https://hooks.example.com/a b",    // a space
		"https://hooks.example.com/\x7f",   // a control byte
	} {
		t.Run(fmt.Sprintf("%q", raw), func(t *testing.T) {
			_, perr := strict.ParseEndpoint(raw)
			require.Error(t, perr, "delivery refuses it")
			err := apikey.ValidateEndpointURL(raw, false)
			require.ErrorIs(t, err, apikey.ErrInvalidEndpoint, "registration refuses it too")
			assert.Contains(t, err.Error(), "url")
		})
	}
}

// TestValidateEndpointURLRefusesEveryForbiddenRange: an IP literal in any
// of webhook.ForbiddenRanges, or in an IPv6 form that embeds one, is
// refused at registration, as the deliverer refuses it when dialing.
func TestValidateEndpointURLRefusesEveryForbiddenRange(t *testing.T) {
	for _, r := range webhook.ForbiddenRanges {
		addrs := []netip.Addr{r.Prefix.Addr(), r.Prefix.Addr().Next()}
		if r.Prefix.Addr().Is4() {
			b := r.Prefix.Addr().As4()
			addrs = append(addrs, netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),
				netip.AddrFrom16([16]byte{0: 0x20, 1: 0x02, 2: b[0], 3: b[1], 4: b[2], 5: b[3]}))
		}
		for _, a := range addrs {
			host := a.String()
			if a.Is6() {
				host = "[" + host + "]"
			}
			raw := (&url.URL{Scheme: "https", Host: host, Path: "/"}).String()
			t.Run(raw, func(t *testing.T) {
				require.ErrorIs(t, apikey.ValidateEndpointURL(raw, false), apikey.ErrInvalidEndpoint, "%s: %s", r.Prefix, r.Reason)
			})
		}
	}
}

// TestIssuedEndpointHoldsNoStoredSecret: CreateEndpoint, as
// RotateEndpointSecret, returns the endpoint without its stored secrets:
// the secret is in IssuedEndpoint.Secret, once, and nowhere else (a sealed
// form is no business of the caller's).
func TestIssuedEndpointHoldsNoStoredSecret(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprint("sealed=", sealed), func(t *testing.T) {
			m, _ := endpointManager(t, sealed)
			ctx := context.Background()
			issued, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
			require.NoError(t, err)
			assert.False(t, issued.Secret.IsZero())
			assert.True(t, issued.Endpoint.Secret.IsZero(), "created")
			assert.True(t, issued.Endpoint.PreviousSecret.IsZero())
			rotated, err := m.RotateEndpointSecret(ctx, acmeOwnerActor, issued.Endpoint.ID, time.Hour)
			require.NoError(t, err)
			assert.True(t, rotated.Endpoint.Secret.IsZero(), "rotated")
			assert.True(t, rotated.Endpoint.PreviousSecret.IsZero())
		})
	}
}

// TestExpiredPreviousSecretIsNotKept: once a rotation's overlap has passed,
// the replaced secret, which signs nothing more, is not kept in the store
// past the endpoint's next write (an update here).
func TestExpiredPreviousSecretIsNotKept(t *testing.T) {
	store := memory.New()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: func() time.Time { return now }})
	require.NoError(t, err)
	ctx := context.Background()
	issued, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.NoError(t, err)
	id := issued.Endpoint.ID
	_, err = m.RotateEndpointSecret(ctx, acmeOwnerActor, id, time.Hour)
	require.NoError(t, err)
	off := false
	_, err = m.UpdateEndpoint(ctx, acmeOwnerActor, id, apikey.EndpointUpdate{Enabled: &off})
	require.NoError(t, err)
	stored, err := store.Endpoint(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, issued.Secret.Reveal(), stored.PreviousSecret.Reveal(), "kept while it overlaps")

	now = now.Add(time.Hour)
	on := true
	_, err = m.UpdateEndpoint(ctx, acmeOwnerActor, id, apikey.EndpointUpdate{Enabled: &on})
	require.NoError(t, err)
	stored, err = store.Endpoint(ctx, id)
	require.NoError(t, err)
	assert.True(t, stored.PreviousSecret.IsZero(), "dropped once its overlap has passed")
	assert.True(t, stored.PreviousSecretUntil.IsZero())
}

// TestEndpointChangesBoundByActingKeyExpiry: an endpoint has no expiry, so
// a key that expires (a full-access key handed out for an hour) may not
// create one, point one elsewhere or take its new secret: each would go on
// receiving the account's events, or signing for it, after the key
// expired. It may still delete one and replay dead letters, which leave
// nothing behind; a key without expiry does everything.
func TestEndpointChangesBoundByActingKeyExpiry(t *testing.T) {
	m, _ := endpointManager(t, false)
	ctx := context.Background()
	issued, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.NoError(t, err)
	id := issued.Endpoint.ID
	expiring := apikey.Actor{ID: "k", Role: apikey.Owner, Account: "acme", Scopes: []string{"*"},
		Expires: time.Now().Add(time.Hour)}
	_, err = m.CreateEndpoint(ctx, expiring, apikey.EndpointRequest{URL: "https://attacker.example/"})
	require.ErrorIs(t, err, apikey.ErrBeyondActor, "create")
	url := "https://attacker.example/"
	_, err = m.UpdateEndpoint(ctx, expiring, id, apikey.EndpointUpdate{URL: &url})
	require.ErrorIs(t, err, apikey.ErrBeyondActor, "update")
	_, err = m.RotateEndpointSecret(ctx, expiring, id, 0)
	require.ErrorIs(t, err, apikey.ErrBeyondActor, "rotate")
	_, err = m.Replay(ctx, expiring, id, "")
	require.NoError(t, err, "replay")
	require.NoError(t, m.DeleteEndpoint(ctx, expiring, id), "delete")

	lasting := expiring
	lasting.Expires = time.Time{}
	_, err = m.CreateEndpoint(ctx, lasting, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.NoError(t, err)
}
