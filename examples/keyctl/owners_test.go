package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyctlOwners: owner keys lists an owner's keys of every environment,
// owner revoke revokes them and names the default key it skips, expiring
// lists what expires soonest first, and purge deletes revoked keys once
// they are older than --older-than, across accounts only.
func TestKeyctlOwners(t *testing.T) {
	f := newFixture(t)
	code, _, errOut := keyctl(t, f.db, "bootstrap", "staging")
	require.Equal(t, exitOK, code, errOut)
	a := f.create(t, "server", "--scopes", "orders:read", "--owner", "user_42", "--expires", "48h")
	b := f.create(t, "client", "--owner", "user_42", "--expires", "2h")
	code, out, errOut := keyctl(t, f.db, "create", "staging", "server", "--scopes", "*", "--owner", "user_42")
	require.Equal(t, exitOK, code, errOut)
	c := issuedKey(t, out)
	code, _, errOut = keyctl(t, f.db, "owner", f.client.Prefix(), "user_42")
	require.Equal(t, exitOK, code, errOut)

	code, out, errOut = keyctl(t, f.db, "owner", "keys", "user_42", "--limit", "3")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "ENVIRONMENT")
	assert.Contains(t, out, "next page: --after")
	code, out, errOut = keyctl(t, f.db, "--json", "owner", "keys", "user_42")
	require.Equal(t, exitOK, code, errOut)
	keys := oneJSON(t, out)["keys"].([]any)
	assert.Len(t, keys, 4)

	code, out, errOut = keyctl(t, f.db, "expiring", "--within", "72h")
	require.Equal(t, exitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.True(t, strings.HasPrefix(lines[1], b.Prefix()), "soonest first: %q", out)
	assert.True(t, strings.HasPrefix(lines[2], a.Prefix()), "%q", out)
	code, out, _ = keyctl(t, f.db, "expiring", "--within", "72h", "--env", "staging")
	require.Equal(t, exitOK, code)
	assert.NotContains(t, out, a.Prefix())

	code, out, errOut = keyctl(t, f.db, "--json", "owner", "revoke", "user_42")
	require.Equal(t, exitOK, code, errOut)
	doc := oneJSON(t, out)
	assert.Equal(t, float64(3), doc["revoked"])
	assert.Equal(t, []any{f.client.Prefix()}, doc["skipped_defaults"])
	code, out, _ = keyctl(t, f.db, "get", c.Prefix())
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "revoked")
	code, out, _ = keyctl(t, f.db, "owner", "revoke", "user_42")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "revoked 0 keys of user_42")
	assert.Contains(t, out, "skipped default key "+f.client.Prefix())

	code, _, errOut = keyctl(t, f.db, "purge", "--older-than", "1ms")
	assert.Equal(t, exitRefused, code, "purge acts across accounts: %s", errOut)
	time.Sleep(5 * time.Millisecond)
	code, out, errOut = keyctl(t, f.db, "--account", "*", "--json", "purge", "--older-than", "1ms")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, float64(3), oneJSON(t, out)["deleted"])
	code, _, _ = keyctl(t, f.db, "get", a.Prefix())
	assert.Equal(t, exitRefused, code, "a purged key is not found")
	code, out, _ = keyctl(t, f.db, "audit", "--limit", "0")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "purge")
	assert.Contains(t, out, a.Prefix(), "a purged key's events stay")
}

func TestKeyctlOwnersErrors(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"owner keys without an owner", []string{"owner", "keys"}, exitUsage},
		{"owner revoke with a page", []string{"owner", "revoke", "u", "--limit", "5"}, exitUsage},
		{"owner of a key with a page", []string{"owner", f.server.Prefix(), "u", "--after", "x"}, exitUsage},
		{"owner keys of a full key", []string{"owner", "keys", f.server.Reveal()}, exitUsage},
		{"expiring without a window", []string{"expiring"}, exitUsage},
		{"expiring, a window too long", []string{"expiring", "--within", "9000h"}, exitRefused},
		{"expiring in an unknown environment", []string{"expiring", "--within", "1h", "--env", "qa"}, exitRefused},
		{"purge without a retention", []string{"--account", "*", "purge"}, exitUsage},
		{"purge with a negative retention", []string{"--account", "*", "purge", "--older-than", "-1h"}, exitUsage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := keyctl(t, f.db, tt.args...)
			assert.Equal(t, tt.code, code, "%s%s", out, errOut)
			assert.NotContains(t, out+errOut, f.server.Reveal(), "never echoed")
		})
	}
}
