package middleware

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// Run them side by side and compare medians of rounds run one after the
// other (-count runs each benchmark that many times in a row, so repeat the
// command instead on a noisy machine):
//
//	for i in $(seq 8); do go test -run '^$' -bench 'BareHandler|PlaintextBaseline|CachedKey$' ./middleware; done
//
// Target (DESIGN.md, "Targets"): CachedKey's overhead over BareHandler is
// at most twice PlaintextBaseline's, and CachedKey makes at most 2
// allocations more than PlaintextBaseline.
//
// Every benchmark that serves a request does it the same way (runServe):
// the same *http.Request every iteration, and the same ResponseWriter
// (discardWriter), its header map cleared every iteration. The writer
// costs nothing, so that BareHandler is close to zero and the overheads
// are the middlewares' own. (A fresh httptest.ResponseRecorder per
// request would add the same cost and allocations to every benchmark, and
// noise; with a handler that writes no header, as here, it would also
// charge the middleware the first allocation of the response's header map,
// which a real response pays as soon as anything sets a header.)

var noop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// benchEnv bootstraps production with hasher params p and returns a
// Validator over it and the default server key.
func benchEnv(b *testing.B, p apikey.Params, opts Options) (*Validator, apikey.Key) {
	return benchEnvLimited(b, p, opts, apikey.Limits{}, nil)
}

// benchEnvLimited is benchEnv with limits l set on the key, over the
// memory store as wrap returns it (nil: as is).
func benchEnvLimited(b *testing.B, p apikey.Params, opts Options, l apikey.Limits, wrap func(apikey.Store) apikey.Store) (*Validator, apikey.Key) {
	b.Helper()
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: p}})
	if err != nil {
		b.Fatal(err)
	}
	owner := apikey.Actor{ID: "bench", Role: apikey.Owner}
	issued, err := m.Bootstrap(context.Background(), owner, apikey.Production)
	if err != nil {
		b.Fatal(err)
	}
	if !l.IsZero() {
		if _, err := m.SetLimits(context.Background(), owner, issued[0].Key.ID(), l); err != nil {
			b.Fatal(err)
		}
	}
	opts.Store, opts.Hasher = store, apikey.Argon2id{Params: p}
	if wrap != nil {
		opts.Store = wrap(store)
	}
	v, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Close() })
	return v, issued[0].Key
}

func benchRequest(key string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/things", nil)
	if key != "" {
		r.Header.Set("X-API-Key", key)
	}
	return r
}

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmarks measure the middleware rather than a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// runServe serves r through h once per iteration and checks the status.
func runServe(b *testing.B, h http.Handler, r *http.Request, want int) {
	b.Helper()
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // warm the cache
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code = http.StatusOK
		h.ServeHTTP(w, r)
	}
	if w.code != want {
		b.Fatalf("status %d, want %d", w.code, want)
	}
}

// BenchmarkBareHandler is the baseline: the same request through a handler
// that does nothing.
func BenchmarkBareHandler(b *testing.B) {
	key, err := apikey.GenerateKey(apikey.Server)
	if err != nil {
		b.Fatal(err)
	}
	runServe(b, noop, benchRequest(key.Reveal()), http.StatusOK)
}

// plaintextKey is the context key of plaintextMiddleware, a pointer like
// keystile's.
var plaintextKey = &contextKey{"plaintext identity"}

// plaintextMiddleware is the baseline of the cached-validation target: it
// accepts one constant key, compared in constant time with crypto/subtle,
// and hands the next handler a value in the request context with
// r.WithContext. It is written to be fast, so that the target is strict:
// it reads the header as keystile does (by its canonical name, without
// canonicalising it per request) and compares without converting the
// header to a []byte on the heap. Its only allocations are r.WithContext's.
func plaintextMiddleware(want string, next http.Handler) http.Handler {
	wantKey := []byte(want)
	identity := &Identity{KeyID: "plaintext"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header[canonicalAPIKey]
		var buf [apikey.KeyLength]byte // the presented key, copied on the stack
		if len(values) != 1 || len(values[0]) != len(buf) ||
			subtle.ConstantTimeCompare(buf[:copy(buf[:], values[0])], wantKey) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), plaintextKey, identity)))
	})
}

// BenchmarkPlaintextBaseline is the baseline of the cached-validation
// target: the same request through plaintextMiddleware.
func BenchmarkPlaintextBaseline(b *testing.B) {
	key, err := apikey.GenerateKey(apikey.Server)
	if err != nil {
		b.Fatal(err)
	}
	runServe(b, plaintextMiddleware(key.Reveal(), noop), benchRequest(key.Reveal()), http.StatusOK)
}

// BenchmarkCachedKey is a valid, cached key through Handler (CORS and
// validation).
func BenchmarkCachedKey(b *testing.B) {
	v, key := benchEnv(b, apikey.TestParams, Options{})
	runServe(b, v.Handler(noop), benchRequest(key.Reveal()), http.StatusOK)
}

// BenchmarkCachedKeyExpiring is BenchmarkCachedKey with a key rotated out
// (in its grace period): each request also records its caller, one the
// key already knows (a lock, no allocation), and adds the expiry header.
func BenchmarkCachedKeyExpiring(b *testing.B) {
	rotate := func(s apikey.Store) apikey.Store {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range []apikey.KeyType{apikey.Server, apikey.Client} {
			req := apikey.RotateRequest{Environment: apikey.Production, Type: t, Grace: time.Hour}
			if _, err := m.Rotate(context.Background(), apikey.Actor{ID: "bench", Role: apikey.Owner}, req); err != nil {
				b.Fatal(err)
			}
		}
		return s
	}
	v, key := benchEnvLimited(b, apikey.TestParams, Options{}, apikey.Limits{}, rotate)
	r := benchRequest(key.Reveal())
	r.Header.Set("User-Agent", "Go-http-client/1.1")
	runServe(b, v.Handler(noop), r, http.StatusOK)
}

// BenchmarkCachedKeyOnVerification is BenchmarkCachedKey with an
// Options.OnVerification hook that does nothing: the cost of the hook
// itself (two clock reads), without a tracer's.
func BenchmarkCachedKeyOnVerification(b *testing.B) {
	v, key := benchEnv(b, apikey.TestParams, Options{OnVerification: func(context.Context, Verification) {}})
	runServe(b, v.Handler(noop), benchRequest(key.Reveal()), http.StatusOK)
}

// withoutUsage hides the store's storage.UsageRecorder: no usage is
// counted.
func withoutUsage(s apikey.Store) apikey.Store {
	fs := faultstore.New(s)
	fs.Hide(faultstore.OpRecordUsage, faultstore.OpUsage, faultstore.OpPruneUsage)
	return fs.Exact()
}

// BenchmarkCachedKeyNoUsage is BenchmarkCachedKey over a store that keeps
// no usage: the baseline of usage counting.
func BenchmarkCachedKeyNoUsage(b *testing.B) {
	v, key := benchEnvLimited(b, apikey.TestParams, Options{}, apikey.Limits{}, withoutUsage)
	runServe(b, v.Handler(noop), benchRequest(key.Reveal()), http.StatusOK)
}

// benchRate is a rate limit that the benchmarks never reach.
var benchRate = apikey.RateLimit{Requests: apikey.MaxRateRequests, Window: time.Second}

// BenchmarkCachedKeyRateLimit is BenchmarkCachedKey with a per-process
// rate limit on the key, and its RateLimit fields on the response.
func BenchmarkCachedKeyRateLimit(b *testing.B) {
	v, key := benchEnvLimited(b, apikey.TestParams, Options{}, apikey.Limits{Rate: benchRate}, nil)
	runServe(b, v.Handler(noop), benchRequest(key.Reveal()), http.StatusOK)
}

// BenchmarkCachedKeyQuota is BenchmarkCachedKey with a quota on the key,
// spent from a lease held in memory.
func BenchmarkCachedKeyQuota(b *testing.B) {
	v, key := benchEnvLimited(b, apikey.TestParams, Options{}, apikey.Limits{Quota: apikey.Quota{Limit: apikey.MaxQuotaUses}}, nil)
	runServe(b, v.Handler(noop), benchRequest(key.Reveal()), http.StatusOK)
}

// BenchmarkCachedKeyCheckRateLimit is BenchmarkCachedKeyCheck with a
// per-process rate limit on the key: the limiter's own cost, without the
// response fields.
func BenchmarkCachedKeyCheckRateLimit(b *testing.B) {
	v, key := benchEnvLimited(b, apikey.TestParams, Options{}, apikey.Limits{Rate: benchRate}, nil)
	benchCheck(b, v, key)
}

// BenchmarkCachedKeyParallel is BenchmarkCachedKey from GOMAXPROCS
// goroutines at once.
func BenchmarkCachedKeyParallel(b *testing.B) {
	v, key := benchEnv(b, apikey.TestParams, Options{})
	h := v.Handler(noop)
	r := benchRequest(key.Reveal())
	h.ServeHTTP(&discardWriter{h: http.Header{}}, r)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, r)
		}
		if w.code != 0 {
			b.Errorf("status %d", w.code)
		}
	})
}

// BenchmarkColdKey disables the cache: one argon2id verification with
// DefaultParams per request.
func BenchmarkColdKey(b *testing.B) {
	v, key := benchEnv(b, apikey.DefaultParams, Options{CacheSize: -1})
	runServe(b, v.Handler(noop), benchRequest(key.Reveal()), http.StatusOK)
}

// BenchmarkUnknownKey repeats a well-formed key that is not in the store:
// after the first request it is answered from the failure cache.
func BenchmarkUnknownKey(b *testing.B) {
	v, _ := benchEnv(b, apikey.TestParams, Options{})
	unknown, err := apikey.GenerateKey(apikey.Server)
	if err != nil {
		b.Fatal(err)
	}
	runServe(b, v.Handler(noop), benchRequest(unknown.Reveal()), http.StatusUnauthorized)
}

// BenchmarkMalformedKey sends a key with a wrong checksum: refused before
// any cache lookup, storage call or hash.
func BenchmarkMalformedKey(b *testing.B) {
	v, key := benchEnv(b, apikey.TestParams, Options{})
	s := key.Reveal()
	bad := s[:len(s)-1] + "0"
	if bad == s {
		bad = s[:len(s)-1] + "1"
	}
	runServe(b, v.Handler(noop), benchRequest(bad), http.StatusUnauthorized)
}

// BenchmarkCachedKeyCheck is BenchmarkCachedKey without net/http: the
// validation alone (Check's work), without the copy of the request that
// carries the Identity to the handler (r.WithContext).
func BenchmarkCachedKeyCheck(b *testing.B) {
	v, key := benchEnv(b, apikey.TestParams, Options{})
	benchCheck(b, v, key)
}

// benchCheck runs v's checks of key under the zero Policy.
func benchCheck(b *testing.B, v *Validator, key apikey.Key) {
	r := benchRequest(key.Reveal())
	p := &Policy{}
	if err := v.check(r, p, nil, &verdict{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var vd verdict
		_ = v.check(r, p, nil, &vd)
	}
}

// BenchmarkWithContext is the cost of handing an Identity to the next
// handler, which every context-based net/http middleware pays.
func BenchmarkWithContext(b *testing.B) {
	id := &Identity{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noop.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey, id)))
	})
	runServe(b, h, benchRequest(""), http.StatusOK)
}

// benchOwnerLimits makes the key of the environment a wrap of
// benchEnvLimited gets shared owner limits l before the Validator starts.
func benchOwnerLimits(b *testing.B, l apikey.Limits) (*Validator, apikey.Key) {
	var v *Validator
	var key apikey.Key
	v, key = benchEnvLimited(b, apikey.TestParams, Options{}, apikey.Limits{}, func(s apikey.Store) apikey.Store {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
		if err != nil {
			b.Fatal(err)
		}
		owner := apikey.Actor{ID: "bench", Role: apikey.Owner}
		keys, err := m.List(context.Background(), owner, apikey.Production, apikey.Page{})
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range keys.Keys {
			if k.Type == apikey.Server {
				if _, err := m.SetOwner(context.Background(), owner, k.ID, "customer_42"); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := m.SetOwnerLimits(context.Background(), owner, "customer_42", l); err != nil {
			b.Fatal(err)
		}
		return s
	})
	return v, key
}

// BenchmarkCachedKeyOwnerRateLimit is BenchmarkCachedKey with a
// per-process rate limit shared by the key's owner, and its RateLimit
// fields on the response.
func BenchmarkCachedKeyOwnerRateLimit(b *testing.B) {
	v, key := benchOwnerLimits(b, apikey.Limits{Rate: benchRate})
	runServe(b, v.Handler(noop), benchRequest(key.Reveal()), http.StatusOK)
}

// BenchmarkCachedKeyOwnerQuota is BenchmarkCachedKey with a quota shared
// by the key's owner, spent from a lease held in memory.
func BenchmarkCachedKeyOwnerQuota(b *testing.B) {
	v, key := benchOwnerLimits(b, apikey.Limits{Quota: apikey.Quota{Limit: apikey.MaxQuotaUses}})
	runServe(b, v.Handler(noop), benchRequest(key.Reveal()), http.StatusOK)
}
