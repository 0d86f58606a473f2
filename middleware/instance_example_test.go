package middleware_test

import (
	"context"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// Two Validators (in a real service, in two processes) follow the store's
// change feed and report what they applied; the Manager waits until a
// revocation has reached both.
func Example_confirmRevocation() {
	store, _ := setup()
	for range 2 {
		v, err := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
			FeedInterval: 10 * time.Millisecond})
		if err != nil {
			panic(err)
		}
		defer v.Close()
	}
	ops := apikey.Actor{ID: "ops", Role: apikey.Owner}
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	ctx := context.Background()
	extra, _ := m.Create(ctx, ops, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	// Both Validators reported in New.

	if _, err := m.Revoke(ctx, ops, extra.View.ID); err != nil {
		panic(err)
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := m.WaitPropagated(wait, ops, extra.View.ID)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s everywhere: %d of %d instances\n", p.Status, p.Applied, p.Live)
	// Output:
	// revoked everywhere: 2 of 2 instances
}
