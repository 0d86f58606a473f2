package apikey

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordHolder is a user's struct that holds records in every way fmt,
// slog and encoding/json can reach them: through unexported fields too,
// where fmt cannot call a Record's methods and prints its fields by
// reflection.
type recordHolder struct {
	r  Record
	R  Record
	p  *Record
	P  *Record
	s  []Record
	S  []Record
	m  map[string]Record
	M  map[string]Record
	i  any
	Pi any
}

// failures records what testify would report, for TestRecordNeverPrintsSecrets.
type failures struct{ bytes.Buffer }

func (f *failures) Errorf(format string, args ...any) { fmt.Fprintf(&f.Buffer, format, args...) }

// TestRecordNeverPrintsSecrets prints a publishable key's record, whose
// Recoverable is the full key in plaintext, inside a user's struct in every
// way, and finds neither the hash's salt or sum nor any 8 characters of the
// key past its displayable prefix (plain, in hex, or as decimal bytes); the
// key id shows wherever the record does (in hex for %x and %X), and the
// displayable prefix wherever fmt can call an exported Record's Format.
func TestRecordNeverPrintsSecrets(t *testing.T) {
	k, err := GenerateKey(Client)
	require.NoError(t, err)
	hash, err := Argon2id{Params: TestParams}.Hash([]byte(k.Reveal()))
	require.NoError(t, err)
	rec := Record{ID: k.ID(), Type: Client, Environment: "production", Hash: NewOpaque(hash), Recoverable: NewOpaque(k.Reveal()), Revision: 3}
	h := recordHolder{r: rec, R: rec, p: &rec, P: &rec, s: []Record{rec}, S: []Record{rec}, m: map[string]Record{"a": rec}, M: map[string]Record{"a": rec}, i: rec, Pi: rec}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs[verb] = fmt.Sprintf(verb, h)
		outputs["pointer "+verb] = fmt.Sprintf(verb, &h)
		outputs["slice "+verb] = fmt.Sprintf(verb, []recordHolder{h})
		outputs["anonymous "+verb] = fmt.Sprintf(verb, struct{ r Record }{rec})
	}
	outputs["Sprint"] = fmt.Sprint(h)
	outputs["Sprintln"] = fmt.Sprintln(h, &h)
	outputs["error"] = fmt.Errorf("holding %+v: %w", h, ErrForbidden).Error()
	for name, handler := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(handler(&b)).Info("holding", "holder", h, "pointer", &h, "anonymous", struct{ r Record }{rec})
		outputs[name] = b.String()
	}
	js, err := json.Marshal(h)
	require.NoError(t, err)
	outputs["json"] = string(js)
	var testify failures
	assert.Equal(&testify, h, recordHolder{})
	outputs["testify"] = testify.String()

	parts := strings.Split(hash, "$") // "", "argon2id", "v=19", params, salt, sum
	require.Len(t, parts, 6)
	salt, sum := parts[4], parts[5]
	full := k.Reveal()
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			lower := strings.ToLower(out)
			// Not require.NotContains, whose message would print the secret.
			for what, s := range map[string]string{"salt": salt, "sum": sum} {
				require.False(t, strings.Contains(out, s), "the hash's %s shown", what)
				require.False(t, strings.Contains(lower, hex.EncodeToString([]byte(s))), "the hash's %s shown in hex", what)
			}
			for i := PrefixLength - 7; i+8 <= len(full); i++ {
				part := full[i : i+8]
				decimal := strings.Trim(fmt.Sprint([]byte(part)), "[]")
				require.False(t, strings.Contains(out, part), "characters %d to %d of the recoverable key shown", i, i+8)
				require.False(t, strings.Contains(lower, hex.EncodeToString([]byte(part))), "characters %d to %d of the recoverable key shown in hex", i, i+8)
				require.False(t, strings.Contains(out, decimal), "characters %d to %d of the recoverable key shown as bytes", i, i+8)
			}
			shown := strings.Contains(out, k.ID()) || strings.Contains(lower, hex.EncodeToString([]byte(k.ID())))
			assert.True(t, shown, "the key id shows: %s", out)
			if strings.HasPrefix(name, "anonymous") || strings.Contains(name, "json") || name == "testify" {
				return // no exported Record whose methods fmt could call
			}
			prefix := k.Prefix()
			shown = strings.Contains(out, prefix) || strings.Contains(lower, hex.EncodeToString([]byte(prefix)))
			assert.True(t, shown, "the displayable prefix shows: %s", out)
		})
	}
}
