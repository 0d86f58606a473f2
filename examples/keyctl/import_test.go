package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

func TestKeyctlImport(t *testing.T) {
	f := newFixture(t)
	const old = "sk_live_4eC39HqLyjWDarjtT1zdp7dc8Xk2PqRs"
	sum := sha256.Sum256([]byte(old))
	digest := hex.EncodeToString(sum[:])
	id := apikey.ImportedID(sum)

	code, out, errOut := keyctl(t, f.db, "--account", "*", "import", "default", "production", "server", "--digest", digest, "--scopes", "*",
		"--owner", "user_42", "--expires", "720h")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "production server server-"+id+" imported\n", out)

	code, out, errOut = keyctl(t, f.db, "--json", "get", id)
	require.Equal(t, exitOK, code, errOut)
	doc := oneJSON(t, out)
	assert.Equal(t, true, doc["imported"])
	assert.Equal(t, "user_42", doc["owner"])
	code, out, _ = keyctl(t, f.db, "get", id)
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "rotate it to a keystile key")

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"as the account's owner", []string{"import", "default", "production", "server", "--digest", strings.Repeat("0", 63) + "2", "--scopes", "*"}, exitRefused, "operator"},
		{"as another account's owner", []string{"--account", "globex", "import", "default", "production", "server", "--digest", strings.Repeat("0", 63) + "2", "--scopes", "*"}, exitRefused, "operator"},
		{"no account", []string{"--account", "*", "import", "production", "server", "--digest", strings.Repeat("0", 63) + "2", "--scopes", "*"}, exitUsage, "import"},
		{"again", []string{"--account", "*", "import", "default", "production", "server", "--digest", digest, "--scopes", "*"}, exitRefused, "stored already"},
		{"no digest", []string{"--account", "*", "import", "default", "production", "server", "--scopes", "*"}, exitUsage, "--digest is required"},
		{"short digest", []string{"--account", "*", "import", "default", "production", "server", "--digest", "abcd", "--scopes", "*"}, exitUsage, "64 hexadecimal"},
		{"not hex", []string{"--account", "*", "import", "default", "production", "server", "--digest", strings.Repeat("g", 64), "--scopes", "*"}, exitUsage, "64 hexadecimal"},
		{"a full key", []string{"--account", "*", "import", "default", "production", "server", "--digest", f.server.Reveal(), "--scopes", "*"}, exitUsage, "refused, and not shown"},
		{"no scopes", []string{"--account", "*", "import", "default", "production", "server", "--digest", strings.Repeat("0", 63) + "1"}, exitRefused, "scopes required"},
		{"unknown environment", []string{"--account", "*", "import", "default", "qa", "client", "--digest", strings.Repeat("0", 63) + "1"}, exitRefused, "unknown environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := keyctl(t, f.db, tc.args...)
			assert.Equal(t, tc.code, code, out+errOut)
			assert.Contains(t, errOut, tc.want)
			assert.NotContains(t, out+errOut, f.server.Reveal()[len("server-"):])
		})
	}

	// Rotating it issues a keystile key; the old one keeps its grace.
	code, out, errOut = keyctl(t, f.db, "rotate", id, "--grace", "24h")
	require.Equal(t, exitOK, code, errOut)
	k := issuedKey(t, out)
	code, out, _ = keyctl(t, f.db, "--json", "get", k.ID())
	require.Equal(t, exitOK, code)
	assert.NotContains(t, oneJSON(t, out), "imported")
	code, out, _ = keyctl(t, f.db, "--json", "get", id)
	require.Equal(t, exitOK, code)
	assert.Equal(t, "expiring", oneJSON(t, out)["status"])
}
