package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpansAndMetricsPrinted serves a few requests and reads what the
// stdout exporters printed.
func TestSpansAndMetricsPrinted(t *testing.T) {
	var out bytes.Buffer
	h, key, closeFn, err := newServer(&out, time.Hour)
	require.NoError(t, err)
	for _, k := range []string{key.Reveal(), key.Reveal(), ""} {
		r := httptest.NewRequest(http.MethodGet, "/v1/hello", nil)
		if k != "" {
			r.Header.Set("X-API-Key", k)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	closeFn() // flushes the metrics

	printed := out.String()
	assert.Equal(t, 3, strings.Count(printed, `"Name": "keystile.verify"`))
	assert.Equal(t, 3, strings.Count(printed, `"Name": "GET /v1/hello"`))
	for _, s := range []string{`"keystile.cache"`, `"hit"`, `"miss"`, `"missing_key"`, key.Prefix(),
		`"keystile.cache.hits"`, `"keystile.refusals"`} {
		assert.Contains(t, printed, s)
	}
	secret := strings.TrimPrefix(key.Reveal(), key.Prefix())
	assert.NotContains(t, printed, secret[1:20])
}
