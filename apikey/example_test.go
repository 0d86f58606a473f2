package apikey_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

func ExampleGenerateKey() {
	key, err := apikey.GenerateKey(apikey.Server)
	if err != nil {
		panic(err)
	}
	fmt.Println(key.Type(), len(key.Reveal()), apikey.KeyRegexp.MatchString(key.Reveal()))
	fmt.Println(key.String() == key.Prefix()) // printing a key never shows its secret
	// Output:
	// server 69 true
	// true
}

func ExampleParseKey() {
	key, _ := apikey.GenerateKey(apikey.Client)
	parsed, err := apikey.ParseKey(key.Reveal())
	fmt.Println(parsed.Type(), parsed.ID() == key.ID(), err)

	_, err = apikey.ParseKey("server-not-a-key")
	fmt.Println(errors.Is(err, apikey.ErrMalformedKey))
	// Output:
	// client true <nil>
	// true
}

// ExampleParseKeyID reads the names people give a stored key: its key id or
// its displayable prefix. A full key is refused, and never echoed.
func ExampleParseKeyID() {
	id, typ, err := apikey.ParseKeyID("server-0123456789ab")
	fmt.Println(id, typ, err)
	id, typ, err = apikey.ParseKeyID("0123456789ab")
	fmt.Printf("%s %q %v\n", id, typ, err)

	key, _ := apikey.GenerateKey(apikey.Server)
	_, _, err = apikey.ParseKeyID(key.Reveal())
	fmt.Println(errors.Is(err, apikey.ErrInvalidKeyID))
	// Output:
	// 0123456789ab server <nil>
	// 0123456789ab "" <nil>
	// true
}

func ExampleArgon2id() {
	hasher := apikey.Argon2id{Params: apikey.LightParams}
	key, _ := apikey.GenerateKey(apikey.Server)
	encoded, _ := hasher.Hash([]byte(key.Reveal()))
	fmt.Println(encoded[:30])

	match, outdated, err := hasher.Verify([]byte(key.Reveal()), encoded)
	fmt.Println(match, outdated, err)
	// Output:
	// $argon2id$v=19$m=1024,t=1,p=1$
	// true false <nil>
}

// ExampleManager_Rotate bootstraps an environment, rotates its server key with a
// one-hour grace, fails to revoke the new default key, revokes the old one,
// and lists the keys as a read-only actor, who sees no secret.
func ExampleManager_Rotate() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	keys, _ := m.Bootstrap(ctx, owner, apikey.Production)
	fresh, _ := m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: keys[0].View.ID, Grace: time.Hour})
	_, err := m.Revoke(ctx, owner, fresh.View.ID)
	fmt.Println(errors.Is(err, apikey.ErrDefaultKeyNotRevocable))
	_, err = m.Revoke(ctx, owner, keys[0].View.ID)
	fmt.Println(err)
	list, _ := m.List(ctx, apikey.Actor{ID: "carol", Role: apikey.ReadOnly}, apikey.Production, apikey.Page{})
	for _, v := range list.Keys {
		fmt.Println(v.Type, v.Default, v.Status)
	}
	// Unordered output:
	// true
	// <nil>
	// server false revoked
	// client true active
	// server true active
}

// ExampleUpgradeHash raises the hash parameters of a key that verified
// against a weaker stored hash. A stronger stored hash would be kept.
func ExampleUpgradeHash() {
	ctx := context.Background()
	store := memory.New()
	old := apikey.Argon2id{Params: apikey.TestParams}
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: old})
	issued, _ := m.Bootstrap(ctx, apikey.Actor{ID: "alice", Role: apikey.Owner}, apikey.Production)
	key := issued[0].Key

	raised := old
	raised.Params.Iterations = 2
	rec, _ := store.Key(ctx, key.ID())
	match, outdated, _ := raised.Verify([]byte(key.Reveal()), rec.Hash.Reveal())
	fmt.Println(match, outdated)
	if outdated {
		_, upgraded, err := apikey.UpgradeHash(ctx, store, raised, rec, key)
		fmt.Println(upgraded, err)
	}
	rec, _ = store.Key(ctx, key.ID())
	_, outdated, _ = raised.Verify([]byte(key.Reveal()), rec.Hash.Reveal())
	fmt.Println(outdated)
	// Output:
	// true true
	// true <nil>
	// false
}

// ExampleValidateName shows the key-shape guard that names, owners and
// metadata values share: ordinary text, digests and URLs pass; anything
// from which a key could be rebuilt is refused, and never repeated.
func ExampleValidateName() {
	key, _ := apikey.GenerateKey(apikey.Server)
	secret := key.Reveal()[apikey.PrefixLength+1:]
	for _, name := range []string{
		"billing worker",
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"api_secret=" + secret,
		key.Prefix() + ":" + secret,
	} {
		err := apikey.ValidateName(name)
		fmt.Println(err == nil, errors.Is(err, apikey.ErrInvalidName))
	}
	// Output:
	// true false
	// true false
	// false true
	// false true
}
