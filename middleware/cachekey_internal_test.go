package middleware

import (
	"testing"
	"unsafe"

	"github.com/keystile/keystile/apikey"
)

// TestCacheKeyCoversTheWholeKey changes each byte of a key in turn: every
// change must give another cache key, in the public head as in the secret
// and checksum, since a cache hit skips the format and checksum checks.
func TestCacheKeyCoversTheWholeKey(t *testing.T) {
	key, err := apikey.GenerateKey(apikey.Server)
	if err != nil {
		t.Fatal(err)
	}
	s := key.Reveal()
	k := cacheKeyOf(s)
	for i := range len(s) {
		b := []byte(s)
		b[i] ^= 1
		if cacheKeyOf(string(b)) == k {
			t.Errorf("changing byte %d of the key left its cache key unchanged", i)
		}
	}
	other, err := apikey.ParseKey("client-" + s[len("server-"):])
	if err == nil {
		t.Fatalf("a server key with its type changed parsed as %s", other)
	}
	if cacheKeyOf("client-"+s[len("server-"):]) == k {
		t.Error("the cache key ignores the key's type")
	}
}

// TestVerifiedKeysTellHeadsApart remembers a key in the table of verified
// keys, made to have a single slot so that every key shares it: a cache
// key with the same digest under another head is not taken for it, a key
// that verified later takes the slot over, and slots stay 32 bytes
// (Options.CacheSize's sizes).
func TestVerifiedKeysTellHeadsApart(t *testing.T) {
	key, err := apikey.GenerateKey(apikey.Client)
	if err != nil {
		t.Fatal(err)
	}
	k := cacheKeyOf(key.Reveal())
	other := k
	other.head[0] = 's'
	table := newVerifiedKeys(0)
	table.mask = 0 // one slot: only the tags tell keys apart
	if table.contains(k) {
		t.Fatal("an empty table contains a key")
	}
	table.add(k, 42, false)
	if !table.contains(k) {
		t.Fatal("a key that verified is not in the table")
	}
	if match, _ := table.matches(k, 42); !match {
		t.Fatal("a key that verified does not match its hash")
	}
	if match, _ := table.matches(k, 43); match {
		t.Fatal("a key matches a hash it did not verify against")
	}
	if table.contains(other) {
		t.Fatal("a key with another head is taken for the key that verified")
	}
	table.add(other, 43, true)
	if table.contains(k) {
		t.Fatal("a key is still in the slot that a later key took over")
	}
	if match, outdated := table.matches(other, 43); !match || !outdated {
		t.Fatalf("the later key: match %v, outdated %v", match, outdated)
	}
	if size := unsafe.Sizeof(verifiedSlot{}); size != 32 {
		t.Fatalf("slots of %d bytes, documented as 32", size)
	}
}
