package middleware_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
)

// ownerKeys creates two server keys of owner "user-1", with the key
// limits own[i] (none past own's end), and one of "user-2"; the keys of
// user-1 then share the limits shared, set by a Manager over the inner
// store (it has an owner index) that tells f's Validator.
func (f *fixture) ownerKeys(shared apikey.Limits, own ...apikey.Limits) (a, b, other apikey.Key) {
	f.t.Helper()
	mk := func(owner string, l apikey.Limits) apikey.Key {
		return f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"},
			Owner: owner, Limits: l})
	}
	own = append(own, apikey.Limits{}, apikey.Limits{})
	a, b, other = mk("user-1", own[0]), mk("user-1", own[1]), mk("user-2", apikey.Limits{})
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Inner(), Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: f.clock.Now, OnEvent: f.v.Invalidate})
	require.NoError(f.t, err)
	n, err := m.SetOwnerLimits(context.Background(), owner, "user-1", shared)
	require.NoError(f.t, err)
	require.Equal(f.t, 2, n)
	return a, b, other
}

func TestOwnerLimits(t *testing.T) {
	perMinute := func(n int) apikey.RateLimit { return apikey.RateLimit{Requests: n, Window: time.Minute} }
	type step struct {
		key    string // "a", "b" (user-1) or "other" (user-2)
		status int
		code   string
		detail string // in the refusal's detail
		policy string // RateLimit-Policy, if not ""
		limit  string // RateLimit, if not ""
	}
	tests := []struct {
		name   string
		shared apikey.Limits
		own    []apikey.Limits // of a and b
		steps  []step
	}{
		{
			name:   "shared rate",
			shared: apikey.Limits{Rate: perMinute(3)},
			steps: []step{
				{key: "a", status: 200, policy: `"key";q=3;w=60`, limit: `"key";r=2;t=20`},
				{key: "b", status: 200, limit: `"key";r=1;t=40`},
				{key: "a", status: 200},
				{key: "b", status: 429, code: "rate_limited", detail: "shared by the keys of owner user-1", limit: `"key";r=0;t=20`},
				{key: "a", status: 429, code: "rate_limited"},
				{key: "other", status: 200, policy: "-"},
			},
		},
		{
			name:   "the tighter rate in the headers",
			shared: apikey.Limits{Rate: perMinute(10)},
			own:    []apikey.Limits{{Rate: perMinute(2)}},
			steps: []step{
				{key: "a", status: 200, policy: `"key";q=2;w=60`, limit: `"key";r=1;t=30`},
				{key: "b", status: 200, policy: `"key";q=10;w=60`, limit: `"key";r=8;t=12`},
				{key: "a", status: 200, policy: `"key";q=2;w=60`, limit: `"key";r=0;t=60`},
				{key: "a", status: 429, code: "rate_limited", detail: "rate limit of 2 requests per 1m0s", policy: `"key";q=2;w=60`},
				{key: "b", status: 200, policy: `"key";q=10;w=60`, limit: `"key";r=6;t=24`}, // the refused request spent nothing of the owner's
			},
		},
		{
			name:   "shared quota",
			shared: apikey.Limits{Quota: apikey.Quota{Limit: 4, Refill: 4, Period: apikey.Daily}},
			steps: []step{
				{key: "a", status: 200}, {key: "b", status: 200}, {key: "a", status: 200}, {key: "b", status: 200},
				{key: "a", status: 429, code: "quota_exhausted", detail: "the quota shared by the keys of owner user-1 is spent until"},
				{key: "b", status: 429, code: "quota_exhausted"},
				{key: "other", status: 200},
			},
		},
		{
			name:   "a key's own quota first",
			shared: apikey.Limits{Quota: apikey.Quota{Limit: 10}},
			own:    []apikey.Limits{{Quota: apikey.Quota{Limit: 1}}},
			steps: []step{
				{key: "a", status: 200},
				{key: "a", status: 429, code: "quota_exhausted", detail: "the key's quota of 1 use is spent"},
				{key: "b", status: 200},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			a, b, other := f.ownerKeys(tt.shared, tt.own...)
			keys := map[string]apikey.Key{"a": a, "b": b, "other": other}
			h := f.v.Handler(okHandler)
			for i, s := range tt.steps {
				w := serve(h, request(keys[s.key].Reveal()))
				require.Equal(t, s.status, w.Code, "step %d (%s)", i, s.key)
				if s.code != "" {
					assert.Equal(t, s.code, problemCode(w.Body.Bytes()), "step %d", i)
					assert.Contains(t, w.Body.String(), s.detail, "step %d", i)
				}
				switch s.policy {
				case "":
				case "-":
					assert.Empty(t, w.Header().Get("RateLimit-Policy"), "step %d", i)
				default:
					assert.Equal(t, s.policy, w.Header().Get("RateLimit-Policy"), "step %d", i)
				}
				if s.limit != "" {
					assert.Equal(t, s.limit, w.Header().Get("RateLimit"), "step %d", i)
				}
			}
		})
	}
}

// TestOwnerQuotaRefusalRefundsKeyQuota: a request that the owner's quota
// refuses has not spent the key's own quota.
func TestOwnerQuotaRefusalRefundsKeyQuota(t *testing.T) {
	f := newFixture(t, nil)
	a, b, _ := f.ownerKeys(apikey.Limits{Quota: apikey.Quota{Limit: 1}}, apikey.Limits{Quota: apikey.Quota{Limit: 3}})
	h := f.v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(b.Reveal())).Code)
	for range 5 {
		require.Equal(t, http.StatusTooManyRequests, serve(h, request(a.Reveal())).Code)
	}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Inner(), Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: f.clock.Now, OnEvent: f.v.Invalidate})
	require.NoError(t, err)
	_, err = m.SetOwnerLimits(context.Background(), owner, "user-1", apikey.Limits{})
	require.NoError(t, err)
	for i := range 3 {
		require.Equal(t, http.StatusOK, serve(h, request(a.Reveal())).Code, "use %d of the key's own quota", i)
	}
	require.Equal(t, http.StatusTooManyRequests, serve(h, request(a.Reveal())).Code)
}

func TestIdentityCarriesOwnerLimits(t *testing.T) {
	f := newFixture(t, nil)
	shared := apikey.Limits{Rate: apikey.RateLimit{Requests: 100, Window: time.Minute}}
	a, _, other := f.ownerKeys(shared)
	var got middleware.Identity
	h := f.v.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got, _ = middleware.FromContext(r.Context()) }))
	serve(h, request(a.Reveal()))
	assert.True(t, got.OwnerLimits.Equal(shared))
	assert.True(t, got.Limits.IsZero())
	serve(h, request(other.Reveal()))
	assert.True(t, got.OwnerLimits.IsZero())
}

// TestOwnerLimitsReachAnotherValidator: owner limits set in another
// process reach a Validator through the change feed, for every key of the
// owner it cached, which then share one budget.
func TestOwnerLimitsReachAnotherValidator(t *testing.T) {
	f := newFixture(t, nil)
	store := faultstore.New(f.store.Inner())
	wake := make(chan struct{}, 1)
	other, err := middleware.New(middleware.Options{Store: store, Hasher: f.hasher, Now: f.clock.Now,
		CacheTTL: 2 * time.Hour, FeedInterval: time.Hour, FeedWake: wake})
	require.NoError(t, err)
	defer other.Close()
	h := other.Handler(okHandler)
	a, _, _ := f.ownerKeys(apikey.Limits{})
	b := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}, Owner: "user-1"})
	for _, k := range []apikey.Key{a, b, a, b} {
		require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code, "no limits yet")
	}
	reads := store.Calls(faultstore.OpKey)

	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Inner(), Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
	require.NoError(t, err)
	_, err = m.SetOwnerLimits(context.Background(), owner, "user-1", apikey.Limits{Rate: apikey.RateLimit{Requests: 2, Window: time.Hour}})
	require.NoError(t, err)
	rev, err := f.store.Revision(context.Background())
	require.NoError(t, err)
	wake <- struct{}{}
	require.Eventually(t, func() bool { return other.Stats().FeedRevision >= rev }, 5*time.Second, time.Millisecond)

	require.Equal(t, http.StatusOK, serve(h, request(a.Reveal())).Code)
	require.Equal(t, http.StatusOK, serve(h, request(b.Reveal())).Code)
	w := serve(h, request(a.Reveal()))
	require.Equal(t, http.StatusTooManyRequests, w.Code, "the two keys spent the owner's 2 requests")
	assert.Equal(t, "rate_limited", problemCode(w.Body.Bytes()))
	assert.Equal(t, reads, store.Calls(faultstore.OpKey), "answered from the entries the feed updated")
}

// A route's cost under a group spends the owner's quota too: one use at
// the group, Cost - 1 at the route, whichever key of the owner.
func TestOwnerQuotaCostUnderAuthenticate(t *testing.T) {
	f := newFixture(t, nil)
	a, b, _ := f.ownerKeys(apikey.Limits{Quota: apikey.Quota{Limit: 4}})
	h := f.v.Authenticate(f.v.Require(middleware.Policy{Cost: 3})(okHandler))
	require.Equal(t, http.StatusOK, serve(h, request(a.Reveal())).Code) // 3 of 4
	w := serve(h, request(b.Reveal()))                                  // 1 at the group, then 2 more: refused
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "quota_exhausted", problemCode(w.Body.Bytes()))
	assert.Contains(t, w.Body.String(), "owner user-1")
}
