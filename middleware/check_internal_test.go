package middleware

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzKeyFromRequest checks that header parsing never panics, returns
// either a key or one of its two reasons, never reads the URL, and that a
// returned key holds no surrounding space.
func FuzzKeyFromRequest(f *testing.F) {
	seeds := []struct{ apiKey, auth string }{
		{"", ""},
		{"server-AAAAAAAAAAAA_" + strings.Repeat("b", 49), ""},
		{"", "Bearer client-AAAAAAAAAAAA_" + strings.Repeat("c", 49)},
		{"  padded  ", "Basic dXNlcjpwYXNz"},
		{"x", "Bearer x"},
		{"", "bearer"},
		{"", "Bearer    "},
		{"\x00\xff", "BEARER \t tok"},
	}
	for _, s := range seeds {
		f.Add(s.apiKey, s.auth, true)
		f.Add(s.apiKey, s.auth, false)
	}
	f.Fuzz(func(t *testing.T, apiKey, auth string, bearer bool) {
		r, err := http.NewRequest(http.MethodGet, "/?api_key=from-url", nil)
		require.NoError(t, err)
		if apiKey != "" {
			r.Header.Set("X-API-Key", apiKey)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		key, err := keyFromRequest(r, bearer)
		if err != nil {
			require.Empty(t, key)
			require.True(t, errors.Is(err, ErrMissingKey) || errors.Is(err, ErrMalformedKey), err)
			for _, sent := range []string{strings.TrimSpace(apiKey), strings.TrimSpace(auth)} {
				if len(sent) >= 8 {
					require.NotContains(t, err.Error(), sent, "errors never quote the key")
				}
			}
			return
		}
		require.NotEmpty(t, key)
		require.NotEqual(t, "from-url", key)
		require.Equal(t, strings.TrimSpace(key), key)
		if !bearer {
			require.Equal(t, strings.TrimSpace(apiKey), key)
		}
	})
}

// FuzzBrowserSignal checks the Fetch Metadata reading: a request is from a
// browser exactly when it carries an Origin or a Sec-Fetch-Site header;
// the hooks see one of the values browsers send, "" without the header or
// "other", never the raw header (which could hold a key).
func FuzzBrowserSignal(f *testing.F) {
	for _, s := range []string{"same-origin", "cross-site", "same-site", "none", "NONE ", "", "same-origin, cross-site",
		"server-AAAAAAAAAAAA_" + strings.Repeat("b", 49), "\x00\xff"} {
		f.Add(s, true, false)
		f.Add(s, false, true)
	}
	f.Fuzz(func(t *testing.T, site string, withSite, withOrigin bool) {
		h := http.Header{}
		if withSite {
			h["Sec-Fetch-Site"] = []string{site}
		}
		if withOrigin {
			h["Origin"] = []string{"https://app.example.com"}
		}
		h["Sec-Fetch-Mode"] = []string{"cors"} // never a signal on its own
		require.Equal(t, withSite || withOrigin, fromBrowser(h))
		got := fetchSite(h)
		require.Contains(t, []string{"", "cross-site", "same-site", "same-origin", "none", "other"}, got)
		require.Equal(t, !withSite, got == "")
	})
}
