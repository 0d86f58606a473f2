package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/memory"
)

// callersFixture is a memory store (a storage.CallerLog) whose production
// server key was rotated out, its replacement, and a Validator on a fake
// clock that writes on Close (and every MaxWriteDelay of real time).
type callersFixture struct {
	store        *memory.Store
	manager      *apikey.Manager
	clock        *clock
	v            *middleware.Validator
	old, current apikey.Key
}

func newCallersFixture(t *testing.T, configure func(*middleware.Options)) *callersFixture {
	t.Helper()
	f := &callersFixture{store: memory.New(), clock: newClock()}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
	require.NoError(t, err)
	f.manager = m
	ctx := context.Background()
	issued, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	for _, is := range issued {
		if is.Key.Type() == apikey.Server {
			f.old = is.Key
		}
	}
	rotated, err := m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: f.old.ID(), Grace: 24 * time.Hour})
	require.NoError(t, err)
	f.current = rotated.Key
	opts := middleware.Options{Store: f.store, Hasher: newHasher(apikey.TestParams), Now: f.clock.Now, LastUsedInterval: middleware.MaxWriteDelay}
	if configure != nil {
		configure(&opts)
	}
	f.v, err = middleware.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.v.Close() })
	return f
}

// call serves one request of key from the peer remote with user agent
// agent ("" for none) and the headers extra, and checks it is admitted.
func (f *callersFixture) call(t *testing.T, key apikey.Key, remote, agent string, extra ...string) {
	t.Helper()
	r := request(key.Reveal())
	r.RemoteAddr = remote
	if agent != "" {
		r.Header.Set("User-Agent", agent)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		r.Header.Set(extra[i], extra[i+1])
	}
	w := httptest.NewRecorder()
	f.v.Handler(okHandler).ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code)
}

func (f *callersFixture) callers(t *testing.T, key apikey.Key) apikey.KeyCallers {
	t.Helper()
	got, err := f.store.Callers(context.Background(), key.ID())
	require.NoError(t, err)
	return got
}

// TestCallersOfRotatedKeyReachTheStore: the requests of a key rotated out
// are recorded per caller (client address without its port, user agent)
// and written in one batch, not per request; its replacement, an active
// key, records nothing; the Manager reads what was written.
func TestCallersOfRotatedKeyReachTheStore(t *testing.T) {
	tests := map[string]struct {
		configure func(*middleware.Options)
		calls     [][]string // remote, agent, extra headers
		want      []apikey.Caller
	}{
		"peers": {
			calls: [][]string{
				{"192.0.2.1:51000", "billing-cron/2.1"},
				{"192.0.2.1:51001", "billing-cron/2.1"},
				{"[2001:db8::7]:443", ""},
			},
			want: []apikey.Caller{
				{Address: "2001:db8::7", Requests: 1},
				{Address: "192.0.2.1", UserAgent: "billing-cron/2.1", Requests: 2},
			},
		},
		"behind a trusted proxy": {
			configure: func(o *middleware.Options) {
				o.Limits.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
				o.Limits.ForwardedHeader = "X-Forwarded-For"
			},
			calls: [][]string{
				{"10.0.0.5:80", "curl/8.5", "X-Forwarded-For", "203.0.113.9"},
				{"198.51.100.2:80", "curl/8.5", "X-Forwarded-For", "203.0.113.9"}, // not a proxy: its header is ignored
			},
			want: []apikey.Caller{
				{Address: "198.51.100.2", UserAgent: "curl/8.5", Requests: 1},
				{Address: "203.0.113.9", UserAgent: "curl/8.5", Requests: 1},
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			f := newCallersFixture(t, tt.configure)
			for i, c := range tt.calls {
				f.clock.Advance(time.Minute)
				f.call(t, f.old, c[0], c[1], c[2:]...)
				f.call(t, f.current, fmt.Sprintf("192.0.2.%d:1", 100+i), "new")
			}
			assert.Empty(t, f.callers(t, f.old).Callers, "nothing written per request")

			require.NoError(t, f.v.Close())
			got := f.callers(t, f.old)
			last := f.clock.Now()
			for i := range got.Callers {
				assert.False(t, got.Callers[i].FirstSeen.After(got.Callers[i].LastSeen))
				assert.False(t, got.Callers[i].LastSeen.After(last))
				got.Callers[i].FirstSeen, got.Callers[i].LastSeen = time.Time{}, time.Time{}
			}
			assert.Equal(t, apikey.KeyCallers{Account: apikey.DefaultAccount, KeyID: f.old.ID(), Callers: tt.want}, got)
			assert.Empty(t, f.callers(t, f.current).Callers, "an active key records no caller")

			report, err := f.manager.Callers(context.Background(), owner, f.old.ID())
			require.NoError(t, err)
			assert.Equal(t, int64(len(tt.calls)), report.Requests)
			assert.True(t, report.LastUsedAt.Equal(last), "last seen at the last request: %s", report.LastUsedAt)
			assert.Len(t, report.Callers, len(tt.want))
		})
	}
}

// TestCallersStayBounded: a rotated-out key called from many distinct
// addresses keeps apikey.MaxCallers callers in the store, counts the rest
// among its others, and loses no request.
func TestCallersStayBounded(t *testing.T) {
	f := newCallersFixture(t, nil)
	const distinct = 500
	for i := range distinct {
		f.clock.Advance(time.Second)
		f.call(t, f.old, netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i)}).String()+":1", "scanner")
	}
	assert.Zero(t, f.v.Stats().CallersDropped, "one key is within the bound of keys")
	require.NoError(t, f.v.Close())
	got := f.callers(t, f.old)
	assert.Len(t, got.Callers, apikey.MaxCallers)
	assert.Equal(t, "198.18.1.243", got.Callers[0].Address, "the most recent first")
	assert.Equal(t, int64(distinct-apikey.MaxCallers), got.Others)
	assert.Equal(t, int64(distinct), got.Requests())
}

// TestEndGraceIfSilentTrustsLastUsedPastTheCallersBound: another account
// fills the Validator's bound of keys rotated out (1,000) with its own
// keys; the victim's rotated-out key, used a minute ago, has its sightings
// dropped from its callers, but not from its last-used time, which
// EndGraceIfSilent trusts: the key is not taken for silent.
func TestEndGraceIfSilentTrustsLastUsedPastTheCallersBound(t *testing.T) {
	ctx := context.Background()
	store, clk := memory.New(), newClock()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clk.Now})
	require.NoError(t, err)
	// The victim: the default account's production server key, rotated out.
	issued, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	var victim apikey.Key
	for _, is := range issued {
		if is.Key.Type() == apikey.Server {
			victim = is.Key
		}
	}
	_, err = m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: victim.ID(), Grace: 72 * time.Hour})
	require.NoError(t, err)
	// The attacker: another tenant, 1,000 extra keys of its own, rotated out.
	mallory := apikey.Actor{ID: "mallory", Role: apikey.Owner, Account: "mallory"}
	_, err = m.Bootstrap(ctx, mallory, apikey.Staging)
	require.NoError(t, err)
	var filler []apikey.Key
	for i := range 1000 {
		c, err := m.Create(ctx, mallory, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server,
			Name: fmt.Sprintf("k%d", i), Scopes: []string{"a:read"}})
		require.NoError(t, err)
		_, err = m.Rotate(ctx, mallory, apikey.RotateRequest{KeyID: c.View.ID, Grace: 72 * time.Hour})
		require.NoError(t, err)
		filler = append(filler, c.Key)
	}
	v, err := middleware.New(middleware.Options{Store: store, Hasher: newHasher(apikey.TestParams), Now: clk.Now,
		LastUsedInterval: middleware.MaxWriteDelay})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	call := func(key apikey.Key, remote string) {
		r := request(key.Reveal())
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		v.Handler(okHandler).ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	}

	clk.Advance(30 * time.Minute)
	for _, k := range filler {
		call(k, "203.0.113.66:1")
	}
	call(victim, "192.0.2.7:1") // the victim's own client, still using the old key
	require.NoError(t, v.Close())
	assert.NotZero(t, v.Stats().CallersDropped, "the victim's sighting was dropped")
	got, err := store.Callers(ctx, victim.ID())
	require.NoError(t, err)
	require.Empty(t, got.Callers, "no caller of the victim written")

	rec, err := store.Key(ctx, victim.ID())
	require.NoError(t, err)
	require.True(t, rec.LastUsedAt.Equal(clk.Now()), "the store knows the key was used just now: %s", rec.LastUsedAt)

	clk.Advance(time.Minute)
	report, err := m.Callers(ctx, owner, victim.ID())
	require.NoError(t, err)
	assert.True(t, report.LastUsedAt.Equal(rec.LastUsedAt), "the report's last use: %s", report.LastUsedAt)
	_, err = m.EndGraceIfSilent(ctx, owner, victim.ID(), 30*time.Minute)
	require.ErrorIs(t, err, apikey.ErrNotSilent, "a key used a minute ago is not silent")
}

// TestWriteDelaysWithinMinSilence: New refuses a LastUsedInterval, and
// without a change feed a CacheTTL, longer than MaxWriteDelay (half of
// apikey.MinSilence), naming the field: a request of a key rotated out is
// written, and the rotation known to the cache, well within the shortest
// silence EndGraceIfSilent accepts.
func TestWriteDelaysWithinMinSilence(t *testing.T) {
	require.Equal(t, apikey.MinSilence/2, middleware.MaxWriteDelay)
	tests := map[string]struct {
		feed    bool
		opts    middleware.Options
		wantErr string // "" for none
	}{
		"last-used interval at the bound":     {opts: middleware.Options{LastUsedInterval: middleware.MaxWriteDelay}},
		"last-used interval beyond the bound": {opts: middleware.Options{LastUsedInterval: middleware.MaxWriteDelay + time.Nanosecond}, wantErr: "Options.LastUsedInterval"},
		"last-used interval of 15 minutes":    {feed: true, opts: middleware.Options{LastUsedInterval: 15 * time.Minute}, wantErr: "Options.LastUsedInterval"},
		"no feed, cache TTL at the bound":     {opts: middleware.Options{CacheTTL: middleware.MaxWriteDelay}},
		"no feed, cache TTL beyond the bound": {opts: middleware.Options{CacheTTL: middleware.MaxWriteDelay + time.Nanosecond}, wantErr: "Options.CacheTTL"},
		"a feed, cache TTL beyond the bound":  {feed: true, opts: middleware.Options{CacheTTL: time.Hour}},
		"the defaults":                        {},
		"the defaults with a feed":            {feed: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var store apikey.Store = memory.New()
			if !tt.feed {
				store = withoutFeed(store)
			}
			opts := tt.opts
			opts.Store, opts.Hasher = store, newHasher(apikey.TestParams)
			v, err := middleware.New(opts)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, v.Close())
		})
	}
}

// TestCallerUserAgentRedactedBeforeTheCut: a client that sends its key in
// its User-Agent (a misconfigured SDK) near the 200-byte cut: the key is
// redacted whole before the cut, so no part of its secret is stored.
func TestCallerUserAgentRedactedBeforeTheCut(t *testing.T) {
	secretStart := apikey.PrefixLength + 1 // after the prefix and its "_"
	// keep: the secret characters before the cut.
	for _, keep := range []int{1, 19, 20, apikey.SecretLength} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			f := newCallersFixture(t, nil)
			key := f.old.Reveal()
			pad := apikey.MaxUserAgentLength - secretStart - keep
			agent := strings.Repeat("a", pad-1) + " " + key
			f.call(t, f.old, "192.0.2.7:1", agent)
			require.NoError(t, f.v.Close())
			got := f.callers(t, f.old)
			require.Len(t, got.Callers, 1)
			ua := got.Callers[0].UserAgent
			assert.LessOrEqual(t, len(ua), apikey.MaxUserAgentLength)
			assert.True(t, strings.HasPrefix(ua, strings.Repeat("a", pad-1)+" "+key[:apikey.PrefixLength]), "the prefix is kept")
			// (assert.False, not NotContains: the test prints no part of a secret)
			assert.False(t, strings.Contains(ua, key[:secretStart+keep]), "no part of the secret is stored")
		})
	}
}

// TestRefusedRequestsOfARotatedOutKeyAreCallers: a client of a rotated-out
// key refused after its key verified (its rate limit, a route's policy,
// its address allowlist) is still a caller, so EndGraceIfSilent does not
// end a grace still in use.
func TestRefusedRequestsOfARotatedOutKeyAreCallers(t *testing.T) {
	tests := map[string]struct {
		limits apikey.Limits
		policy *middleware.Policy
		want   map[int]int // status: requests
	}{
		"rate limited": {limits: apikey.Limits{Rate: apikey.RateLimit{Requests: 1, Window: time.Hour}},
			want: map[int]int{http.StatusOK: 1, http.StatusTooManyRequests: 19}},
		"another environment's route": {policy: &middleware.Policy{Environments: []string{apikey.Staging}},
			want: map[int]int{http.StatusForbidden: 20}},
		"outside its address allowlist": {limits: apikey.Limits{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
			want: map[int]int{http.StatusForbidden: 20}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			f := newCallersFixture(t, nil)
			if !tt.limits.IsZero() {
				_, err := f.manager.SetLimits(context.Background(), owner, f.old.ID(), tt.limits)
				require.NoError(t, err)
			}
			h := f.v.Handler(okHandler)
			if tt.policy != nil {
				h = f.v.Require(*tt.policy)(okHandler)
			}
			codes := map[int]int{}
			for range 20 {
				f.clock.Advance(time.Minute)
				r := request(f.old.Reveal())
				r.RemoteAddr = "192.0.2.7:1"
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				codes[w.Code]++
			}
			require.Equal(t, tt.want, codes)
			require.NoError(t, f.v.Close())
			got := f.callers(t, f.old)
			require.Len(t, got.Callers, 1)
			assert.Equal(t, int64(20), got.Callers[0].Requests, "every request that verified the key")
			assert.True(t, got.Callers[0].LastSeen.Equal(f.clock.Now()), "last seen: %s", got.Callers[0].LastSeen)
			_, err := f.manager.EndGraceIfSilent(context.Background(), owner, f.old.ID(), apikey.MinSilence)
			require.ErrorIs(t, err, apikey.ErrNotSilent, "the client called a minute ago")
		})
	}
}
