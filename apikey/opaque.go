package apikey

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strconv"
	"unsafe"
)

// redacted is what every way of printing a non-empty Opaque shows.
const redacted = "[redacted]"

// Opaque holds bytes that a Record keeps but must never print: a key's
// argon2id hash (Record.Hash) and its recoverable copy (Record.Recoverable,
// which for a publishable key is the full key in plaintext). Every way of
// printing an Opaque (String, fmt verbs, slog, JSON, also inside another
// struct, slice or map, through unexported fields) shows "[redacted]", or
// nothing for an empty Opaque, or a memory address; only Reveal and Bytes
// return the bytes. Stores call them to write a record, and NewOpaque or
// OpaqueBytes to fill one they read.
//
// An Opaque is immutable: OpaqueBytes copies its argument and Bytes returns
// a copy, so copies of a Record (Record.Clone) share their Opaques safely.
// Compare Opaques with Equal, never with == (or reflect.DeepEqual, or a
// testing library's Equal built on it): they compare where the bytes are
// held, not what they are, so two copies of one hash compare unequal.
//
// The zero Opaque is empty. Opaques are values and safe for concurrent use.
type Opaque struct {
	// An Opaque holds no string or slice field, so that printing by
	// reflection cannot show the bytes: fmt prints the fields of a value it
	// reaches through an unexported field (a user's struct{ r
	// apikey.Record }) without calling Format, and so does slog's
	// TextHandler. p points at a string that holds the bytes; fmt, slog,
	// go-spew and testify print an unsafe.Pointer as an address and never
	// follow it (as for Key).
	p unsafe.Pointer // a *string; nil when empty
}

// NewOpaque returns an Opaque that holds s. An empty s gives the zero
// Opaque.
func NewOpaque(s string) Opaque {
	if s == "" {
		return Opaque{}
	}
	return Opaque{p: unsafe.Pointer(&s)}
}

// OpaqueBytes returns an Opaque that holds a copy of b. An empty or nil b
// gives the zero Opaque.
func OpaqueBytes(b []byte) Opaque { return NewOpaque(string(b)) }

// Reveal returns the bytes as a string ("" if o is empty): for Record.Hash,
// the PHC string to verify against. Call it only to verify, store or
// decrypt, never to print.
func (o Opaque) Reveal() string {
	if o.p == nil {
		return ""
	}
	return *(*string)(o.p)
}

// Bytes returns a copy of the bytes, or nil if o is empty.
func (o Opaque) Bytes() []byte {
	if o.p == nil {
		return nil
	}
	return []byte(o.Reveal())
}

// IsZero reports whether o is empty.
func (o Opaque) IsZero() bool { return o.p == nil }

// Equal reports whether o and x hold the same bytes, in time that depends
// only on their lengths. Use it, not ==, to compare Opaques (see Opaque).
func (o Opaque) Equal(x Opaque) bool {
	a, b := o.Reveal(), x.Reveal()
	return subtle.ConstantTimeCompare(unsafe.Slice(unsafe.StringData(a), len(a)), unsafe.Slice(unsafe.StringData(b), len(b))) == 1
}

// String returns "[redacted]", or "" if o is empty.
func (o Opaque) String() string {
	if o.p == nil {
		return ""
	}
	return redacted
}

// Format prints String for every verb, so that %v, %+v, %#v, %s, %q and %x
// never print the bytes.
func (o Opaque) Format(f fmt.State, verb rune) { formatPrefix(f, verb, o.String()) }

// LogValue makes slog log String.
func (o Opaque) LogValue() slog.Value { return slog.StringValue(o.String()) }

// MarshalJSON encodes String as a JSON string. An Opaque cannot be
// unmarshalled: a store that keeps records as JSON writes Reveal or Bytes
// into a field of its own (see examples/custom-store).
func (o Opaque) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(o.String())), nil }
