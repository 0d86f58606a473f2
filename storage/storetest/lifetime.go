package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// testSettingsLifetime: an environment's lifetime policy
// (apikey.Settings.Lifetime) round-trips with its settings, is its own per
// account and environment, and is kept, changed or removed by an update
// like the settings' other fields.
func testSettingsLifetime(t *testing.T, c Config) {
	s := c.New(t)
	policy := apikey.LifetimePolicy{DefaultExpiry: 30 * 24 * time.Hour, MaxLifetime: apikey.MaxKeyLifetime}
	apply(t, s, apikey.Change{Settings: []apikey.Settings{
		{Account: acme, Environment: apikey.Production, UpdatedAt: base, Lifetime: policy},
		{Account: acme, Environment: apikey.Staging, UpdatedAt: base},
		{Account: globex, Environment: apikey.Production, UpdatedAt: base, Lifetime: apikey.LifetimePolicy{MaxLifetime: time.Second}},
	}})
	got := mustSettings(t, s, acme, apikey.Production)
	assert.Equal(t, policy, got.Lifetime, "inserted")
	assert.True(t, mustSettings(t, s, acme, apikey.Staging).Lifetime.IsZero(), "none")
	assert.Equal(t, apikey.LifetimePolicy{MaxLifetime: time.Second}, mustSettings(t, s, globex, apikey.Production).Lifetime,
		"the other account's")

	got.AllowedOrigins = []string{"https://app.example.com"}
	apply(t, s, apikey.Change{Settings: []apikey.Settings{got}})
	got = mustSettings(t, s, acme, apikey.Production)
	assert.Equal(t, policy, got.Lifetime, "kept by an update of another field")

	got.Lifetime = apikey.LifetimePolicy{MaxLifetime: 90 * 24 * time.Hour}
	apply(t, s, apikey.Change{Settings: []apikey.Settings{got}})
	got = mustSettings(t, s, acme, apikey.Production)
	assert.Equal(t, apikey.LifetimePolicy{MaxLifetime: 90 * 24 * time.Hour}, got.Lifetime, "changed")
	assert.Equal(t, []string{"https://app.example.com"}, got.AllowedOrigins)

	got.Lifetime = apikey.LifetimePolicy{}
	apply(t, s, apikey.Change{Settings: []apikey.Settings{got}})
	assert.True(t, mustSettings(t, s, acme, apikey.Production).Lifetime.IsZero(), "removed")

	page, err := s.Environments(t.Context(), apikey.EnvironmentQuery{Limit: 10})
	assert.NoError(t, err)
	for _, env := range page {
		if env.Account == globex {
			assert.Equal(t, apikey.LifetimePolicy{MaxLifetime: time.Second}, env.Lifetime, "a page of environments carries it")
		}
	}
}

// testConcurrentLifetime races lifetime policy changes and allowed-origin
// changes of one environment through Managers on several handles: every
// call succeeds (retrying lost races), and the settings end with one
// writer's policy and one writer's origins, neither lost to the other.
func testConcurrentLifetime(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	ms := managers(t, c.peers(t, s, 3))
	_, err := manager(t, s).Bootstrap(ctx, owner, apikey.Development)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			policy := apikey.LifetimePolicy{MaxLifetime: time.Duration(i+1) * time.Hour}
			_, err := ms[i%len(ms)].SetLifetimePolicy(ctx, owner, apikey.Development, policy)
			assert.NoError(t, err)
		})
		wg.Go(func() {
			_, err := ms[(i+1)%len(ms)].SetAllowedOrigins(ctx, owner, apikey.Development, []string{fmt.Sprintf("http://localhost:%d", 3000+i)})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	got := mustSettings(t, s, apikey.DefaultAccount, apikey.Development)
	assert.Positive(t, got.Lifetime.MaxLifetime, "a policy was kept")
	assert.Zero(t, got.Lifetime.MaxLifetime%time.Hour, "one writer's policy, whole")
	assert.Len(t, got.AllowedOrigins, 1, "and one writer's origins")
}
