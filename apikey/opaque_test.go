package apikey

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpaque(t *testing.T) {
	const hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$c3Vtc3Vtc3Vt"
	tests := []struct {
		name   string
		o      Opaque
		reveal string
		shows  string // what every way of printing shows
	}{
		{"zero", Opaque{}, "", ""},
		{"empty string", NewOpaque(""), "", ""},
		{"nil bytes", OpaqueBytes(nil), "", ""},
		{"empty bytes", OpaqueBytes([]byte{}), "", ""},
		{"string", NewOpaque(hash), hash, "[redacted]"},
		{"bytes", OpaqueBytes([]byte{0, 1, 2, 255}), "\x00\x01\x02\xff", "[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.reveal, tt.o.Reveal())
			assert.Equal(t, tt.reveal == "", tt.o.IsZero())
			if tt.reveal == "" {
				assert.Nil(t, tt.o.Bytes())
			} else {
				assert.Equal(t, []byte(tt.reveal), tt.o.Bytes())
			}
			assert.True(t, tt.o.Equal(NewOpaque(string([]byte(tt.reveal)))), "equal to a copy")
			assert.False(t, tt.o.Equal(NewOpaque(tt.reveal+"x")))

			var logged bytes.Buffer
			slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{ReplaceAttr: dropTime})).Info("", "o", tt.o)
			js, err := json.Marshal(tt.o)
			require.NoError(t, err)
			assert.Equal(t, tt.shows, tt.o.String())
			for verb, want := range map[string]string{"%v": tt.shows, "%+v": tt.shows, "%#v": tt.shows, "%s": tt.shows, "%x": tt.shows, "%d": tt.shows, "%q": fmt.Sprintf("%q", tt.shows)} {
				assert.Equal(t, want, fmt.Sprintf(verb, tt.o), verb)
			}
			assert.Equal(t, fmt.Sprintf("level=INFO msg=\"\" o=%s\n", quoteIfNeeded(tt.shows)), logged.String())
			assert.Equal(t, fmt.Sprintf("%q", tt.shows), string(js))
		})
	}
}

// TestOpaqueIsImmutable: an Opaque keeps a copy of the bytes it was made
// from and hands out copies, so copies of a record may share one.
func TestOpaqueIsImmutable(t *testing.T) {
	b := []byte("client-public")
	o := OpaqueBytes(b)
	b[0] = 'X'
	assert.Equal(t, "client-public", o.Reveal(), "changing the input does not change the Opaque")
	out := o.Bytes()
	out[0] = 'X'
	assert.Equal(t, "client-public", o.Reveal(), "changing the output does not change the Opaque")

	rec := Record{ID: "0123456789ab", Type: Client, Hash: NewOpaque("$argon2id$"), Recoverable: o}
	clone := rec.Clone()
	assert.True(t, clone.Recoverable.Equal(rec.Recoverable), "a clone holds the same bytes")
	assert.True(t, clone.Hash.Equal(rec.Hash))
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// quoteIfNeeded quotes s as slog's TextHandler does for the strings of
// TestOpaque.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
