package envsettings

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// accountSettings returns the settings of account i's environments: an
// origin of its own in production, its own origin and a wildcard in
// staging, and a localhost origin (shared by every account) in
// development.
func accountSettings(i int) []apikey.Settings {
	account := fmt.Sprintf("acct-%06d", i)
	return []apikey.Settings{
		{Account: account, Environment: apikey.Development, AllowedOrigins: []string{"http://localhost:3000"}, UpdatedAt: now},
		{Account: account, Environment: apikey.Production, AllowedOrigins: []string{"https://" + account + ".example.com"}, UpdatedAt: now},
		{Account: account, Environment: apikey.Staging, AllowedOrigins: []string{
			"https://staging." + account + ".example.com", "https://*.preview." + account + ".example.com"}, UpdatedAt: now},
	}
}

// manyAccounts returns a memory store with the settings of n accounts,
// written a thousand at a time.
func manyAccounts(tb testing.TB, n int) *memory.Store {
	tb.Helper()
	s := memory.New()
	var batch []apikey.Settings
	for i := range n {
		batch = append(batch, accountSettings(i)...)
		if len(batch) >= 999 || i == n-1 {
			require.NoError(tb, s.Apply(context.Background(), apikey.Change{Settings: batch}))
			batch = batch[:0]
		}
	}
	return s
}

// TestLoadManyAccounts loads 2,500 accounts' environments, a page at a
// time, and checks every environment and the preflight index.
func TestLoadManyAccounts(t *testing.T) {
	const accounts = 2500
	store := faultstore.New(manyAccounts(t, accounts))
	table := New(store, func(err error) { t.Error(err) })
	require.NoError(t, table.Load(context.Background()))
	assert.Equal(t, 3*accounts, table.Len())
	assert.EqualValues(t, (3*accounts)/PageSize+1, store.Calls(faultstore.OpEnvironments), "pages")
	for i := range accounts {
		account := fmt.Sprintf("acct-%06d", i)
		allowed, known := table.Allows(account, apikey.Production, "https://"+account+".example.com")
		require.True(t, allowed && known, account)
		allowed, _ = table.Allows(account, apikey.Staging, "https://pr-1.preview."+account+".example.com")
		require.True(t, allowed, account)
		allowed, _ = table.Allows(account, apikey.Production, "https://staging."+account+".example.com")
		require.False(t, allowed, account)
		allowed, _ = table.Allows(account, apikey.Development, "http://localhost:3000")
		require.True(t, allowed, account)
	}
	assert.True(t, table.AnyAllows("https://pr-9.preview.acct-001234.example.com"))
	assert.True(t, table.AnyAllows("http://localhost:3000"))
	assert.False(t, table.AnyAllows("https://preview.acct-001234.example.com"))
	assert.False(t, table.AnyAllows("https://acct-999999.example.com"))
	assert.Zero(t, store.Calls(faultstore.OpSettings))
}

// TestConcurrentReaders runs lookups while loads and reloads replace the
// entries (run it with -race): an environment whose settings do not change
// is allowed throughout, and an entry common to the two lists an
// environment alternates between is allowed throughout.
func TestConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	store := manyAccounts(t, 300)
	f := &fixture{store: store}
	f.table = New(store, func(err error) { t.Error(err) })
	require.NoError(t, f.table.Load(ctx))
	f.put(t, env("acct-000001", apikey.Staging, "https://a.example", "https://c.example"))
	require.NoError(t, f.table.Reload(ctx, "acct-000001", apikey.Staging))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lookups atomic.Int64
	for r := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				account := fmt.Sprintf("acct-%06d", (i*7+r)%300)
				allowed, known := f.table.Allows(account, apikey.Production, "https://"+account+".example.com")
				if !allowed || !known {
					t.Errorf("%s: allowed %v, known %v", account, allowed, known)
					return
				}
				if allowed, known := f.table.Allows("acct-000001", apikey.Staging, "https://c.example"); !allowed || !known {
					t.Errorf("staging: allowed %v, known %v", allowed, known)
					return
				}
				if s := f.table.State(account, apikey.Production); s != Open {
					t.Errorf("%s in state %d", account, s)
					return
				}
				if !f.table.AnyAllows("http://localhost:3000") {
					t.Error("localhost refused")
					return
				}
				lookups.Add(1)
				runtime.Gosched()
			}
		})
	}
	writes := 0
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline) || writes < 20; writes++ {
		origin := []string{"https://a.example", "https://b.example"}[writes%2]
		f.put(t, env("acct-000001", apikey.Staging, origin, "https://c.example"))
		if writes%5 == 0 {
			require.NoError(t, f.table.Load(ctx))
		} else {
			require.NoError(t, f.table.Reload(ctx, "acct-000001", apikey.Staging))
		}
	}
	close(stop)
	wg.Wait()
	assert.Positive(t, lookups.Load())
}
