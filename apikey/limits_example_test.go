package apikey_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// ExampleManager_SetLimits bounds a key: 100 requests a minute, and 10,000
// uses a month that refill on the first of each month (UTC). Out-of-range
// limits are refused with an error that names the field.
func ExampleManager_SetLimits() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New(), Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	keys, _ := m.Bootstrap(ctx, owner, apikey.Production)
	view, err := m.SetLimits(ctx, owner, keys[0].View.ID, apikey.Limits{
		Rate:  apikey.RateLimit{Requests: 100, Window: time.Minute},
		Quota: apikey.Quota{Limit: 10_000, Refill: 10_000, Period: apikey.Monthly},
	})
	fmt.Println(err, view.Limits)
	b, _ := json.Marshal(view.Limits)
	fmt.Println(string(b))

	_, err = m.SetLimits(ctx, owner, keys[0].View.ID, apikey.Limits{Rate: apikey.RateLimit{Requests: 100, Window: 48 * time.Hour}})
	fmt.Println(errors.Is(err, apikey.ErrInvalidLimits), err)
	// Output:
	// <nil> rate 100/60s burst 100; quota 10000 +10000/month
	// {"rate":{"requests":100,"window_seconds":60},"quota":{"limit":10000,"refill":10000,"period":"month"}}
	// true apikey: invalid limits: rate.window_seconds must be 1 to 86400
}

// ExampleManager_Usage reads a key's requests per hour and outcome, as the
// store counted them (see UsageRecorder), a page at a time.
func ExampleManager_Usage() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	store := memory.New()
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	keys, _ := m.Bootstrap(ctx, owner, apikey.Production)
	id := keys[0].View.ID
	nine := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	_ = store.RecordUsage(ctx, []apikey.UsageCount{ // what the middleware writes in batches
		{Account: apikey.DefaultAccount, Environment: apikey.Production, KeyID: id, Hour: nine, Outcome: "admitted", Count: 120},
		{Account: apikey.DefaultAccount, Environment: apikey.Production, KeyID: id, Hour: nine, Outcome: "rate_limited", Count: 3},
		{Account: apikey.DefaultAccount, Environment: apikey.Production, KeyID: id, Hour: nine.Add(time.Hour), Outcome: "admitted", Count: 80},
	})
	page, _ := m.Usage(ctx, owner, apikey.UsageRequest{KeyID: id, From: nine, To: nine.Add(24 * time.Hour)}, apikey.Page{Limit: 2})
	for _, c := range page.Counts {
		fmt.Println(c.Hour.Format("15:04"), c.Outcome, c.Count)
	}
	page, _ = m.Usage(ctx, owner, apikey.UsageRequest{KeyID: id, From: nine, To: nine.Add(24 * time.Hour)}, apikey.Page{Limit: 2, After: page.Next})
	for _, c := range page.Counts {
		fmt.Println(c.Hour.Format("15:04"), c.Outcome, c.Count)
	}
	fmt.Println(page.Next == "")
	// Output:
	// 09:00 admitted 120
	// 09:00 rate_limited 3
	// 10:00 admitted 80
	// true
}
