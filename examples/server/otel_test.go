package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// exportedSpan is the part of a span that the stdout exporter writes
// that the test reads.
type exportedSpan struct {
	Name        string
	SpanContext struct{ SpanID string }
	Parent      struct{ SpanID string }
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
}

// attrs returns the span's attributes by key.
func (s exportedSpan) attrs() map[string]any {
	out := map[string]any{}
	for _, a := range s.Attributes {
		out[a.Key] = a.Value.Value
	}
	return out
}

// TestOtel: with -otel stdout, each request is a span on stdout with a
// "keystile.verify" child whose attributes name the key by its prefix,
// its account, environment, cache use and outcome (and the refusal's
// code), and the Validator's Stats are written as metrics at shutdown; no
// secret is written. Without the flag, the server writes nothing on
// stdout: no OpenTelemetry is wired.
func TestOtel(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	first := start(t, db)
	issued := keys(t, first.stdout)
	require.NoError(t, first.stop())
	key := issued["production server"]
	secret := strings.TrimPrefix(key.Reveal(), key.Prefix())
	require.Greater(t, len(secret), 20)

	// A well-formed key with the production key's id and another secret,
	// and a malformed one (its checksum does not match).
	forged, err := apikey.AssembleKey(apikey.Server, key.ID(), strings.Repeat("A", apikey.SecretLength))
	require.NoError(t, err)
	wrong := forged.Reveal()
	malformed := key.Prefix() + strings.Repeat("A", len(secret))

	t.Run("with -otel stdout", func(t *testing.T) {
		s := start(t, db, "-otel", "stdout")
		require.Empty(t, s.stdout, "a second start prints no key")
		for _, k := range []string{key.Reveal(), key.Reveal(), wrong, malformed, ""} {
			call(t, "GET", s.url+"/v1/whoami", k, "")
		}
		require.NoError(t, s.stop())
		printed := s.out.String()
		for name, k := range issued {
			assert.NotContains(t, printed, strings.TrimPrefix(k.Reveal(), k.Prefix()), "the secret of %s", name)
		}
		assert.NotContains(t, printed, strings.Repeat("A", 20), "a wrong secret is not written either")
		assert.NotContains(t, s.stderr.String(), secret)

		var verify []exportedSpan
		requests := map[string]string{} // span id: name
		sc := bufio.NewScanner(strings.NewReader(printed))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var span exportedSpan
			require.NoError(t, json.Unmarshal(sc.Bytes(), &span), "one JSON document a line: %s", sc.Text())
			switch span.Name {
			case "keystile.verify":
				verify = append(verify, span)
			case "GET /v1/whoami":
				requests[span.SpanContext.SpanID] = span.Name
			}
		}
		require.NoError(t, sc.Err())
		require.Len(t, requests, 5, "a span per request")
		require.Len(t, verify, 5, "a verification span per request")
		for _, span := range verify {
			assert.Contains(t, requests, span.Parent.SpanID, "the request's span is the verification's parent")
		}
		want := []map[string]any{
			{"keystile.key.prefix": key.Prefix(), "keystile.account": apikey.DefaultAccount, "keystile.environment": apikey.Production,
				"keystile.cache": "miss", "keystile.store_read": true, "keystile.argon2": true, "keystile.outcome": "admitted"},
			{"keystile.key.prefix": key.Prefix(), "keystile.account": apikey.DefaultAccount, "keystile.environment": apikey.Production,
				"keystile.cache": "hit", "keystile.store_read": false, "keystile.argon2": false, "keystile.outcome": "admitted"},
			{"keystile.key.prefix": key.Prefix(), "keystile.cache": "miss", "keystile.outcome": "refused", "keystile.refusal": "invalid_key"},
			{"keystile.key.prefix": nil, "keystile.outcome": "refused", "keystile.refusal": "malformed_key"},
			{"keystile.outcome": "refused", "keystile.refusal": "missing_key"},
		}
		for i, w := range want {
			got := verify[i].attrs()
			for k, v := range w {
				assert.Equal(t, v, got[k], "request %d: %s", i, k)
			}
		}
		assert.Contains(t, printed, `"keystile.cache.hits"`, "the Stats as metrics, written at shutdown")
		assert.Contains(t, printed, `"keystile.refusals"`)
	})

	t.Run("without the flag", func(t *testing.T) {
		s := start(t, db)
		r := call(t, "GET", s.url+"/v1/whoami", key.Reveal(), "")
		require.Equal(t, http.StatusOK, r.status)
		require.NoError(t, s.stop())
		assert.Empty(t, s.out.String(), "no span, no metric")
	})
}
