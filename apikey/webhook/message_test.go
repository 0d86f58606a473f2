package webhook_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey/webhook"
)

// TestSignSpecVector checks Sign against signatures made by the Standard
// Webhooks Go library (v1.3.0); the first is the specification's example.
// The examples module checks the library itself against Sign and Verifier.
func TestSignSpecVector(t *testing.T) {
	secret, err := webhook.ParseSecret(specSecret)
	require.NoError(t, err)
	for _, tc := range []struct {
		m    webhook.Message
		want string
	}{
		{webhook.Message{ID: "msg_p5jXN8AQM9LWM0D4loKWxJek", Timestamp: time.Unix(1614265330, 0), Body: []byte(`{"test": 2432232314}`)},
			"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		{webhook.Message{ID: "evt_2", Timestamp: time.Unix(1700000000, 999_000_000), Body: nil},
			"v1,fjjYLxukQj1NoAIILmNbxUIIdOkc/XvKL5f9s8mQqh0="},
	} {
		h := http.Header{}
		require.NoError(t, webhook.Sign(h, tc.m, secret))
		assert.Equal(t, tc.want, h.Get(webhook.HeaderSignature))
		assert.Equal(t, tc.m.ID, h.Get(webhook.HeaderID))
		assert.Equal(t, tc.want, secret.Sign(tc.m.ID, tc.m.Timestamp, tc.m.Body))
	}
}

func TestSignRefuses(t *testing.T) {
	s := webhook.GenerateSecret()
	for _, tc := range []struct {
		name    string
		m       webhook.Message
		secrets []webhook.Secret
		want    string
	}{
		{"empty id", webhook.Message{}, []webhook.Secret{s}, "1 to 256"},
		{"long id", webhook.Message{ID: strings.Repeat("a", 257)}, []webhook.Secret{s}, "1 to 256"},
		{"dot in id", webhook.Message{ID: "evt.1"}, []webhook.Secret{s}, `'.'`},
		{"space in id", webhook.Message{ID: "evt 1"}, []webhook.Secret{s}, `' '`},
		{"newline in id", webhook.Message{ID: "evt\n1"}, []webhook.Secret{s}, `'\n'`},
		{"no secret", webhook.Message{ID: "evt_1"}, nil, "no signing secret"},
		{"zero secret", webhook.Message{ID: "evt_1"}, []webhook.Secret{{}}, "no signing secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			err := webhook.Sign(h, tc.m, tc.secrets...)
			require.ErrorIs(t, err, webhook.ErrInvalidMessage)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, h, "a refused message set headers")
		})
	}
}

func TestVerifier(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	old, current, other := webhook.GenerateSecret(), webhook.GenerateSecret(), webhook.GenerateSecret()
	body := []byte(`{"type":"key.revoked"}`)
	signed := func(at time.Time, secrets ...webhook.Secret) http.Header {
		h := http.Header{}
		require.NoError(t, webhook.Sign(h, webhook.Message{ID: "evt_1", Timestamp: at, Body: body}, secrets...))
		return h
	}
	edit := func(h http.Header, key, value string) http.Header {
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	v := &webhook.Verifier{Secrets: []webhook.Secret{current}, Now: func() time.Time { return now }}
	for _, tc := range []struct {
		name    string
		v       *webhook.Verifier
		h       http.Header
		body    []byte
		wantErr error
	}{
		{"valid", v, signed(now, current), body, nil},
		{"rotation: signed with both", v, signed(now, old, current), body, nil},
		{"rotation: receiver knows both", &webhook.Verifier{Secrets: []webhook.Secret{old, current}, Now: v.Now}, signed(now, current), body, nil},
		{"4m59s old", v, signed(now.Add(-299*time.Second), current), body, nil},
		{"4m59s ahead", v, signed(now.Add(299*time.Second), current), body, nil},
		{"other version ignored", v, edit(signed(now, current), webhook.HeaderSignature, "v2,abc "+signed(now, current).Get(webhook.HeaderSignature)), body, nil},
		{"wrong secret", v, signed(now, other), body, webhook.ErrNoMatchingSignature},
		{"body changed", v, signed(now, current), []byte(`{"type":"key.created"}`), webhook.ErrNoMatchingSignature},
		{"id changed", v, edit(signed(now, current), webhook.HeaderID, "evt_2"), body, webhook.ErrNoMatchingSignature},
		{"timestamp changed", v, edit(signed(now, current), webhook.HeaderTimestamp, "1800000001"), body, webhook.ErrNoMatchingSignature},
		{"truncated signature", v, edit(signed(now, current), webhook.HeaderSignature, signed(now, current).Get(webhook.HeaderSignature)[:20]), body, webhook.ErrNoMatchingSignature},
		{"signature without version", v, edit(signed(now, current), webhook.HeaderSignature, strings.TrimPrefix(signed(now, current).Get(webhook.HeaderSignature), "v1,")), body, webhook.ErrNoMatchingSignature},
		{"too old", v, signed(now.Add(-301*time.Second), current), body, webhook.ErrTimestampOutOfRange},
		{"too new", v, signed(now.Add(301*time.Second), current), body, webhook.ErrTimestampOutOfRange},
		{"wider tolerance", &webhook.Verifier{Secrets: v.Secrets, Now: v.Now, Tolerance: time.Hour}, signed(now.Add(-30*time.Minute), current), body, nil},
		{"timestamp not a number", v, edit(signed(now, current), webhook.HeaderTimestamp, "soon"), body, webhook.ErrInvalidHeader},
		{"timestamp huge", v, edit(signed(now, current), webhook.HeaderTimestamp, "9223372036854775807"), body, webhook.ErrInvalidHeader},
		{"too many signatures", v, edit(signed(now, current), webhook.HeaderSignature, strings.Repeat("v1,x ", 9)), body, webhook.ErrInvalidHeader},
		{"no id", v, edit(signed(now, current), webhook.HeaderID, ""), body, webhook.ErrMissingHeader},
		{"no timestamp", v, edit(signed(now, current), webhook.HeaderTimestamp, ""), body, webhook.ErrMissingHeader},
		{"no signature", v, edit(signed(now, current), webhook.HeaderSignature, ""), body, webhook.ErrMissingHeader},
		{"verifier without secret", &webhook.Verifier{Now: v.Now}, signed(now, current), body, webhook.ErrNoMatchingSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.v.Verify(tc.h, tc.body)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Zero(t, m)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.h.Get(webhook.HeaderID), m.ID)
			assert.Equal(t, tc.body, m.Body)
		})
	}
}
