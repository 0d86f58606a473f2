package apikey

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/publicsuffix"
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
		"*":                             "*",
	}
	for entry, want := range valid {
		o, err := ParseOrigin(entry)
		if assert.NoError(t, err, entry) {
			assert.Equal(t, want, o.String(), entry)
		}
	}
	invalid := []string{
		"", "example.com", "**", " *", "*.*", "https://*", "https://*.com", "https://a.*.example.com",
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

// TestWildcardOrigins checks that a wildcard stands only in front of a
// registrable domain: never directly under a public suffix (from the Public
// Suffix List, its private section included), nor in front of a host that
// ends like an IP address, which browsers would read as one.
func TestWildcardOrigins(t *testing.T) {
	tests := []struct {
		entry string
		ok    bool
	}{
		{"https://*.example.com", true},
		{"https://*.example.co.uk", true},
		{"https://*.foo.github.io", true},
		{"https://*.app.example.com:8443", true},
		{"http://*.example.org", true},
		{"https://*.example.internal", true}, // not a listed suffix
		{"https://*.www.ck", true},           // an exception to the rule *.ck
		{"https://*.example.123x", true},
		{"https://*.0.0.1", false},
		{"https://*.0.1", false},
		{"https://*.1.2.3.4", false},
		{"https://*.2.3.4:8443", false},
		{"https://*.example.123", false},
		{"https://*.example.0x7f", false},
		{"https://*.example.0x", false},
		{"https://*.com", false},
		{"https://*.co.uk", false},
		{"http://*.co.uk", false},
		{"https://*.co.uk:8443", false},
		{"https://*.github.io", false},
		{"https://*.blogspot.com", false},
		{"https://*.s3.amazonaws.com", false},
		{"https://*.foo.ck", false}, // under the rule *.ck
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			o, err := ParseOrigin(tt.entry)
			if !tt.ok {
				require.ErrorIs(t, err, ErrInvalidOrigin)
				_, err = ValidateOrigins([]string{tt.entry})
				require.ErrorIs(t, err, ErrInvalidOrigin)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.entry, o.String())
		})
	}
}

// TestAnyOrigin checks the entry "*": it admits every well-formed http or
// https origin, and nothing else.
func TestAnyOrigin(t *testing.T) {
	o, err := ParseOrigin(AnyOrigin)
	require.NoError(t, err)
	assert.True(t, o.Any())
	assert.Equal(t, "*", o.String())
	normalised, err := ValidateOrigins([]string{"*", "https://app.example.com"})
	require.NoError(t, err)
	assert.Equal(t, []string{"*", "https://app.example.com"}, normalised)
	exact, err := ParseOrigin("https://app.example.com")
	require.NoError(t, err)
	assert.False(t, exact.Any())

	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"http://localhost:3000", true},
		{"https://127.0.0.1:8443", true},
		{"http://[::1]:8080", true},
		{"https://evil.example", true},
		{"null", false},
		{"", false},
		{"*", false},
		{"file://", false},
		{"ftp://example.com", false},
		{"chrome-extension://abcdef", false},
		{"https://app.example.com/", false},
		{"https://app.example.com/path", false},
		{"https://user@app.example.com", false},
		{"https://exa mple.com", false},
		{"https://*.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			assert.Equal(t, tt.want, o.Match(tt.origin))
		})
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
	for _, s := range []string{"https://app.example.com", "https://*.example.com", "http://localhost:3000", "http://[::1]:1", "null", "https://a.b:65535", "*", "https://*.co.uk", "https://*.0.0.1"} {
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
		if suffix, _ := publicsuffix.PublicSuffix(o.host); o.wild && (endsInNumber(o.host) || suffix == o.host) {
			t.Fatalf("%q: a wildcard in front of a number or a public suffix", pattern)
		}
		if o.Match(origin) && !o.wild && !o.any {
			req, err := parseOrigin(origin, false)
			if err != nil || req != o {
				t.Fatalf("%q matched %q", pattern, origin)
			}
		}
	})
}
