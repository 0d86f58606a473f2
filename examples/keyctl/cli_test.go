package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// runIn runs keyctl with exactly args (no -db added).
func runIn(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// dirFiles lists the names in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// commandNames are every command keyctl has.
var commandNames = []string{
	"bootstrap", "create", "import", "rotate", "grace", "revoke", "scopes", "origins", "owner", "metadata",
	"limits", "close", "reveal", "list", "get", "usage", "environments", "accounts", "audit", "help",
	"rename", "lifetime", "purge", "expiring",
	"disable", "enable", "suspend", "resume",
}

// TestKeyctlHelp: every way of asking for help prints usage on stdout,
// exits 0, and touches no database: the directory stays empty.
func TestKeyctlHelp(t *testing.T) {
	forms := [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}, {"--json", "-h"}, {"--actor", "ops", "help"}}
	for _, name := range commandNames {
		forms = append(forms, []string{"help", name}, []string{name, "-h"}, []string{name, "--help"})
	}
	forms = append(forms,
		[]string{"rotate", "production", "server", "--grace", "1h", "-h"},
		[]string{"list", "--help", "production"},
	)
	for _, args := range forms {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := t.TempDir()
			code, out, errOut := runIn(append([]string{"-db", filepath.Join(dir, "keystile.db")}, args...)...)
			assert.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "usage: keyctl")
			assert.Empty(t, errOut)
			assert.Empty(t, dirFiles(t, dir), "no database created")
		})
	}
	t.Run("a command's help names its flags and the global ones", func(t *testing.T) {
		code, out, _ := runIn("create", "-h")
		require.Equal(t, exitOK, code)
		for _, s := range []string{"create ENV server --scopes SCOPES", "--expires", "--name", "--db", "--actor", "--json"} {
			assert.Contains(t, out, s)
		}
	})
	t.Run("help for an unknown command", func(t *testing.T) {
		code, out, errOut := runIn("help", "launch")
		assert.Equal(t, exitUsage, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, `unknown command "launch"`)
	})
}

// TestKeyctlUsageErrors: no command or an unknown one prints the usage on
// stderr and exits 2, creating nothing.
func TestKeyctlUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"launch"}, {"--json-x"}, {"LIST", "production"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := t.TempDir()
			code, out, errOut := runIn(append([]string{"-db", filepath.Join(dir, "keystile.db")}, args...)...)
			assert.Equal(t, exitUsage, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "usage: keyctl")
			assert.Empty(t, dirFiles(t, dir), "no database created")
		})
	}
}

// TestUsageInDoc: the package documentation shows the usage text, line
// by line, as keyctl help prints it.
func TestUsageInDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	require.NoError(t, err)
	doc := f.Doc.Text()
	for _, line := range strings.Split(strings.TrimRight(usage, "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		assert.Contains(t, doc, "\t"+line+"\n", "the package doc lacks a line of the usage")
	}
	for _, name := range commandNames {
		cmd, ok := lookup(name)
		require.True(t, ok, name)
		for _, form := range cmd.forms {
			assert.Contains(t, usage, "\n  "+form+"\n", "the usage shows %s's form", name)
		}
	}
	assert.Len(t, commands, len(commandNames), "commandNames lists every command")
	g := defaultGlobals()
	fs := newFlagSet("keyctl")
	g.register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		assert.Contains(t, globalFlagsHelp, "\n  --"+f.Name+" ", "the usage lists the global flag %s", f.Name)
	})
}

// fixture is a database with the production environment bootstrapped.
type fixture struct {
	db             string
	server, client apikey.Key // production's default keys
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{db: filepath.Join(t.TempDir(), "keystile.db")}
	code, out, errOut := keyctl(t, f.db, "bootstrap", "production")
	require.Equal(t, exitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	f.server, f.client = issuedKey(t, lines[0]), issuedKey(t, lines[1])
	return f
}

// create makes an extra key and returns it.
func (f fixture) create(t *testing.T, args ...string) apikey.Key {
	t.Helper()
	code, out, errOut := keyctl(t, f.db, append([]string{"create", "production"}, args...)...)
	require.Equal(t, exitOK, code, errOut)
	return issuedKey(t, out)
}

// oneJSON decodes out, which must be exactly one JSON document.
func oneJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var doc map[string]any
	require.NoError(t, dec.Decode(&doc), "stdout: %q", out)
	_, err := dec.Token()
	require.ErrorIs(t, err, io.EOF, "one document only: %q", out)
	return doc
}

// TestKeyctlJSON: with --json, before or after the command, every command
// prints exactly one JSON document on stdout and nothing on stderr, with
// the fields documented in the usage; errors too, with the exit status
// they have without --json.
func TestKeyctlJSON(t *testing.T) {
	f := newFixture(t)
	extra := f.create(t, "server", "--scopes", "orders:read")
	spare := f.create(t, "server", "--scopes", "orders:read")
	labelled := f.create(t, "server", "--scopes", "orders:read")
	secrets := []apikey.Key{f.server, f.client, extra, spare, labelled}

	isView := func(t *testing.T, v any, prefix string) {
		t.Helper()
		view, ok := v.(map[string]any)
		require.True(t, ok, "a view: %v", v)
		if prefix != "" {
			assert.Equal(t, prefix, view["prefix"])
		}
		for _, field := range []string{"prefix", "id", "type", "environment", "status", "default", "created_at"} {
			assert.Contains(t, view, field)
		}
	}
	isIssued := func(t *testing.T, doc map[string]any) apikey.Key {
		t.Helper()
		full, _ := doc["full_key"].(string)
		k, err := apikey.ParseKey(full)
		require.NoError(t, err, "full_key is a key")
		isView(t, doc["view"], k.Prefix())
		secrets = append(secrets, k)
		return k
	}
	tests := []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, doc map[string]any)
	}{
		{"help", []string{"help"}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.Contains(t, doc["usage"], "usage: keyctl")
		}},
		{"command help", []string{"list", "-h"}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.Contains(t, doc["usage"], "keyctl [global flags] list ENV")
		}},
		{"bootstrap", []string{"bootstrap", "staging"}, exitOK, func(t *testing.T, doc map[string]any) {
			issued, ok := doc["issued"].([]any)
			require.True(t, ok)
			require.Len(t, issued, 2)
			for _, k := range issued {
				isIssued(t, k.(map[string]any))
			}
		}},
		{"bootstrap the built-ins: those missing", []string{"bootstrap", "--json"}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.Len(t, doc["issued"], 2, "development only")
		}},
		{"list", []string{"list", "production"}, exitOK, func(t *testing.T, doc map[string]any) {
			keys, ok := doc["keys"].([]any)
			require.True(t, ok)
			require.Len(t, keys, 5)
			var prefixes []any
			for _, k := range keys {
				isView(t, k, "")
				prefixes = append(prefixes, k.(map[string]any)["prefix"])
			}
			assert.ElementsMatch(t, []any{f.server.Prefix(), f.client.Prefix(), extra.Prefix(), spare.Prefix(), labelled.Prefix()}, prefixes)
		}},
		{"get", []string{"get", f.server.ID()}, exitOK, func(t *testing.T, doc map[string]any) {
			isView(t, doc, f.server.Prefix())
		}},
		{"create", []string{"create", "production", "client", "--name", "web"}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, apikey.Client, isIssued(t, doc).Type())
		}},
		{"rotate", []string{"rotate", f.server.Prefix(), "--grace", "1h"}, exitOK, func(t *testing.T, doc map[string]any) {
			isIssued(t, doc)
		}},
		{"grace", []string{"grace", f.server.Prefix(), "2h"}, exitOK, func(t *testing.T, doc map[string]any) {
			isView(t, doc, f.server.Prefix())
			assert.Equal(t, "expiring", doc["status"])
		}},
		{"revoke", []string{"revoke", extra.Prefix()}, exitOK, func(t *testing.T, doc map[string]any) {
			isView(t, doc, extra.Prefix())
			assert.Equal(t, "revoked", doc["status"])
		}},
		{"scopes", []string{"scopes", spare.Prefix(), "orders:write", "customers:read"}, exitOK, func(t *testing.T, doc map[string]any) {
			isView(t, doc, spare.Prefix())
			assert.Equal(t, []any{"customers:read", "orders:write"}, doc["scopes"])
		}},
		{"origins shown", []string{"origins", "production"}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "production", doc["environment"])
			assert.Equal(t, []any{}, doc["allowed_origins"], "an empty list, not null")
			assert.Contains(t, doc, "updated_at")
		}},
		{"origins set", []string{"origins", "production", "https://app.example.com"}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, []any{"https://app.example.com"}, doc["allowed_origins"])
		}},
		{"origins cleared", []string{"origins", "production", "--clear"}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, []any{}, doc["allowed_origins"])
		}},
		{"reveal", []string{"reveal", f.client.Prefix()}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.True(t, f.client.Equal(isIssued(t, doc)))
		}},
		{"environments", []string{"environments"}, exitOK, func(t *testing.T, doc map[string]any) {
			envs, ok := doc["environments"].([]any)
			require.True(t, ok)
			require.Len(t, envs, 3)
			assert.Equal(t, "development", envs[0].(map[string]any)["environment"])
		}},
		{"audit", []string{"audit", "production", "--limit", "3"}, exitOK, func(t *testing.T, doc map[string]any) {
			events, ok := doc["events"].([]any)
			require.True(t, ok)
			require.Len(t, events, 3)
			e := events[0].(map[string]any)
			assert.Equal(t, "reveal", e["action"])
			assert.Equal(t, f.client.Prefix(), e["prefix"])
			assert.Equal(t, f.client.ID(), e["key_id"])
			assert.Equal(t, map[string]any{"id": "keyctl", "role": "owner", "account": "default"}, e["actor"])
			assert.Equal(t, "default", e["account"])
		}},
		{"audit, unknown environment", []string{"audit", "--limit", "1", "qa"}, exitRefused, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "unknown_environment", doc["error"].(map[string]any)["code"])
		}},
		{"unknown environment", []string{"list", "qa"}, exitRefused, func(t *testing.T, doc map[string]any) {
			e := doc["error"].(map[string]any)
			assert.Equal(t, "unknown_environment", e["code"])
			assert.Contains(t, e["message"], "unknown environment")
		}},
		{"not revealable", []string{"reveal", f.server.Prefix()}, exitRefused, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "not_revealable", doc["error"].(map[string]any)["code"])
		}},
		{"not found", []string{"get", apikey.Prefix(apikey.Client, f.server.ID())}, exitRefused, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "not_found", doc["error"].(map[string]any)["code"])
		}},
		{"usage", []string{"launch"}, exitUsage, func(t *testing.T, doc map[string]any) {
			e := doc["error"].(map[string]any)
			assert.Equal(t, "usage", e["code"])
			assert.Contains(t, e["message"], "unknown command")
		}},
		{"grace required", []string{"rotate", f.client.Prefix()}, exitUsage, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "grace_required", doc["error"].(map[string]any)["code"])
		}},
		{"owner", []string{"owner", labelled.Prefix(), "user_42"}, exitOK, func(t *testing.T, doc map[string]any) {
			isView(t, doc, labelled.Prefix())
			assert.Equal(t, "user_42", doc["owner"])
		}},
		{"metadata", []string{"metadata", labelled.Prefix(), "plan=pro", "seats=5"}, exitOK, func(t *testing.T, doc map[string]any) {
			isView(t, doc, labelled.Prefix())
			assert.Equal(t, map[string]any{"plan": "pro", "seats": "5"}, doc["metadata"])
		}},
		{"accounts", []string{"--account", "*", "accounts"}, exitOK, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, []any{"default"}, doc["accounts"])
		}},
		{"accounts, not an operator", []string{"accounts"}, exitRefused, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "role_not_allowed", doc["error"].(map[string]any)["code"])
		}},
		{"close, another account", []string{"close", "globex"}, exitRefused, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "not_found", doc["error"].(map[string]any)["code"])
		}},
		{"no database", []string{"-db", filepath.Join(t.TempDir(), "typo.db"), "list", "production"}, exitStorage, func(t *testing.T, doc map[string]any) {
			e := doc["error"].(map[string]any)
			assert.Equal(t, "no_database", e["code"])
			assert.Contains(t, e["message"], "typo.db")
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// --json before the command, and after it, in turn.
			args := append([]string{"--json"}, tt.args...)
			if i%2 == 1 {
				args = append(append([]string(nil), tt.args...), "--json")
			}
			code, out, errOut := keyctl(t, f.db, args...)
			assert.Equal(t, tt.code, code, out)
			assert.Empty(t, errOut, "with --json, everything is on stdout")
			doc := oneJSON(t, out)
			tt.check(t, doc)
			if tt.code != exitOK {
				assert.Len(t, doc, 1, "an error document holds the error only")
			}
		})
	}
	t.Run("no secret but where a key is issued", func(t *testing.T) {
		for _, args := range [][]string{{"list", "production"}, {"audit", "--limit", "0"}, {"get", f.client.ID()}, {"environments"}} {
			_, out, _ := keyctl(t, f.db, append([]string{"--json"}, args...)...)
			for _, k := range secrets {
				assert.NotContains(t, out, k.Reveal()[apikey.PrefixLength:], "%v", args)
			}
		}
	})
}

// TestKeyctlMissingDatabase: only bootstrap creates a database. Every other
// command, given a path with no database (a typo), fails with exit status
// 3 and a message that says so, and leaves the directory as it was; so
// does a file that is not a keystile database, which stays unwritten.
func TestKeyctlMissingDatabase(t *testing.T) {
	const id = "AAAAAAAAAAAA"
	commands := [][]string{
		{"list", "production"},
		{"get", id},
		{"environments"},
		{"origins", "production"},
		{"audit"},
		{"audit", "production"},
		{"create", "production", "server", "--scopes", "orders:read"},
		{"create", "production", "client"},
		{"rotate", id, "--grace", "1h"},
		{"rotate", "production", "server", "--grace", "1h"},
		{"grace", id, "1h"},
		{"revoke", id},
		{"scopes", id, "orders:read"},
		{"origins", "production", "https://app.example.com"},
		{"origins", "production", "--clear"},
		{"reveal", id},
	}
	for _, args := range commands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "typo.db")
			code, out, errOut := keyctl(t, db, args...)
			assert.Equal(t, exitStorage, code, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "no keystile database at "+db+": the file does not exist")
			assert.Contains(t, errOut, "bootstrap", "says how to create one")
			assert.Empty(t, dirFiles(t, dir), "nothing created")

			require.NoError(t, os.WriteFile(db, nil, 0o600))
			code, _, errOut = keyctl(t, db, args...)
			assert.Equal(t, exitStorage, code, errOut)
			assert.Contains(t, errOut, "no keystile tables")
			assert.Equal(t, []string{"typo.db"}, dirFiles(t, dir), "nothing created")
			info, err := os.Stat(db)
			require.NoError(t, err)
			assert.Zero(t, info.Size(), "nothing written")
		})
	}
	t.Run("bootstrap creates it", func(t *testing.T) {
		dir := t.TempDir()
		db := filepath.Join(dir, "new.db")
		code, _, errOut := keyctl(t, db, "bootstrap", "Production")
		assert.Equal(t, exitRefused, code, errOut)
		assert.Empty(t, dirFiles(t, dir), "not for an invalid environment name")
		code, _, errOut = keyctl(t, db, "bootstrap", "production")
		assert.Equal(t, exitOK, code, errOut)
		assert.Contains(t, dirFiles(t, dir), "new.db")
		code, out, errOut := keyctl(t, db, "list", "production")
		assert.Equal(t, exitOK, code, errOut)
		assert.Contains(t, out, "server-")
	})
}

// TestKeyctlEnvironmentExitCodes: an environment that was never
// bootstrapped is a refusal, exit status 1, for every command that takes
// one; so is a name that is not a valid environment name. Neither is
// echoed.
func TestKeyctlEnvironmentExitCodes(t *testing.T) {
	f := newFixture(t)
	commands := []struct {
		name string
		args func(env string) []string
	}{
		{"list", func(env string) []string { return []string{"list", env} }},
		{"create server", func(env string) []string { return []string{"create", env, "server", "--scopes", "orders:read"} }},
		{"create client", func(env string) []string { return []string{"create", env, "client"} }},
		{"rotate", func(env string) []string { return []string{"rotate", env, "server", "--grace", "1h"} }},
		{"origins", func(env string) []string { return []string{"origins", env} }},
		{"origins set", func(env string) []string { return []string{"origins", env, "https://app.example.com"} }},
		{"origins clear", func(env string) []string { return []string{"origins", env, "--clear"} }},
		{"audit", func(env string) []string { return []string{"audit", env} }},
	}
	for _, c := range commands {
		for _, env := range []struct{ name, says string }{
			{"qa", "unknown environment"},
			{"Qa!", "invalid environment name"},
		} {
			t.Run(c.name+"/"+env.name, func(t *testing.T) {
				code, out, errOut := keyctl(t, f.db, c.args(env.name)...)
				assert.Equal(t, exitRefused, code, errOut)
				assert.Empty(t, out)
				assert.Contains(t, errOut, env.says)
			})
		}
	}
	code, _, errOut := keyctl(t, f.db, "bootstrap", "Qa!")
	assert.Equal(t, exitRefused, code, "bootstrap refuses an invalid name: %s", errOut)
	assert.NotContains(t, errOut, "Qa!")
}

// TestKeyctlAuditPrefixes: audit names keys by their displayable prefix,
// never by a bare key id, in text and in JSON.
func TestKeyctlAuditPrefixes(t *testing.T) {
	f := newFixture(t)
	code, out, _ := keyctl(t, f.db, "rotate", f.client.Prefix(), "--grace", "1h")
	require.Equal(t, exitOK, code)
	fresh := issuedKey(t, out)
	extra := f.create(t, "server", "--scopes", "orders:read")
	ids := map[string]string{f.server.ID(): f.server.Prefix(), f.client.ID(): f.client.Prefix(), fresh.ID(): fresh.Prefix(), extra.ID(): extra.Prefix()}

	code, out, errOut := keyctl(t, f.db, "audit")
	require.Equal(t, exitOK, code, errOut)
	for id, prefix := range ids {
		require.Contains(t, out, prefix)
		assert.Equal(t, strings.Count(out, id), strings.Count(out, prefix), "%s appears only in its prefix:\n%s", id, out)
	}
	assert.Contains(t, out, "KEY", "a KEY column")

	code, out, _ = keyctl(t, f.db, "--json", "audit")
	require.Equal(t, exitOK, code)
	events := oneJSON(t, out)["events"].([]any)
	require.Len(t, events, 5, "bootstrap 2, rotate 2 (the old key and its replacement), create 1")
	for _, e := range events {
		e := e.(map[string]any)
		assert.Equal(t, ids[e["key_id"].(string)], e["prefix"], "%v", e)
	}
}

// TestKeyctlReveal: reveal prints a publishable key again, as creation
// did, and audits it; a server key is refused with the reason (this
// program keeps no sealed copy) and how to get a new one; a revoked key is
// refused.
func TestKeyctlReveal(t *testing.T) {
	f := newFixture(t)
	code, out, errOut := keyctl(t, f.db, "reveal", f.client.Prefix())
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "production client "+f.client.Reveal()+"\n", out)

	code, out, errOut = keyctl(t, f.db, "reveal", f.server.ID())
	assert.Equal(t, exitRefused, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "stored only as a hash")
	assert.Contains(t, errOut, "rotate")

	extra := f.create(t, "client")
	code, _, _ = keyctl(t, f.db, "revoke", extra.Prefix())
	require.Equal(t, exitOK, code)
	code, out, errOut = keyctl(t, f.db, "reveal", extra.Prefix())
	assert.Equal(t, exitRefused, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "already revoked")

	_, out, _ = keyctl(t, f.db, "audit", "--limit", "3")
	assert.Contains(t, out, "reveal", "the reveal is audited")
}

// TestKeyctlScopes: scopes replaces the scopes of an extra server key; the
// default server key (which holds every scope) and publishable keys are
// refused, and so is an empty or invalid list.
func TestKeyctlScopes(t *testing.T) {
	f := newFixture(t)
	extra := f.create(t, "server", "--scopes", "orders:read")
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"replace", []string{extra.Prefix(), "orders:write", "customers:read"}, exitOK, "customers:read,orders:write"},
		{"comma-separated", []string{extra.ID(), "orders:read,billing:read"}, exitOK, "billing:read,orders:read"},
		{"full access", []string{extra.ID(), "*"}, exitOK, "*"},
		{"default key", []string{f.server.Prefix(), "orders:read"}, exitRefused, "holds every scope"},
		{"publishable key", []string{f.client.Prefix(), "orders:read"}, exitRefused, "carry no scopes"},
		{"invalid", []string{extra.Prefix(), "orders:delete"}, exitRefused, "invalid scope"},
		{"none", []string{extra.Prefix()}, exitUsage, "wrong number of arguments"},
		{"empty", []string{extra.Prefix(), ""}, exitRefused, "scopes required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := keyctl(t, f.db, append([]string{"scopes"}, tt.args...)...)
			assert.Equal(t, tt.code, code, errOut)
			assert.Contains(t, out+errOut, tt.says)
			if code == exitOK {
				_, got, _ := keyctl(t, f.db, "get", extra.Prefix())
				assert.Contains(t, got, tt.says, "get shows the scopes")
			}
		})
	}
}

// TestKeyctlGetAndEnvironments: get shows one key by its prefix, never its
// secret; environments lists the bootstrapped environments and their
// origins.
func TestKeyctlGetAndEnvironments(t *testing.T) {
	f := newFixture(t)
	code, out, errOut := keyctl(t, f.db, "get", f.server.Prefix())
	require.Equal(t, exitOK, code, errOut)
	for _, s := range []string{"prefix       " + f.server.Prefix(), "environment  production", "status       active", "default      true", "scopes       *"} {
		assert.Contains(t, out, s)
	}
	assert.NotContains(t, out, f.server.Reveal()[apikey.PrefixLength:])

	code, out, _ = keyctl(t, f.db, "environments")
	require.Equal(t, exitOK, code)
	assert.Equal(t, "ENVIRONMENT  ALLOWED ORIGINS\nproduction   (none)\n", out)
	code, _, _ = keyctl(t, f.db, "bootstrap", "staging")
	require.Equal(t, exitOK, code)
	code, _, _ = keyctl(t, f.db, "origins", "staging", "https://app.example.com", "http://localhost:3000")
	require.Equal(t, exitOK, code)
	_, out, _ = keyctl(t, f.db, "environments")
	assert.Equal(t, "ENVIRONMENT  ALLOWED ORIGINS\nproduction   (none)\nstaging      https://app.example.com http://localhost:3000\n", out)
}

// TestKeyctlNeverEchoes: a key pasted anywhere on the command line, where
// it does not belong, is refused without being printed back.
func TestKeyctlNeverEchoes(t *testing.T) {
	f := newFixture(t)
	secret := f.server.Reveal()
	piece := secret[apikey.PrefixLength+1 : apikey.PrefixLength+17]
	for i, args := range [][]string{
		{secret},
		{"list", "--" + secret},
		{"list", "-" + secret + "=1"},
		{"list", secret},
		{"get", secret},
		{"create", "production", "server", "--scopes", secret},
		{"create", "production", "server", "--scopes", "orders:read", "--expires", secret},
		{"create", "production", "server", "--scopes", "orders:read", "--name", secret},
		{"create", "production", secret},
		{"rotate", secret, "--grace", "1h"},
		{"rotate", f.server.ID(), "--grace", secret},
		{"grace", f.server.ID(), secret},
		{"scopes", f.server.ID(), secret},
		{"origins", "production", secret},
		{"audit", "--limit", secret},
		{"--actor", secret, "list", "production"},
		{"--db", filepath.Join(t.TempDir(), secret), "list", "production"},
		{"help", secret},
		{"--json=" + secret, "list", "production"},
		{"bootstrap", secret},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) { // not the arguments, which hold the key
			for _, json := range []bool{false, true} {
				a := args
				if json {
					a = append([]string{"--json"}, args...)
				}
				code, out, errOut := keyctl(t, f.db, a...)
				assert.NotEqual(t, exitOK, code)
				assert.NotContains(t, out+errOut, piece, "with --json: %v", json)
			}
		})
	}
	_, out, _ := keyctl(t, f.db, "list", "production")
	assert.NotContains(t, out, piece, "not stored as a name either")
}

// TestKeyctlBootstrapPartly: a bootstrap that fails after it issued keys
// still prints them, the only time they are shown, beside the error.
func TestKeyctlBootstrapPartly(t *testing.T) {
	f := newFixture(t)
	code, out, errOut := keyctl(t, f.db, "bootstrap", "qa", "production")
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, errOut, "already bootstrapped")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, "qa's keys")
	assert.True(t, strings.HasPrefix(lines[0], "qa server server-"), lines[0])
	issuedKey(t, lines[0])

	code, out, errOut = keyctl(t, f.db, "--json", "bootstrap", "uat", "production")
	assert.Equal(t, exitRefused, code)
	assert.Empty(t, errOut)
	doc := oneJSON(t, out)
	assert.Len(t, doc["issued"], 2, "uat's keys")
	assert.Equal(t, "already_bootstrapped", doc["error"].(map[string]any)["code"])

	code, out, _ = keyctl(t, f.db, "--json", "bootstrap", "production", "dev2")
	assert.Equal(t, exitRefused, code)
	assert.Len(t, oneJSON(t, out), 1, "the error only: nothing was issued")
	code, _, _ = keyctl(t, f.db, "list", "dev2")
	assert.Equal(t, exitRefused, code, "bootstrap stops at the first failure")
}
