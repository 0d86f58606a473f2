package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"
)

// Bounds of an ImportFormat and of an imported key string.
const (
	// MaxImportPrefixLength bounds ImportFormat.Prefix, in bytes.
	MaxImportPrefixLength = 32
	// MinImportLength and MaxImportLength bound ImportFormat.Length.
	MinImportLength = 16
	MaxImportLength = 256
	// MinImportBits is the least number of bits that the part after the
	// prefix must be able to hold: Length × log2(len(Alphabet)).
	MinImportBits = 128
	// MaxImportedKeyLength bounds a key string given to Manager.Import.
	MaxImportedKeyLength = MaxImportPrefixLength + MaxImportLength
)

// importedHashPrefix starts the stored hash of every imported key.
const importedHashPrefix = "$sha256$"

// ImportFormat declares the shape of key strings that a service issued
// before it adopted keystile, such as "sk_live_" followed by 32 base62
// characters. The middleware looks up a presented string as an imported
// key only if it matches a declared format, so that junk still costs no
// storage call and no hash.
//
// The zero ImportFormat matches nothing and is not valid (see Validate).
type ImportFormat struct {
	// Prefix starts every key of the format, such as "sk_live_": 1 to
	// MaxImportPrefixLength printable ASCII characters without space. It
	// may not start with "server-" or "client-", nor be the beginning of
	// either, so that no string is both a keystile key and of the format.
	Prefix string
	// Length is the number of characters after Prefix, MinImportLength to
	// MaxImportLength.
	Length int
	// Alphabet holds the characters allowed after Prefix, each once:
	// printable ASCII without space. Empty means [0-9A-Za-z] (base62).
	// Length characters of it must be able to hold MinImportBits bits.
	Alphabet string
}

// Validate checks that f is a usable format. Errors wrap
// ErrInvalidImportFormat and name the field.
func (f ImportFormat) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidImportFormat}, args...)...)
	}
	switch {
	case f.Prefix == "":
		return bad("prefix is required")
	case len(f.Prefix) > MaxImportPrefixLength:
		return bad("prefix is longer than %d bytes", MaxImportPrefixLength)
	case !printableASCII(f.Prefix):
		return bad("prefix: want printable ASCII without space")
	}
	for _, p := range []string{"server-", "client-"} {
		if strings.HasPrefix(f.Prefix, p) || strings.HasPrefix(p, f.Prefix) {
			return bad("prefix %q could be confused with keystile's %q", f.Prefix, p)
		}
	}
	if f.Length < MinImportLength || f.Length > MaxImportLength {
		return bad("length must be %d to %d characters after the prefix, got %d", MinImportLength, MaxImportLength, f.Length)
	}
	size := 62
	if f.Alphabet != "" {
		if !printableASCII(f.Alphabet) {
			return bad("alphabet: want printable ASCII without space")
		}
		var seen [256]bool
		for i := 0; i < len(f.Alphabet); i++ {
			if seen[f.Alphabet[i]] {
				return bad("alphabet holds %q twice", f.Alphabet[i])
			}
			seen[f.Alphabet[i]] = true
		}
		size = len(f.Alphabet)
	}
	if bits := float64(f.Length) * math.Log2(float64(size)); bits < MinImportBits {
		return bad("%d characters of a %d-character alphabet hold %.0f bits, fewer than %d", f.Length, size, bits, MinImportBits)
	}
	return nil
}

// Match reports whether s is a key string of format f: Prefix, then
// exactly Length characters of Alphabet. It reads s at most once, does not
// allocate, and is false for a format that is not valid.
func (f ImportFormat) Match(s string) bool {
	if f.Prefix == "" || f.Length < MinImportLength || len(s) != len(f.Prefix)+f.Length || s[:len(f.Prefix)] != f.Prefix {
		return false
	}
	rest := s[len(f.Prefix):]
	if f.Alphabet == "" {
		return allBase62(rest)
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(f.Alphabet, rest[i]) < 0 {
			return false
		}
	}
	return true
}

// printableASCII reports whether s holds only the bytes '!' to '~'.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

// ImportDigest returns the SHA-256 digest of an imported key string: what
// a service that stores "sha256(key)" holds, and what Manager.Import
// takes. It does not allocate.
func ImportDigest(key string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(key), len(key)))
}

// ImportedID returns the key id of the imported key whose SHA-256 digest
// is digest: IDLength base62 characters of SHA-256 of a fixed label and
// the digest. A presented key thus maps to its record with one read by id
// (Store.Key) and no other index. The id is public, as every key id is; it
// tells nothing about the key that the digest does not.
func ImportedID(digest [32]byte) string {
	var in [len("keystile imported key id\x00") + len(digest)]byte
	n := copy(in[:], "keystile imported key id\x00")
	copy(in[n:], digest[:])
	sum := sha256.Sum256(in[:])
	var id [IDLength]byte
	for half := range 2 { // 6 characters from each of two 64-bit words
		v := binary.BigEndian.Uint64(sum[8*half:])
		for i := range IDLength / 2 {
			id[half*IDLength/2+i] = alphabet[v%62]
			v /= 62
		}
	}
	return string(id[:])
}

// importedHash returns the stored hash of an imported key: the digest in
// unpadded standard base64 after "$sha256$".
func importedHash(digest [32]byte) string {
	return importedHashPrefix + base64.RawStdEncoding.EncodeToString(digest[:])
}

// MatchImported reports, in constant time, whether digest is the one that
// the stored hash of an imported key (Record.Imported) holds. It is false
// for any other hash. It does not allocate.
func MatchImported(digest [32]byte, encoded string) bool {
	var want [len(importedHashPrefix) + 43]byte // 43: unpadded base64 of 32 bytes
	copy(want[:], importedHashPrefix)
	base64.RawStdEncoding.Encode(want[len(importedHashPrefix):], digest[:])
	return subtle.ConstantTimeCompare(want[:], unsafe.Slice(unsafe.StringData(encoded), len(encoded))) == 1
}

// Imported reports whether r is an imported key (Manager.Import): its hash
// is the SHA-256 digest of a key string that keystile did not issue.
func (r Record) Imported() bool { return strings.HasPrefix(r.Hash.Reveal(), importedHashPrefix) }

// ImportRequest describes a key that a service issued before it adopted
// keystile, to be accepted by the middleware in a declared ImportFormat
// (see Manager.Import). Give the key's SHA-256 digest (Digest) or the key
// itself (Key), not both.
type ImportRequest struct {
	// Account is the account the key belongs to, which the operator
	// names: required, a valid account id (ValidateAccount), never
	// AnyAccount.
	Account     string
	Environment string
	Type        KeyType
	// Digest is the SHA-256 digest of the key string (ImportDigest), as a
	// service that stores "sha256(key)" holds it. The zero digest means
	// none was given.
	Digest [32]byte
	// Key is the key string itself, hashed with SHA-256 and then
	// forgotten: 1 to MaxImportedKeyLength printable ASCII characters
	// without space, not a keystile key. An Opaque, so that printing the
	// request never prints it (NewOpaque(key)).
	Key Opaque
	// Name, Owner, Metadata, Scopes, ExpiresAt and Limits are as in
	// CreateRequest, and validated alike.
	Name      string
	Owner     string
	Metadata  map[string]string
	Scopes    []string
	ExpiresAt time.Time
	Limits    Limits
}

// digest returns the digest the request names, or an error wrapping
// ErrInvalidImport that names the field.
func (req ImportRequest) digest() ([32]byte, error) {
	key := req.Key.Reveal()
	switch {
	case key != "" && req.Digest != [32]byte{}:
		return [32]byte{}, fmt.Errorf("%w: give digest or key, not both", ErrInvalidImport)
	case key == "" && req.Digest == [32]byte{}:
		return [32]byte{}, fmt.Errorf("%w: digest or key is required", ErrInvalidImport)
	case key == "":
		return req.Digest, nil
	case len(key) > MaxImportedKeyLength:
		return [32]byte{}, fmt.Errorf("%w: key is longer than %d characters", ErrInvalidImport, MaxImportedKeyLength)
	case !printableASCII(key):
		return [32]byte{}, fmt.Errorf("%w: key: want printable ASCII without space", ErrInvalidImport)
	case strings.HasPrefix(key, "server-") || strings.HasPrefix(key, "client-"):
		return [32]byte{}, fmt.Errorf("%w: key: a keystile key is not imported", ErrInvalidImport)
	}
	return ImportDigest(key), nil
}

// Errors of imported keys.
var (
	// ErrInvalidImport means an ImportRequest names no key, or both a
	// digest and a key, or a key string that cannot be imported.
	ErrInvalidImport = errors.New("apikey: invalid imported key")
	// ErrInvalidImportFormat means an ImportFormat is not valid (see
	// ImportFormat.Validate).
	ErrInvalidImportFormat = errors.New("apikey: invalid import format")
)

// Import stores a key that the service issued before it adopted keystile,
// by the SHA-256 digest of its key string, in an environment of
// req.Account, and returns its public view (View.Imported is set).
//
// Importing is the service's act, never a tenant's: only an operator, an
// Owner acting across accounts (Actor.Account AnyAccount) who is not a
// key (Actor.Scopes nil), may import, and it names the account the key
// belongs to in req.Account. Any other actor, an account's owners
// included, gets ErrForbidden; req.Account that is not a valid account id
// gets ErrInvalidAccount. A tenant who could import would claim another
// tenant's legacy key (a publishable one is public) before the service
// migrates it, and would learn from ErrConflict that a key exists in
// another account.
//
// It is validated as Create validates: the same fields, the same errors,
// the same lifetime policy of the environment (LifetimePolicy: the default
// expiry when none is given, ErrBeyondLifetime past the maximum, counted
// from the import); refused in a closed or suspended account
// (ErrAccountClosed, ErrAccountSuspended). It is audited as ActionImport,
// in the key's account, with the operator as actor.
//
// The record's id is ImportedID(digest), so that a presented key is found
// with one read by id; its stored hash is "$sha256$" and the digest in
// base64 (Record.Imported). Importing a digest that is stored already, in
// any account, fails with ErrConflict. An imported key is never a default
// key: the environment keeps its keystile default keys, and the imported
// key can be revoked directly. Rotate replaces it with a keystile key
// (same account, environment, type, name, scopes, owner, metadata, limits
// and expiry) and gives it a grace period, as for any key. Reveal never
// shows it: only its digest is stored.
//
// Security model: an imported key is verified by comparing SHA-256
// digests, unsalted and fast, never by argon2, and its hash is never
// upgraded. That is sound only for keys of high entropy, at least 128
// random bits from a cryptographic generator (MinImportBits is the least
// a format can hold; the service vouches for how its keys were made):
// then no one who reads the stored digests can find a key by guessing.
// The digest authenticates as the key does wherever a key's digest is
// compared, so it is as sensitive as the key. Rotating an imported key
// into a keystile key is how it gets keystile's 256-bit secret and
// argon2id hash.
func (m *Manager) Import(ctx context.Context, actor Actor, req ImportRequest) (View, error) {
	if err := authorize(actor, ActionImport); err != nil {
		return View{}, err
	}
	if actor.Account != AnyAccount || actor.Scopes != nil || actor.KeyID != "" {
		return View{}, fmt.Errorf("%w: importing keys is the service's act: it needs an operator, an owner acting across accounts who is not a key", ErrForbidden)
	}
	if req.Account == "" || req.Account == AnyAccount {
		return View{}, fmt.Errorf("%w: account is required: name the one account the key belongs to", ErrInvalidAccount)
	}
	if err := ValidateAccount(req.Account); err != nil {
		return View{}, err
	}
	if !req.Type.Valid() {
		return View{}, ErrInvalidKeyType
	}
	digest, err := req.digest()
	if err != nil {
		return View{}, err
	}
	now := m.Now()
	scopes, metadata, limits, expires, err := validKeyFields(req.Type, req.Scopes, req.Name, req.Owner, req.Metadata, req.Limits, req.ExpiresAt, now)
	if err != nil {
		return View{}, err
	}
	s, err := m.environment(ctx, Actor{Account: req.Account}, req.Environment) // in the account named
	if err != nil {
		return View{}, err
	}
	if err := s.refusesChanges(); err != nil {
		return View{}, err
	}
	if expires, err = s.Lifetime.createExpiry(now, expires); err != nil {
		return View{}, err
	}
	rec := Record{
		ID: ImportedID(digest), Account: s.Account, Type: req.Type, Environment: s.Environment, Name: req.Name,
		Owner: req.Owner, Metadata: metadata, Scopes: scopes, Limits: limits,
		CreatedAt: now, CreatedBy: actor.ID, ExpiresAt: expires, Hash: NewOpaque(importedHash(digest)),
	}
	// The id follows from the digest: a conflict is a key stored already,
	// or a race with a change of the owner's key that guards the owner's
	// limits (ownerGuard), which is tried again.
	err = m.retry(ctx, func() error {
		guard, err := m.ownerGuard(ctx, s.Account, req.Owner, "")
		if err != nil {
			return err
		}
		c := Change{OpenAccount: s.Account}
		takeOwnerLimits(&rec, guard, &c)
		c.Insert = []Record{rec}
		c.Events = []Event{keyEvent(now, actor, ActionImport, rec, "imported; "+expiryDetail(expires))}
		err = m.apply(ctx, c)
		if errors.Is(err, ErrConflict) && guard == nil {
			return errDuplicateImport
		}
		if errors.Is(err, ErrConflict) {
			if _, kerr := m.store.Key(ctx, rec.ID); kerr == nil {
				return errDuplicateImport
			}
		}
		return err
	})
	if errors.Is(err, errDuplicateImport) {
		return View{}, fmt.Errorf("%w: a key with this digest is stored already", ErrConflict)
	}
	if err != nil {
		return View{}, err
	}
	return rec.View(now), nil
}

// errDuplicateImport is an import of a key stored already, which no retry
// changes.
var errDuplicateImport = errors.New("apikey: duplicate import")
