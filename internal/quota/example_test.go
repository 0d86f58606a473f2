package quota

import (
	"context"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
)

func ExampleSpender_Spend() {
	ledger := newLedger() // in a service: the Store, if it is a storage.QuotaLedger
	q := apikey.Quota{Limit: 3, Refill: 3, Period: apikey.Daily}
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	ledger.set("key1", q, now)

	s, err := New(Options{Ledger: ledger})
	if err != nil {
		panic(err)
	}
	defer s.Close(context.Background()) // returns unspent uses

	for range 3 {
		d, err := s.Spend(context.Background(), "key1", q, 1, now)
		if err != nil {
			panic(err) // the store failed: refuse with 503
		}
		fmt.Println(d.Allowed, d.Remaining)
	}
	d, _ := s.Spend(context.Background(), "key1", q, 1, now)
	fmt.Println(d.Allowed, d.NextRefill.Format(time.RFC3339))
	// Output:
	// true 2
	// true 1
	// true 0
	// false 2026-12-05T00:00:00Z
}
