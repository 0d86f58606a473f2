package middleware_test

import (
	"context"
	"errors"
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
	"github.com/keystile/keystile/storage"
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

// countingHasher counts argon2 verifications.
type countingHasher struct {
	apikey.Argon2id
	verifies atomic.Int64
}

func newCountingHasher() *countingHasher {
	return &countingHasher{Argon2id: apikey.Argon2id{Params: apikey.TestParams}}
}

func (h *countingHasher) Verify(secret []byte, encoded string) (bool, bool, error) {
	h.verifies.Add(1)
	return h.Argon2id.Verify(secret, encoded)
}

// clock is a settable clock.
type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

// readCountingStore counts Key reads.
type readCountingStore struct {
	*memory.Store
	reads atomic.Int64
}

func (s *readCountingStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	s.reads.Add(1)
	return s.Store.Key(ctx, id)
}

// flakyStore is a memory store whose reads, change feed included, can be
// made to fail.
type flakyStore struct {
	*memory.Store
	down atomic.Bool
}

var errDown = errors.New("store: connection refused")

func (s *flakyStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	if s.down.Load() {
		return apikey.Record{}, errDown
	}
	return s.Store.Key(ctx, id)
}

func (s *flakyStore) Changes(ctx context.Context, since int64, limit int) ([]storage.Changed, int64, error) {
	if s.down.Load() {
		return nil, 0, errDown
	}
	return s.Store.Changes(ctx, since, limit)
}

// noFeedStore is a store without a change feed.
type noFeedStore struct{ apikey.Store }

func (s *flakyStore) Environments(ctx context.Context, q apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.Environments(ctx, q)
}

func (s *flakyStore) Settings(ctx context.Context, account, environment string) (apikey.Settings, error) {
	if s.down.Load() {
		return apikey.Settings{}, errDown
	}
	return s.Store.Settings(ctx, account, environment)
}

// fixture is a store with the production and staging environments
// bootstrapped, a Manager, and a Validator wired to its events.
type fixture struct {
	t       *testing.T
	clock   *clock
	hasher  *countingHasher
	store   *flakyStore
	manager *apikey.Manager
	v       *middleware.Validator
	keys    map[string]apikey.Key // "production/server", "staging/client", ...
}

func newFixture(t *testing.T, configure func(*middleware.Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: newClock(), hasher: newCountingHasher(), store: &flakyStore{Store: memory.New()}, keys: map[string]apikey.Key{}}
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
