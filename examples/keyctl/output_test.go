package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

func TestVisible(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"billing worker", "billing worker"},
		{"Zürich 東京 ✓", "Zürich 東京 ✓"},
		{"https://app.example.com:8443", "https://app.example.com:8443"},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\a`},
		{"\x1b[2J", `\x1b[2J`},
		{"a\nserver-fake row", `a\nserver-fake row`},
		{"a\tb\rc\vd\fe\x00f", `a\tb\rc\vd\fe\x00f`},
		{"\x7f", `\x7f`},
		{"\u0085\u009b1m", `\u0085\u009b1m`},                     // C1: NEL, CSI
		{"\u202eevil\u202c", `\u202eevil\u202c`},                 // RLO ... PDF
		{"\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`}, // isolates
		{"\u202a\u202b\u202d", `\u202a\u202b\u202d`},
		{"\u200b\u200e\u200f\ufeff", `\u200b\u200e\u200f\ufeff`}, // invisible
		{"\u2028\u2029", `\u2028\u2029`},                         // line and paragraph separators
		{"\u00a0", `\u00a0`},                                     // a space that is not one
		{"\U000e0041", `\U000e0041`},                             // a tag character
		{"bad\xffutf8\xc3", `bad\xffutf8\xc3`},
		{"\ufffd", "\ufffd"},          // the replacement character itself is printable
		{`back\slash`, `back\\slash`}, // so that an escape is never ambiguous
		{`\x1b`, `\\x1b`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := visible(tt.in)
			assert.Equal(t, tt.want, got)
			assertPrintable(t, got)
		})
	}
}

func TestJSONVisible(t *testing.T) {
	for _, s := range []string{
		"plain", "\x1b]0;pwned\x07", "\x7f", "\u0085\u009b", "\u202e", "\u2028\u2029", "\U000e0041",
		"\ufeff", "東京", "bad\xff",
	} {
		t.Run(visible(s), func(t *testing.T) {
			doc, err := jsonDocument(map[string]string{"name": s}, nil, "")
			require.NoError(t, err)
			assertPrintable(t, string(doc))
			var back map[string]string
			require.NoError(t, json.Unmarshal(doc, &back))
			assert.Equal(t, strings.ToValidUTF8(s, "\ufffd"), back["name"], "the same string, escaped")
		})
	}
}

// assertPrintable fails if out holds a rune a terminal could act on: only
// printable runes, spaces and newlines pass.
func assertPrintable(t *testing.T, out string) {
	t.Helper()
	require.True(t, utf8.ValidString(out), "UTF-8: %q", out)
	for i, r := range out {
		if r == '\n' || r == ' ' {
			continue
		}
		if !visibleRune(r) {
			assert.Failf(t, "a rune a terminal acts on", "%U at byte %d of %q", r, i, out)
			return
		}
	}
}

// visibleRune is the test's own definition of what a terminal shows as
// it is: letters, marks, numbers, punctuation and symbols, no control,
// format, separator or private-use rune.
func visibleRune(r rune) bool {
	return r > 0x20 && r != 0x7f && !(r >= 0x80 && r <= 0xa0) &&
		!(r >= 0x2000 && r <= 0x200f) && !(r >= 0x2028 && r <= 0x202f) &&
		!(r >= 0x2060 && r <= 0x206f) && r != 0xfeff && !(r >= 0xe0000 && r <= 0xe007f) &&
		!(r >= 0xe000 && r <= 0xf8ff)
}

// TestKeyctlEscapesTenantText: text that a tenant wrote (a key's name,
// owner, metadata and scopes, an environment's name and origins, an
// account's id, an audit event's actor and detail) is printed with its
// control characters, bidi overrides and line breaks escaped, so that it
// can neither drive the operator's terminal nor forge a row or a column:
// each table has one line per row of its JSON document. The text is
// written straight into the store, past the Manager's checks, as a store
// written by another program, or before those checks existed, holds it.
func TestKeyctlEscapesTenantText(t *testing.T) {
	for _, hostile := range []string{
		"\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "a\nserver-fake row", "\u202eevil", "tab\tcolumn",
		"\u009b31mred", "cr\roverwrite", "\u2028line",
	} {
		t.Run(visible(hostile), func(t *testing.T) {
			f := newFixture(t)
			extra := f.create(t, "server", "--scopes", "orders:read", "--name", "x")
			plant(t, f.db, extra.ID(), hostile)
			escaped := visible(hostile)

			tables := []struct {
				args []string
				// rows counts the rows of the JSON document.
				rows func(doc map[string]any) int
				// header is the number of lines above the rows.
				header int
			}{
				{[]string{"list", "production"}, count("keys"), 1},
				{[]string{"get", extra.ID()}, func(map[string]any) int { return 19 }, 0}, // 16 fields, rate, quota, allowed ips
				{[]string{"environments"}, count("environments"), 1},
				{[]string{"origins", "production"}, count("allowed_origins"), 0},
				{[]string{"--account", "*", "accounts"}, count("accounts"), 0},
				{[]string{"audit"}, count("events"), 1},
			}
			for _, tt := range tables {
				t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
					code, out, errOut := keyctl(t, f.db, append([]string{"--json"}, tt.args...)...)
					require.Equal(t, exitOK, code, errOut)
					assertPrintable(t, out)
					doc := oneJSON(t, out)
					assert.True(t, holds(doc, hostile), "the JSON document holds the text as written:\n%s", out)

					code, out, errOut = keyctl(t, f.db, tt.args...)
					require.Equal(t, exitOK, code, errOut)
					assertPrintable(t, out)
					assert.NotContains(t, out, hostile)
					assert.GreaterOrEqual(t, strings.Count(out, escaped), 1, "the text is shown escaped:\n%s", out)
					lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
					assert.Len(t, lines, tt.header+tt.rows(doc), "one line per row:\n%s", out)
				})
			}
		})
	}
}

// count returns the number of items of doc's list field.
func count(field string) func(doc map[string]any) int {
	return func(doc map[string]any) int {
		list, _ := doc[field].([]any)
		return len(list)
	}
}

// holds reports whether a string of the decoded JSON value v holds s.
func holds(v any, s string) bool {
	switch v := v.(type) {
	case string:
		return strings.Contains(v, s)
	case []any:
		for _, item := range v {
			if holds(item, s) {
				return true
			}
		}
	case map[string]any:
		for _, item := range v {
			if holds(item, s) {
				return true
			}
		}
	}
	return false
}

// plant writes hostile into every tenant-written field that keyctl prints:
// the name, owner, metadata and a scope of key id; an origin of
// production; an environment of its own and an account of its own; and
// an audit event's actor and detail.
func plant(t *testing.T, db, id, hostile string) {
	t.Helper()
	ctx := context.Background()
	store, err := exampledb.OpenFor(ctx, db, exampledb.Migrate)
	require.NoError(t, err)
	defer store.DB().Close()

	r, err := store.Key(ctx, id)
	require.NoError(t, err)
	r.Name, r.Owner, r.Metadata = hostile, hostile, map[string]string{"note": hostile}
	r.Scopes = append(r.Scopes, hostile)
	s, err := store.Settings(ctx, apikey.DefaultAccount, "production")
	require.NoError(t, err)
	s.AllowedOrigins = []string{hostile}
	now := r.CreatedAt
	require.NoError(t, store.Apply(ctx, apikey.Change{
		Update: []apikey.Record{r},
		Settings: []apikey.Settings{
			s,
			{Account: apikey.DefaultAccount, Environment: hostile, UpdatedAt: now},
			{Account: hostile, Environment: "production", UpdatedAt: now},
		},
		Events: []apikey.Event{{
			Time: now, Actor: apikey.Actor{ID: hostile, Role: apikey.Owner}, Action: apikey.Action("key.renamed"),
			Account: apikey.DefaultAccount, Environment: "production", KeyID: id, KeyType: apikey.Server, Detail: hostile,
		}},
	}))
}

// FuzzVisible: whatever a tenant wrote, visible prints only runes a
// terminal shows as they are, on one line, and loses nothing: its output
// reads back, as a Go string literal, to the input, byte for byte.
func FuzzVisible(f *testing.F) {
	for _, s := range []string{"", "name", "\x1b]0;pwned\x07", "a\nb", "\u202e", `\x1b`, "\xff\xc3", "東京\u0085"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := visible(s)
		assertPrintable(t, out)
		require.NotContains(t, out, "\n")
		back, err := strconv.Unquote(`"` + strings.ReplaceAll(out, `"`, `\"`) + `"`)
		require.NoError(t, err, "%q", out)
		require.Equal(t, s, back)
	})
}
