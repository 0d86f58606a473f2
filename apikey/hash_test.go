package apikey

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestArgon2idRoundTrip(t *testing.T) {
	for name, p := range map[string]Params{"test": TestParams, "light": LightParams} {
		t.Run(name, func(t *testing.T) {
			h := Argon2id{Params: p}
			encoded, err := h.Hash([]byte("server-key"))
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(encoded, fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", p.Memory, p.Iterations, p.Parallelism)))
			assert.NotContains(t, encoded, "=$", "unpadded base64")

			match, outdated, err := h.Verify([]byte("server-key"), encoded)
			require.NoError(t, err)
			assert.True(t, match)
			assert.False(t, outdated)

			match, _, err = h.Verify([]byte("server-kez"), encoded)
			require.NoError(t, err)
			assert.False(t, match, "a wrong secret is a mismatch, not an error")

			again, err := h.Hash([]byte("server-key"))
			require.NoError(t, err)
			assert.NotEqual(t, encoded, again, "fresh salt per hash")
		})
	}
}

func TestArgon2idZeroValueUsesDefaults(t *testing.T) {
	encoded, err := Argon2id{}.Hash([]byte("k"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(encoded, "$argon2id$v=19$m=19456,t=2,p=1$"), encoded)
}

// TestArgon2idInteroperates checks hashes made by the reference argon2
// implementation (Debian's argon2 command):
//
//	echo -n server-abc | argon2 somesalt0123 -id -t 2 -m 10 -p 1 -l 32 -e
func TestArgon2idInteroperates(t *testing.T) {
	const reference = "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQwMTIz$LqaRfY03JOqyLlNkCC5kIwj7COpxLVJupbb/526YyOc"
	h := Argon2id{Params: TestParams}
	match, outdated, err := h.Verify([]byte("server-abc"), reference)
	require.NoError(t, err)
	assert.True(t, match)
	assert.False(t, outdated, "stronger than the hasher's parameters: never downgraded")
	match, outdated, err = Argon2id{}.Verify([]byte("server-abc"), reference)
	require.NoError(t, err)
	assert.True(t, match)
	assert.True(t, outdated, "weaker than DefaultParams")

	p, salt, sum, err := DecodePHC(reference)
	require.NoError(t, err)
	assert.Equal(t, reference, EncodePHC(p, salt, sum), "decode and encode round-trip")
}

// TestArgon2idOutdated checks that only a hash weaker than the verifier's
// parameters (no parameter higher, one lower; parallelism aside) is
// reported outdated, so that validators with different parameters never
// rewrite each other's hashes back and forth.
func TestArgon2idOutdated(t *testing.T) {
	with := func(change func(*Params)) Params {
		p := TestParams
		change(&p)
		return p
	}
	tests := []struct {
		name     string
		stored   Params
		verifier Params
		want     bool
	}{
		{"equal", TestParams, TestParams, false},
		{"less memory", TestParams, with(func(p *Params) { p.Memory = 16 }), true},
		{"fewer iterations", TestParams, with(func(p *Params) { p.Iterations = 2 }), true},
		{"shorter salt", with(func(p *Params) { p.SaltLength = 8 }), TestParams, true},
		{"shorter hash", with(func(p *Params) { p.KeyLength = 16 }), TestParams, true},
		{"weaker in every way", with(func(p *Params) { p.SaltLength, p.KeyLength = 8, 16 }), LightParams, true},
		{"light to default", LightParams, DefaultParams, true},
		{"weaker but more lanes", with(func(p *Params) { p.Parallelism = 2; p.Memory = 16 }), with(func(p *Params) { p.Memory = 32 }), true},
		{"more memory", with(func(p *Params) { p.Memory = 16 }), TestParams, false},
		{"more iterations", with(func(p *Params) { p.Iterations = 2 }), TestParams, false},
		{"longer salt", TestParams, with(func(p *Params) { p.SaltLength = 8 }), false},
		{"longer hash", TestParams, with(func(p *Params) { p.KeyLength = 16 }), false},
		{"default to light", DefaultParams, LightParams, false},
		{"more memory, fewer iterations", with(func(p *Params) { p.Memory = 16 }), with(func(p *Params) { p.Iterations = 2 }), false},
		{"fewer iterations, more memory", with(func(p *Params) { p.Iterations = 2 }), with(func(p *Params) { p.Memory = 16 }), false},
		{"longer hash, less memory", with(func(p *Params) { p.KeyLength = 64 }), with(func(p *Params) { p.Memory = 16 }), false},
		{"parallelism only, more lanes", with(func(p *Params) { p.Memory, p.Parallelism = 16, 2 }), with(func(p *Params) { p.Memory = 16 }), false},
		{"parallelism only, fewer lanes", with(func(p *Params) { p.Memory = 16 }), with(func(p *Params) { p.Memory, p.Parallelism = 16, 2 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, err := Argon2id{Params: tt.stored}.Hash([]byte("k"))
			require.NoError(t, err)
			match, outdated, err := Argon2id{Params: tt.verifier}.Verify([]byte("k"), stored)
			require.NoError(t, err)
			assert.True(t, match)
			assert.Equal(t, tt.want, outdated)
			assert.Equal(t, tt.want, tt.stored.weakerThan(tt.verifier))
		})
	}
}

func TestDecodePHCRejects(t *testing.T) {
	const salt, sum = "c29tZXNhbHQwMTIz", "LqaRfY03JOqyLlNkCC5kIwj7COpxLVJupbb/526YyOc"
	phc := func(head, params string) string { return head + params + "$" + salt + "$" + sum }
	tests := map[string]string{
		"empty":               "",
		"argon2i":             phc("$argon2i$v=19$", "m=1024,t=2,p=1"),
		"version 16":          phc("$argon2id$v=16$", "m=1024,t=2,p=1"),
		"missing version":     "$argon2id$m=1024,t=2,p=1$" + salt + "$" + sum,
		"params out of order": phc("$argon2id$v=19$", "t=2,m=1024,p=1"),
		"extra param":         phc("$argon2id$v=19$", "m=1024,t=2,p=1,k=3"),
		"leading zero":        phc("$argon2id$v=19$", "m=01024,t=2,p=1"),
		"negative":            phc("$argon2id$v=19$", "m=-1,t=2,p=1"),
		"zero iterations":     phc("$argon2id$v=19$", "m=1024,t=0,p=1"),
		"huge iterations":     phc("$argon2id$v=19$", "m=1024,t=4000000000,p=1"),
		"huge parallelism":    phc("$argon2id$v=19$", "m=1024,t=2,p=255"),
		"memory overflow":     phc("$argon2id$v=19$", "m=99999999999,t=2,p=1"),
		"memory below lanes":  phc("$argon2id$v=19$", "m=8,t=2,p=2"),
		"padded salt":         "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQwMTIz==$" + sum,
		"bad base64":          "$argon2id$v=19$m=1024,t=2,p=1$!!!!$" + sum,
		"short salt":          "$argon2id$v=19$m=1024,t=2,p=1$YWJj$" + sum,
		"short hash":          "$argon2id$v=19$m=1024,t=2,p=1$" + salt + "$YWJjZA",
		"trailing field":      phc("$argon2id$v=19$", "m=1024,t=2,p=1") + "$x",
	}
	for name, encoded := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := DecodePHC(encoded)
			assert.ErrorIs(t, err, ErrInvalidHash)
			_, _, err = Argon2id{Params: TestParams}.Verify([]byte("k"), encoded)
			assert.ErrorIs(t, err, ErrInvalidHash)
		})
	}
}

// TestVerifyCapsMemory shows that a stored hash asking for 4 GiB is refused
// before any memory is allocated.
func TestVerifyCapsMemory(t *testing.T) {
	hostile := "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQwMTIz$LqaRfY03JOqyLlNkCC5kIwj7COpxLVJupbb/526YyOc"
	allocs := testing.AllocsPerRun(1, func() {
		_, _, err := Argon2id{}.Verify([]byte("k"), hostile)
		assert.ErrorIs(t, err, ErrInvalidHash)
	})
	assert.Less(t, allocs, 50.0)
	_, _, err := Argon2id{Params: TestParams, MaxMemory: 512}.Verify([]byte("k"),
		"$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQwMTIz$LqaRfY03JOqyLlNkCC5kIwj7COpxLVJupbb/526YyOc")
	assert.ErrorIs(t, err, ErrInvalidHash, "MaxMemory lowers the limit")
}

func TestParamsValidate(t *testing.T) {
	for name, p := range map[string]Params{"default": DefaultParams, "light": LightParams, "test": TestParams} {
		assert.NoError(t, p.Validate(), name)
	}
	bad := DefaultParams
	bad.SaltLength = 4
	assert.ErrorIs(t, bad.Validate(), ErrInvalidParams)
	_, err := Argon2id{Params: bad}.Hash([]byte("k"))
	assert.ErrorIs(t, err, ErrInvalidParams)
}

func FuzzDecodePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQwMTIz$LqaRfY03JOqyLlNkCC5kIwj7COpxLVJupbb/526YyOc")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$$")
	f.Add("$argon2i$v=19$m=1,t=1,p=1$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, sum, err := DecodePHC(encoded)
		if err != nil {
			return
		}
		if p.Validate() != nil {
			t.Fatalf("accepted invalid params %+v", p)
		}
		if again := EncodePHC(p, salt, sum); again != encoded {
			t.Fatalf("accepted a non-canonical hash: %q re-encodes as %q", encoded, again)
		}
	})
}

func BenchmarkArgon2idVerify(b *testing.B) {
	for _, preset := range []struct {
		name string
		p    Params
	}{{"Default", DefaultParams}, {"Light", LightParams}} {
		b.Run(preset.name, func(b *testing.B) {
			h := Argon2id{Params: preset.p}
			encoded, err := h.Hash([]byte("server-key"))
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				if ok, _, _ := h.Verify([]byte("server-key"), encoded); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}
