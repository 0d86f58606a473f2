package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// BenchmarkColdLookup measures what a key that is not in the validation
// cache costs with the store c.New returns, among 1,000 other keys:
//
//   - "Key": the lookup by key id alone;
//   - "KeyVerify": the lookup and the argon2id verification of the presented
//     key with DefaultParams, as the middleware does on a cache miss.
//
// Call it from a benchmark of your backend:
//
//	func BenchmarkColdLookup(b *testing.B) {
//		storetest.BenchmarkColdLookup(b, storetest.Config{New: newStore})
//	}
func BenchmarkColdLookup(b *testing.B, c Config) {
	if c.New == nil {
		b.Fatal("storetest: Config.New is required")
	}
	s, ctx := c.New(b), context.Background()
	var filler apikey.Change
	for range 1000 {
		filler.Insert = append(filler.Insert, record("production", apikey.Server, false))
	}
	require.NoError(b, s.Apply(ctx, filler))

	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(b, err)
	hasher := apikey.Argon2id{Params: apikey.DefaultParams}
	hash, err := hasher.Hash([]byte(key.Reveal()))
	require.NoError(b, err)
	r := record("production", apikey.Server, true)
	r.ID, r.Hash = key.ID(), apikey.NewOpaque(hash)
	require.NoError(b, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{r}}))

	b.Run("Key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Key(ctx, key.ID()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("KeyVerify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec, err := s.Key(ctx, key.ID())
			if err != nil {
				b.Fatal(err)
			}
			match, _, err := hasher.Verify([]byte(key.Reveal()), rec.Hash.Reveal())
			if err != nil || !match {
				b.Fatal(fmt.Errorf("verify: match %v, err %w", match, err))
			}
		}
	})
}
