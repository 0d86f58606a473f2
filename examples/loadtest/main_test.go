package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRun starts the server with a few extra keys and checks what
// scripts/load.sh relies on: the lines it prints, a key file whose every
// key is accepted, and the bare route.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, printed := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := run(ctx, "127.0.0.1:0", 20, 0, "", "quota", printed)
		printed.Close()
		errc <- err
	}()
	lines := map[string]string{}
	scan := bufio.NewScanner(out)
	for scan.Scan() && scan.Text() != "ready" {
		name, value, _ := strings.Cut(scan.Text(), " ")
		lines[name] = value
	}
	require.Contains(t, lines, "addr")
	require.Contains(t, lines, "key")
	require.Contains(t, lines, "keys")
	file, err := os.ReadFile(lines["keys"])
	require.NoError(t, err)
	keys := strings.Fields(string(file))
	assert.Len(t, keys, 20)

	do := func(path, key string) *http.Response {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, lines["addr"]+path, nil)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	get := func(path, key string) int { return do(path, key).StatusCode }
	fields := func(path, key string) http.Header {
		h := do(path, key).Header
		h.Del("Date")
		return h
	}
	// /bare-fields writes the fields that /protected adds for a key far
	// below its limit, and /bare none of them.
	assert.Equal(t, http.Header{
		"Content-Type": {"application/json"}, "Content-Length": {"30"}, "Vary": {"Origin, Sec-Fetch-Site, X-API-Key"},
		"Ratelimit-Policy": {`"key";q=1000000;w=1`}, "Ratelimit": {`"key";r=999999;t=1`},
	}, fields("/bare-fields", ""))
	assert.Equal(t, fields("/bare-fields", ""), fields("/protected", keys[0]))
	assert.Equal(t, http.Header{"Content-Type": {"application/json"}, "Content-Length": {"30"}}, fields("/bare", ""))
	assert.Equal(t, http.StatusOK, get("/bare", ""))
	assert.Equal(t, http.StatusOK, get("/cpu", ""))
	assert.Equal(t, http.StatusUnauthorized, get("/protected", ""))
	for _, key := range append(keys, lines["key"]) {
		assert.Equal(t, http.StatusOK, get("/protected", key))
	}

	cancel()
	require.NoError(t, <-errc)
	_, err = os.Stat(lines["keys"])
	assert.True(t, os.IsNotExist(err), "the key file is removed on exit")
}
