package middleware_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// actorIn is an owner acting in account.
func actorIn(account string) apikey.Actor {
	return apikey.Actor{ID: "alice", Role: apikey.Owner, Account: account}
}

// accounts is a store with two accounts that use the same environment
// names, acme and globex, each with production and staging bootstrapped and
// origins of its own, and a Manager (process A) whose events reach the
// Validators registered with it.
type accounts struct {
	t     *testing.T
	store *memory.Store
	m     *apikey.Manager
	keys  map[string]apikey.Key // "acme/production/client", ...

	mu         sync.Mutex
	validators []*middleware.Validator // told of the Manager's events
}

func newAccounts(t *testing.T) *accounts {
	t.Helper()
	a := &accounts{t: t, store: memory.New(), keys: map[string]apikey.Key{}}
	var err error
	a.m, err = apikey.NewManager(apikey.ManagerOptions{
		Store: a.store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		OnEvent: func(e apikey.Event) {
			a.mu.Lock()
			vs := slices.Clone(a.validators)
			a.mu.Unlock()
			for _, v := range vs {
				v.Invalidate(e)
			}
		},
	})
	require.NoError(t, err)
	ctx := context.Background()
	for _, account := range []string{"acme", "globex"} {
		for _, env := range []string{apikey.Production, apikey.Staging} {
			issued, err := a.m.Bootstrap(ctx, actorIn(account), env)
			require.NoError(t, err)
			for _, is := range issued {
				a.keys[account+"/"+env+"/"+string(is.Key.Type())] = is.Key
			}
		}
		_, err := a.m.SetAllowedOrigins(ctx, actorIn(account), apikey.Production, []string{"https://" + account + ".example"})
		require.NoError(t, err)
	}
	return a
}

// validator starts a Validator on store (a.store if nil); with invalidate,
// it is told of the Manager's events (it runs in process A), else it learns
// of changes through the change feed only (another process).
func (a *accounts) validator(store apikey.Store, invalidate bool) *middleware.Validator {
	a.t.Helper()
	if store == nil {
		store = a.store
	}
	v, err := middleware.New(middleware.Options{
		Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, FeedInterval: 5 * time.Millisecond,
	})
	require.NoError(a.t, err)
	a.t.Cleanup(func() { _ = v.Close() })
	if invalidate {
		a.mu.Lock()
		a.validators = append(a.validators, v)
		a.mu.Unlock()
	}
	return v
}

// TestIdentityCarriesAccountOwnerAndMetadata: the handler's Identity names
// the key's account, name, owner and metadata, and every Identity handed
// out (FromContext, Check, the hooks) holds its own copy of the metadata:
// changing it changes nothing for the next request.
func TestIdentityCarriesAccountOwnerAndMetadata(t *testing.T) {
	a := newAccounts(t)
	is, err := a.m.Create(context.Background(), actorIn("acme"), apikey.CreateRequest{
		Environment: apikey.Production, Type: apikey.Server, Name: "billing worker", Owner: "user_42",
		Metadata: map[string]string{"plan": "pro"}, Scopes: []string{"invoices:write"},
	})
	require.NoError(t, err)
	var hooked []middleware.Identity
	v, err := middleware.New(middleware.Options{
		Store: a.store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		OnAuthenticated: func(_ context.Context, _ middleware.Attempt, id middleware.Identity) {
			hooked = append(hooked, id)
			id.Metadata["plan"] = "changed by a hook"
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	var seen []middleware.Identity
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := middleware.FromContext(r.Context())
		require.True(t, ok)
		seen = append(seen, id)
		id.Metadata["plan"] = "changed by a handler"
		again, _ := middleware.FromContext(r.Context())
		assert.Equal(t, "pro", again.Metadata["plan"], "FromContext hands out a copy")
	}))
	for range 2 {
		require.Equal(t, http.StatusOK, serve(h, request(is.Key.Reveal())).Code)
	}
	require.Len(t, seen, 2)
	for i, id := range seen {
		assert.Equal(t, "acme", id.Account, "request %d", i)
		assert.Equal(t, apikey.Production, id.Environment)
		assert.Equal(t, "billing worker", id.Name)
		assert.Equal(t, "user_42", id.Owner)
		assert.Equal(t, "changed by a handler", id.Metadata["plan"], "the handler's own copy")
	}
	id, err := v.Check(request(is.Key.Reveal()), middleware.Policy{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"plan": "pro"}, id.Metadata, "neither the hook nor the handler changed the cached identity")
	require.Len(t, hooked, 3)

	// A key of the default account says so.
	f := newFixture(t, nil)
	id, err = f.v.Check(request(f.keys["production/server"].Reveal()), middleware.Policy{})
	require.NoError(t, err)
	assert.Equal(t, apikey.DefaultAccount, id.Account)
	assert.Nil(t, id.Metadata)
}

// TestOriginsPerAccount: two accounts with an environment of the same name
// allow different origins; a publishable key is checked against its own
// account's list, and a preflight (which carries no key) is answered for
// an origin that some account allows.
func TestOriginsPerAccount(t *testing.T) {
	a := newAccounts(t)
	v := a.validator(nil, true)
	h := v.Require(anyType)(okHandler)
	prodOnly := v.Require(middleware.Policy{Types: anyType.Types, Environments: []string{apikey.Production}})(okHandler)
	stagingOnly := v.Require(middleware.Policy{Types: anyType.Types, Environments: []string{apikey.Staging}})(okHandler)
	for _, tt := range []struct {
		key, origin string
		status      int
	}{
		{"acme/production/client", "https://acme.example", 200},
		{"acme/production/client", "https://globex.example", 403},
		{"globex/production/client", "https://globex.example", 200},
		{"globex/production/client", "https://acme.example", 403},
		{"acme/staging/client", "https://acme.example", 403},
	} {
		w := serve(h, request(a.keys[tt.key].Reveal(), "Origin", tt.origin))
		assert.Equal(t, tt.status, w.Code, "%s from %s: %s", tt.key, tt.origin, w.Body)
	}
	for _, tt := range []struct {
		name    string
		h       http.Handler
		origin  string
		allowed bool
	}{
		{"acme's origin", prodOnly, "https://acme.example", true},
		{"globex's origin", prodOnly, "https://globex.example", true},
		{"nobody's origin", prodOnly, "https://initech.example", false},
		{"no account allows it in staging", stagingOnly, "https://acme.example", false},
	} {
		w := serve(tt.h, preflight(tt.origin, "x-api-key"))
		assert.Equal(t, tt.allowed, w.Header().Get("Access-Control-Allow-Origin") == tt.origin, tt.name)
	}
}

// TestPreflightFollowsOriginChanges: the preflight index follows changes of
// an environment's list, and a closed account's origins no longer count.
func TestPreflightFollowsOriginChanges(t *testing.T) {
	a := newAccounts(t)
	v := a.validator(nil, true)
	h := v.Require(anyType)(okHandler)
	answered := func(origin string) bool {
		return serve(h, preflight(origin, "x-api-key")).Header().Get("Access-Control-Allow-Origin") == origin
	}
	ctx := context.Background()
	require.True(t, answered("https://acme.example"))
	_, err := a.m.SetAllowedOrigins(ctx, actorIn("acme"), apikey.Production, []string{"https://*.acme.example", "http://localhost:3000"})
	require.NoError(t, err)
	assert.False(t, answered("https://acme.example"), "removed")
	assert.True(t, answered("https://shop.acme.example"), "wildcard")
	assert.True(t, answered("https://a.b.acme.example"), "wildcard, deeper")
	assert.True(t, answered("http://localhost:3000"))
	assert.False(t, answered("http://localhost:3001"))
	_, err = a.m.SetAllowedOrigins(ctx, actorIn("globex"), apikey.Staging, []string{"http://localhost:3000"})
	require.NoError(t, err)

	_, err = a.m.CloseAccount(ctx, actorIn("acme"), "acme")
	require.NoError(t, err)
	assert.False(t, answered("https://shop.acme.example"), "a closed account's origins no longer count")
	assert.True(t, answered("http://localhost:3000"), "globex still allows it")
	assert.True(t, answered("https://globex.example"))
}

// TestSettingsChangeReachesAnotherProcess shows what a settings change in
// one account costs another process that shares the store: it learns of
// it from the change feed and reads exactly that environment's settings,
// one Store.Settings call (one row) per changed environment, and never the
// list of environments.
func TestSettingsChangeReachesAnotherProcess(t *testing.T) {
	a := newAccounts(t)
	counted := faultstore.New(a.store)
	b := a.validator(counted.Exact(), false) // process B: no Invalidate
	h := b.Require(anyType)(okHandler)
	require.Equal(t, 4, b.Stats().Environments)
	settings, envs := counted.Calls(faultstore.OpSettings), counted.Calls(faultstore.OpEnvironments)
	require.Positive(t, envs, "B loaded every environment at start")

	ctx := context.Background()
	admitted := func(key, origin string) bool {
		return serve(h, request(a.keys[key].Reveal(), "Origin", origin)).Code == http.StatusOK
	}
	start := time.Now()
	_, err := a.m.SetAllowedOrigins(ctx, actorIn("acme"), apikey.Production, []string{"https://new.acme.example"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return admitted("acme/production/client", "https://new.acme.example") }, 2*time.Second, time.Millisecond)
	took := time.Since(start)
	assert.False(t, admitted("acme/production/client", "https://acme.example"), "the old origin is gone")
	assert.True(t, admitted("globex/production/client", "https://globex.example"), "the other account is untouched")
	assert.Equal(t, int64(1), counted.Calls(faultstore.OpSettings)-settings, "one Settings read for the changed environment")
	assert.Zero(t, counted.Calls(faultstore.OpEnvironments)-envs, "no full reload")

	// Two environments of two accounts change: two reads.
	settings = counted.Calls(faultstore.OpSettings)
	_, err = a.m.SetAllowedOrigins(ctx, actorIn("globex"), apikey.Staging, []string{"https://staging.globex.example"})
	require.NoError(t, err)
	_, err = a.m.SetAllowedOrigins(ctx, actorIn("acme"), apikey.Staging, []string{"https://staging.acme.example"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return admitted("globex/staging/client", "https://staging.globex.example") && admitted("acme/staging/client", "https://staging.acme.example")
	}, 2*time.Second, time.Millisecond)
	assert.Equal(t, int64(2), counted.Calls(faultstore.OpSettings)-settings, "one Settings read per changed environment")
	assert.Zero(t, counted.Calls(faultstore.OpEnvironments)-envs, "no full reload")
	t.Logf("a settings change reached process B in %s (feed interval 5ms): 1 Store.Settings read (one row) per changed environment, 0 Store.Environments calls", took.Round(time.Millisecond))
}

// TestNewEnvironmentLoadsAlone: a browser request with a publishable key of
// an environment that this process has not seen yet (bootstrapped
// elsewhere a moment ago) makes it read that environment's settings alone.
func TestNewEnvironmentLoadsAlone(t *testing.T) {
	a := newAccounts(t)
	counted := faultstore.New(a.store)
	// The feed is late: never read during the test. (A feed read held up
	// by a delay blocked the background loop, and the reload with it, when
	// the loop reached the feed before the request: under load.)
	b, err := middleware.New(middleware.Options{
		Store: counted.Exact(), Hasher: apikey.Argon2id{Params: apikey.TestParams}, FeedInterval: time.Hour,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	h := b.Require(anyType)(okHandler)
	envs := counted.Calls(faultstore.OpEnvironments)
	issued, err := a.m.Bootstrap(context.Background(), actorIn("acme"), "qa")
	require.NoError(t, err)
	_, err = a.m.SetAllowedOrigins(context.Background(), actorIn("acme"), "qa", []string{"https://qa.acme.example"})
	require.NoError(t, err)
	key := issued[1].Key.Reveal()
	w := serve(h, request(key, "Origin", "https://qa.acme.example"))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, "not loaded yet: fail closed")
	require.Eventually(t, func() bool {
		return serve(h, request(key, "Origin", "https://qa.acme.example")).Code == http.StatusOK
	}, 2*time.Second, time.Millisecond)
	assert.Zero(t, counted.Calls(faultstore.OpEnvironments)-envs, "no full reload")
}

// hidingStore hides one key from listings, as if it had been created just
// after CloseAccount read its page of keys: a key created in a race with
// the close.
type hidingStore struct {
	*memory.Store
	mu     sync.Mutex
	hidden string
}

func (s *hidingStore) Keys(ctx context.Context, q apikey.KeyQuery) ([]apikey.Record, error) {
	keys, err := s.Store.Keys(ctx, q)
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(keys, func(r apikey.Record) bool { return r.ID == s.hidden }), err
}

// TestClosedAccountIsRefused: closing an account revokes its keys, and a
// key that the close missed (created in a race with it) is refused too,
// because its environment's settings are closed: in the process that
// closed it at once, in another process through the change feed, and in a
// process that starts afterwards. Other accounts are untouched.
func TestClosedAccountIsRefused(t *testing.T) {
	a := newAccounts(t)
	ctx := context.Background()
	raced, err := a.m.Create(ctx, actorIn("acme"), apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	require.NoError(t, err)
	hiding := &hidingStore{Store: a.store, hidden: raced.View.ID}
	closer, err := apikey.NewManager(apikey.ManagerOptions{Store: hiding, OnEvent: func(e apikey.Event) {
		a.mu.Lock()
		vs := slices.Clone(a.validators)
		a.mu.Unlock()
		for _, v := range vs {
			v.Invalidate(e)
		}
	}})
	require.NoError(t, err)

	inA, inB := a.validator(nil, true), a.validator(nil, false)
	acme, globex := a.keys["acme/production/server"].Reveal(), a.keys["globex/production/server"].Reveal()
	for _, v := range []*middleware.Validator{inA, inB} {
		for _, k := range []string{acme, raced.Key.Reveal(), globex} {
			_, err := v.Check(request(k), middleware.Policy{})
			require.NoError(t, err, "cached before the close")
		}
	}
	revoked, err := closer.CloseAccount(ctx, actorIn("acme"), "acme")
	require.NoError(t, err)
	assert.Equal(t, 4, revoked, "the four keys of acme's two environments that the close saw")
	rec, err := a.store.Key(ctx, raced.View.ID)
	require.NoError(t, err)
	require.True(t, rec.RevokedAt.IsZero(), "the raced key escaped the revocation")

	refused := func(v *middleware.Validator, key string) bool {
		_, err := v.Check(request(key), middleware.Policy{})
		return problem.Of(err) == middleware.ErrRevokedKey
	}
	assert.True(t, refused(inA, acme), "process A: revoked")
	assert.True(t, refused(inA, raced.Key.Reveal()), "process A: the raced key's account is closed")
	assert.Eventually(t, func() bool { return refused(inB, acme) && refused(inB, raced.Key.Reveal()) }, 2*time.Second, time.Millisecond,
		"process B: through the change feed")
	later := a.validator(nil, false)
	assert.True(t, refused(later, raced.Key.Reveal()), "a process started after the close")
	for _, v := range []*middleware.Validator{inA, inB, later} {
		_, err := v.Check(request(globex), middleware.Policy{})
		assert.NoError(t, err, "another account is untouched")
	}
	_, err = a.m.Create(ctx, actorIn("acme"), apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	assert.ErrorIs(t, err, apikey.ErrAccountClosed)
}

// TestOriginTableSurvivesConcurrentChanges runs browser requests of two
// accounts while their origins change: under -race, the request path
// reads the table while the Manager's events and the change feed update
// it.
func TestOriginTableSurvivesConcurrentChanges(t *testing.T) {
	a := newAccounts(t)
	v := a.validator(nil, true)
	h := v.Require(anyType)(okHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, account := range []string{"acme", "globex"} {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				origins := []string{"https://" + account + ".example"}
				if i%2 == 1 {
					origins = append(origins, "https://*.extra.example")
				}
				_, err := a.m.SetAllowedOrigins(context.Background(), actorIn(account), apikey.Production, origins)
				assert.NoError(t, err)
			}
		})
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, account := range []string{"acme", "globex"} {
			w := serve(h, request(a.keys[account+"/production/client"].Reveal(), "Origin", "https://"+account+".example"))
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			serve(h, preflight("https://a.extra.example", "x-api-key"))
		}
	}
	cancel()
	wg.Wait()
	assert.Equal(t, 4, v.Stats().Environments)
}

// TestSettingsInterval: with a change feed, no periodic full reload runs
// unless SettingsInterval asks for one; without a feed, the periodic
// reload is how changes made elsewhere arrive.
func TestSettingsInterval(t *testing.T) {
	a := newAccounts(t)
	counted := faultstore.New(a.store)
	a.validator(counted.Exact(), false)
	start := counted.Calls(faultstore.OpEnvironments)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, start, counted.Calls(faultstore.OpEnvironments), "no full reload with a feed")

	withInterval, err := middleware.New(middleware.Options{Store: counted.Exact(), SettingsInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = withInterval.Close() })
	require.Eventually(t, func() bool { return counted.Calls(faultstore.OpEnvironments) > start+2 }, 2*time.Second, time.Millisecond,
		"SettingsInterval asks for full reloads")

	// A store without a change feed: only the periodic reload brings
	// another process's change.
	feedless := struct{ apikey.Store }{a.store}
	v, err := middleware.New(middleware.Options{Store: feedless, Hasher: apikey.Argon2id{Params: apikey.TestParams}, SettingsInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	h := v.Require(anyType)(okHandler)
	_, err = a.m.SetAllowedOrigins(context.Background(), actorIn("globex"), apikey.Production, []string{"https://later.globex.example"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return serve(h, request(a.keys["globex/production/client"].Reveal(), "Origin", "https://later.globex.example")).Code == http.StatusOK
	}, 2*time.Second, time.Millisecond)
}

// panickingEnvironments is a store whose Environments panics, as a custom
// store's bug would.
type panickingEnvironments struct{ *memory.Store }

func (panickingEnvironments) Environments(context.Context, apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	panic("custom store bug")
}

// TestSettingsLoadPanicIsAnError: a store that panics while the settings
// load is reported, and browser requests fail closed; New still succeeds.
func TestSettingsLoadPanicIsAnError(t *testing.T) {
	a := newAccounts(t)
	var mu sync.Mutex
	var errs []error
	v, err := middleware.New(middleware.Options{
		Store: panickingEnvironments{a.store}, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		OnBackgroundError: func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	h := v.Require(anyType)(okHandler)
	assert.Equal(t, http.StatusServiceUnavailable, serve(h, request(a.keys["acme/production/client"].Reveal(), "Origin", "https://acme.example")).Code)
	assert.Equal(t, http.StatusOK, serve(h, request(a.keys["acme/production/client"].Reveal())).Code, "no Origin: no settings needed")
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, errs)
	assert.ErrorContains(t, errs[0], "panicked")
}

// TestOwnerAndMetadataChangesReachTheIdentity: a new owner or metadata
// reaches the next request's Identity, in this process at once and in
// another through the change feed, like any change of a key.
func TestOwnerAndMetadataChangesReachTheIdentity(t *testing.T) {
	a := newAccounts(t)
	here, there := a.validator(nil, true), a.validator(nil, false)
	key := a.keys["globex/staging/server"]
	identity := func(v *middleware.Validator) middleware.Identity {
		id, err := v.Check(request(key.Reveal()), middleware.Policy{})
		require.NoError(t, err)
		return id
	}
	for _, v := range []*middleware.Validator{here, there} {
		assert.Empty(t, identity(v).Owner, "cached before the change")
	}
	ctx := context.Background()
	_, err := a.m.SetOwner(ctx, actorIn("globex"), key.ID(), "user_7")
	require.NoError(t, err)
	_, err = a.m.SetMetadata(ctx, actorIn("globex"), key.ID(), map[string]string{"tier": "gold"})
	require.NoError(t, err)
	got := identity(here)
	assert.Equal(t, "user_7", got.Owner)
	assert.Equal(t, map[string]string{"tier": "gold"}, got.Metadata)
	assert.Eventually(t, func() bool { return identity(there).Metadata["tier"] == "gold" }, 2*time.Second, time.Millisecond)
	assert.Equal(t, "user_7", identity(there).Owner)
}
