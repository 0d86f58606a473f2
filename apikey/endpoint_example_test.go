package apikey_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// A tenant's owner registers a webhook endpoint for the account's
// revocations; its signing secret is returned this once. Lists and reads
// never hold it; a rotation returns the next one, and the old one keeps
// signing for the overlap asked for.
func ExampleManager_CreateEndpoint() {
	ctx := context.Background()
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	owner := apikey.Actor{ID: "ana", Role: apikey.Owner, Account: "acme"}

	issued, err := m.CreateEndpoint(ctx, owner, apikey.EndpointRequest{URL: "https://hooks.acme.example/keystile",
		Actions: []apikey.Action{apikey.ActionRevoke}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.HasPrefix(issued.Secret.Reveal(), "whsec_"), issued.Secret) // show Reveal() to the owner once
	list, _, _ := m.Endpoints(ctx, owner, apikey.Page{})
	fmt.Println(len(list), list[0].URL, list[0].Actions, list[0].Enabled)

	rotated, _ := m.RotateEndpointSecret(ctx, owner, issued.Endpoint.ID, 24*time.Hour)
	fmt.Println(rotated.Secret.Equal(issued.Secret))

	_, err = m.CreateEndpoint(ctx, owner, apikey.EndpointRequest{URL: "https://169.254.169.254/latest"})
	fmt.Println(err)
	// Output:
	// true [redacted]
	// 1 https://hooks.acme.example/keystile [revoke] true
	// false
	// apikey: invalid webhook endpoint: url may not name an internal address
}
