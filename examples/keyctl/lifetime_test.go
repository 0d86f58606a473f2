package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyctlLifetime: lifetime sets, shows and clears an environment's
// policy, which then gives a key created without --expires its default
// expiry and refuses one beyond the maximum; refusals name the flag.
func TestKeyctlLifetime(t *testing.T) {
	f := newFixture(t)
	code, out, errOut := keyctl(t, f.db, "lifetime", "production")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "environment     production\ndefault expiry  none\nmax lifetime    none\n", out)

	code, out, errOut = keyctl(t, f.db, "lifetime", "production", "--default-expiry", "720h", "--max-lifetime", "8760h")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "environment     production\ndefault expiry  720h\nmax lifetime    8760h\n", out)
	code, shown, _ := keyctl(t, f.db, "lifetime", "production")
	require.Equal(t, exitOK, code)
	assert.Equal(t, out, shown, "lifetime ENV shows it")

	code, out, _ = keyctl(t, f.db, "--json", "lifetime", "production")
	require.Equal(t, exitOK, code)
	assert.Equal(t, map[string]any{"default_expiry_seconds": 2592000.0, "max_lifetime_seconds": 31536000.0},
		oneJSON(t, out)["lifetime"])

	code, out, errOut = keyctl(t, f.db, "--json", "create", "production", "client")
	require.Equal(t, exitOK, code, errOut)
	view := oneJSON(t, out)["view"].(map[string]any)
	expires, err := time.Parse(time.RFC3339Nano, view["expires_at"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(720*time.Hour), expires, time.Minute, "the default expiry")

	code, out, _ = keyctl(t, f.db, "--json", "create", "production", "client", "--expires", "9000h")
	assert.Equal(t, exitRefused, code)
	assert.Equal(t, "beyond_lifetime", oneJSON(t, out)["error"].(map[string]any)["code"])
	code, _, errOut = keyctl(t, f.db, "create", "production", "client", "--expires", "9000h")
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, errOut, "maximum lifetime is 8760h")

	code, out, errOut = keyctl(t, f.db, "lifetime", "production", "--max-lifetime", "8760h")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "default expiry  8760h (the max lifetime)\n", "what no flag sets, the policy no longer has")

	code, out, errOut = keyctl(t, f.db, "lifetime", "production", "--clear")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "max lifetime    none\n")

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"default beyond max", []string{"--default-expiry", "48h", "--max-lifetime", "24h"}, exitRefused,
			"--default-expiry: apikey: invalid lifetime policy: default_expiry_seconds must be at most max_lifetime_seconds"},
		{"negative", []string{"--max-lifetime", "-1h"}, exitRefused, "--max-lifetime: apikey: invalid lifetime policy: max_lifetime_seconds"},
		{"beyond ten years", []string{"--max-lifetime", "87601h"}, exitRefused, "--max-lifetime:"},
		{"a fraction of a second", []string{"--default-expiry", "1500ms"}, exitRefused, "--default-expiry: apikey: invalid lifetime policy: default_expiry_seconds must be whole seconds"},
		{"not a duration", []string{"--max-lifetime", "1y"}, exitUsage, "max-lifetime"},
		{"clear and a flag", []string{"--clear", "--max-lifetime", "1h"}, exitUsage, "--clear removes the policy: give it alone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := keyctl(t, f.db, append([]string{"lifetime", "production"}, tt.args...)...)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, errOut, tt.want)
		})
	}
	code, _, errOut = keyctl(t, f.db, "lifetime", "qa", "--max-lifetime", "1h")
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, errOut, "unknown environment")
}

// TestKeyctlRename: rename names a key and --clear removes the name; a
// name that holds a key is refused and not shown.
func TestKeyctlRename(t *testing.T) {
	f := newFixture(t)
	extra := f.create(t, "server", "--scopes", "orders:read", "--name", "old")
	code, out, errOut := keyctl(t, f.db, "rename", extra.Prefix(), "billing worker")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, extra.Prefix()+" name billing worker\n", out)
	code, out, _ = keyctl(t, f.db, "--json", "get", extra.ID())
	require.Equal(t, exitOK, code)
	assert.Equal(t, "billing worker", oneJSON(t, out)["name"])

	code, out, errOut = keyctl(t, f.db, "--json", "rename", extra.Prefix(), "--clear")
	require.Equal(t, exitOK, code, errOut)
	assert.NotContains(t, oneJSON(t, out), "name")

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no name", []string{extra.Prefix()}, exitUsage, "rename: give a NAME or --clear"},
		{"both", []string{extra.Prefix(), "x", "--clear"}, exitUsage, "rename: give a NAME or --clear"},
		{"a key", []string{extra.Prefix(), "my " + f.client.Reveal()}, exitUsage, notShown},
		{"a control character", []string{extra.Prefix(), "a\x1bb"}, exitRefused, "invalid key name"},
		{"unknown", []string{"server-AAAAAAAAAAAA", "x"}, exitRefused, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := keyctl(t, f.db, append([]string{"rename"}, tt.args...)...)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, errOut, tt.want)
			assert.NotContains(t, out+errOut, f.client.Reveal()[len("client-"):])
		})
	}
}
