package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
// clock that writes only on Close.
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
