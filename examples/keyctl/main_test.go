package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// keyctl runs one command against db and returns its exit status and output.
func keyctl(t *testing.T, db string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"-db", db}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// issuedKey returns the key of the first "<env> <type> <key>" line.
func issuedKey(t *testing.T, out string) apikey.Key {
	t.Helper()
	fields := strings.Fields(out)
	require.GreaterOrEqual(t, len(fields), 3, out)
	k, err := apikey.ParseKey(fields[2])
	require.NoError(t, err)
	return k
}

func TestKeyctlLifecycle(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	code, out, _ := keyctl(t, db, "bootstrap")
	require.Equal(t, exitOK, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, "two keys for each built-in environment")
	assert.True(t, strings.HasPrefix(lines[0], "production server server-"))
	prodServer := issuedKey(t, lines[0])

	code, out, _ = keyctl(t, db, "bootstrap")
	assert.Equal(t, exitOK, code, "bootstrapping the built-ins again is a no-op")
	assert.Empty(t, out, "and prints no key")

	code, out, _ = keyctl(t, db, "rotate", prodServer.Prefix(), "--grace", "24h")
	require.Equal(t, exitOK, code)
	fresh := issuedKey(t, out)

	code, out, _ = keyctl(t, db, "list", "production")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, prodServer.Prefix())
	assert.Contains(t, out, "expiring")
	assert.NotContains(t, out, fresh.Reveal(), "list never prints a secret")

	code, _, errOut := keyctl(t, db, "revoke", fresh.ID())
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, errOut, "rotate it first")
	code, out, _ = keyctl(t, db, "revoke", prodServer.ID())
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "revoked")

	code, out, _ = keyctl(t, db, "create", "staging", "server", "--scopes", "customers:write", "--expires", "1h", "--name", "worker")
	require.Equal(t, exitOK, code)
	temp := issuedKey(t, out)
	code, _, _ = keyctl(t, db, "revoke", temp.Prefix())
	assert.Equal(t, exitOK, code, "a key created with an expiry can be revoked directly")
	code, out, _ = keyctl(t, db, "create", "staging", "server", "--scopes", "orders:read", "--name", "permanent")
	require.Equal(t, exitOK, code)
	code, out, _ = keyctl(t, db, "revoke", issuedKey(t, out).Prefix())
	assert.Equal(t, exitOK, code, "so can an extra key without expiry: only default keys are rotated first")
	assert.Contains(t, out, "revoked")

	code, out, _ = keyctl(t, db, "origins", "production", "https://app.example.com", "http://localhost:3000")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "https://app.example.com\nhttp://localhost:3000\n", out)
	code, out, _ = keyctl(t, db, "origins", "production", "--clear")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "(no origin: browsers may not use publishable keys)\n", out)
	code, out, _ = keyctl(t, db, "origins", "production", "*")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "*\n", out, "every origin, explicitly")

	code, out, _ = keyctl(t, db, "audit", "production", "--limit", "3")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "set_origins")
	assert.Equal(t, 4, strings.Count(out, "\n"), "a header and three events")
}

func TestKeyctlErrors(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	require.Equal(t, exitOK, func() int { c, _, _ := keyctl(t, db, "bootstrap", "production"); return c }())
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no command", nil, exitUsage, "usage"},
		{"unknown command", []string{"launch"}, exitUsage, "unknown command"},
		{"bad flag", []string{"rotate", "--graze", "1h", "production", "server"}, exitUsage, "graze"},
		{"missing argument", []string{"list"}, exitUsage, "wrong number"},
		{"bad duration", []string{"grace", "abc", "soon"}, exitUsage, "grace"},
		{"bootstrap twice", []string{"bootstrap", "production"}, exitRefused, "already bootstrapped"},
		{"unknown key", []string{"revoke", "nosuchkey000"}, exitRefused, "not found"},
		{"grace too long", []string{"rotate", "production", "server", "--grace", "9000h"}, exitRefused, "grace period"},
		{"bad origin", []string{"origins", "production", "https://example.com/path"}, exitRefused, "invalid origin"},
		{"unknown environment", []string{"list", "qa"}, exitRefused, "unknown environment"},
		{"bad type", []string{"create", "production", "admin"}, exitRefused, "key type"},
		{"server key without scopes", []string{"create", "production", "server"}, exitRefused, `scopes required; give "*" for full access`},
		{"rotate by environment and type", []string{"rotate", "production", "client", "--grace", "0s"}, exitOK, ""},
		{"unknown flag", []string{"list", "--bogus", "production"}, exitUsage, "list: unknown flag --bogus"},
		{"flag without value", []string{"audit", "--limit"}, exitUsage, "--limit needs a value"},
		{"bad flag value", []string{"create", "production", "server", "--scopes", "orders:read", "--expires", "soon"}, exitUsage, "invalid value for --expires"},
		{"negative limit", []string{"audit", "--limit", "-1"}, exitUsage, "--limit"},
		{"origins and --clear", []string{"origins", "production", "https://app.example.com", "--clear"}, exitUsage, "not both"},
		{"too many arguments", []string{"get", "a", "b"}, exitUsage, "wrong number"},
		{"expiry in the past", []string{"create", "production", "client", "--expires", "-1h"}, exitRefused, "expiry must be in the future"},
		{"unknown key", []string{"get", "nosuchkey000"}, exitRefused, "not found"},
		{"reveal an unknown key", []string{"reveal", "server-nosuchkey000"}, exitRefused, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := keyctl(t, db, tt.args...)
			assert.Equal(t, tt.code, code, errOut)
			assert.Contains(t, errOut, tt.says)
		})
	}
	code, _, errOut := keyctl(t, filepath.Join(t.TempDir(), "missing-dir", "x.db"), "list", "production")
	assert.Equal(t, exitStorage, code, "an unusable database is a storage error")
	assert.NotEmpty(t, errOut)
}

// TestKeyctlRotateNeedsGrace: rotate without --grace is a usage error that
// lists the choices and leaves the key alone; --grace 0s expires it now.
func TestKeyctlRotateNeedsGrace(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	code, out, _ := keyctl(t, db, "bootstrap", "production")
	require.Equal(t, exitOK, code)
	server := issuedKey(t, out)
	status := func() string {
		t.Helper()
		code, out, _ := keyctl(t, db, "list", "production")
		require.Equal(t, exitOK, code)
		for _, line := range strings.Split(out, "\n") {
			if fields := strings.Fields(line); len(fields) > 2 && fields[0] == server.Prefix() {
				return fields[1] + " " + fields[2] // status, default
			}
		}
		t.Fatalf("%s not listed:\n%s", server.Prefix(), out)
		return ""
	}
	for _, args := range [][]string{
		{"rotate", "production", "server"},
		{"rotate", server.Prefix()},
		{"rotate", server.ID()},
	} {
		code, out, errOut := keyctl(t, db, args...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, "--grace is required", "%v", args)
		assert.Contains(t, errOut, "0s (expire now), 1h, 24h, 72h or 168h", "%v: the choices are listed", args)
		assert.Contains(t, errOut, "8760h", "%v: and the maximum", args)
		assert.Empty(t, out, "%v: no key printed", args)
		assert.Equal(t, "active true", status(), "%v: the key is unchanged", args)
	}
	code, out, _ = keyctl(t, db, "rotate", server.Prefix(), "--grace", "0s")
	require.Equal(t, exitOK, code, "an explicit zero grace works")
	issuedKey(t, out)
	assert.Equal(t, "expired false", status(), "--grace 0s expires the old key now")
}

// extraServerKey creates a server key that is not a default key.
func extraServerKey(t *testing.T, db string, _ apikey.Key) apikey.Key {
	t.Helper()
	code, out, errOut := keyctl(t, db, "create", "production", "server", "--scopes", "orders:read")
	require.Equal(t, exitOK, code, errOut)
	return issuedKey(t, out)
}

// otherType is the key type that k is not.
func otherType(k apikey.Key) apikey.KeyType {
	if k.Type() == apikey.Server {
		return apikey.Client
	}
	return apikey.Server
}

// TestKeyctlKeyNames names the KEY of every command that takes one by its
// key id and by its displayable prefix, which both work, and by what does
// not name it: a prefix of the other type (refused as not found), a full
// key or anything else that is not a key id (refused as an invalid key
// id). No refusal prints what was given or changes a key.
func TestKeyctlKeyNames(t *testing.T) {
	commands := []struct {
		name string
		// key prepares the key acted on, in a state where the command
		// succeeds, and returns it.
		key  func(t *testing.T, db string, server apikey.Key) apikey.Key
		args func(key string) []string
	}{
		{"rotate", func(_ *testing.T, _ string, server apikey.Key) apikey.Key { return server },
			func(key string) []string { return []string{"rotate", key, "--grace", "1h"} }},
		{"grace", func(t *testing.T, db string, server apikey.Key) apikey.Key {
			code, _, errOut := keyctl(t, db, "rotate", server.ID(), "--grace", "1h")
			require.Equal(t, exitOK, code, errOut)
			return server
		}, func(key string) []string { return []string{"grace", key, "2h"} }},
		{"revoke", extraServerKey, func(key string) []string { return []string{"revoke", key} }},
		{"scopes", extraServerKey, func(key string) []string { return []string{"scopes", key, "orders:write"} }},
		{"get", func(_ *testing.T, _ string, server apikey.Key) apikey.Key { return server },
			func(key string) []string { return []string{"get", key} }},
		{"reveal", func(t *testing.T, db string, _ apikey.Key) apikey.Key {
			code, out, errOut := keyctl(t, db, "create", "production", "client")
			require.Equal(t, exitOK, code, errOut)
			return issuedKey(t, out)
		}, func(key string) []string { return []string{"reveal", key} }},
	}
	names := []struct {
		name string
		of   func(apikey.Key) string
		code int
		says string
	}{
		{"key id", func(k apikey.Key) string { return k.ID() }, exitOK, ""},
		{"prefix", func(k apikey.Key) string { return k.Prefix() }, exitOK, ""},
		{"prefix of the other type", func(k apikey.Key) string { return apikey.Prefix(otherType(k), k.ID()) }, exitRefused, "not found"},
		{"full key", func(k apikey.Key) string { return k.Reveal() }, exitRefused, "invalid key id"},
		{"prefix twice", func(k apikey.Key) string { return apikey.Prefix(apikey.Client, k.Prefix()) }, exitRefused, "invalid key id"},
		{"short id", func(k apikey.Key) string { return k.ID()[1:] }, exitRefused, "invalid key id"},
	}
	for _, command := range commands {
		for _, name := range names {
			t.Run(command.name+"/"+name.name, func(t *testing.T) {
				db := filepath.Join(t.TempDir(), "keystile.db")
				code, out, _ := keyctl(t, db, "bootstrap", "production")
				require.Equal(t, exitOK, code)
				k := command.key(t, db, issuedKey(t, out))
				_, before, _ := keyctl(t, db, "list", "production")
				given := name.of(k)
				code, out, errOut := keyctl(t, db, command.args(given)...)
				assert.Equal(t, name.code, code, errOut)
				assert.Contains(t, errOut, name.says)
				if name.code == exitOK {
					return
				}
				assert.Empty(t, out)
				assert.NotContains(t, errOut, k.Reveal()[apikey.PrefixLength:apikey.PrefixLength+16], "never a piece of the secret")
				assert.NotContains(t, errOut, given, "never what was given")
				_, after, _ := keyctl(t, db, "list", "production")
				assert.Equal(t, before, after, "no key changed")
			})
		}
	}
}
