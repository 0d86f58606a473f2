package keycache

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// Verified remembers which presented keys verified against which stored
// hash: a key whose record still holds it needs no argon2, and another key
// of its id is refuted. Only a successful verification adds to it. It is a
// fixed table of buckets placed by a secret hash of the key id, so that
// nobody can aim at a bucket (docs/design.md).
type Verified struct {
	secret [16]byte // from crypto/rand
	mu     sync.Mutex
	slots  []verifiedSlot // len(slots) = verifiedWays * (mask + 1)
	mask   uint64         // buckets - 1
	next   uint64         // the slot a full bucket gives up next, round robin
}

type verifiedSlot struct {
	tag      [16]byte // of the Key (see ref)
	hash     uint64   // Fingerprint of the stored hash
	id       uint32   // of the Key's head: which key id, within the bucket
	outdated bool
	used     bool
}

const (
	verifiedWays     = 16      // slots per bucket
	minVerifiedSlots = 1 << 16 // the smallest table
)

// NewVerified returns a table of at least four 32-byte slots per key for
// keys keys (at least minVerifiedSlots), a power of two.
func NewVerified(keys int) *Verified {
	n := minVerifiedSlots
	for n < 4*keys && n < 1<<30 {
		n <<= 1
	}
	s := &Verified{slots: make([]verifiedSlot, n), mask: uint64(n/verifiedWays - 1)}
	rand.Read(s.secret[:]) // never fails: it crashes the program rather than return an error
	return s
}

// ref returns the first slot of k's bucket, the tag of its key id, and k's
// tag.
func (s *Verified) ref(k Key) (first uint64, id uint32, tag [16]byte) {
	var head [len(s.secret) + len(k.head)]byte
	n := copy(head[:], s.secret[:])
	copy(head[n:], k.head[:])
	sum := sha256.Sum256(head[:])
	first = (binary.LittleEndian.Uint64(sum[:8]) & s.mask) * verifiedWays
	id = binary.LittleEndian.Uint32(sum[8:12])

	var in [len(s.secret) + len(k.sum) + len(k.head)]byte
	n = copy(in[:], s.secret[:])
	n += copy(in[n:], k.sum[:])
	copy(in[n:], k.head[:])
	sum = sha256.Sum256(in[:])
	copy(tag[:], sum[:16])
	return first, id, tag
}

// find returns the slot of tag in the bucket at first, or -1; s.mu is held.
func (s *Verified) find(first uint64, tag [16]byte) int {
	for i := first; i < first+verifiedWays; i++ {
		if s.slots[i].used && s.slots[i].tag == tag {
			return int(i)
		}
	}
	return -1
}

// Add remembers that k verified against the stored hash with fingerprint
// hash.
func (s *Verified) Add(k Key, hash uint64, outdated bool) {
	first, id, tag := s.ref(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(first, tag)
	for j := first; j < first+verifiedWays && i < 0; j++ {
		if !s.slots[j].used {
			i = int(j)
		}
	}
	if i < 0 {
		i = int(first + s.next%verifiedWays)
		s.next++
	}
	s.slots[i] = verifiedSlot{tag: tag, hash: hash, id: id, outdated: outdated, used: true}
}

// Contains reports whether k verified in this process.
func (s *Verified) Contains(k Key) bool {
	first, _, tag := s.ref(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.find(first, tag) >= 0
}

// Lookup reports whether k verified against the stored hash with
// fingerprint hash (match, and whether it was outdated), or another key of
// k's id did (refuted: a hash admits one key, as apikey.Hasher states).
func (s *Verified) Lookup(k Key, hash uint64) (match, outdated, refuted bool) {
	first, id, tag := s.ref(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := first; i < first+verifiedWays; i++ {
		sl := &s.slots[i]
		switch {
		case !sl.used || sl.id != id:
		case sl.tag == tag:
			if sl.hash == hash {
				return true, sl.outdated, false
			}
		case sl.hash == hash:
			refuted = true
		}
	}
	return false, false, refuted
}

// Fingerprint returns 64 bits of SHA-256 of a stored hash.
func Fingerprint(hash string) uint64 {
	sum := sha256.Sum256([]byte(hash))
	return binary.LittleEndian.Uint64(sum[:8])
}
