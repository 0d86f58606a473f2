package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
)

// TestKeyctlSwitches: keyctl disables and enables a key and suspends and
// resumes an account, in text and JSON; each refusal has its exit status
// and code; a Validator on the same database refuses the key while it is
// disabled and the account's keys while it is suspended.
func TestKeyctlSwitches(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	code, out, errOut := keyctl(t, db, "--account", "acme", "bootstrap", "production")
	require.Equal(t, exitOK, code, errOut)
	defaultKey := issuedKey(t, out)
	code, out, errOut = keyctl(t, db, "--account", "acme", "create", "production", "server", "--scopes", "orders:read")
	require.Equal(t, exitOK, code, errOut)
	extra := issuedKey(t, out)
	code, _, errOut = keyctl(t, db, "--account", "globex", "bootstrap", "production")
	require.Equal(t, exitOK, code, errOut)

	ctx := context.Background()
	store, err := exampledb.OpenFor(ctx, db, exampledb.ReadOnly)
	require.NoError(t, err)
	defer store.DB().Close()
	v, err := middleware.New(middleware.Options{Store: store, FeedInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	defer v.Close()
	refusal := func(key string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-API-Key", key)
		_, err := v.Check(r, middleware.Policy{})
		if err == nil {
			return ""
		}
		return problem.Of(err).Code()
	}
	awaitRefusal := func(key, want string) {
		t.Helper()
		assert.Eventually(t, func() bool { return refusal(key) == want }, 5*time.Second, 5*time.Millisecond, "want %q", want)
	}
	require.Empty(t, refusal(extra.Reveal()), "cached before the changes")
	require.Empty(t, refusal(defaultKey.Reveal()))

	for _, tt := range []struct {
		name    string
		args    []string
		status  int
		out     string // in the text output, or the JSON error code
		refused string // the Validator's refusal of key afterwards
		key     string
	}{
		{"disable", []string{"--account", "acme", "disable", extra.Prefix()}, exitOK, extra.Prefix() + " disabled", "key_disabled", extra.Reveal()},
		{"disable again", []string{"--account", "acme", "disable", extra.ID()}, exitOK, "disabled", "key_disabled", extra.Reveal()},
		{"enable", []string{"--account", "acme", "enable", extra.Prefix()}, exitOK, extra.Prefix() + " active", "", extra.Reveal()},
		{"disable a default key", []string{"--account", "acme", "--json", "disable", defaultKey.Prefix()}, exitRefused, "rotate_first", "", defaultKey.Reveal()},
		{"disable another account's key", []string{"--account", "globex", "--json", "disable", extra.Prefix()}, exitRefused, "not_found", "", extra.Reveal()},
		{"suspend, not an operator", []string{"--account", "acme", "--json", "suspend", "acme"}, exitRefused, "role_not_allowed", "", defaultKey.Reveal()},
		{"suspend an unknown account", []string{"--account", "*", "--json", "suspend", "initech"}, exitRefused, "not_found", "", defaultKey.Reveal()},
		{"suspend", []string{"--account", "*", "suspend", "acme"}, exitOK, "acme suspended", "account_suspended", defaultKey.Reveal()},
		{"create while suspended", []string{"--account", "acme", "--json", "create", "production", "client"}, exitRefused, "account_suspended", "account_suspended", defaultKey.Reveal()},
		{"disable while suspended", []string{"--account", "acme", "--json", "disable", extra.Prefix()}, exitRefused, "account_suspended", "account_suspended", extra.Reveal()},
		{"list while suspended", []string{"--account", "acme", "list", "production"}, exitOK, extra.Prefix(), "account_suspended", defaultKey.Reveal()},
		{"resume", []string{"--account", "*", "--json", "resume", "acme"}, exitOK, `"suspended": false`, "", defaultKey.Reveal()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := keyctl(t, db, tt.args...)
			require.Equal(t, tt.status, code, "%s%s", out, errOut)
			if tt.status != exitOK {
				var doc struct {
					Error struct{ Code string } `json:"error"`
				}
				require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
				assert.Equal(t, tt.out, doc.Error.Code)
			} else {
				assert.Contains(t, out, tt.out)
			}
			awaitRefusal(tt.key, tt.refused)
		})
	}
	code, out, _ = keyctl(t, db, "--account", "acme", "audit", "--limit", "0")
	require.Equal(t, exitOK, code)
	for _, action := range []string{"disable", "enable", "suspend_account", "resume_account"} {
		assert.Contains(t, out, " "+action+" ", "audited")
	}
	assert.Equal(t, 1, strings.Count(out, " disable "), "disabling twice is one event")
	code, out, _ = keyctl(t, db, "--account", "acme", "get", extra.Prefix())
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "disabled     -")
}
