package apikey_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// ExampleManagerOptions_production marks which environments are
// production: here "production" and every environment whose name starts
// with "live-". Members manage the keys of the other environments; in a
// production environment only owners change keys. A service that wants
// its members to only view maps them to apikey.ReadOnly instead.
func ExampleManagerOptions_production() {
	ctx := context.Background()
	m, _ := apikey.NewManager(apikey.ManagerOptions{
		Store: memory.New(), Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Production: func(account, environment string) bool {
			return environment == apikey.Production || strings.HasPrefix(environment, "live-")
		},
	})
	owner := apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
	member := apikey.Actor{ID: "bob", Role: apikey.Member, Account: "acme"}
	for _, env := range []string{"live-eu", apikey.Staging} {
		_, _ = m.Bootstrap(ctx, owner, env)
	}

	_, err := m.Rotate(ctx, member, apikey.RotateRequest{Environment: apikey.Staging, Type: apikey.Server, Grace: time.Hour})
	fmt.Println("staging:", err)
	_, err = m.Rotate(ctx, member, apikey.RotateRequest{Environment: "live-eu", Type: apikey.Server, Grace: time.Hour})
	fmt.Println("live-eu:", err)
	fmt.Println("forbidden:", errors.Is(err, apikey.ErrForbidden))
	// Output:
	// staging: <nil>
	// live-eu: apikey: role not allowed: members may not rotate keys in production environment "live-eu": only owners change production keys
	// forbidden: true
}
