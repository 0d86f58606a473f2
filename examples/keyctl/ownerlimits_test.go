package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyctlOwnerLimits: owner limits sets the limits that an owner's keys
// share, on every key of the owner, shows them, and removes them; bad
// flags are usage errors that name the flag.
func TestKeyctlOwnerLimits(t *testing.T) {
	f := newFixture(t)
	a := f.create(t, "server", "--scopes", "orders:read", "--owner", "user_42")
	f.create(t, "client", "--owner", "user_42")

	code, out, errOut := keyctl(t, f.db, "owner", "limits", "user_42", "--rate", "100/1m", "--quota", "10000", "--refill", "10000/month")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "rate")
	assert.Contains(t, out, "100/1m burst 100")
	assert.Contains(t, out, "10000 refilled 10000/month")
	assert.Contains(t, out, "keys")
	code, out, errOut = keyctl(t, f.db, "--json", "owner", "limits", "user_42")
	require.Equal(t, exitOK, code, errOut)
	doc := oneJSON(t, out)
	assert.Equal(t, "user_42", doc["owner"])
	assert.Equal(t, map[string]any{"requests": float64(100), "window_seconds": float64(60)}, doc["limits"].(map[string]any)["rate"])
	assert.NotContains(t, doc, "keys", "only after a change")
	code, out, errOut = keyctl(t, f.db, "--json", "get", a.Prefix())
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, oneJSON(t, out), "owner_limits", "the key carries them")

	code, out, errOut = keyctl(t, f.db, "--json", "owner", "limits", "user_42", "--clear")
	require.Equal(t, exitOK, code, errOut)
	doc = oneJSON(t, out)
	assert.Equal(t, map[string]any{}, doc["limits"])
	assert.Equal(t, float64(2), doc["keys"])

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"clear with a limit", []string{"owner", "limits", "user_42", "--clear", "--quota", "1"}, exitUsage, "--clear"},
		{"a bad rate", []string{"owner", "limits", "user_42", "--rate", "fast"}, exitUsage, "--rate"},
		{"out of range", []string{"owner", "limits", "user_42", "--rate", "0/1s"}, exitRefused, "--rate"},
		{"an owner without keys", []string{"owner", "limits", "nobody", "--quota", "5"}, exitRefused, "not found"},
		{"a limit flag elsewhere", []string{"owner", "keys", "user_42", "--quota", "5"}, exitUsage, "owner limits"},
		{"no owner", []string{"owner", "limits"}, exitUsage, "OWNER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := keyctl(t, f.db, tc.args...)
			assert.Equal(t, tc.code, code, errOut)
			assert.Contains(t, errOut, tc.msg)
		})
	}
}
