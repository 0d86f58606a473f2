package envsettings_test

import (
	"context"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/internal/envsettings"
	"github.com/keystile/keystile/storage/memory"
)

// The Validator loads the table at start, asks it on the request path and
// for preflights, and lets its follower reload what changed.
func Example() {
	ctx := context.Background()
	store := memory.New()
	_ = store.Apply(ctx, apikey.Change{Settings: []apikey.Settings{{
		Account: "acme", Environment: "production", AllowedOrigins: []string{"https://*.acme.example"}, UpdatedAt: time.Now(),
	}}})

	table := envsettings.New(store, func(err error) { fmt.Println("report:", err) })
	if err := table.Load(ctx); err != nil { // New: a failure queues a full load
		fmt.Println(err)
	}

	allowed, known := table.Allows("acme", "production", "https://app.acme.example")
	fmt.Println(allowed, known)                                        // request path: known false means 503
	fmt.Println(table.State("acme", "production") == envsettings.Open) // request path, every key
	fmt.Println(table.AnyAllows("https://app.acme.example"))           // preflight

	// The follower: a feed entry or Invalidate reloads one environment;
	// Pending signals queued reloads, which ReloadPending does.
	if err := table.Reload(ctx, "acme", "production"); err != nil {
		fmt.Println(err)
	}
	_, known = table.Allows("acme", "staging", "https://app.acme.example")
	<-table.Pending()
	fmt.Println(known, table.ReloadPending(ctx))
	// Output:
	// true true
	// true
	// true
	// false <nil>
}
