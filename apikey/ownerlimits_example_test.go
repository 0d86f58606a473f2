package apikey_test

import (
	"context"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// ExampleManager_SetOwnerLimits gives every key of one customer a shared
// budget: 1,000 requests a minute and 100,000 uses a month for all of them
// together, besides each key's own limits. A key issued to the customer
// later takes them too.
func ExampleManager_SetOwnerLimits() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New(), Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	_, _ = m.Bootstrap(ctx, owner, apikey.Production)
	_, _ = m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"orders:read"}, Owner: "customer_42"})

	n, err := m.SetOwnerLimits(ctx, owner, "customer_42", apikey.Limits{
		Rate:  apikey.RateLimit{Requests: 1000, Window: time.Minute},
		Quota: apikey.Quota{Limit: 100_000, Refill: 100_000, Period: apikey.Monthly},
	})
	fmt.Println(n, "key carries them,", err)
	later, _ := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client,
		Owner: "customer_42"})
	fmt.Println(later.View.OwnerLimits)
	fmt.Println(apikey.OwnerBalanceID("acme", "customer_42"))
	// Output:
	// 1 key carries them, <nil>
	// rate 1000/60s burst 1000; quota 100000 +100000/month
	// owner:acme/customer_42
}
