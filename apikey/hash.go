package apikey

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Hasher turns a key into a storable hash and checks a presented key against
// one. Implementations must be safe for concurrent use and must compare in
// constant time. The Argon2id type is the implementation; tests may wrap it
// to count or fail calls.
//
// Verify matches at most one secret per encoded hash: the one it was made
// from (up to collisions of the hash function). The middleware relies on
// it: once a key verified against a key id's stored hash, every other key
// presented for that id is refused as invalid without calling Verify, as
// long as the id's stored hash is unchanged. A Hasher that accepts several
// secrets for one hash (case-folding, prefixes) breaks this contract.
type Hasher interface {
	// Hash returns an encoded hash of secret.
	Hash(secret []byte) (string, error)
	// Verify reports whether secret matches the encoded hash, and whether the
	// hash is outdated: made with parameters weaker than the hasher's own, so
	// that the caller should store a fresh hash. A hash that is stronger than
	// the hasher's, or neither stronger nor weaker, is not outdated, so that
	// hashers with different parameters sharing a store never rewrite each
	// other's hashes back and forth. err is set only for a hash that cannot
	// be checked (wrapping ErrInvalidHash), never for a mismatch.
	Verify(secret []byte, encoded string) (match, outdated bool, err error)
}

// Params are argon2id parameters. One set is weaker than another when none
// of Memory, Iterations, SaltLength and KeyLength is higher and one is lower;
// Parallelism changes how the work is spread, not its strength, and is not
// compared. Two sets may be neither weaker nor stronger than each other (more
// memory but fewer passes). A successful check re-hashes only a hash whose
// parameters are weaker than the verifier's, never a stronger one.
type Params struct {
	Memory      uint32 // memory in KiB
	Iterations  uint32 // passes over the memory (t)
	Parallelism uint8  // lanes (p)
	SaltLength  uint32 // bytes of random salt
	KeyLength   uint32 // bytes of derived hash
}

// Parameter presets. A hash records its parameters, so a preset can be
// raised later: keys verified with weaker parameters are re-hashed (see
// Argon2id).
var (
	// DefaultParams follow OWASP's argon2id guidance: 19 MiB, 2 passes, 1 lane
	// (about 20 ms and 19 MiB per hash on a 2-core machine).
	DefaultParams = Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	// LightParams cost about a fiftieth of DefaultParams. They are safe for API
	// keys, whose 256-bit secrets cannot be guessed whatever the hash costs,
	// and suit services that verify many distinct keys.
	LightParams = Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	// TestParams are the cheapest valid parameters, for tests only.
	TestParams = Params{Memory: 8, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
)

// DefaultMaxMemory is the largest memory parameter, in KiB, that a stored
// hash may ask for unless Argon2id.MaxMemory says otherwise (64 MiB).
const DefaultMaxMemory = 64 * 1024

// Hard limits on the other parameters of a stored hash, so that a corrupt or
// hostile row cannot make verification run for minutes.
const (
	maxIterations  = 16
	maxParallelism = 16
	minSaltLength  = 8
	maxSaltLength  = 64
	minKeyLength   = 16
	maxKeyLength   = 64
)

// Validate checks that p can be used to hash.
func (p Params) Validate() error {
	switch {
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("%w: iterations must be 1..%d", ErrInvalidParams, maxIterations)
	case p.Parallelism < 1 || p.Parallelism > maxParallelism:
		return fmt.Errorf("%w: parallelism must be 1..%d", ErrInvalidParams, maxParallelism)
	case p.Memory < 8*uint32(p.Parallelism):
		return fmt.Errorf("%w: memory must be at least 8 KiB per lane", ErrInvalidParams)
	case p.SaltLength < minSaltLength || p.SaltLength > maxSaltLength:
		return fmt.Errorf("%w: salt length must be %d..%d", ErrInvalidParams, minSaltLength, maxSaltLength)
	case p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength:
		return fmt.Errorf("%w: key length must be %d..%d", ErrInvalidParams, minKeyLength, maxKeyLength)
	}
	return nil
}

// Argon2id is the argon2id Hasher. Hashes are PHC strings,
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> with unpadded standard
// base64, which other argon2 implementations read and write.
//
// A successful check re-hashes only a hash whose parameters are weaker than
// the verifier's, never a stronger one (see Params): two verifiers with
// different parameters rewrite a key's hash at most once between them, and
// not at all when neither set is weaker than the other.
//
// The zero value hashes with DefaultParams. An Argon2id is safe for
// concurrent use; it does not cap concurrency itself (the middleware does).
type Argon2id struct {
	// Params are used for new hashes; zero means DefaultParams. A stored
	// hash with other parameters still verifies; it is reported outdated
	// only if its parameters are weaker than these.
	Params Params
	// MaxMemory is the largest memory parameter, in KiB, accepted from a
	// stored hash; zero means DefaultMaxMemory (or Params.Memory if larger).
	MaxMemory uint32
}

func (h Argon2id) params() Params {
	if h.Params == (Params{}) {
		return DefaultParams
	}
	return h.Params
}

func (h Argon2id) maxMemory() uint32 {
	limit := h.MaxMemory
	if limit == 0 {
		limit = max(DefaultMaxMemory, h.params().Memory)
	}
	return limit
}

// Hash returns the PHC string of secret under a fresh random salt.
func (h Argon2id) Hash(secret []byte) (string, error) {
	p := h.params()
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("apikey: reading salt: %w", err)
	}
	sum := argon2.IDKey(secret, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
	return EncodePHC(p, salt, sum), nil
}

// Verify checks secret against encoded in constant time. outdated is true
// only when encoded was made with parameters weaker than h's.
func (h Argon2id) Verify(secret []byte, encoded string) (match, outdated bool, err error) {
	p, salt, sum, err := DecodePHC(encoded)
	if err != nil {
		return false, false, err
	}
	if p.Memory > h.maxMemory() {
		return false, false, fmt.Errorf("%w: memory %d KiB above the limit of %d KiB", ErrInvalidHash, p.Memory, h.maxMemory())
	}
	got := argon2.IDKey(secret, salt, p.Iterations, p.Memory, p.Parallelism, uint32(len(sum)))
	match = subtle.ConstantTimeCompare(got, sum) == 1
	return match, p.weakerThan(h.params()), nil
}

// weakerThan reports whether p is dominated by q: no strength parameter
// (memory, iterations, salt and hash length) higher and at least one lower.
// Parallelism is ignored.
func (p Params) weakerThan(q Params) bool {
	if p.Memory > q.Memory || p.Iterations > q.Iterations || p.SaltLength > q.SaltLength || p.KeyLength > q.KeyLength {
		return false
	}
	return p.Memory < q.Memory || p.Iterations < q.Iterations || p.SaltLength < q.SaltLength || p.KeyLength < q.KeyLength
}

// EncodePHC formats parameters, salt and derived hash as an argon2id PHC
// string.
func EncodePHC(p Params, salt, sum []byte) string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		enc.EncodeToString(salt), enc.EncodeToString(sum))
}

// DecodePHC parses an argon2id PHC string strictly: version 19, parameters in
// the order m, t, p without leading zeros, unpadded canonical base64, and
// every value within limits (memory only up to 4 GiB here; Argon2id.Verify
// applies its own, lower memory limit). The returned Params carry the salt
// and hash lengths. Errors wrap ErrInvalidHash.
func DecodePHC(encoded string) (p Params, salt, sum []byte, err error) {
	bad := func(why string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrInvalidHash, why)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("not an argon2id PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version")
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return bad("want parameters m, t and p")
	}
	var values [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		digits, ok := strings.CutPrefix(fields[i], name)
		if !ok || digits == "" || (digits[0] == '0') {
			return bad("malformed parameter " + name[:1])
		}
		if values[i], err = strconv.ParseUint(digits, 10, 32); err != nil {
			return bad("malformed parameter " + name[:1])
		}
	}
	// The decoder skips '\r' and '\n'; a canonical hash has none.
	if strings.ContainsAny(parts[4]+parts[5], "\r\n") {
		return bad("line break in salt or hash")
	}
	enc := base64.RawStdEncoding.Strict()
	if salt, err = enc.DecodeString(parts[4]); err != nil {
		return bad("malformed salt")
	}
	if sum, err = enc.DecodeString(parts[5]); err != nil {
		return bad("malformed hash")
	}
	if values[2] > maxParallelism {
		return bad("parallelism out of range")
	}
	p = Params{
		Memory:      uint32(values[0]),
		Iterations:  uint32(values[1]),
		Parallelism: uint8(values[2]),
		SaltLength:  uint32(len(salt)),
		KeyLength:   uint32(len(sum)),
	}
	if err := p.Validate(); err != nil {
		return bad(strings.TrimPrefix(err.Error(), ErrInvalidParams.Error()+": "))
	}
	return p, salt, sum, nil
}

// OutdatedChecker is implemented by a Hasher that can tell, without
// hashing, whether an encoded hash is weaker than its own parameters (the
// rule of Params: never a hash that is stronger, or neither). Argon2id
// implements it; UpgradeHash uses it when present.
type OutdatedChecker interface {
	// Outdated reports whether encoded was made with parameters weaker
	// than the hasher's. err is set only for a hash that cannot be read
	// (wrapping ErrInvalidHash).
	Outdated(encoded string) (bool, error)
}

// Outdated reports whether encoded was made with parameters weaker than
// h's (see Params); Verify reports the same.
func (h Argon2id) Outdated(encoded string) (bool, error) {
	p, _, _, err := DecodePHC(encoded)
	if err != nil {
		return false, err
	}
	return p.weakerThan(h.params()), nil
}

var _ OutdatedChecker = Argon2id{}

// UpgradeHash replaces rec's stored hash with a fresh hash of k made by h,
// when rec's hash is weaker than h's parameters, and only then: a stronger
// hash, or one neither weaker nor stronger, is never rewritten, so that
// verifiers with different parameters sharing a store do not rewrite each
// other's hashes. k must match rec.Hash: before it writes, UpgradeHash
// verifies k against the stored (weaker) hash, and a key of another id,
// type or secret fails with ErrKeyMismatch and writes nothing.
//
// The write is a compare-and-set on rec.Revision (Store.Apply): if the
// record changed since it was read (revoked, rotated, re-hashed by another
// process), the change wins and UpgradeHash writes nothing, a no-op that a
// later verification tries again. It writes no audit event: the key is
// the same key.
//
// It returns the record with the new hash and true when it stored one
// (Revision is still the one rec was read at: the store's new revision is
// not known without a read); rec and false when it stored nothing. err is
// set by the hasher, the store, ctx or a mismatch, never for a conflict.
// A hasher's Outdated method (OutdatedChecker) decides, without hashing,
// that a hash needs no upgrade; otherwise Verify decides. The digest of an
// imported key (Record.Imported) is never upgraded.
func UpgradeHash(ctx context.Context, s Store, h Hasher, rec Record, k Key) (Record, bool, error) {
	if rec.Imported() { // verified by its SHA-256 digest, never by h (see Manager.Import)
		return rec, false, nil
	}
	if k.ID() != rec.ID || k.Type() != rec.Type {
		return rec, false, fmt.Errorf("%w: %s is not the key of %s", ErrKeyMismatch, k.Prefix(), rec.Prefix())
	}
	outdated, err := isOutdated(h, rec, k)
	if err != nil || !outdated {
		return rec, false, err
	}
	if err := ctx.Err(); err != nil {
		return rec, false, fmt.Errorf("apikey: upgrading the hash of %s: %w", rec.Prefix(), err)
	}
	hash, err := h.Hash([]byte(k.Reveal()))
	if err != nil {
		return rec, false, fmt.Errorf("apikey: upgrading the hash of %s: %w", rec.Prefix(), err)
	}
	upgraded := rec.Clone()
	upgraded.Hash = NewOpaque(hash)
	switch err := s.Apply(ctx, Change{Update: []Record{upgraded}}); {
	case errors.Is(err, ErrConflict):
		return rec, false, nil
	case err != nil:
		return rec, false, fmt.Errorf("apikey: storing the upgraded hash of %s: %w", rec.Prefix(), err)
	}
	return upgraded, true, nil
}

// isOutdated reports whether rec's hash is weaker than h's parameters and
// k matches it (ErrKeyMismatch otherwise). A hasher's Outdated method spares
// the Verify of a hash that needs no upgrade.
func isOutdated(h Hasher, rec Record, k Key) (bool, error) {
	if c, ok := h.(OutdatedChecker); ok {
		if outdated, err := c.Outdated(rec.Hash.Reveal()); err != nil || !outdated {
			return false, err
		}
	}
	match, outdated, err := h.Verify([]byte(k.Reveal()), rec.Hash.Reveal())
	switch {
	case err != nil:
		return false, err
	case !match:
		return false, fmt.Errorf("%w: %s does not match its stored hash", ErrKeyMismatch, k.Prefix())
	}
	return outdated, nil
}
