package middleware_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/fakeclock"
	"github.com/keystile/keystile/internal/faulttest"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// The request helpers are shared with the suites of internal/faulttest.
var (
	owner       = faulttest.Owner
	request     = faulttest.Request
	anyType     = faulttest.AnyType
	okHandler   = faulttest.OKHandler
	serve       = faulttest.Serve
	forge       = faulttest.Forge
	flip        = faulttest.Flip
	problemCode = faulttest.ProblemCode
	leakAt      = faulttest.LeakAt
)

// varyValues returns the values of h's Vary header, whether they are on one
// line or on several.
func varyValues(h http.Header) []string {
	var out []string
	for _, line := range h.Values("Vary") {
		for _, v := range strings.Split(line, ",") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// clock is a settable clock.
type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

// newHasher returns an argon2id hasher with p that counts its calls.
func newHasher(p apikey.Params) *faultstore.Hasher {
	return faultstore.NewHasher(apikey.Argon2id{Params: p})
}

// withoutFeed returns store as a store without a change feed, or any other
// optional interface of package storage.
func withoutFeed(store apikey.Store) apikey.Store {
	fs := faultstore.New(store)
	fs.Hide(faultstore.OpChanges, faultstore.OpRecordLastUsed, faultstore.OpEvents)
	return fs.Exact()
}

// fixture is a store with the production and staging environments
// bootstrapped, a Manager, and a Validator wired to its events.
type fixture struct {
	t       *testing.T
	clock   *clock
	hasher  *faultstore.Hasher // counts the Validator's verifications
	store   *faultstore.Store  // over a memory store; see down
	manager *apikey.Manager
	v       *middleware.Validator
	keys    map[string]apikey.Key // "production/server", "staging/client", ...
}

func newFixture(t *testing.T, configure func(*middleware.Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: newClock(), hasher: newHasher(apikey.TestParams), store: faultstore.New(memory.New()), keys: map[string]apikey.Key{}}
	var v atomic.Pointer[middleware.Validator]
	m, err := apikey.NewManager(apikey.ManagerOptions{
		Store: f.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now,
		OnEvent: func(e apikey.Event) {
			if v := v.Load(); v != nil {
				v.Invalidate(e)
			}
		},
	})
	require.NoError(t, err)
	f.manager = m
	ctx := context.Background()
	for _, env := range []string{apikey.Production, apikey.Staging} {
		issued, err := m.Bootstrap(ctx, owner, env)
		require.NoError(t, err)
		for _, is := range issued {
			f.keys[env+"/"+string(is.Key.Type())] = is.Key
		}
	}
	_, err = m.SetAllowedOrigins(ctx, owner, apikey.Production,
		[]string{"https://app.example.com", "https://*.example.org", "http://localhost:3000"})
	require.NoError(t, err)

	opts := middleware.Options{Store: f.store, Hasher: f.hasher, Now: f.clock.Now, FeedInterval: 10 * time.Millisecond}
	if configure != nil {
		configure(&opts)
	}
	f.v, err = middleware.New(opts)
	require.NoError(t, err)
	v.Store(f.v)
	t.Cleanup(func() { _ = f.v.Close() })
	return f
}

// down makes the store's reads, change feed included, fail with
// faultstore.ErrDown until up.
func (f *fixture) down() {
	f.store.Down(faultstore.OpKey, faultstore.OpChanges, faultstore.OpEnvironments, faultstore.OpSettings)
}

// up ends down.
func (f *fixture) up() { f.store.Up() }

// caughtUp waits until the Validator has applied every change in the
// store, so that none of them reaches it during the checks that follow
// (a change to a key being verified makes the verification read the key
// again).
func (f *fixture) caughtUp() {
	f.t.Helper()
	rev, err := f.store.Revision(context.Background())
	require.NoError(f.t, err)
	require.Eventually(f.t, func() bool { return f.v.Stats().FeedRevision >= rev }, 5*time.Second, time.Millisecond)
}

// verifies returns the Validator's argon2 verifications so far.
func (f *fixture) verifies() int64 { return f.hasher.Calls(faultstore.OpVerify) }

// create makes an extra key.
func (f *fixture) create(req apikey.CreateRequest) apikey.Key {
	f.t.Helper()
	is, err := f.manager.Create(context.Background(), owner, req)
	require.NoError(f.t, err)
	return is.Key
}

func TestForgeMakesWellFormedKeys(t *testing.T) {
	k, err := apikey.ParseKey(forge(apikey.Server, "AAAAAAAAAAAA", 'x'))
	require.NoError(t, err)
	require.Equal(t, "AAAAAAAAAAAA", k.ID())
}

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
