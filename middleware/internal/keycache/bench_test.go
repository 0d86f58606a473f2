package keycache

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"hash"
	"sync"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
)

// DefaultTestSize is the cache size of the benchmarks.
const DefaultTestSize = 100_000

// hmacKey is the HMAC-SHA256 alternative to KeyOf, with pooled states
// so that it allocates nothing; BenchmarkCacheKeyHMAC keeps the comparison.
type hmacKey struct{ pool sync.Pool }

type hmacState struct {
	h   hash.Hash
	in  [apikey.KeyLength]byte
	out [sha256.Size]byte
}

func newHMACKey(secret []byte) *hmacKey {
	k := &hmacKey{}
	k.pool.New = func() any { return &hmacState{h: hmac.New(sha256.New, secret)} }
	return k
}

func (k *hmacKey) sum(key string) (out [16]byte) {
	s := k.pool.Get().(*hmacState)
	s.h.Reset()
	n := copy(s.in[:], key)
	s.h.Write(s.in[:n])
	s.h.Sum(s.out[:0])
	copy(out[:], s.out[:])
	k.pool.Put(s)
	return out
}

var (
	sinkKey    Key
	sinkDigest [16]byte
)

// BenchmarkCacheKeyHMAC is HMAC-SHA256 of the presented key.
func BenchmarkCacheKeyHMAC(b *testing.B) {
	key, _ := apikey.GenerateKey(apikey.Server)
	h := newHMACKey(make([]byte, 32))
	b.ReportAllocs()
	for b.Loop() {
		sinkDigest = h.sum(key.Reveal())
	}
}

// cbcMACKey is the AES-128 CBC-MAC alternative to KeyOf: CBC-MAC is a PRF
// on inputs of one fixed length, and AES has instructions of its own. Its
// state is pooled, since a buffer passed to cipher.Block escapes and would
// cost an allocation per key; BenchmarkCacheKeyCBCMAC keeps the comparison.
type cbcMACKey struct {
	block cipher.Block
	pool  sync.Pool // of *[cbcMACLength]byte
}

// cbcMACLength is apikey.KeyLength rounded up to whole AES blocks.
const cbcMACLength = (apikey.KeyLength + aes.BlockSize - 1) / aes.BlockSize * aes.BlockSize

func newCBCMACKey(secret []byte) (*cbcMACKey, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	m := &cbcMACKey{block: block}
	m.pool.New = func() any { return new([cbcMACLength]byte) }
	return m, nil
}

// sum returns the CBC-MAC of key, zero-padded.
func (m *cbcMACKey) sum(key string) (out [16]byte) {
	buf := m.pool.Get().(*[cbcMACLength]byte)
	clear(buf[copy(buf[:], key):])
	m.block.Encrypt(buf[:aes.BlockSize], buf[:aes.BlockSize])
	for i := aes.BlockSize; i < len(buf); i += aes.BlockSize {
		subtle.XORBytes(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize], buf[i-aes.BlockSize:i])
		m.block.Encrypt(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize])
	}
	copy(out[:], buf[len(buf)-aes.BlockSize:])
	m.pool.Put(buf)
	return out
}

// BenchmarkCacheKeyCBCMAC is AES-128 CBC-MAC of the presented key.
func BenchmarkCacheKeyCBCMAC(b *testing.B) {
	key, _ := apikey.GenerateKey(apikey.Server)
	m, err := newCBCMACKey(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		sinkDigest = m.sum(key.Reveal())
	}
}

// BenchmarkCacheKey is the cache key of a presented key (KeyOf):
// SHA-256 of its secret and checksum, one SHA-256 block.
func BenchmarkCacheKey(b *testing.B) {
	key, _ := apikey.GenerateKey(apikey.Server)
	b.ReportAllocs()
	for b.Loop() {
		sinkKey = KeyOf(key.Reveal())
	}
}

// BenchmarkCacheLookup is the lookup of a cached key, its Key already
// computed: the LRU (Peek) and the entry's liveness.
func BenchmarkCacheLookup(b *testing.B) {
	c, err := New[int](DefaultTestSize, true)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := apikey.GenerateKey(apikey.Server)
	k := KeyOf(key.Reveal())
	now := time.Now()
	c.AddValid(&Entry[int]{Key: k, KeyID: key.ID(), Until: now.Add(time.Minute)}, c.Token())
	b.ReportAllocs()
	for b.Loop() {
		sinkEntry = c.Get(k, now)
	}
	if sinkEntry == nil {
		b.Fatal("the key is not cached")
	}
}

var sinkEntry *Entry[int]

// BenchmarkCacheKeyWhole is the keyed alternative to KeyOf: SHA-256(secret || key)
// of the whole key under a 32-byte secret, two SHA-256 blocks.
func BenchmarkCacheKeyWhole(b *testing.B) {
	key, _ := apikey.GenerateKey(apikey.Server)
	var secret [32]byte
	b.ReportAllocs()
	for b.Loop() {
		var buf [len(secret) + apikey.KeyLength]byte
		copy(buf[copy(buf[:], secret[:]):], key.Reveal())
		sum := sha256.Sum256(buf[:])
		copy(sinkDigest[:], sum[:])
	}
}
