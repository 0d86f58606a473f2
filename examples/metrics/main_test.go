package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestMetricsScrape serves some requests and scrapes /metrics once.
func TestMetricsScrape(t *testing.T) {
	var logs bytes.Buffer
	h, key, closeFn, err := newServer(slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer closeFn()
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(path, key string) int {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	for range 3 { // one miss, one argon2 run, two hits
		require.Equal(t, http.StatusOK, get("/v1/hello", key.Reveal()))
	}
	require.Equal(t, http.StatusUnauthorized, get("/v1/hello", ""))

	res, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	for _, line := range []string{
		"keystile_cache_hits_total 2",
		"keystile_cache_misses_total 1",
		"keystile_argon2_verifications_total 1",
		`keystile_cache_entries{kind="key"} 1`,
		`keystile_refusals_total{code="missing_key"} 1`,
		`keystile_refusals_total{code="invalid_key"} 0`,
		`keystile_argon2_verifications{state="running"} 0`,
		"keystile_throttled_total 0",
		"keystile_background_errors_total 0",
	} {
		assert.Contains(t, string(body), line+"\n")
	}

	// The request log names the key by its prefix only.
	assert.Contains(t, logs.String(), "key="+key.Prefix())
	assert.Contains(t, logs.String(), "code=missing_key")
	assert.NotContains(t, logs.String(), key.Reveal()[apikey.PrefixLength:])
}
