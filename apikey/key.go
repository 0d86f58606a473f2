package apikey

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"hash/crc32"
	"log/slog"
	"regexp"
	"strconv"
	"unsafe"
)

// KeyType is the kind of a key: a secret full-access server key or a public
// publishable client key. The type is the key string's prefix.
type KeyType string

// The two key types.
const (
	// Server is a full-access key for backends. It is a secret.
	Server KeyType = "server"
	// Client is a publishable key, safe to ship to browsers and mobile apps.
	Client KeyType = "client"
)

// Valid reports whether t is Server or Client.
func (t KeyType) Valid() bool { return t == Server || t == Client }

// Lengths of the parts of a key string, in characters of the base62 alphabet.
const (
	IDLength       = 12 // public key id, the lookup index: 71 random bits
	SecretLength   = 43 // secret: 43 base62 characters hold 256 random bits
	ChecksumLength = 6  // CRC32-C of everything before it, in base62
)

// KeyLength is the length of every key string: "server-" or "client-", the
// key id, "_", the secret and the checksum.
const KeyLength = len("server-") + IDLength + 1 + SecretLength + ChecksumLength

// PrefixLength is the length of a key's displayable prefix, "server-<id>"
// or "client-<id>" (see Key.Prefix).
const PrefixLength = len("server-") + IDLength

// Pattern is the regular expression, for secret scanners, that matches every
// key this package generates and nothing shorter or longer.
const Pattern = `\b(?:server|client)-[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\b`

// KeyRegexp is Pattern compiled.
var KeyRegexp = regexp.MustCompile(Pattern)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Key is a full key string: type, key id, secret and checksum. Every way of
// printing a Key (String, fmt verbs, slog, JSON, also inside another struct,
// slice or map, through unexported fields) shows only its displayable
// prefix, "server-<id>"; only Reveal returns the secret.
//
// Compare keys with Equal, never with == (or reflect.DeepEqual, or a
// testing library's Equal built on it): they compare where the key string
// is held, not what it says, so two copies of one key compare unequal.
//
// The zero Key is not valid. Keys are values and safe for concurrent use.
type Key struct {
	// A Key holds no string field with the secret in it, so that printing
	// by reflection cannot show it: fmt prints the fields of a value it
	// reaches through an unexported field (a user's struct{ k apikey.Key })
	// without calling Format, and so does slog's TextHandler. prefix is the
	// displayable prefix, a slice of the key string; full points at the
	// start of the same KeyLength bytes, which Reveal rebuilds with
	// unsafe.String. fmt, slog, go-spew and testify print an unsafe.Pointer
	// as an address and never follow it. A closure holding the string would
	// also hide it, but would cost ParseKey, which runs on every request, an
	// allocation (BenchmarkParseKey, TestKeyAllocs). The pointer keeps the
	// whole string alive, and strings are immutable, so the bytes stay valid.
	prefix string
	full   unsafe.Pointer // nil for the zero Key
}

// newKey returns the Key of the well-formed key string s.
func newKey(s string) Key {
	return Key{prefix: s[:PrefixLength], full: unsafe.Pointer(unsafe.StringData(s))}
}

// GenerateKey returns a new key of type t with a random key id and a 256-bit
// secret, both from crypto/rand.
func GenerateKey(t KeyType) (Key, error) {
	if !t.Valid() {
		return Key{}, ErrInvalidKeyType
	}
	buf := make([]byte, 0, KeyLength)
	buf = append(buf, t...)
	buf = append(buf, '-')
	var err error
	if buf, err = appendRandom(buf, IDLength); err != nil {
		return Key{}, err
	}
	buf = append(buf, '_')
	if buf, err = appendRandom(buf, SecretLength); err != nil {
		return Key{}, err
	}
	buf = appendChecksum(buf, checksum(string(buf)))
	return newKey(string(buf)), nil
}

// AssembleKey builds a key from its parts and computes its checksum. id must
// be IDLength and secret SecretLength characters of [0-9A-Za-z]. It is for
// tests that need well-formed keys with chosen parts (say, a wrong secret
// for a real key id); GenerateKey is how keys are made.
func AssembleKey(t KeyType, id, secret string) (Key, error) {
	if !t.Valid() {
		return Key{}, ErrInvalidKeyType
	}
	body := string(t) + "-" + id + "_" + secret
	return ParseKey(string(appendChecksum([]byte(body), checksum(body))))
}

// ParseKey checks that s is a well-formed key with a correct checksum. It does
// no I/O and no hashing, so it is cheap enough to run on untrusted input
// before anything else. Errors wrap ErrMalformedKey or ErrBadChecksum and
// never contain s.
func ParseKey(s string) (Key, error) {
	if len(s) != KeyLength {
		return Key{}, fmt.Errorf("%w: want %d characters", ErrMalformedKey, KeyLength)
	}
	if s[:7] != "server-" && s[:7] != "client-" {
		return Key{}, fmt.Errorf("%w: prefix must be server- or client-", ErrMalformedKey)
	}
	sep := 7 + IDLength
	if s[sep] != '_' {
		return Key{}, fmt.Errorf("%w: missing separator", ErrMalformedKey)
	}
	for i := 7; i < len(s); i++ {
		if i != sep && !isBase62[s[i]] {
			return Key{}, fmt.Errorf("%w: character outside [0-9A-Za-z]", ErrMalformedKey)
		}
	}
	body := len(s) - ChecksumLength
	if want, ok := decodeChecksum(s[body:]); !ok || want != checksum(s[:body]) {
		return Key{}, ErrBadChecksum
	}
	return newKey(s), nil
}

// Type returns the key's type, or "" for the zero Key.
func (k Key) Type() KeyType {
	if k.full == nil {
		return ""
	}
	return KeyType(k.prefix[:len(k.prefix)-IDLength-1])
}

// ID returns the public key id, the index under which the key is stored.
func (k Key) ID() string {
	if k.full == nil {
		return ""
	}
	return k.prefix[len(k.prefix)-IDLength:]
}

// Prefix returns the displayable prefix, "server-<id>" or "client-<id>". It
// identifies the key and reveals nothing of the secret.
func (k Key) Prefix() string { return k.prefix }

// Reveal returns the full key string, secret included. Call it only to hand
// the key to its owner once, or to hash it.
func (k Key) Reveal() string {
	if k.full == nil {
		return ""
	}
	return unsafe.String((*byte)(k.full), KeyLength)
}

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k.full == nil }

// Equal reports whether k and o are the same key string, in constant time.
// Use it, not ==, to compare keys (see Key). Two zero Keys are equal.
func (k Key) Equal(o Key) bool {
	a, b := k.Reveal(), o.Reveal()
	return subtle.ConstantTimeCompare(unsafe.Slice(unsafe.StringData(a), len(a)), unsafe.Slice(unsafe.StringData(b), len(b))) == 1
}

// String returns the displayable prefix.
func (k Key) String() string { return k.Prefix() }

// Format prints the displayable prefix for every verb, so that %v, %+v, %#v,
// %s and %q never print the secret.
func (k Key) Format(f fmt.State, verb rune) { formatPrefix(f, verb, k.Prefix()) }

func formatPrefix(f fmt.State, verb rune, prefix string) {
	if verb == 'q' {
		prefix = strconv.Quote(prefix)
	}
	fmt.Fprint(f, prefix)
}

// LogValue makes slog log the displayable prefix.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.Prefix()) }

// MarshalJSON encodes the displayable prefix as a JSON string.
func (k Key) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(k.Prefix())), nil }

// Prefix returns the displayable prefix of a key of type t with key id id.
func Prefix(t KeyType, id string) string { return string(t) + "-" + id }

// ParseKeyID reads the name of a stored key as people give it: the key id
// (IDLength characters of [0-9A-Za-z]) or the displayable prefix,
// "server-<id>" or "client-<id>". It returns the key id and the type that
// the prefix names, or "" for a bare key id; a caller that looks the key up
// must treat a key of another type as not found (the Manager does).
//
// Anything else fails with ErrInvalidKeyID, a full key too: a key is named
// by its id, never by its secret. ParseKeyID does no I/O, and its errors
// never contain s.
func ParseKeyID(s string) (id string, t KeyType, err error) {
	id = s
	if len(s) > len("server-") && (s[:7] == "server-" || s[:7] == "client-") {
		id, t = s[7:], KeyType(s[:6])
	}
	if len(id) > IDLength && id[IDLength] == '_' {
		return "", "", fmt.Errorf("%w: that is a full key, secret included (or part of one): name a key by its id or its displayable prefix only", ErrInvalidKeyID)
	}
	if len(id) != IDLength || !allBase62(id) {
		return "", "", fmt.Errorf("%w: want a key id (%d characters of [0-9A-Za-z]) or its displayable prefix, server-<id> or client-<id>", ErrInvalidKeyID, IDLength)
	}
	return id, t, nil
}

func allBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isBase62[s[i]] {
			return false
		}
	}
	return true
}

// appendRandom appends n characters drawn uniformly from the base62 alphabet
// by rejection sampling of crypto/rand bytes.
func appendRandom(dst []byte, n int) ([]byte, error) {
	var b [64]byte
	for n > 0 {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("apikey: reading random bytes: %w", err)
		}
		for _, c := range b {
			if c >= 248 { // 248 = 4*62: keep the distribution uniform
				continue
			}
			dst = append(dst, alphabet[c%62])
			if n--; n == 0 {
				break
			}
		}
	}
	return dst, nil
}

// castagnoli is the CRC32-C table; crc32 computes it with the SSE4.2 CRC32
// instruction where the CPU has one (BenchmarkParseKey).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum returns the CRC32-C of s. It reads the string's bytes in place:
// crc32 only reads them, and a []byte copy would cost ParseKey an
// allocation.
func checksum(s string) uint32 {
	return crc32.Checksum(unsafe.Slice(unsafe.StringData(s), len(s)), castagnoli)
}

// decodeChecksum reads ChecksumLength base62 digits, most significant first.
// ok is false if the value does not fit in 32 bits (the callers have checked
// the alphabet).
func decodeChecksum(digits string) (sum uint32, ok bool) {
	var v uint64
	for i := 0; i < len(digits); i++ {
		v = v*62 + uint64(base62Value[digits[i]])
	}
	return uint32(v), v <= 0xFFFFFFFF
}

// appendChecksum appends sum as ChecksumLength base62 digits, most
// significant first.
func appendChecksum(dst []byte, sum uint32) []byte {
	var digits [ChecksumLength]byte
	v := uint64(sum)
	for i := ChecksumLength - 1; i >= 0; i-- {
		digits[i] = alphabet[v%62]
		v /= 62
	}
	return append(dst, digits[:]...)
}

// isBase62 marks the bytes of the alphabet, and base62Value gives their
// digit values.
var isBase62, base62Value = func() (valid [256]bool, value [256]uint8) {
	for i := range len(alphabet) {
		valid[alphabet[i]] = true
		value[alphabet[i]] = uint8(i)
	}
	return valid, value
}()
