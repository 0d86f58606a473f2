package webhook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey/webhook"
)

// specSecret is the secret of the Standard Webhooks specification's
// example (24 bytes).
const specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"spec example", specSecret, ""},
		{"64 bytes", "whsec_" + b64(64), ""},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "does not start with"},
		{"empty", "", "does not start with"},
		{"prefix only", "whsec_", "0 bytes"},
		{"too short", "whsec_" + b64(23), "23 bytes"},
		{"too long", "whsec_" + b64(65), "65 bytes"},
		{"far too long", "whsec_" + b64(1<<20), "longer than 64"},
		{"not base64", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w", "not standard base64"},
		{"url alphabet", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-_", "not standard base64"},
		{"unpadded", "whsec_" + strings.TrimRight(b64(25), "="), "not standard base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := webhook.ParseSecret(tc.in)
			if tc.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.in, s.Reveal())
				return
			}
			require.ErrorIs(t, err, webhook.ErrInvalidSecret)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.True(t, s.IsZero())
			if len(tc.in) > len("whsec_")+4 {
				assert.NotContains(t, err.Error(), tc.in[len("whsec_"):], "the error holds the secret")
			}
		})
	}
}

func b64(n int) string {
	raw := bytes.Repeat([]byte{0xA5}, n)
	return encodeStd(raw)
}

func TestGenerateSecret(t *testing.T) {
	a, b := webhook.GenerateSecret(), webhook.GenerateSecret()
	require.False(t, a.IsZero())
	assert.False(t, a.Equal(b), "two generated secrets are equal")
	assert.True(t, strings.HasPrefix(a.Reveal(), webhook.SecretPrefix))
	parsed, err := webhook.ParseSecret(a.Reveal())
	require.NoError(t, err)
	assert.True(t, parsed.Equal(a))
	assert.Len(t, a.Reveal(), len(webhook.SecretPrefix)+44) // 32 bytes in base64
}

// TestSecretNeverPrinted prints a Secret every way a service might, alone
// and inside structs (also through unexported fields, which fmt and slog
// print by reflection), and looks for its key.
func TestSecretNeverPrinted(t *testing.T) {
	s := webhook.GenerateSecret()
	key := strings.TrimPrefix(s.Reveal(), webhook.SecretPrefix)
	type endpoint struct {
		URL     string
		Secret  webhook.Secret
		secrets []webhook.Secret
	}
	e := endpoint{URL: "https://example.com/hook", Secret: s, secrets: []webhook.Secret{s}}
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&out, verb+"\n", s)
		fmt.Fprintf(&out, verb+"\n", e)
		fmt.Fprintf(&out, verb+"\n", &e)
	}
	fmt.Fprintln(&out, s, e, []any{s}, map[string]webhook.Secret{"k": s})
	slog.New(slog.NewTextHandler(&out, nil)).Info("endpoint", "secret", s, "endpoint", e)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("endpoint", "secret", s, "endpoint", e)
	js, err := json.Marshal(e)
	require.NoError(t, err)
	out.Write(js)
	fmt.Fprint(&out, fmt.Errorf("wrapped: %v", s))
	for _, form := range []string{key, s.Reveal(), fmt.Sprintf("%x", []byte(s.Reveal()))} {
		assert.NotContains(t, out.String(), form)
	}
	assert.Contains(t, out.String(), "whsec_[redacted]")
	assert.Equal(t, "", webhook.Secret{}.String())
	assert.Equal(t, "", webhook.Secret{}.Reveal())
}
