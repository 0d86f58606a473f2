package middleware

import (
	"testing"

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
