package apikey

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseOrigin(t *testing.T) {
	valid := map[string]string{
		"https://app.example.com":       "https://app.example.com",
		"HTTPS://App.Example.COM":       "https://app.example.com",
		"https://app.example.com:443":   "https://app.example.com",
		"https://app.example.com:8443":  "https://app.example.com:8443",
		"http://example.com:80":         "http://example.com",
		"https://*.example.com":         "https://*.example.com",
		"http://localhost:3000":         "http://localhost:3000",
		"https://localhost:8443":        "https://localhost:8443",
		"http://127.0.0.1:5173":         "http://127.0.0.1:5173",
		"http://[::1]:8080":             "http://[::1]:8080",
		"https://192.0.2.10":            "https://192.0.2.10",
		"https://xn--bcher-kva.example": "https://xn--bcher-kva.example",
	}
	for entry, want := range valid {
		o, err := ParseOrigin(entry)
		if assert.NoError(t, err, entry) {
			assert.Equal(t, want, o.String(), entry)
		}
	}
	invalid := []string{
		"", "example.com", "*", "https://*", "https://*.com", "https://a.*.example.com",
		"ftp://example.com", "https://example.com/", "https://example.com/path",
		"https://example.com?q=1", "https://example.com#x", "https://user@example.com",
		"https://exa mple.com", "https://example.com:0", "https://example.com:65536",
		"https://example.com:", "http://localhost", "null", "https://-bad.example.com",
		"https://*.192.0.2.1", "javascript:alert(1)", "https://example.com:08080",
	}
	for _, entry := range invalid {
		_, err := ParseOrigin(entry)
		assert.ErrorIs(t, err, ErrInvalidOrigin, entry)
	}
}

func TestOriginMatch(t *testing.T) {
	tests := []struct {
		pattern string
		origin  string
		want    bool
	}{
		{"https://app.example.com", "https://app.example.com", true},
		{"https://app.example.com", "https://APP.example.com", true},
		{"https://app.example.com", "https://app.example.com:443", true},
		{"https://app.example.com", "http://app.example.com", false},
		{"https://app.example.com", "https://app.example.com:8443", false},
		{"https://app.example.com", "https://evil-app.example.com", false},
		{"https://app.example.com", "https://app.example.com.evil.com", false},
		{"https://*.example.com", "https://a.example.com", true},
		{"https://*.example.com", "https://a.b.example.com", true},
		{"https://*.example.com", "https://example.com", false},
		{"https://*.example.com", "https://evilexample.com", false},
		{"https://*.example.com", "https://a.example.com.evil.com", false},
		{"https://*.example.com", "http://a.example.com", false},
		{"http://localhost:3000", "http://localhost:3000", true},
		{"http://localhost:3000", "http://localhost:3001", false},
		{"http://localhost:3000", "http://localhost", false},
		{"http://localhost:3000", "null", false},
		{"http://localhost:3000", "", false},
		{"http://localhost:3000", "http://localhost:3000/", false},
	}
	for _, tt := range tests {
		o, err := ParseOrigin(tt.pattern)
		require.NoError(t, err)
		assert.Equal(t, tt.want, o.Match(tt.origin), "%s ~ %s", tt.pattern, tt.origin)
	}
}

func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"https://app.example.com", "https://*.example.com", "http://localhost:3000", "http://[::1]:1", "null", "https://a.b:65535"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		o, err := ParseOrigin(pattern)
		if err != nil {
			return
		}
		again, err := ParseOrigin(o.String())
		if err != nil || again != o {
			t.Fatalf("%q normalises to %q, which does not parse back the same", pattern, o.String())
		}
		if o.Match(origin) && !o.wild {
			req, err := parseOrigin(origin, false)
			if err != nil || req != o {
				t.Fatalf("%q matched %q", pattern, origin)
			}
		}
	})
}
