package apikey_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// ExampleManager_RevokeOwner offboards one of a customer's users: every
// key issued to them, in every environment, is revoked in one atomic
// write. A default key they own is left working and reported: rotate it
// first.
func ExampleManager_RevokeOwner() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New(), Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	_, _ = m.Bootstrap(ctx, owner, apikey.Production)
	_, _ = m.Bootstrap(ctx, owner, apikey.Staging)
	for _, env := range []string{apikey.Production, apikey.Staging} {
		_, _ = m.Create(ctx, owner, apikey.CreateRequest{Environment: env, Type: apikey.Server,
			Scopes: []string{"orders:read"}, Owner: "user_42"})
	}
	keys, _ := m.OwnerKeys(ctx, owner, "user_42", apikey.Page{})
	fmt.Println(len(keys.Keys), "keys issued to user_42")

	res, err := m.RevokeOwner(ctx, owner, "user_42")
	fmt.Println(res.Revoked, "revoked,", len(res.SkippedDefaults), "default keys skipped,", err)
	// Output:
	// 2 keys issued to user_42
	// 2 revoked, 0 default keys skipped, <nil>
}

// ExampleManager_Expiring lists the keys that stop working within three
// days: expiries and ends of grace periods, soonest first.
func ExampleManager_Expiring() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New(), Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	_, _ = m.Bootstrap(ctx, owner, apikey.Production)
	_, _ = m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Name: "temporary", Scopes: []string{"orders:read"}, ExpiresAt: m.Now().Add(48 * time.Hour)})
	_, _ = m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: 24 * time.Hour})

	list, err := m.Expiring(ctx, owner, apikey.ExpiringRequest{Within: 72 * time.Hour}, apikey.Page{})
	for _, k := range list.Keys {
		fmt.Println(k.Name, k.Status, k.ExpiresAt.Sub(m.Now()).Round(time.Hour))
	}
	fmt.Println(err)
	// Output:
	// default expiring 24h0m0s
	// temporary active 48h0m0s
	// <nil>
}

// ExampleManager_Purge deletes, from a ticker, the keys revoked or expired
// more than 30 days ago: the service's retention (zero keeps them for
// ever). Only an operator acting across accounts may purge; keys go PurgeBatch
// at a time, each batch its own short transaction.
func ExampleManager_Purge() {
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	operator := apikey.Actor{ID: "cleanup", Role: apikey.Owner, Account: apikey.AnyAccount}
	const retention = 30 * 24 * time.Hour

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	purge := func() {
		n, err := m.Purge(ctx, operator, retention)
		if err != nil {
			log.Printf("purge: %v (deleted %d keys)", err, n)
			return
		}
		fmt.Println("deleted", n, "keys")
	}
	purge() // at start, then every hour
	go func() {
		tick := time.NewTicker(time.Hour)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				purge()
			}
		}
	}()
	// Output:
	// deleted 0 keys
}
