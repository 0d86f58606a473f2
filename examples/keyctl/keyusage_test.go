package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// TestKeyctlUsage: usage shows a key's counts, or an environment's, over
// [--from, --to), keys named by prefix, paged; --json holds the counts
// with their prefixes; a wrong command line or range is refused.
func TestKeyctlUsage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	day := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	store, err := exampledb.OpenFor(ctx, f.db, exampledb.Migrate)
	require.NoError(t, err)
	var counts []apikey.UsageCount
	for _, k := range []apikey.Key{f.server, f.client} {
		for _, outcome := range []string{"admitted", "rate_limited"} {
			counts = append(counts, apikey.UsageCount{Account: apikey.DefaultAccount, Environment: apikey.Production,
				KeyID: k.ID(), Hour: day.Add(10 * time.Hour), Outcome: outcome, Count: 42})
		}
	}
	require.NoError(t, store.RecordUsage(ctx, counts))
	require.NoError(t, store.DB().Close())
	rangeFlags := []string{"--from", "2030-01-01T00:00:00Z", "--to", "2030-01-02T00:00:00Z"}

	code, out, errOut := keyctl(t, f.db, append([]string{"usage", f.server.Prefix()}, rangeFlags...)...)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "HOUR                  KEY                  OUTCOME       COUNT\n"+
		"2030-01-01T10:00:00Z  "+f.server.Prefix()+"  admitted      42\n"+
		"2030-01-01T10:00:00Z  "+f.server.Prefix()+"  rate_limited  42\n", out)

	code, out, errOut = keyctl(t, f.db, append([]string{"usage", "--env", "production"}, rangeFlags...)...)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, 5, strings.Count(out, "\n"), "a header and four counts:\n%s", out)
	assert.Equal(t, 2, strings.Count(out, f.client.Prefix()))
	assert.NotContains(t, out, f.server.Reveal()[apikey.PrefixLength:])

	code, out, _ = keyctl(t, f.db, append([]string{"--json", "usage", "--env", "production", "--limit", "3"}, rangeFlags...)...)
	require.Equal(t, exitOK, code)
	doc := oneJSON(t, out)
	page := doc["counts"].([]any)
	require.Len(t, page, 3)
	for _, c := range page {
		c := c.(map[string]any)
		assert.Equal(t, apikey.Prefix(apikey.KeyType(strings.Split(c["prefix"].(string), "-")[0]), c["key_id"].(string)), c["prefix"])
		assert.Equal(t, 42.0, c["count"])
	}
	next := doc["next"].(string)
	code, out, _ = keyctl(t, f.db, append([]string{"usage", "--env", "production", "--limit", "3", "--after", next}, rangeFlags...)...)
	require.Equal(t, exitOK, code)
	assert.Equal(t, 2, strings.Count(out, "\n"), "a header and the last count:\n%s", out)
	assert.NotContains(t, out, "next page")

	code, out, _ = keyctl(t, f.db, "usage", f.server.Prefix())
	require.Equal(t, exitOK, code, "the last 24 hours by default")
	assert.Equal(t, "HOUR  KEY  OUTCOME  COUNT\n", out)

	for _, tt := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"neither key nor environment", rangeFlags, exitUsage, "usage: give a KEY or --env ENV"},
		{"both key and environment", append([]string{f.server.Prefix(), "--env", "production"}, rangeFlags...), exitUsage, "usage: give a KEY or --env ENV"},
		{"from not RFC 3339", []string{f.server.Prefix(), "--from", "2030-01-01"}, exitUsage, "usage: --from: want a time"},
		{"to not a time", []string{f.server.Prefix(), "--to", "soon"}, exitUsage, "usage: --to: want a time"},
		{"inverted", []string{f.server.Prefix(), "--from", "2030-01-02T00:00:00Z", "--to", "2030-01-01T00:00:00Z"}, exitRefused, "invalid time range"},
		{"beyond 31 days", []string{f.server.Prefix(), "--from", "2030-01-01T00:00:00Z", "--to", "2030-03-01T00:00:00Z"}, exitRefused, "at most 31 days apart"},
		{"an unknown key", append([]string{"server-nosuchkey000"}, rangeFlags...), exitRefused, "not found"},
		{"an unknown environment", append([]string{"--env", "qa"}, rangeFlags...), exitRefused, "unknown environment"},
		{"a cursor no page returned", append([]string{f.server.Prefix(), "--after", "AAAA"}, rangeFlags...), exitRefused, "invalid page cursor"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := keyctl(t, f.db, append([]string{"usage"}, tt.args...)...)
			assert.Equal(t, tt.code, code, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.says)
		})
	}
	code, out, _ = keyctl(t, f.db, "--json", "usage", f.server.Prefix(), "--from", "2030-01-02T00:00:00Z", "--to", "2030-01-01T00:00:00Z")
	assert.Equal(t, exitRefused, code)
	assert.Equal(t, "invalid_time_range", oneJSON(t, out)["error"].(map[string]any)["code"])
}
