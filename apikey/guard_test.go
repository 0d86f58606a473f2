package apikey_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// keyParts splits a generated key into the pieces a person might paste.
type keyParts struct {
	full, prefix, id, secret, secretAndChecksum string
}

func splitKey(t testing.TB, k apikey.Key) keyParts {
	t.Helper()
	full := k.Reveal()
	rest := full[apikey.PrefixLength+1:]
	require.Len(t, rest, apikey.SecretLength+apikey.ChecksumLength)
	return keyParts{full: full, prefix: k.Prefix(), id: k.ID(), secret: rest[:apikey.SecretLength], secretAndChecksum: rest}
}

// rebuildable are values from which a key (parts p) could be rebuilt:
// each is refused in a name, an owner and a metadata value.
func rebuildable(p keyParts) map[string]string {
	return map[string]string{
		"full key":                     p.full,
		"full key in a sentence":       "the key is " + p.full + ", keep it safe",
		"secret and checksum":          p.secretAndChecksum,
		"bare secret":                  p.secret,
		"secret cut by three":          p.secret[:apikey.SecretLength-3],
		"api_secret=":                  "api_secret=" + p.secret,
		"api_secret: with a space":     "api_secret: " + p.secretAndChecksum,
		"prefix colon secret":          p.prefix + ":" + p.secret,
		"prefix slash secret":          p.prefix + "/" + p.secretAndChecksum,
		"prefix space secret":          p.prefix + " " + p.secretAndChecksum,
		"id and secret":                p.id + "." + p.secret,
		"secret in a URL":              "https://example.com/cb?token=" + p.secret + "&x=1",
		"secret in JSON":               `{"secret":"` + p.secret + `"}`,
		"secret glued to a word":       "backup" + p.secret,
		"secret and checksum, dash":    "k-" + p.secretAndChecksum + "-end",
		"secret after unicode letters": "Schlüssel " + p.secret,
	}
}

// accepted are ordinary values that are never refused.
var accepted = map[string]string{
	"empty":                   "",
	"name":                    "billing worker",
	"unicode":                 "Müller's key 🔑 日本",
	"email":                   "alice.mueller+keys@example.com",
	"UUID":                    "123e4567-e89b-12d3-a456-426614174000",
	"UUID upper":              "123E4567-E89B-12D3-A456-426614174000",
	"SHA-1 hex":               "da39a3ee5e6b4b0d3255bfef95601890afd80709",
	"SHA-256 hex":             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"SHA-256 hex upper":       "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
	"sha256: prefixed":        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"SHA-512 hex":             strings.Repeat("cf83e1357eefb8bd", 8),
	"EIP-55 address":          "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
	"URL":                     "https://api.example.com/v1/customers/cus_123/invoices?limit=10&starting_after=in_1Abc",
	"URL with a long path":    "https://example.com/" + strings.Repeat("segment/", 12),
	"displayable prefix":      "server-0123456789ab",
	"Stripe-like id":          "cus_NffrFeUfNV2Hib",
	"long lower-case word":    "pneumonoultramicroscopicsilicovolcanoconiosis",
	"long number":             strings.Repeat("1234567890", 6),
	"sentence":                "Issued to the nightly export job of the EU billing team; rotate quarterly.",
	"ULID":                    "01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"thirty-nine mixed chars": "Ab" + strings.Repeat("c", 37),
}

// TestKeyShapeGuard: names, owners and metadata values refuse every value
// from which a key could be rebuilt and accept ordinary values; refusals
// never repeat the value.
func TestKeyShapeGuard(t *testing.T) {
	fields := map[string]struct {
		check func(string) error
		err   error
	}{
		"name":     {apikey.ValidateName, apikey.ErrInvalidName},
		"owner":    {apikey.ValidateOwner, apikey.ErrInvalidMetadata},
		"metadata": {func(v string) error { _, err := apikey.ValidateMetadata(map[string]string{"note": v}); return err }, apikey.ErrInvalidMetadata},
	}
	for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
		key, err := apikey.GenerateKey(typ)
		require.NoError(t, err)
		p := splitKey(t, key)
		for name, value := range rebuildable(p) {
			for field, f := range fields {
				t.Run(fmt.Sprintf("refused/%s/%s/%s", typ, name, field), func(t *testing.T) {
					err := f.check(value)
					require.ErrorIs(t, err, f.err)
					assert.Contains(t, err.Error(), "looks like it holds an API key")
					assert.NotContains(t, err.Error(), p.secret[:20], "the value is never repeated")
				})
			}
		}
	}
	for name, value := range accepted {
		for field, f := range fields {
			t.Run("accepted/"+name+"/"+field, func(t *testing.T) {
				assert.NoError(t, f.check(value), "%q", value)
			})
		}
	}
}

// TestKeyShapeGuardRates measures the guard on many values: every one of
// 20,000 generated secrets is refused (a secret of one letter case, about
// one in a billion, would pass), and none of 20,000 random hex digests,
// UUIDs and URLs built from them is.
func TestKeyShapeGuardRates(t *testing.T) {
	missed := 0
	for range 20000 {
		key, err := apikey.GenerateKey(apikey.Server)
		require.NoError(t, err)
		if apikey.ValidateName("api_secret="+splitKey(t, key).secret) == nil {
			missed++
		}
	}
	assert.Zero(t, missed, "secrets missed")

	refused := 0
	buf := make([]byte, 64)
	for i := range 20000 {
		_, _ = rand.Read(buf)
		h := hex.EncodeToString(buf[:20+i%45])
		if i%2 == 0 {
			h = strings.ToUpper(h)
		}
		u := fmt.Sprintf("%x-%x-%x-%x-%x", buf[0:4], buf[4:6], buf[6:8], buf[8:10], buf[10:16])
		url := "https://example.com/objects/" + h + "?v=" + u
		for _, v := range []string{h, u, url, "0x" + h} {
			if apikey.ValidateName(v) != nil {
				refused++
			}
		}
	}
	assert.Zero(t, refused, "ordinary values refused")
}

// TestValidateName: names are checked like owners: bounded, printable
// UTF-8, no key.
func TestValidateName(t *testing.T) {
	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	for _, ok := range []string{"", "default", "billing worker", "Ünïcødé ✓", strings.Repeat("n", apikey.MaxNameLength)} {
		assert.NoError(t, apikey.ValidateName(ok), "%q", ok)
	}
	tests := map[string]struct{ name, why string }{
		"too long":           {strings.Repeat("n", apikey.MaxNameLength+1), fmt.Sprintf("longer than %d bytes", apikey.MaxNameLength)},
		"a full key":         {key.Reveal(), "looks like it holds an API key"},
		"NUL":                {"a\x00b", "control or invisible character"},
		"newline":            {"row\nforged row", "control or invisible character"},
		"ANSI escape":        {"\x1b[2Jhello", "control or invisible character"},
		"C1 control (CSI)":   {"a\u009b2Jb", "control or invisible character"},
		"OSC escape":         {"\x1b]8;;https://evil.example\x07x", "control or invisible character"},
		"bidi override":      {"abc\u202etxt.exe", "control or invisible character"},
		"zero-width space":   {"ke\u200by", "control or invisible character"},
		"line separator":     {"a\u2028b", "control or invisible character"},
		"invalid UTF-8":      {"\xff\xfe", "not UTF-8"},
		"truncated UTF-8":    {"caf\xc3", "not UTF-8"},
		"private use":        {"a\ue000", "control or invisible character"},
		"DEL":                {"a\x7fb", "control or invisible character"},
		"key in the name":    {"ci " + key.Reveal(), "looks like it holds an API key"},
		"secret in the name": {"x" + key.Reveal()[apikey.PrefixLength:], "looks like it holds an API key"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := apikey.ValidateName(tt.name)
			require.ErrorIs(t, err, apikey.ErrInvalidName)
			assert.Contains(t, err.Error(), tt.why)
		})
	}

	f := newFixture(t, apikey.ManagerOptions{})
	_, err = f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client, Name: key.Reveal()})
	require.ErrorIs(t, err, apikey.ErrInvalidName, "Create checks the name")
	assert.NotContains(t, err.Error(), key.Reveal())
}

// FuzzKeyShapeGuard: whatever surrounds a key's secret (with or without its
// checksum, prefix or id), the guard refuses it and never repeats it; and
// no input makes it panic.
func FuzzKeyShapeGuard(f *testing.F) {
	f.Add("", "", uint8(0))
	f.Add("api_secret=", "", uint8(1))
	f.Add("server-abcdefghijkl:", "\n", uint8(2))
	f.Add("\xff", "0x", uint8(3))
	f.Add("a", "B", uint8(4))
	// Fixed keys, so that the fuzzer's corpus replays the same inputs.
	var keys []keyParts
	for _, secret := range []string{
		"kY9pF34Qy6nB3Wwd25rq4f5zr3QA7YeEEBY3ABp3e2z",
		"ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZa",
		"0123456789abcdefABCDEF0123456789abcdefXYZxy",
	} {
		for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
			k, err := apikey.AssembleKey(typ, "0123456789ab", secret)
			require.NoError(f, err)
			keys = append(keys, splitKey(f, k))
		}
	}
	f.Fuzz(func(t *testing.T, before, after string, pick uint8) {
		// Any input: no panic, and a refusal never repeats it.
		if err := apikey.ValidateName(before + after); err != nil && len(before+after) > 8 {
			assert.NotContains(t, err.Error(), before+after)
		}
		p := keys[int(pick)%len(keys)]
		parts := []string{p.full, p.secret, p.secretAndChecksum, p.prefix + ":" + p.secret, "api_secret=" + p.secret}
		value := before + parts[int(pick/8)%len(parts)] + after
		_, err := apikey.ValidateMetadata(map[string]string{"note": value})
		require.Error(t, err, "a key or secret inside any text is refused")
		assert.NotContains(t, err.Error(), p.secret)
		if len(value) <= apikey.MaxMetadataValueLen && apikey.ValidateName(before+" "+after) == nil {
			assert.Contains(t, err.Error(), "looks like it holds an API key", "refused by the guard, whatever surrounds it")
		}
	})
}
