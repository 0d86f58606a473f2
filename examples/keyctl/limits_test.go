package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestKeyctlLimits: limits sets every kind of limit on a key and prints
// them; get, list and --json show them; limits KEY shows them without
// changing anything; --clear and a new set replace them all.
func TestKeyctlLimits(t *testing.T) {
	f := newFixture(t)
	extra := f.create(t, "server", "--scopes", "orders:read")

	code, out, errOut := keyctl(t, f.db, "limits", extra.Prefix(), "--rate", "100/1m", "--burst", "20",
		"--quota", "10000", "--refill", "10000/month", "--allow-ip", "10.0.0.0/8", "--allow-ip", "2001:db8::/32", "--allow-ip", "203.0.113.7")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "prefix       "+extra.Prefix()+"\n"+
		"rate         100/1m burst 20\n"+
		"quota        10000 refilled 10000/month\n"+
		"allowed ips  10.0.0.0/8 2001:db8::/32 203.0.113.7/32\n", out)

	code, shown, _ := keyctl(t, f.db, "limits", extra.ID())
	require.Equal(t, exitOK, code)
	assert.Equal(t, out, shown, "limits KEY shows them")

	code, out, _ = keyctl(t, f.db, "get", extra.Prefix())
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "rate         100/1m burst 20\n")
	assert.Contains(t, out, "allowed ips  10.0.0.0/8 2001:db8::/32 203.0.113.7/32\n")

	code, out, _ = keyctl(t, f.db, "list", "production")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "LIMITS")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, extra.Prefix()) {
			assert.Contains(t, line, "100/1m, quota 10000 +10000/month, 3 ip ranges")
		}
		if strings.HasPrefix(line, f.server.Prefix()) {
			assert.Contains(t, line, " - ", "a key without limits")
		}
	}

	code, out, _ = keyctl(t, f.db, "--json", "limits", extra.Prefix(), "--rate", "10/s", "--quota", "500")
	require.Equal(t, exitOK, code, out)
	doc := oneJSON(t, out)
	assert.Equal(t, extra.Prefix(), doc["prefix"])
	assert.Equal(t, map[string]any{
		"rate":  map[string]any{"requests": 10.0, "window_seconds": 1.0},
		"quota": map[string]any{"limit": 500.0},
	}, doc["limits"], "replaced: the allowlist is gone")

	code, out, _ = keyctl(t, f.db, "--json", "get", extra.Prefix())
	require.Equal(t, exitOK, code)
	assert.Contains(t, oneJSON(t, out), "limits")

	code, out, errOut = keyctl(t, f.db, "limits", extra.Prefix(), "--clear")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "prefix       "+extra.Prefix()+"\nrate         none\nquota        none\nallowed ips  any\n", out)
	code, out, _ = keyctl(t, f.db, "--json", "get", extra.Prefix())
	require.Equal(t, exitOK, code)
	assert.NotContains(t, oneJSON(t, out), "limits", "a key without limits has no limits member")

	code, out, _ = keyctl(t, f.db, "audit", "--limit", "1")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "set_limits")
	assert.Contains(t, out, "no limits")
}

// TestKeyctlLimitsErrors: a malformed flag value is a usage error (2)
// that names the flag; a value out of bounds is a refusal (1, code
// invalid_limits) that names the flag and the field; neither changes the
// key's limits nor repeats the value.
func TestKeyctlLimitsErrors(t *testing.T) {
	f := newFixture(t)
	extra := f.create(t, "server", "--scopes", "orders:read")
	code, _, errOut := keyctl(t, f.db, "limits", extra.Prefix(), "--quota", "7")
	require.Equal(t, exitOK, code, errOut)
	revoked := f.create(t, "client")
	code, _, _ = keyctl(t, f.db, "revoke", revoked.Prefix())
	require.Equal(t, exitOK, code)
	many := []string{"limits", extra.Prefix()}
	for i := range apikey.MaxAllowedIPs + 1 {
		many = append(many, "--allow-ip", "10.0."+strconv.Itoa(i)+".0/24")
	}

	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"rate without a window", []string{"--rate", "100"}, exitUsage, "limits: --rate: want N/WINDOW"},
		{"rate not a number", []string{"--rate", "lots/1m"}, exitUsage, "limits: --rate: want N/WINDOW"},
		{"rate a fraction", []string{"--rate", "1.5/1m"}, exitUsage, "limits: --rate: want N/WINDOW"},
		{"window not a duration", []string{"--rate", "10/fortnight"}, exitUsage, "limits: --rate: want N/WINDOW"},
		{"window 1.5 seconds", []string{"--rate", "10/1.5s"}, exitUsage, "limits: --rate: the window must be whole seconds"},
		{"window of milliseconds", []string{"--rate", "10/ms"}, exitUsage, "limits: --rate: the window must be whole seconds"},
		{"burst not a number", []string{"--rate", "10/s", "--burst", "many"}, exitUsage, "invalid value for --burst"},
		{"burst without rate", []string{"--burst", "5"}, exitUsage, "limits: --burst needs --rate"},
		{"quota not a number", []string{"--quota", "1e4"}, exitUsage, "invalid value for --quota"},
		{"quota 0", []string{"--quota", "0"}, exitUsage, "limits: --quota: want 1 use or more"},
		{"refill without quota", []string{"--refill", "10/day"}, exitUsage, "limits: --refill needs --quota"},
		{"refill every week", []string{"--quota", "10", "--refill", "10/week"}, exitUsage, "limits: --refill: want N/day or N/month"},
		{"refill without period", []string{"--quota", "10", "--refill", "10"}, exitUsage, "limits: --refill: want N/day or N/month"},
		{"not CIDR", []string{"--allow-ip", "10.0.0.0/33"}, exitUsage, "limits: --allow-ip: want an address range"},
		{"not an address", []string{"--allow-ip", "intranet"}, exitUsage, "limits: --allow-ip: want an address range"},
		{"an address with a zone", []string{"--allow-ip", "fe80::1%eth0"}, exitUsage, "limits: --allow-ip: want an address range"},
		{"clear and a limit", []string{"--clear", "--rate", "10/s"}, exitUsage, "limits: --clear removes every limit: give it alone"},
		{"two keys", []string{f.server.Prefix(), "--rate", "10/s"}, exitUsage, "wrong number of arguments"},

		{"requests 0", []string{"--rate", "0/1m"}, exitRefused, "--rate: apikey: invalid limits: rate.requests must be 1 to"},
		{"requests negative", []string{"--rate", "-5/1m"}, exitRefused, "--rate: apikey: invalid limits: rate.requests"},
		{"window 0", []string{"--rate", "10/0s"}, exitRefused, "--rate: apikey: invalid limits: rate.window_seconds must be 1 to 86400"},
		{"window beyond a day", []string{"--rate", "10/25h"}, exitRefused, "--rate: apikey: invalid limits: rate.window_seconds"},
		{"burst negative", []string{"--rate", "10/s", "--burst", "-1"}, exitRefused, "--burst: apikey: invalid limits: rate.burst"},
		{"quota negative", []string{"--quota", "-1"}, exitRefused, "--quota: apikey: invalid limits: quota.limit"},
		{"refill beyond the quota", []string{"--quota", "10", "--refill", "11/day"}, exitRefused, "--refill: apikey: invalid limits: quota.refill"},
		{"refill 0 with a period", []string{"--quota", "10", "--refill", "0/day"}, exitRefused, "--refill: apikey: invalid limits: quota.period needs quota.refill"},
		{"more than 64 ranges", many[2:], exitRefused, "--allow-ip: apikey: invalid limits: allowed_ips holds at most 64 ranges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := keyctl(t, f.db, append([]string{"limits", extra.Prefix()}, tt.args...)...)
			assert.Equal(t, tt.code, code, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.says)
			if tt.code == exitRefused {
				_, out, _ = keyctl(t, f.db, append([]string{"--json", "limits", extra.Prefix()}, tt.args...)...)
				assert.Equal(t, "invalid_limits", oneJSON(t, out)["error"].(map[string]any)["code"])
			}
			_, out, _ = keyctl(t, f.db, "limits", extra.Prefix())
			assert.Contains(t, out, "quota        7 never refilled\n", "the limits are unchanged")
		})
	}

	t.Run("an allowlist on a publishable key", func(t *testing.T) {
		code, _, errOut := keyctl(t, f.db, "limits", f.client.Prefix(), "--allow-ip", "10.0.0.0/8")
		assert.Equal(t, exitRefused, code)
		assert.Contains(t, errOut, "--allow-ip: apikey: invalid limits: allowed_ips only server keys may have one")
	})
	t.Run("a revoked key", func(t *testing.T) {
		code, _, errOut := keyctl(t, f.db, "limits", revoked.Prefix(), "--quota", "5")
		assert.Equal(t, exitRefused, code)
		assert.Contains(t, errOut, "already revoked")
	})
	t.Run("an unknown key", func(t *testing.T) {
		code, _, errOut := keyctl(t, f.db, "limits", "server-nosuchkey000")
		assert.Equal(t, exitRefused, code)
		assert.Contains(t, errOut, "not found")
	})
	t.Run("no database", func(t *testing.T) {
		dir := t.TempDir()
		code, _, errOut := keyctl(t, filepath.Join(dir, "typo.db"), "limits", extra.Prefix(), "--quota", "5")
		assert.Equal(t, exitStorage, code)
		assert.Contains(t, errOut, "no keystile database")
		assert.Empty(t, dirFiles(t, dir), "nothing created")
	})
	t.Run("a pasted key is never echoed", func(t *testing.T) {
		secret := f.server.Reveal()
		piece := secret[apikey.PrefixLength+1 : apikey.PrefixLength+17]
		for _, args := range [][]string{
			{"--rate", secret}, {"--rate", "10/" + secret}, {"--refill", secret, "--quota", "5"},
			{"--allow-ip", secret}, {"--quota", secret}, {"--burst", secret, "--rate", "1/s"},
		} {
			for _, json := range []string{"--json", "--actor=keyctl"} {
				code, out, errOut := keyctl(t, f.db, append([]string{json, "limits", extra.Prefix()}, args...)...)
				assert.Equal(t, exitUsage, code)
				assert.NotContains(t, out+errOut, piece)
			}
		}
	})
}
