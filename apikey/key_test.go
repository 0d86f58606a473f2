package apikey

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateKey(t *testing.T) {
	for _, typ := range []KeyType{Server, Client} {
		t.Run(string(typ), func(t *testing.T) {
			seen := map[string]bool{}
			for range 200 {
				k, err := GenerateKey(typ)
				require.NoError(t, err)
				full := k.Reveal()
				assert.Len(t, full, KeyLength)
				assert.True(t, strings.HasPrefix(full, string(typ)+"-"))
				assert.Equal(t, typ, k.Type())
				assert.Len(t, k.ID(), IDLength)
				assert.Equal(t, string(typ)+"-"+k.ID(), k.Prefix())
				assert.True(t, KeyRegexp.MatchString(full), "the published pattern matches %s", k)
				parsed, err := ParseKey(full)
				require.NoError(t, err)
				assert.True(t, k.Equal(parsed), "parses back to the same key")
				assert.False(t, seen[full], "keys repeat")
				seen[full] = true
			}
		})
	}
	_, err := GenerateKey("admin")
	assert.ErrorIs(t, err, ErrInvalidKeyType)
}

// TestSecretAlphabetUniform checks that secret characters cover the whole
// alphabet with no gross bias (rejection sampling works).
func TestSecretAlphabetUniform(t *testing.T) {
	counts := map[byte]int{}
	for range 2000 {
		k, err := GenerateKey(Server)
		require.NoError(t, err)
		secret := k.Reveal()[7+IDLength+1 : KeyLength-ChecksumLength]
		for i := 0; i < len(secret); i++ {
			counts[secret[i]]++
		}
	}
	require.Len(t, counts, 62)
	expected := 2000 * SecretLength / 62
	for c, n := range counts {
		assert.InDelta(t, expected, n, float64(expected)*0.2, "character %q", c)
	}
}

func TestParseKeyRejects(t *testing.T) {
	k, err := GenerateKey(Server)
	require.NoError(t, err)
	good := k.Reveal()
	flip := func(i int) string {
		b := []byte(good)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"empty", "", ErrMalformedKey},
		{"too short", good[:len(good)-1], ErrMalformedKey},
		{"too long", good + "a", ErrMalformedKey},
		{"unknown prefix", "secret" + good[6:], ErrMalformedKey},
		{"upper-case prefix", "SERVER" + good[6:], ErrMalformedKey},
		{"separator replaced", good[:7+IDLength] + "-" + good[7+IDLength+1:], ErrMalformedKey},
		{"symbol in secret", good[:30] + "+" + good[31:], ErrMalformedKey},
		{"space in id", good[:10] + " " + good[11:], ErrMalformedKey},
		{"non-ASCII", good[:30] + "é" + good[32:], ErrMalformedKey},
		{"changed id", flip(8), ErrBadChecksum},
		{"changed secret", flip(40), ErrBadChecksum},
		{"changed checksum", flip(KeyLength - 1), ErrBadChecksum},
		{"type swapped", "client" + good[6:], ErrBadChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.input)
			require.ErrorIs(t, err, tt.want)
			if len(tt.input) > 20 {
				assert.NotContains(t, err.Error(), tt.input[20:], "errors never echo the input")
			}
		})
	}
}

func TestPatternRejectsNearMisses(t *testing.T) {
	k, err := GenerateKey(Client)
	require.NoError(t, err)
	good := k.Reveal()
	assert.Equal(t, []string{good}, KeyRegexp.FindAllString("export KEY="+good+"\n", -1), "found inside text")
	assert.Equal(t, []string{good}, KeyRegexp.FindAllString(`{"key":"`+good+`"}`, -1), "found inside JSON")
	for name, miss := range map[string]string{
		"one short":      good[:len(good)-1],
		"one long":       good + "x",
		"other prefix":   "public" + good[6:],
		"no separator":   good[:19] + "x" + good[20:],
		"symbol inside":  good[:40] + "*" + good[41:],
		"glued to word":  "x" + good,
		"glued after id": good[:19] + "_x" + good[20:],
	} {
		assert.False(t, KeyRegexp.MatchString(miss), name)
	}
}

func TestKeyRedaction(t *testing.T) {
	k, err := GenerateKey(Server)
	require.NoError(t, err)
	secret := k.Reveal()[7+IDLength+1:]
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("issued", "key", k)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("issued", "key", k, "record", Record{ID: k.ID(), Type: Server, Hash: NewOpaque("$argon2id$secret-hash")})
	js, err := json.Marshal(map[string]any{"key": k, "record": Record{ID: k.ID(), Type: Server, Hash: NewOpaque("$argon2id$secret-hash"), Recoverable: NewOpaque(k.Reveal())}})
	require.NoError(t, err)
	outputs := map[string]string{
		"String":  k.String(),
		"%v":      fmt.Sprintf("%v", k),
		"%+v":     fmt.Sprintf("%+v", k),
		"%#v":     fmt.Sprintf("%#v", k),
		"%s":      fmt.Sprintf("%s", k),
		"%q":      fmt.Sprintf("%q", k),
		"%x":      fmt.Sprintf("%x", k),
		"struct":  fmt.Sprintf("%+v", struct{ K Key }{k}),
		"pointer": fmt.Sprintf("%v", &k),
		"error":   fmt.Errorf("failed for %v: %w", k, ErrForbidden).Error(),
		"slog":    logged.String(),
		"json":    string(js),
		"record":  fmt.Sprintf("%+v %#v", Record{ID: k.ID(), Type: Server, Hash: NewOpaque("$argon2id$secret-hash")}, Record{ID: k.ID(), Type: Server}),
	}
	for name, out := range outputs {
		assert.NotContains(t, out, secret, name)
		assert.NotContains(t, out, "secret-hash", name)
		assert.Contains(t, out, k.Prefix(), name)
	}
}

// keyHolder is a user's struct that holds keys in every way fmt, slog and
// encoding/json can reach them: through unexported fields too, where fmt
// cannot call a Key's methods and prints its fields by reflection.
type keyHolder struct {
	k  Key
	K  Key
	p  *Key
	P  *Key
	s  []Key
	S  []Key
	m  map[string]Key
	M  map[string]Key
	i  any
	Pi any
}

// TestKeyNeverPrintsSecret prints keys inside a user's struct in every
// way, and finds neither the secret nor any part of it (plain or in hex),
// and the displayable prefix wherever the key shows.
func TestKeyNeverPrintsSecret(t *testing.T) {
	k, err := GenerateKey(Server)
	require.NoError(t, err)
	h := keyHolder{k: k, K: k, p: &k, P: &k, s: []Key{k}, S: []Key{k}, m: map[string]Key{"a": k}, M: map[string]Key{"a": k}, i: k, Pi: k}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs[verb] = fmt.Sprintf(verb, h)
		outputs["pointer "+verb] = fmt.Sprintf(verb, &h)
		outputs["slice "+verb] = fmt.Sprintf(verb, []keyHolder{h})
		outputs["anonymous "+verb] = fmt.Sprintf(verb, struct{ k Key }{k})
	}
	outputs["Sprint"] = fmt.Sprint(h)
	outputs["Sprintln"] = fmt.Sprintln(h, &h)
	outputs["error"] = fmt.Errorf("holding %+v: %w", h, ErrForbidden).Error()
	for name, handler := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(handler(&b)).Info("holding", "holder", h, "pointer", &h, "group", slog.GroupValue(slog.Any("k", k)))
		outputs[name] = b.String()
	}
	js, err := json.Marshal(h)
	require.NoError(t, err)
	outputs["json"] = string(js)

	full := k.Reveal()
	secret := full[PrefixLength:]
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			for i := 0; i+8 <= len(secret); i++ {
				part := secret[i : i+8]
				// Not require.NotContains, whose message would print the secret.
				require.False(t, strings.Contains(out, part), "characters %d to %d of the secret shown", i, i+8)
				require.False(t, strings.Contains(strings.ToLower(out), hex.EncodeToString([]byte(part))), "characters %d to %d of the secret shown in hex", i, i+8)
			}
			prefix := k.Prefix()
			shown := strings.Contains(out, prefix) || strings.Contains(strings.ToLower(out), hex.EncodeToString([]byte(prefix)))
			assert.True(t, shown, "the prefix shows: %s", out)
		})
	}
}

// TestKeyEqual checks Equal, the way to compare keys: == compares where
// the key string is held, not what it says.
func TestKeyEqual(t *testing.T) {
	k, err := GenerateKey(Client)
	require.NoError(t, err)
	full := k.Reveal()
	copied, err := ParseKey(string([]byte(full)))
	require.NoError(t, err)
	wrong, err := AssembleKey(Client, k.ID(), strings.Repeat("w", SecretLength))
	require.NoError(t, err)
	other, err := GenerateKey(Client)
	require.NoError(t, err)
	tests := []struct {
		name string
		a, b Key
		want bool
	}{
		{"itself", k, k, true},
		{"a copy of the string", k, copied, true},
		{"same id, other secret", k, wrong, false},
		{"other key", k, other, false},
		{"zero and key", Key{}, k, false},
		{"key and zero", k, Key{}, false},
		{"zero and zero", Key{}, Key{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.a.Equal(tt.b))
			assert.Equal(t, tt.want, tt.b.Equal(tt.a))
		})
	}
}

// TestKeyAllocs keeps the hot path free of allocations: ParseKey runs on
// every request, before the cache lookup.
func TestKeyAllocs(t *testing.T) {
	k, err := GenerateKey(Server)
	require.NoError(t, err)
	s := k.Reveal()
	other, err := GenerateKey(Server)
	require.NoError(t, err)
	var sink Key
	var str string
	for name, fn := range map[string]func(){
		"ParseKey": func() { sink, _ = ParseKey(s) },
		"Reveal":   func() { str = k.Reveal() },
		"ID":       func() { str = k.ID() },
		"Prefix":   func() { str = k.Prefix() },
		"Type":     func() { _ = k.Type() },
		"Equal":    func() { _ = k.Equal(other) },
		"IsZero":   func() { _ = k.IsZero() },
	} {
		assert.Zero(t, testing.AllocsPerRun(100, fn), name)
	}
	assert.False(t, sink.IsZero())
	assert.NotEmpty(t, str)
}

func TestZeroKey(t *testing.T) {
	var k Key
	assert.True(t, k.IsZero())
	assert.Equal(t, "", k.ID())
	assert.Equal(t, "", k.Prefix())
	assert.Equal(t, "", fmt.Sprint(k))
}

func FuzzParseKey(f *testing.F) {
	for _, typ := range []KeyType{Server, Client} {
		k, err := GenerateKey(typ)
		require.NoError(f, err)
		f.Add(k.Reveal())
		f.Add(k.Reveal()[:KeyLength-1] + "0")
	}
	f.Add("")
	f.Add("server-")
	f.Add(strings.Repeat("a", KeyLength))
	f.Add("server-" + strings.Repeat("\xff", KeyLength-7))
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedKey) && !errors.Is(err, ErrBadChecksum) {
				t.Fatalf("unexpected error %v", err)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error echoes input")
			}
			return
		}
		if k.Reveal() != s || !KeyRegexp.MatchString(s) || !k.Type().Valid() {
			t.Fatalf("accepted key %q does not round-trip or match the pattern", s)
		}
	})
}

func TestParseKeyID(t *testing.T) {
	k, err := GenerateKey(Client)
	require.NoError(t, err)
	id := k.ID()
	tests := []struct {
		name   string
		input  string
		wantID string
		typ    KeyType
		says   string // in the error, when the input is refused
	}{
		{"key id", id, id, "", ""},
		{"server prefix", "server-" + id, id, Server, ""},
		{"client prefix", "client-" + id, id, Client, ""},
		{"digits only", "012345678901", "012345678901", "", ""},
		{"empty", "", "", "", "want a key id"},
		{"full key", k.Reveal(), "", "", "a full key"},
		{"full key, wrong checksum", k.Reveal()[:KeyLength-1] + "?", "", "", "a full key"},
		{"key id and secret", k.Reveal()[len("client-"):], "", "", "a full key"},
		{"prefix and part of the secret", k.Reveal()[:PrefixLength+5], "", "", "a full key"},
		{"prefix twice", "server-client-" + id, "", "", "want a key id"},
		{"prefix without id", "client-", "", "", "want a key id"},
		{"upper-case prefix", "CLIENT-" + id, "", "", "want a key id"},
		{"unknown prefix", "public-" + id, "", "", "want a key id"},
		{"short", id[1:], "", "", "want a key id"},
		{"long", id + "a", "", "", "want a key id"},
		{"symbol", id[:11] + "-", "", "", "want a key id"},
		{"space", id[:11] + " ", "", "", "want a key id"},
		{"NUL", id[:11] + "\x00", "", "", "want a key id"},
		{"non-ASCII", id[:10] + "é", "", "", "want a key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, typ, err := ParseKeyID(tt.input)
			if tt.says == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.wantID, gotID)
				assert.Equal(t, tt.typ, typ)
				return
			}
			require.ErrorIs(t, err, ErrInvalidKeyID)
			assert.Contains(t, err.Error(), tt.says)
			assert.Empty(t, gotID)
			assert.Empty(t, typ)
			if len(tt.input) >= IDLength {
				assert.NotContains(t, err.Error(), tt.input[len(tt.input)-IDLength:], "errors never echo the input")
			}
		})
	}
}

func FuzzParseKeyID(f *testing.F) {
	k, err := GenerateKey(Server)
	require.NoError(f, err)
	for _, s := range []string{k.ID(), k.Prefix(), "client-" + k.ID(), k.Reveal(), "", "server-", "server-client-" + k.ID(), k.ID() + "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, typ, err := ParseKeyID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidKeyID) || id != "" || typ != "" {
				t.Fatalf("refusal %v with id %q and type %q", err, id, typ)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error echoes input")
			}
			return
		}
		if len(id) != IDLength || (typ != "" && !typ.Valid()) {
			t.Fatalf("accepted %q as id %q, type %q", s, id, typ)
		}
		for i := range len(id) {
			if !isBase62[id[i]] {
				t.Fatalf("accepted %q as id %q", s, id)
			}
		}
		if want := Prefix(typ, id); typ == "" && s != id || typ != "" && s != want {
			t.Fatalf("accepted %q, which is neither id %q nor prefix %q", s, id, want)
		}
	})
}

func BenchmarkParseKey(b *testing.B) {
	k, err := GenerateKey(Server)
	require.NoError(b, err)
	s := k.Reveal()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseKey(s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestChecksumIsCRC32C(t *testing.T) {
	for _, s := range []string{"", "a", "server-abc_def", strings.Repeat("xyz", 30)} {
		assert.Equal(t, crc32.Checksum([]byte(s), crc32.MakeTable(crc32.Castagnoli)), checksum(s), s)
	}
	var digits []byte
	for _, sum := range []uint32{0, 1, 61, 62, 0xFFFFFFFF, 0x12345678} {
		digits = appendChecksum(digits[:0], sum)
		got, ok := decodeChecksum(string(digits))
		assert.True(t, ok)
		assert.Equal(t, sum, got)
	}
	_, ok := decodeChecksum("zzzzzz")
	assert.False(t, ok, "62^6 > 2^32: values above 32 bits are not checksums")
}

func TestAssembleKey(t *testing.T) {
	k, err := GenerateKey(Server)
	require.NoError(t, err)
	full := k.Reveal()
	again, err := AssembleKey(Server, k.ID(), full[7+IDLength+1:KeyLength-ChecksumLength])
	require.NoError(t, err)
	assert.True(t, k.Equal(again), "the same key")
	wrong, err := AssembleKey(Server, k.ID(), strings.Repeat("w", SecretLength))
	require.NoError(t, err)
	assert.Equal(t, k.ID(), wrong.ID())
	assert.NotEqual(t, full, wrong.Reveal())
	for _, bad := range []struct{ id, secret string }{{"short", strings.Repeat("a", SecretLength)}, {k.ID(), "short"}, {k.ID(), strings.Repeat("-", SecretLength)}} {
		_, err := AssembleKey(Client, bad.id, bad.secret)
		assert.ErrorIs(t, err, ErrMalformedKey)
	}
	_, err = AssembleKey("root", k.ID(), strings.Repeat("a", SecretLength))
	assert.ErrorIs(t, err, ErrInvalidKeyType)
}

// TestErrorsNeverEchoInput passes a key where other input belongs: no error
// text may show any of its secret.
func TestErrorsNeverEchoInput(t *testing.T) {
	k, err := GenerateKey(Server)
	require.NoError(t, err)
	full := k.Reveal()
	secret := full[7+IDLength+1:]
	_, errOrigin := ParseOrigin(full)
	_, errOrigins := ValidateOrigins([]string{"https://ok.example.com", "https://" + full})
	_, errScopes := ValidateScopes(Server, []string{full})
	errs := []error{
		ValidateEnvironment(full),
		ValidateEnvironment(secret),
		errOrigin,
		errOrigins,
		errScopes,
		ValidateScope(full + ":read"),
		authorize(Actor{Role: Role(full)}, ActionView),
	}
	for i, err := range errs {
		require.Error(t, err, i)
		for j := 0; j+8 <= len(secret); j++ {
			require.NotContains(t, err.Error(), secret[j:j+8], "error %d: %v", i, err)
		}
	}
	assert.Contains(t, errOrigins.Error(), "entry 2", "the entry is named by position")
}
