package apikey_test

import (
	"context"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// ExampleManager_Callers asks who still uses a key rotated out: the
// requests since the rotation, when it was last seen, and each caller, as
// the middleware wrote them (see CallerLog).
func ExampleManager_Callers() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	store := memory.New()
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	keys, _ := m.Bootstrap(ctx, owner, apikey.Production)
	old := keys[0].View
	_, _ = m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.ID, Grace: 72 * time.Hour})

	nine := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	_ = store.RecordCallers(ctx, []apikey.KeyCallers{{Account: old.Account, KeyID: old.ID, Callers: []apikey.Caller{ // what the middleware writes in batches
		{Address: "192.0.2.7", UserAgent: "billing-cron/2.1", Requests: 12, FirstSeen: nine, LastSeen: nine.Add(55 * time.Minute)},
		{Address: "2001:db8::7", UserAgent: "Go-http-client/1.1", Requests: 3, FirstSeen: nine, LastSeen: nine.Add(5 * time.Minute)},
	}}})
	report, _ := m.Callers(ctx, owner, old.Prefix)
	fmt.Println(report.Status, report.Requests, "requests, last seen", report.LastUsedAt.Format("15:04"))
	for _, c := range report.Callers {
		fmt.Println(c.Address, c.UserAgent, c.Requests)
	}
	// Output:
	// expiring 15 requests, last seen 09:55
	// 192.0.2.7 billing-cron/2.1 12
	// 2001:db8::7 Go-http-client/1.1 3
}
