package faultstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// A write that loses a race once, as a concurrent change of the same key
// makes it do, and a count of the key reads.
func ExampleStore_Before() {
	ctx := context.Background()
	fs := faultstore.New(memory.New())
	var failed atomic.Bool
	fs.Before(func(_ context.Context, c *faultstore.Call) error {
		if len(c.Change.Update) == 1 && failed.CompareAndSwap(false, true) {
			return apikey.ErrConflict
		}
		return nil
	}, faultstore.OpApply)

	change := apikey.Change{Update: []apikey.Record{{ID: "k1"}}}
	fmt.Println(errors.Is(fs.Apply(ctx, change), apikey.ErrConflict))
	_, _ = fs.Key(ctx, "k1")
	_, _ = fs.Key(ctx, "k2")
	fmt.Println(fs.Calls(faultstore.OpKey), "key reads")
	// Output:
	// true
	// 2 key reads
}

// A listing that misses a key, as one made in a race with the key's
// creation does.
func ExampleStore_After() {
	ctx := context.Background()
	fs := faultstore.New(memory.New())
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: fs, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	issued, _ := m.Bootstrap(ctx, apikey.Actor{ID: "ops", Role: apikey.Owner}, apikey.Production)
	hidden := issued[0].Key.ID()

	fs.After(func(_ context.Context, c *faultstore.Call) {
		c.Records = slices.DeleteFunc(c.Records, func(r apikey.Record) bool { return r.ID == hidden })
	}, faultstore.OpKeys)
	keys, _ := fs.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: 10})
	fmt.Println(len(keys), "of", len(issued), "keys listed")
	// Output: 1 of 2 keys listed
}

// A store without a change feed, for code that finds it by type
// assertion.
func ExampleStore_Hide() {
	fs := faultstore.New(memory.New())
	fs.Hide(faultstore.OpChanges)
	_, feed := fs.Exact().(storage.ChangeFeed)
	_, recorder := fs.Exact().(storage.LastUsedRecorder)
	fmt.Println(feed, recorder)
	// Output: false true
}

// A hasher that counts the verifications that found a match.
func ExampleNewHasher() {
	h := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	var matches atomic.Int64
	h.After(func(_ context.Context, c *faultstore.Call) {
		if c.Match {
			matches.Add(1)
		}
	}, faultstore.OpVerify)

	encoded, _ := h.Hash([]byte("secret"))
	_, _, _ = h.Verify([]byte("secret"), encoded)
	_, _, _ = h.Verify([]byte("wrong"), encoded)
	fmt.Println(matches.Load(), "of", h.Calls(faultstore.OpVerify), "verifications matched")
	// Output: 1 of 2 verifications matched
}
