package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/faultstore"
)

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
	// The raced key is missing from listings, as if it had been created
	// just after CloseAccount read its page of keys.
	hiding := faultstore.New(a.store)
	hiding.After(func(_ context.Context, c *faultstore.Call) {
		c.Records = slices.DeleteFunc(c.Records, func(r apikey.Record) bool { return r.ID == raced.View.ID })
	}, faultstore.OpKeys)
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

// TestSuspendedAccountIsRefused: every key of a suspended account, cached
// or not, is refused with account_suspended (403): in the process that
// suspended it at once, in another process through the change feed, and in
// a process that starts afterwards; resuming restores every key as it was
// (a disabled key stays disabled) in each of them. Other accounts are
// untouched.
func TestSuspendedAccountIsRefused(t *testing.T) {
	a := newAccounts(t)
	ctx := context.Background()
	disabled, err := a.m.Create(ctx, actorIn("acme"), apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"*"}})
	require.NoError(t, err)
	_, err = a.m.Disable(ctx, actorIn("acme"), disabled.View.ID)
	require.NoError(t, err)
	inA, inB := a.validator(nil, true), a.validator(nil, false)
	acme := []string{a.keys["acme/production/server"].Reveal(), a.keys["acme/staging/server"].Reveal()}
	globex := a.keys["globex/production/server"].Reveal()
	reason := func(v *middleware.Validator, key string) *problem.Reason {
		_, err := v.Check(request(key), middleware.Policy{})
		return problem.Of(err)
	}
	for _, v := range []*middleware.Validator{inA, inB} {
		for _, k := range append(acme, globex) {
			require.Nil(t, reason(v, k), "cached before the suspension")
		}
		require.Equal(t, middleware.ErrDisabledKey, reason(v, disabled.Key.Reveal()))
	}
	operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}

	steps := []struct {
		name string
		do   func() error
		acme *problem.Reason // of acme's enabled keys
	}{
		{"suspended", func() error { return a.m.SuspendAccount(ctx, operator, "acme") }, middleware.ErrAccountSuspended},
		{"resumed", func() error { return a.m.ResumeAccount(ctx, operator, "acme") }, nil},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			require.NoError(t, step.do())
			settled := func(v *middleware.Validator) bool {
				for _, k := range acme {
					if reason(v, k) != step.acme {
						return false
					}
				}
				return true
			}
			assert.True(t, settled(inA), "process A: at once")
			assert.Eventually(t, func() bool { return settled(inB) }, 2*time.Second, time.Millisecond, "process B: through the change feed")
			later := a.validator(nil, false)
			assert.True(t, settled(later), "a process started afterwards")
			for _, v := range []*middleware.Validator{inA, inB, later} {
				assert.Nil(t, reason(v, globex), "another account is untouched")
				// The key's own refusal is checked before its account's.
				assert.Equal(t, middleware.ErrDisabledKey, reason(v, disabled.Key.Reveal()), "the disabled key stays disabled")
			}
			w := httptest.NewRecorder()
			inB.Handler(okHandler).ServeHTTP(w, request(acme[0]))
			if step.acme == nil {
				assert.Equal(t, http.StatusOK, w.Code)
			} else {
				assert.Equal(t, step.acme.Status(), w.Code)
				assert.Equal(t, "account_suspended", decodeProblem(t, w).Code)
			}
		})
	}
	rec, err := a.store.Key(ctx, disabled.View.ID)
	require.NoError(t, err)
	assert.False(t, rec.DisabledAt.IsZero(), "resuming leaves a disabled key disabled")
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

// TestValidateOnce: Handler on a router group and Require on a route
// validate a request once: the route only checks its policy, and the hooks
// run once.
func TestValidateOnce(t *testing.T) {
	var authenticated, rejected atomic.Int64
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(context.Context, middleware.Attempt, middleware.Identity) { authenticated.Add(1) }
		o.OnRejected = func(context.Context, middleware.Attempt, error) { rejected.Add(1) }
	})
	group := f.v.Handler
	route := f.v.Require(middleware.Policy{Scope: "orders:write"})
	h := group(route(okHandler))
	reader := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:read"}})

	before := f.verifies()
	w := serve(h, request(f.keys["production/server"].Reveal()))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.EqualValues(t, 1, authenticated.Load(), "OnAuthenticated once")
	assert.Equal(t, before+1, f.verifies(), "one verification")

	w = serve(h, request(reader.Reveal()))
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, "insufficient_scope", decodeProblem(t, w).Code, "the route's policy still applies")
	assert.EqualValues(t, 2, authenticated.Load(), "the group accepted it")
	assert.EqualValues(t, 1, rejected.Load(), "the route refused it, once")

	// Another Validator's identity is not trusted: the route validates.
	other := newFixture(t, nil)
	h = other.v.Handler(f.v.Require(middleware.Policy{})(okHandler))
	assert.Equal(t, http.StatusUnauthorized, serve(h, request(other.keys["production/server"].Reveal())).Code,
		"f's validator does not know other's key")
}

// TestAuthenticateThenAuthorize: Authenticate on a router group accepts
// both key types and authorizes nothing; each route's Require checks its
// own policy only. A route that names both types admits a publishable key;
// a route with the zero Policy in the same group refuses it, and the
// refusal names the policy that refused. The hooks run once per request.
func TestAuthenticateThenAuthorize(t *testing.T) {
	var authenticated atomic.Int64
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(context.Context, middleware.Attempt, middleware.Identity) { authenticated.Add(1) }
	})
	group := http.NewServeMux()
	group.Handle("/both", f.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Client, apikey.Server}})(okHandler))
	group.Handle("/server", f.v.Require(middleware.Policy{})(okHandler))
	group.Handle("/any", okHandler) // no Require: authenticated, not authorized
	h := f.v.Authenticate(group)
	at := func(path, key string, headers ...string) *http.Request {
		r := request(key, headers...)
		r.URL.Path = path
		return r
	}
	client, server := f.keys["production/client"].Reveal(), f.keys["production/server"].Reveal()

	w := serve(h, at("/both", client))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.EqualValues(t, 1, authenticated.Load(), "OnAuthenticated once")
	assert.Equal(t, http.StatusOK, serve(h, at("/both", server)).Code)
	w = serve(h, at("/server", client))
	require.Equal(t, http.StatusForbidden, w.Code)
	p := decodeProblem(t, w)
	assert.Equal(t, "key_type_not_allowed", p.Code)
	assert.Equal(t, "policy {types: server} does not accept client keys", p.Detail)
	assert.Equal(t, http.StatusOK, serve(h, at("/server", server)).Code)
	assert.Equal(t, http.StatusOK, serve(h, at("/any", client)).Code, "Authenticate authorizes nothing")

	// Authentication keeps the browser rules.
	assert.Equal(t, http.StatusForbidden, serve(h, at("/any", client, "Origin", "https://evil.example")).Code)
	assert.Equal(t, http.StatusForbidden, serve(h, at("/any", server, "Origin", "https://app.example.com")).Code)
	assert.Equal(t, http.StatusUnauthorized, serve(h, at("/any", "")).Code)
	assert.Contains(t, varyValues(serve(h, at("/any", "")).Header()), "X-API-Key")

	// Handler on the group (the zero Policy) refuses publishable keys
	// before any route, and says which policy refused.
	w = serve(f.v.Handler(group), at("/both", client))
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, "policy {types: server} does not accept client keys", decodeProblem(t, w).Detail)
}

// TestNewContextIsNotTrusted: an Identity put in the context with
// NewContext reaches FromContext, but never stands in for a key.
func TestNewContextIsNotTrusted(t *testing.T) {
	f := newFixture(t, nil)
	id := middleware.Identity{KeyID: f.keys["production/server"].ID(), Prefix: f.keys["production/server"].Prefix(),
		Type: apikey.Server, Environment: apikey.Production, Scopes: []string{apikey.AllScopes}}
	ctx := middleware.NewContext(context.Background(), id)
	got, ok := middleware.FromContext(ctx)
	require.True(t, ok)
	assert.Equal(t, id, got)

	r := request("").WithContext(ctx)
	assert.Equal(t, http.StatusUnauthorized, serve(f.v.Handler(okHandler), r).Code)
	fromCheck, err := f.v.Check(request(f.keys["production/server"].Reveal()), middleware.Policy{})
	require.NoError(t, err)
	r = request("").WithContext(middleware.NewContext(context.Background(), fromCheck))
	assert.Equal(t, http.StatusUnauthorized, serve(f.v.Handler(okHandler), r).Code, "a copy of a real Identity is not trusted either")
}

// TestStats: the counters follow what the requests did.
func TestStats(t *testing.T) {
	var background atomic.Int64
	f := newFixture(t, func(o *middleware.Options) {
		o.ThrottleFailures = 2
		o.OnBackgroundError = func(error) { background.Add(1) }
	})
	h := f.v.Handler(okHandler)
	server := f.keys["production/server"]
	zero := f.v.Stats()
	assert.Zero(t, zero.CacheHits+zero.CacheMisses+zero.Hashes+zero.Throttled)

	for range 3 { // one miss and one argon2 run, then two hits
		require.Equal(t, http.StatusOK, serve(h, request(server.Reveal())).Code)
	}
	serve(h, request(""))                                   // missing_key
	serve(h, request(f.keys["production/client"].Reveal())) // key_type_not_allowed
	attacked := f.keys["staging/server"]                    // never verified: its wrong secrets run argon2
	for _, c := range []byte("abc") {                       // two wrong secrets, then throttled
		serve(h, request(forge(apikey.Server, attacked.ID(), c))) // each a miss
	}
	s := f.v.Stats()
	assert.EqualValues(t, 2, s.CacheHits)
	assert.EqualValues(t, 1+1+3, s.CacheMisses)
	assert.EqualValues(t, 1+1+2, s.Hashes, "server, client, two wrong secrets")
	assert.Positive(t, s.HashTime)
	assert.Zero(t, s.HashesRunning)
	assert.Zero(t, s.HashesWaiting)
	assert.EqualValues(t, 1, s.Throttled)
	assert.Equal(t, map[string]uint64{
		"missing_key": 1, "malformed_key": 0, "invalid_key": 2, "expired_key": 0, "revoked_key": 0,
		"key_disabled": 0, "account_suspended": 0,
		"key_type_not_allowed": 1, "insufficient_scope": 0, "environment_not_allowed": 0,
		"address_not_allowed": 0, "rate_limited": 0, "quota_exhausted": 0,
		"origin_not_allowed": 0, "server_key_from_browser": 0, "too_many_failures": 1,
		"unavailable": 0, "busy": 0, "other": 0,
	}, s.Refusals)
	assert.Equal(t, 2, s.CachedKeys)
	assert.Equal(t, 2, s.CachedFailures)

	// The feed: its revision advances as changes are made.
	_, err := f.manager.SetAllowedOrigins(context.Background(), owner, apikey.Staging, []string{"https://s.example"})
	require.NoError(t, err)
	rev, err := f.store.Revision(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return f.v.Stats().FeedRevision == rev }, 5*time.Second, 5*time.Millisecond)
	assert.GreaterOrEqual(t, f.v.Stats().FeedLag, time.Duration(0))

	// Background errors are counted, and still reported.
	f.down()
	f.v.Invalidate(apikey.Event{Action: apikey.ActionSetOrigins, Environment: apikey.Staging}) // a reload that fails
	assert.Positive(t, f.v.Stats().BackgroundErrors)
	assert.Positive(t, background.Load(), "and still reported")
}

// TestHooksNeverSeeSecrets runs every kind of request and checks that no
// hook argument, error text or problem body holds a secret.
func TestHooksNeverSeeSecrets(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	record := func(args ...any) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%+v", args))
	}
	var counts = map[string]int{}
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(_ context.Context, a middleware.Attempt, id middleware.Identity) {
			counts["authenticated"]++
			record(a, id)
		}
		o.OnRejected = func(_ context.Context, a middleware.Attempt, err error) {
			counts["rejected"]++
			record(a, err, err.Error())
		}
		o.OnBackgroundError = func(err error) { record(err.Error()) }
	})
	server := f.keys["production/server"]
	_, err := f.manager.Rotate(context.Background(), owner, apikey.RotateRequest{KeyID: server.ID(), Grace: time.Hour})
	require.NoError(t, err)
	secrets := []string{server.Reveal(), forge(apikey.Server, server.ID(), 'x'), f.keys["production/client"].Reveal()}
	h := f.v.Handler(okHandler)
	var bodies []string
	for _, s := range secrets {
		for _, r := range []*http.Request{request(s), request(s, "Origin", "https://evil.example"), request(s + "x"), request(s[:40])} {
			bodies = append(bodies, serve(h, r).Body.String())
		}
	}
	f.down()
	k, _ := apikey.GenerateKey(apikey.Client)
	secrets = append(secrets, k.Reveal())
	bodies = append(bodies, serve(h, request(k.Reveal())).Body.String())

	assert.Positive(t, counts["authenticated"])
	assert.Positive(t, counts["rejected"])
	for _, s := range secrets {
		secret := s[len("server-")+apikey.IDLength+1:][:apikey.SecretLength]
		for _, text := range append(seen, bodies...) {
			require.NotContains(t, text, secret)
		}
	}
}

// TestSubRequestWithAnotherKeyIsValidated: a request made in a handler with
// the outer request's context (a batch endpoint) but another key is
// validated on its own, not taken for the outer request.
func TestSubRequestWithAnotherKeyIsValidated(t *testing.T) {
	f := newFixture(t, nil)
	inner := f.v.Require(middleware.Policy{})(okHandler)
	outer := f.v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub := request("garbage-not-a-key").WithContext(r.Context())
		inner.ServeHTTP(w, sub)
	}))
	w := serve(outer, request(f.keys["production/server"].Reveal()))
	assert.Equal(t, http.StatusUnauthorized, w.Code, w.Body.String())
	assert.Equal(t, "malformed_key", decodeProblem(t, w).Code)
}

// TestResponses covers every status and code of a refused request, the
// accepted cases around them, and the hook each one reaches, once.
func TestResponses(t *testing.T) {
	var mu sync.Mutex
	var hooks []string // "authenticated", or the code OnRejected received
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(context.Context, middleware.Attempt, middleware.Identity) {
			mu.Lock()
			defer mu.Unlock()
			hooks = append(hooks, "authenticated")
		}
		o.OnRejected = func(_ context.Context, _ middleware.Attempt, err error) {
			mu.Lock()
			defer mu.Unlock()
			hooks = append(hooks, problem.Of(err).Code())
		}
	})
	ctx := context.Background()
	server := f.keys["production/server"].Reveal()
	client := f.keys["production/client"].Reveal()
	temp := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	revoked := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	_, err := f.manager.Revoke(ctx, owner, revoked.ID())
	require.NoError(t, err)
	expired := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Second)})
	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	badChecksum := server[:len(server)-1] + flip(server[len(server)-1])
	h := f.v.Require(anyType)(okHandler)
	f.clock.Advance(time.Second) // expired is now past its expiry

	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"valid server key", request(server), 200, ""},
		{"valid publishable key", request(client), 200, ""},
		{"valid key with expiry", request(temp.Reveal()), 200, ""},
		{"lower-case header name", request("", "x-api-key", server), 200, ""},
		{"surrounding spaces", request(" " + server + " "), 200, ""},
		{"missing key", request(""), 401, "missing_key"},
		{"empty header", request("", "X-API-Key", ""), 401, "missing_key"},
		{"key in the URL is never read", httptestURL("/things?api_key=" + server + "&key=" + server), 401, "missing_key"},
		{"bearer ignored unless enabled", request("", "Authorization", "Bearer "+server), 401, "missing_key"},
		{"too short", request("server-abc"), 401, "malformed_key"},
		{"wrong prefix", request("secret" + server[6:]), 401, "malformed_key"},
		{"bad checksum", request(badChecksum), 401, "malformed_key"},
		{"two X-API-Key headers", request(server, "X-API-Key", server), 401, "malformed_key"},
		{"unknown key", request(unknown.Reveal()), 401, "invalid_key"},
		{"wrong secret", request(forge(apikey.Server, f.keys["production/server"].ID(), 'z')), 401, "invalid_key"},
		{"wrong type for id", request(forge(apikey.Client, f.keys["production/server"].ID(), 'z')), 401, "invalid_key"},
		{"expired key", request(expired.Reveal()), 401, "expired_key"},
		{"revoked key", request(revoked.Reveal()), 401, "revoked_key"},
		{"server key from a browser", request(server, "Origin", "https://app.example.com"), 403, "server_key_from_browser"},
		{"publishable key from a foreign origin", request(client, "Origin", "https://evil.example"), 403, "origin_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			hooks = nil
			mu.Unlock()
			w := serve(h, tt.req)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			mu.Lock()
			defer mu.Unlock()
			if tt.code == "" {
				assert.Equal(t, []string{"authenticated"}, hooks, "hooks")
				return
			}
			assert.Equal(t, []string{tt.code}, hooks, "hooks")
			p := decodeProblem(t, w)
			assert.Equal(t, tt.code, p.Code)
			assert.Equal(t, tt.status, p.Status)
			assert.Equal(t, problem.TypePrefix+tt.code, p.Type)
			assert.NotEmpty(t, p.Title)
			if tt.status == 401 {
				assert.NotEmpty(t, w.Header().Get("WWW-Authenticate"))
			}
			assert.NotContains(t, w.Body.String(), server[20:], "the body must not echo a secret")
		})
	}
}

// TestStorageFailure checks that an outage is a 503 with Retry-After, never
// a 401, and is not cached.
func TestStorageFailure(t *testing.T) {
	f := newFixture(t, nil)
	h := f.v.Handler(okHandler)
	key := f.keys["production/server"].Reveal()
	f.down()
	w := serve(h, request(key))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.Equal(t, "unavailable", decodeProblem(t, w).Code)
	assert.NotContains(t, w.Body.String(), "store is down", "storage errors stay out of the body")

	f.up()
	require.Equal(t, http.StatusOK, serve(h, request(key)).Code, "the outage was not cached")
}

func TestPolicy(t *testing.T) {
	f := newFixture(t, nil)
	scoped := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:write", "orders:read"}})
	server := f.keys["production/server"].Reveal()
	client := f.keys["production/client"].Reveal()
	staging := f.keys["staging/server"].Reveal()

	serverOnly := []apikey.KeyType{apikey.Server}
	clientOnly := []apikey.KeyType{apikey.Client}
	tests := []struct {
		name   string
		policy middleware.Policy
		key    string
		status int
		code   string
	}{
		{"zero policy accepts server", middleware.Policy{}, server, 200, ""},
		{"zero policy refuses publishable", middleware.Policy{}, client, 403, "key_type_not_allowed"},
		{"a scope without types refuses publishable", middleware.Policy{Scope: "customers:read"}, client, 403, "key_type_not_allowed"},
		{"server only accepts server", middleware.Policy{Types: serverOnly}, server, 200, ""},
		{"server only refuses publishable", middleware.Policy{Types: serverOnly}, client, 403, "key_type_not_allowed"},
		{"client only refuses server", middleware.Policy{Types: clientOnly}, server, 403, "key_type_not_allowed"},
		{"full access holds any scope", middleware.Policy{Scope: "billing:write"}, server, 200, ""},
		{"exact scope", middleware.Policy{Scope: "customers:write"}, scoped.Reveal(), 200, ""},
		{"write implies read", middleware.Policy{Scope: "customers:read"}, scoped.Reveal(), 200, ""},
		{"read does not imply write", middleware.Policy{Scope: "orders:write"}, scoped.Reveal(), 403, "insufficient_scope"},
		{"other resource", middleware.Policy{Scope: "billing:read"}, scoped.Reveal(), 403, "insufficient_scope"},
		{"publishable keys read", middleware.Policy{Types: clientOnly, Scope: "customers:read"}, client, 200, ""},
		{"publishable keys do not write", middleware.Policy{Types: clientOnly, Scope: "customers:write"}, client, 403, "insufficient_scope"},
		{"accepted environment", middleware.Policy{Environments: []string{apikey.Production}}, server, 200, ""},
		{"other environment", middleware.Policy{Environments: []string{apikey.Production}}, staging, 403, "environment_not_allowed"},
		{"several environments", middleware.Policy{Environments: []string{apikey.Production, apikey.Staging}}, staging, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(f.v.Require(tt.policy)(okHandler), request(tt.key))
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.code != "" {
				assert.Equal(t, tt.code, decodeProblem(t, w).Code)
			}
			id, err := f.v.Check(request(tt.key), tt.policy)
			if tt.code == "" {
				require.NoError(t, err)
				assert.NotEmpty(t, id.KeyID)
			} else {
				require.Error(t, err)
				assert.Equal(t, tt.code, problem.Of(err).Code())
			}
		})
	}
}

func TestRequireRejectsInvalidPolicy(t *testing.T) {
	f := newFixture(t, nil)
	for name, p := range map[string]middleware.Policy{
		"bad type":        {Types: []apikey.KeyType{"admin"}},
		"bad scope":       {Scope: "everything"},
		"all scopes":      {Scope: "*"},
		"bad environment": {Environments: []string{"Prod!"}},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, p.Validate())
			require.Panics(t, func() { f.v.Require(p) })
			_, err := f.v.Check(request(f.keys["production/server"].Reveal()), p)
			require.Error(t, err)
			assert.Nil(t, problem.Of(err))
		})
	}
}

func TestIdentityInContext(t *testing.T) {
	f := newFixture(t, nil)
	scoped := f.create(apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"orders:read"}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	var got middleware.Identity
	h := f.v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ok bool
		got, ok = middleware.FromContext(r.Context())
		require.True(t, ok)
	}))
	require.Equal(t, http.StatusOK, serve(h, request(scoped.Reveal())).Code)
	assert.Equal(t, scoped.ID(), got.KeyID)
	assert.Equal(t, scoped.Prefix(), got.Prefix)
	assert.Equal(t, apikey.Server, got.Type)
	assert.Equal(t, apikey.Staging, got.Environment)
	assert.Equal(t, []string{"orders:read"}, got.Scopes)
	assert.True(t, got.ExpiresAt.Equal(f.clock.Now().Add(time.Hour)))
	assert.False(t, got.Expiring)
	assert.True(t, got.HasScope("orders:read"))
	assert.False(t, got.HasScope("orders:write"))

	got.Scopes[0] = "mutated"
	require.Equal(t, http.StatusOK, serve(h, request(scoped.Reveal())).Code)
	assert.Equal(t, []string{"orders:read"}, got.Scopes, "FromContext returns a copy")
}

func TestFromContextOutsideMiddleware(t *testing.T) {
	id, ok := middleware.FromContext(context.Background())
	assert.False(t, ok)
	assert.Zero(t, id)
	id, ok = middleware.FromContext(nil) //nolint:staticcheck // a nil context must not panic
	assert.False(t, ok)
	assert.Zero(t, id)
}

func TestBearer(t *testing.T) {
	key := ""
	tests := []struct {
		name    string
		enabled bool
		headers func() []string
		status  int
		code    string
	}{
		{"off by default", false, func() []string { return []string{"Authorization", "Bearer " + key} }, 401, "missing_key"},
		{"enabled", true, func() []string { return []string{"Authorization", "Bearer " + key} }, 200, ""},
		{"scheme is case-insensitive", true, func() []string { return []string{"Authorization", "bearer " + key} }, 200, ""},
		{"other schemes are ignored", true, func() []string { return []string{"Authorization", "Basic " + key} }, 401, "missing_key"},
		{"bearer junk", true, func() []string { return []string{"Authorization", "Bearer eyJhbGciOi"} }, 401, "malformed_key"},
		{"both sources", true, func() []string { return []string{"Authorization", "Bearer " + key, "X-API-Key", key} }, 401, "malformed_key"},
		{"X-API-Key still works", true, func() []string { return []string{"X-API-Key", key} }, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *middleware.Options) { o.Keys.AllowBearer = tt.enabled })
			key = f.keys["production/server"].Reveal()
			w := serve(f.v.Handler(okHandler), request("", tt.headers()...))
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.code != "" {
				assert.Equal(t, tt.code, decodeProblem(t, w).Code)
			}
		})
	}
}

func TestErrorHandlerLearnsTheReason(t *testing.T) {
	var reason *problem.Reason
	f := newFixture(t, func(o *middleware.Options) {
		o.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			reason = problem.Of(err)
			w.WriteHeader(http.StatusTeapot)
		}
	})
	w := serve(f.v.Handler(okHandler), request(""))
	assert.Equal(t, http.StatusTeapot, w.Code)
	assert.Equal(t, middleware.ErrMissingKey, reason)
}

func TestNewValidatesOptions(t *testing.T) {
	store := newFixture(t, nil).store
	for name, o := range map[string]middleware.Options{
		"no store":               {},
		"negative TTL":           {Store: store, CacheTTL: -1},
		"negative feed":          {Store: store, FeedInterval: -time.Second},
		"negative hashes":        {Store: store, MaxConcurrentHashes: -1},
		"negative budget":        {Store: store, ThrottleFailures: -1},
		"empty allowed method":   {Store: store, CORS: middleware.CORSOptions{AllowedMethods: []string{""}}},
		"negative last-used":     {Store: store, LastUsedInterval: -1},
		"negative preflight age": {Store: store, CORS: middleware.CORSOptions{PreflightMaxAge: -1}},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := middleware.New(o)
			require.Error(t, err)
			require.Nil(t, v)
			assert.True(t, strings.HasPrefix(err.Error(), "middleware: "))
		})
	}
}

func TestClosedValidatorFailsClosed(t *testing.T) {
	f := newFixture(t, nil)
	require.NoError(t, f.v.Close())
	require.NoError(t, f.v.Close(), "Close is idempotent")
	w := serve(f.v.Handler(okHandler), request(f.keys["production/server"].Reveal()))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
}

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder) problem.Problem {
	t.Helper()
	require.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	var p problem.Problem
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
	return p
}

func httptestURL(target string) *http.Request {
	r := request("")
	r.URL, _ = r.URL.Parse(target)
	return r
}

// TestHooksSeeThePrefix checks the Attempt that the hooks receive, whether
// the outcome came from a verification or from the cache: the key's prefix
// for a well-formed key, nothing for a malformed one.
func TestHooksSeeThePrefix(t *testing.T) {
	var got []middleware.Attempt
	record := func(_ context.Context, a middleware.Attempt, _ error) { got = append(got, a) }
	f := newFixture(t, func(o *middleware.Options) {
		o.OnRejected = record
		o.OnAuthenticated = func(ctx context.Context, a middleware.Attempt, _ middleware.Identity) { record(ctx, a, nil) }
	})
	server := f.keys["production/server"]
	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	malformed := server.Reveal()[:apikey.KeyLength-1] + flip(server.Reveal()[apikey.KeyLength-1])
	h := f.v.Handler(okHandler)

	tests := []struct {
		name, key, prefix string
		status            int
	}{
		{"valid key, verified", server.Reveal(), server.Prefix(), 200},
		{"valid key, cached", server.Reveal(), server.Prefix(), 200},
		{"unknown key, looked up", unknown.Reveal(), unknown.Prefix(), 401},
		{"unknown key, cached failure", unknown.Reveal(), unknown.Prefix(), 401},
		{"bad checksum of a cached key", malformed, "", 401},
		{"too short", "server-abc", "", 401},
	}
	for _, tt := range tests {
		got = nil
		w := serve(h, request(tt.key))
		require.Equal(t, tt.status, w.Code, tt.name)
		require.Len(t, got, 1, tt.name)
		assert.Equal(t, tt.prefix, got[0].Prefix, tt.name)
	}
	assert.EqualValues(t, 1, f.verifies(), "the second use of the key is served from the cache")
}

// TestCheckReturnsACopy: editing the Identity that Check or a hook returns
// must not change what later requests are allowed.
func TestCheckReturnsACopy(t *testing.T) {
	var hooked middleware.Identity
	f := newFixture(t, func(o *middleware.Options) {
		o.OnAuthenticated = func(_ context.Context, _ middleware.Attempt, id middleware.Identity) {
			hooked = id
		}
	})
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"orders:read"}})
	id, err := f.v.Check(request(key.Reveal()), middleware.Policy{})
	require.NoError(t, err)
	id.Scopes[0] = apikey.AllScopes
	hooked.Scopes[0] = apikey.AllScopes
	_, err = f.v.Check(request(key.Reveal()), middleware.Policy{Scope: "billing:write"})
	assert.ErrorIs(t, err, middleware.ErrScope)
}

// TestHooksSeeNoKeyInThePath: a key put in the URL or the Origin header by
// mistake reaches the hooks cut down to its prefix.
func TestHooksSeeNoKeyInThePath(t *testing.T) {
	var seen []middleware.Attempt
	f := newFixture(t, func(o *middleware.Options) {
		o.OnRejected = func(_ context.Context, a middleware.Attempt, _ error) { seen = append(seen, a) }
	})
	key := f.keys["production/server"].Reveal()
	r := httptest.NewRequest(http.MethodGet, "/v1/things/"+key+"?x=1", nil)
	r.Header.Set("Origin", "https://"+key+".example.com")
	serve(f.v.Handler(okHandler), r)
	require.Len(t, seen, 1)
	secret := key[20:]
	assert.NotContains(t, seen[0].Path, secret[:20])
	assert.NotContains(t, seen[0].Origin, secret[:20])
	assert.Contains(t, seen[0].Path, f.keys["production/server"].Prefix()+"_[redacted]")
}

// TestPublishableKeysOptInPerRoute: a route admits client- keys only when
// its Policy names them; Handler (the zero Policy) admits server keys only.
func TestPublishableKeysOptInPerRoute(t *testing.T) {
	f := newFixture(t, nil)
	client, server := f.keys["production/client"].Reveal(), f.keys["production/server"].Reveal()
	both := []apikey.KeyType{apikey.Server, apikey.Client}
	tests := []struct {
		name         string
		h            http.Handler
		client, serv int
	}{
		{"Handler", f.v.Handler(okHandler), http.StatusForbidden, http.StatusOK},
		{"zero Policy", f.v.Require(middleware.Policy{})(okHandler), http.StatusForbidden, http.StatusOK},
		{"scope without types", f.v.Require(middleware.Policy{Scope: "orders:read"})(okHandler), http.StatusForbidden, http.StatusOK},
		{"client named", f.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Client}, Scope: "orders:read"})(okHandler), http.StatusOK, http.StatusForbidden},
		{"both named", f.v.Require(middleware.Policy{Types: both})(okHandler), http.StatusOK, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(tt.h, request(client))
			assert.Equal(t, tt.client, w.Code)
			if tt.client == http.StatusForbidden {
				assert.Contains(t, w.Body.String(), `"code":"key_type_not_allowed"`)
			}
			assert.Equal(t, tt.serv, serve(tt.h, request(server)).Code)
		})
	}
}
