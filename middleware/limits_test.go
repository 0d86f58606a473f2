package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/faultstore"
)

// limited creates a server key of production with limits l.
func (f *fixture) limited(l apikey.Limits) apikey.Key {
	return f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}, Limits: l})
}

// usage returns the key's usage counts by outcome, as written to the store.
func (f *fixture) usage(k apikey.Key) map[string]int64 {
	f.t.Helper()
	counts, err := f.store.Usage(context.Background(), storage.UsageQuery{
		Account: apikey.DefaultAccount, KeyID: k.ID(),
		From: f.clock.Now().Add(-48 * time.Hour), To: f.clock.Now().Add(48 * time.Hour),
	})
	require.NoError(f.t, err)
	out := map[string]int64{}
	for _, c := range counts {
		out[c.Outcome] += c.Count
	}
	return out
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Rate: apikey.RateLimit{Requests: 2, Window: time.Minute}})
	h := f.v.Handler(okHandler)

	for i, want := range []string{`"key";r=1;t=30`, `"key";r=0;t=60`} {
		w := serve(h, request(k.Reveal()))
		require.Equal(t, http.StatusOK, w.Code, "request %d", i)
		assert.Equal(t, `"key";q=2;w=60`, w.Header().Get("RateLimit-Policy"))
		assert.Equal(t, want, w.Header().Get("RateLimit"), "request %d", i)
	}
	w := serve(h, request(k.Reveal()))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "rate_limited", problemCode(w.Body.Bytes()))
	assert.Equal(t, "30", w.Header().Get("Retry-After"))
	assert.Equal(t, `"key";r=0;t=30`, w.Header().Get("RateLimit"))
	assert.Empty(t, w.Header().Get("WWW-Authenticate"), "a limit is not an authentication failure")

	f.clock.Advance(30 * time.Second) // one request's worth returns
	assert.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)

	other := f.keys["production/server"] // no limit: no fields
	w = serve(h, request(other.Reveal()))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, w.Header().Get("RateLimit"))
	assert.Empty(t, w.Header().Get("RateLimit-Policy"))
}

// TestRateLimitFieldsAllocateNothing: a key far below its rate limit,
// called again and again on the system clock, gets the same RateLimit
// fields each time, which cost no allocation: the limiter reads the clock
// at each request, so requests within one tick of the request clock are
// not counted as simultaneous (each would then see one request less
// remaining, and new fields).
func TestRateLimitFieldsAllocateNothing(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) {
		o.Now = nil
		o.FeedInterval = time.Hour // no background reads: AllocsPerRun counts every goroutine's
	})
	limited := f.limited(apikey.Limits{Rate: apikey.RateLimit{Requests: apikey.MaxRateRequests, Window: time.Second}})
	h := f.v.Handler(okHandler)
	allocs := func(k apikey.Key) float64 {
		r := request(k.Reveal())
		w := &headerWriter{h: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.code)
		return testing.AllocsPerRun(1000, func() {
			clear(w.h)
			h.ServeHTTP(w, r)
		})
	}
	base := allocs(f.keys["production/server"])
	assert.Equal(t, base, allocs(limited), "allocations per request with a rate limit and without")
}

// headerWriter is a ResponseWriter that keeps the header and the status
// code written (code is 200 until then) and allocates nothing.
type headerWriter struct {
	h    http.Header
	code int
}

func (w *headerWriter) Header() http.Header         { return w.h }
func (w *headerWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *headerWriter) WriteHeader(code int)        { w.code = code }

func TestQuota(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 5, Refill: 5, Period: apikey.Daily}})
	cheap := f.v.Handler(okHandler)
	costly := f.v.Require(middleware.Policy{Cost: 2})(okHandler)

	for i, h := range []http.Handler{costly, costly, cheap} { // 2 + 2 + 1 = 5 uses
		require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code, "request %d", i)
	}
	w := serve(cheap, request(k.Reveal()))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "quota_exhausted", problemCode(w.Body.Bytes()))
	assert.Equal(t, "43200", w.Header().Get("Retry-After"), "until 00:00 UTC, 12 hours after the fixture's noon")

	f.clock.Advance(12 * time.Hour) // the refill
	assert.Equal(t, http.StatusOK, serve(cheap, request(k.Reveal())).Code)
}

func TestQuotaWithoutRefill(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 1}})
	h := f.v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
	w := serve(h, request(k.Reveal()))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "quota_exhausted", problemCode(w.Body.Bytes()))
	assert.Empty(t, w.Header().Get("Retry-After"), "a quota that never refills gives no time to retry")
}

// A route's cost under a group that authenticated the request spends the
// rest of the cost: one use at the group, Cost - 1 at the route.
func TestQuotaCostUnderAuthenticate(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 4}})
	h := f.v.Authenticate(f.v.Require(middleware.Policy{Cost: 3})(okHandler))
	require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code) // 3 of 4
	w := serve(h, request(k.Reveal()))                                  // 1 at the group, then 2 more: refused
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "quota_exhausted", problemCode(w.Body.Bytes()))
}

func TestQuotaStoreDownFailsClosed(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 100}})
	f.store.Down(faultstore.OpLeaseQuota)
	w := serve(f.v.Handler(okHandler), request(k.Reveal()))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "unavailable", problemCode(w.Body.Bytes()))
	assert.NotEmpty(t, w.Header().Get("Retry-After"))

	f.store.Up()
	assert.Equal(t, http.StatusOK, serve(f.v.Handler(okHandler), request(k.Reveal())).Code)
}

func TestAllowedIPs(t *testing.T) {
	trusted := func(o *middleware.Options) {
		o.Limits = middleware.LimitOptions{
			TrustedProxies:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			ForwardedHeader: "X-Forwarded-For",
		}
	}
	allow := apikey.Limits{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}}
	for name, c := range map[string]struct {
		configure func(*middleware.Options)
		remote    string
		forwarded string
		want      int
	}{
		"peer inside":                      {nil, "203.0.113.7:4000", "", http.StatusOK},
		"IPv6 peer inside":                 {nil, "[2001:db8::1]:4000", "", http.StatusOK},
		"peer outside":                     {nil, "198.51.100.1:4000", "", http.StatusForbidden},
		"untrusted header ignored":         {nil, "198.51.100.1:4000", "203.0.113.7", http.StatusForbidden},
		"proxy without trust":              {nil, "10.0.0.1:4000", "203.0.113.7", http.StatusForbidden},
		"trusted proxy names client":       {trusted, "10.0.0.1:4000", "203.0.113.7", http.StatusOK},
		"trusted proxy, client outside":    {trusted, "10.0.0.1:4000", "198.51.100.1", http.StatusForbidden},
		"spoofed entry left of the client": {trusted, "10.0.0.1:4000", "203.0.113.7, 198.51.100.1", http.StatusForbidden},
		"spoofed header, untrusted peer":   {trusted, "198.51.100.1:4000", "203.0.113.7", http.StatusForbidden},
		"unreadable entry fails closed":    {trusted, "10.0.0.1:4000", "unknown", http.StatusForbidden},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, c.configure)
			k := f.limited(allow)
			r := request(k.Reveal())
			r.RemoteAddr = c.remote
			if c.forwarded != "" {
				r.Header.Set("X-Forwarded-For", c.forwarded)
			}
			w := serve(f.v.Handler(okHandler), r)
			require.Equal(t, c.want, w.Code, w.Body.String())
			if c.want == http.StatusForbidden {
				assert.Equal(t, "address_not_allowed", problemCode(w.Body.Bytes()))
			}
		})
	}
}

// TestRateLimitOutlivesCacheEntries: a change to a key makes a new cache
// entry for it, with its own handle on the key's bucket; the requests the
// key spent stay spent.
func TestRateLimitOutlivesCacheEntries(t *testing.T) {
	f := newFixture(t, nil)
	limits := apikey.Limits{Rate: apikey.RateLimit{Requests: 2, Window: time.Minute}}
	k := f.limited(limits)
	h := f.v.Handler(okHandler)
	for i := range 2 {
		require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code, "request %d", i)
	}
	_, err := f.manager.SetLimits(context.Background(), owner, k.ID(), limits) // evicts the key's entry
	require.NoError(t, err)
	w := serve(h, request(k.Reveal()))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, `"key";r=0;t=30`, w.Header().Get("RateLimit"))
	assert.EqualValues(t, 2, f.v.Stats().CacheMisses, "the change made a new cache entry")
}

func TestLimitsChangeApplies(t *testing.T) {
	f := newFixture(t, nil)
	k := f.keys["production/server"]
	h := f.v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)

	_, err := f.manager.SetLimits(context.Background(), owner, k.ID(), apikey.Limits{Quota: apikey.Quota{Limit: 1}})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
	require.Equal(t, http.StatusTooManyRequests, serve(h, request(k.Reveal())).Code)

	_, err = f.manager.SetLimits(context.Background(), owner, k.ID(), apikey.Limits{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
}

func TestIdentityCarriesLimits(t *testing.T) {
	f := newFixture(t, nil)
	l := apikey.Limits{Rate: apikey.RateLimit{Requests: 10, Window: time.Second}, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	k := f.limited(l)
	r := request(k.Reveal())
	r.RemoteAddr = "192.0.2.1:1"
	var got middleware.Identity
	serve(f.v.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got, _ = middleware.FromContext(r.Context())
		got.Limits.AllowedIPs[0] = netip.Prefix{} // a copy: the cached one is unchanged
	})), r)
	assert.Equal(t, l.Rate, got.Limits.Rate)
	r = request(k.Reveal())
	r.RemoteAddr = "192.0.2.1:1"
	assert.Equal(t, http.StatusOK, serve(f.v.Handler(okHandler), r).Code)
}

func TestUsageCounts(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Rate: apikey.RateLimit{Requests: 3, Window: time.Hour}})
	reads := f.v.Authenticate(f.v.Require(middleware.Policy{Scope: "things:read"})(okHandler))
	writes := f.v.Authenticate(f.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Client}})(okHandler))

	serve(reads, request(k.Reveal()))                        // admitted
	serve(reads, request(k.Reveal()))                        // admitted
	serve(writes, request(k.Reveal()))                       // refused by the inner policy: counted once
	serve(reads, request(k.Reveal()))                        // rate_limited
	serve(reads, request(forge(apikey.Server, k.ID(), 'x'))) // a wrong secret counts for no key
	_, err := f.v.Check(request(k.Reveal()), middleware.Policy{})
	require.Error(t, err) // rate_limited, through Check

	require.NoError(t, f.v.Close())
	assert.Equal(t, map[string]int64{"admitted": 2, "key_type_not_allowed": 1, "rate_limited": 2}, f.usage(k))
}

func TestUsageWriteFailureKeepsCounts(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.LastUsedInterval = 10 * time.Millisecond })
	k := f.keys["production/server"]
	f.store.Down(faultstore.OpRecordUsage)
	serve(f.v.Handler(okHandler), request(k.Reveal()))
	require.Eventually(t, func() bool { return f.v.Stats().BackgroundErrors > 0 }, 5*time.Second, 5*time.Millisecond)
	f.store.Up()
	require.NoError(t, f.v.Close())
	assert.Equal(t, map[string]int64{"admitted": 1}, f.usage(k))
}

func TestUsagePruned(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) {
		o.Limits.UsageRetention = 24 * time.Hour
		o.LastUsedInterval = 10 * time.Millisecond
	})
	k := f.keys["production/server"]
	old := apikey.UsageCount{Account: apikey.DefaultAccount, Environment: apikey.Production, KeyID: k.ID(),
		Hour: f.clock.Now().Add(-30 * time.Hour).Truncate(time.Hour), Outcome: "admitted", Count: 7}
	require.NoError(t, f.store.RecordUsage(context.Background(), []apikey.UsageCount{old}))
	serve(f.v.Handler(okHandler), request(k.Reveal()))
	require.Eventually(t, func() bool { // the count of 30 hours ago is deleted
		return assert.ObjectsAreEqual(map[string]int64{"admitted": 1}, f.usage(k))
	}, 5*time.Second, 10*time.Millisecond)
}

func TestLimitOptionsValidated(t *testing.T) {
	f := newFixture(t, nil)
	for name, c := range map[string]struct {
		o    middleware.LimitOptions
		want string
	}{
		"proxies without header": {middleware.LimitOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "ForwardedHeader is required"},
		"unknown header":         {middleware.LimitOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, ForwardedHeader: "X-Real-IP"}, "ForwardedHeader must be"},
		"invalid proxy range":    {middleware.LimitOptions{TrustedProxies: []netip.Prefix{{}}, ForwardedHeader: "Forwarded"}, "TrustedProxies[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			for range 20 {
				_, err := middleware.New(middleware.Options{Store: f.store, Limits: c.o})
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.want)
			}
			assert.Less(t, runtime.NumGoroutine()-before, 5, "a New that fails leaves no goroutine running")
		})
	}
	for _, cost := range []int{-1, middleware.MaxCost + 1} {
		err := middleware.Policy{Cost: cost}.Validate()
		require.Error(t, err, "cost %d", cost)
		assert.Contains(t, err.Error(), "Cost")
	}
}

// Check inside a handler under Authenticate only authorizes: the request
// is charged once, by the guard that authenticated it.
func TestCheckUnderAuthenticateChargesOnce(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 3}, Rate: apikey.RateLimit{Requests: 100, Window: time.Minute}})
	h := f.v.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := f.v.Check(r, middleware.Policy{}); err != nil {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	w := serve(h, request(k.Reveal()))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, `"key";r=99;t=1`, w.Header().Get("RateLimit"), "one request of the rate limit")
	for range 2 {
		require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code, "3 requests fit a quota of 3")
	}
	require.NoError(t, f.v.Close())
	assert.Equal(t, map[string]int64{"admitted": 3}, f.usage(k))
}

// Inner guards on other goroutines (sub-requests with the request's
// context, http.TimeoutHandler) record their refusal without a data race;
// the first refusal is the request's outcome.
func TestInnerRefusalFromOtherGoroutines(t *testing.T) {
	f := newFixture(t, nil)
	k := f.keys["production/server"]
	inner := f.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Client}})(okHandler) // refuses a server key
	h := f.v.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { inner.ServeHTTP(httptest.NewRecorder(), r.Clone(r.Context())) })
		}
		wg.Wait()
	}))
	require.Equal(t, http.StatusOK, serve(h, request(k.Reveal())).Code)
	require.NoError(t, f.v.Close())
	assert.Equal(t, map[string]int64{"key_type_not_allowed": 1}, f.usage(k))
}

// A key used from outside its allowlist is refused for its address before
// any route's policy can tell it about the route.
func TestAllowlistBeforePolicy(t *testing.T) {
	f := newFixture(t, nil)
	k := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"things:read"},
		Limits: apikey.Limits{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}})
	w := serve(f.v.Require(middleware.Policy{Scope: "orders:write"})(okHandler), request(k.Reveal())) // from 192.0.2.1
	require.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, "address_not_allowed", problemCode(w.Body.Bytes()))
	assert.NotContains(t, w.Body.String(), "orders:write")
}

// A route that costs more than the whole quota says so.
func TestCostAboveQuota(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 5, Refill: 5, Period: apikey.Monthly}})
	w := serve(f.v.Require(middleware.Policy{Cost: 10})(okHandler), request(k.Reveal()))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "quota_exhausted", problemCode(w.Body.Bytes()))
	assert.Contains(t, w.Body.String(), "costs 10 uses, more than the key's quota of 5")
}

// Close gives the unspent uses of a quota lease back on Options.Now, the
// clock the lease was taken on: on the system clock, a lease of another
// period (the fixture's clock is not the system's) would be dropped, and
// its unspent uses would stay spent.
func TestCloseReturnsLeaseOnOptionsNow(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 100, Refill: 100, Period: apikey.Daily}})
	require.Equal(t, http.StatusOK, serve(f.v.Handler(okHandler), request(k.Reveal())).Code)
	require.NoError(t, f.v.Close())

	lease, err := f.store.LeaseQuota(context.Background(), k.ID(), 1, f.clock.Now())
	require.NoError(t, err)
	assert.Equal(t, int64(98), lease.Remaining, "one use spent, one leased now, the rest given back at Close")
}

// A route that costs more than the key's quota is refused as one that can
// never be admitted under Authenticate too, where the group spent one use
// before the route's Cost - 1: no Retry-After that a refill would not
// honour.
func TestCostAboveQuotaUnderAuthenticate(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 5, Refill: 5, Period: apikey.Monthly}})
	w := serve(f.v.Authenticate(f.v.Require(middleware.Policy{Cost: 6})(okHandler)), request(k.Reveal()))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "quota_exhausted", problemCode(w.Body.Bytes()))
	assert.Contains(t, w.Body.String(), "costs 6 uses, more than the key's quota of 5")
	assert.Empty(t, w.Header().Get("Retry-After"), "no refill admits the route")
}

// A request whose handler panics was admitted: it is counted as such.
func TestUsageCountsPanickingHandler(t *testing.T) {
	f := newFixture(t, nil)
	k := f.keys["production/server"]
	panics := f.v.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() { serve(panics, request(k.Reveal())) })
	serve(f.v.Handler(okHandler), request(k.Reveal()))

	require.NoError(t, f.v.Close())
	assert.Equal(t, map[string]int64{"admitted": 2}, f.usage(k))
}

// A key with a quota on a store that keeps no quota balances is refused
// with 503, and the misconfiguration reaches OnBackgroundError once.
func TestQuotaWithoutLedgerReported(t *testing.T) {
	var mu sync.Mutex
	var reported []error
	f := newFixture(t, func(o *middleware.Options) {
		fs := faultstore.New(o.Store)
		fs.Hide(faultstore.OpLeaseQuota)
		o.Store = fs.Exact()
		o.OnBackgroundError = func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }
	})
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 100}})
	for range 3 {
		w := serve(f.v.Handler(okHandler), request(k.Reveal()))
		require.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, "unavailable", problemCode(w.Body.Bytes()))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, reported, 1)
	assert.ErrorContains(t, reported[0], "storage.QuotaLedger")
	assert.ErrorContains(t, reported[0], k.ID())
}
