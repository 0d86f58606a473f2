package middleware_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
)

// verifications records what Options.OnVerification receives.
type verifications struct {
	mu   sync.Mutex
	seen []middleware.Verification
}

func (vs *verifications) record(_ context.Context, v middleware.Verification) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.seen = append(vs.seen, v)
}

// take returns what was recorded since the last take.
func (vs *verifications) take() []middleware.Verification {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	out := vs.seen
	vs.seen = nil
	return out
}

// TestOnVerification: each authenticated request is reported once, with
// what its check did, in order: a miss that reads the store and runs
// argon2, a hit, refusals before and after the key verified, a wrong
// secret refuted without argon2, and a store failure.
func TestOnVerification(t *testing.T) {
	vs := &verifications{}
	f := newFixture(t, func(o *middleware.Options) { o.OnVerification = vs.record })
	server := f.keys["production/server"]
	client := f.keys["staging/client"]
	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	wrong := forge(apikey.Server, server.ID(), 'w')
	h := f.v.Handler(okHandler)

	type want struct {
		prefix, account, env      string
		cached, storeRead, hashed bool
		reason                    *problem.Reason // nil: admitted
	}
	prod := want{prefix: server.Prefix(), account: apikey.DefaultAccount, env: apikey.Production}
	for _, tc := range []struct {
		name  string
		key   string
		setup func()
		want  want
	}{
		{"miss: store read and argon2", server.Reveal(), nil,
			want{prod.prefix, prod.account, prod.env, false, true, true, nil}},
		{"hit", server.Reveal(), nil,
			want{prod.prefix, prod.account, prod.env, true, false, false, nil}},
		{"missing key", "", nil, want{reason: middleware.ErrMissingKey}},
		{"malformed key", "server-nope", nil, want{reason: middleware.ErrMalformedKey}},
		{"unknown key", unknown.Reveal(), nil,
			want{prefix: unknown.Prefix(), storeRead: true, reason: middleware.ErrInvalidKey}},
		{"unknown key, cached failure", unknown.Reveal(), nil,
			want{prefix: unknown.Prefix(), cached: true, reason: middleware.ErrInvalidKey}},
		{"wrong secret of a verified key: refuted, no argon2", wrong, nil,
			want{prefix: server.Prefix(), storeRead: true, reason: middleware.ErrInvalidKey}},
		{"verified, then refused: publishable key on a server route", client.Reveal(), nil,
			want{client.Prefix(), apikey.DefaultAccount, apikey.Staging, false, true, true, middleware.ErrKeyType}},
		{"store failure", f.keys["staging/server"].Reveal(), f.down,
			want{prefix: f.keys["staging/server"].Prefix(), storeRead: true, reason: middleware.ErrUnavailable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			code := serve(h, request(tc.key)).Code
			got := vs.take()
			require.Len(t, got, 1)
			v := got[0]
			assert.Equal(t, tc.want.prefix, v.Prefix)
			assert.Equal(t, tc.want.account, v.Account)
			assert.Equal(t, tc.want.env, v.Environment)
			assert.Equal(t, tc.want.cached, v.Cached, "Cached")
			assert.Equal(t, tc.want.storeRead, v.StoreRead, "StoreRead")
			assert.Equal(t, tc.want.hashed, v.Hashed, "Hashed")
			assert.False(t, v.Shared)
			assert.Equal(t, tc.want.reason, problem.Of(v.Err))
			if tc.want.reason == nil {
				assert.Equal(t, http.StatusOK, code)
			} else {
				assert.Equal(t, tc.want.reason.Status(), code)
			}
			assert.False(t, v.Start.IsZero())
			assert.False(t, v.End.Before(v.Start))
		})
	}
}

// TestOnVerificationOncePerRequest: a request authenticated further out is
// not reported again by the routes inside.
func TestOnVerificationOncePerRequest(t *testing.T) {
	vs := &verifications{}
	f := newFixture(t, func(o *middleware.Options) { o.OnVerification = vs.record })
	h := f.v.Authenticate(f.v.Require(middleware.Policy{})(okHandler))
	require.Equal(t, http.StatusOK, serve(h, request(f.keys["production/server"].Reveal())).Code)
	assert.Len(t, vs.take(), 1)
}

// TestOnVerificationAllocatesNothing: on a cached request, the hook adds no
// allocation of its own.
func TestOnVerificationAllocatesNothing(t *testing.T) {
	key := ""
	allocs := func(hook func(context.Context, middleware.Verification)) float64 {
		f := newFixture(t, func(o *middleware.Options) {
			o.OnVerification = hook
			o.FeedInterval = time.Hour // no background reads: AllocsPerRun counts every goroutine's
		})
		key = f.keys["production/server"].Reveal()
		h := f.v.Handler(okHandler)
		r := request(key)
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, r) // cache it
		return testing.AllocsPerRun(100, func() {
			clear(w.h)
			h.ServeHTTP(w, r)
		})
	}
	var calls int
	without := allocs(nil)
	with := allocs(func(context.Context, middleware.Verification) { calls++ })
	assert.Equal(t, without, with)
	assert.Positive(t, calls)
}

// discard is a ResponseWriter that keeps nothing but its header map.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
