package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/fakeclock"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// keySet is a memory store holding many server keys of one environment,
// hashed with apikey.TestParams, and the keys themselves.
type keySet struct {
	store *memory.Store
	keys  []string       // the full keys
	index map[string]int // key id -> position in keys
}

// newKeySet creates n keys. It hashes them on every CPU and writes the
// records straight to the store, in large batches: the slow part is
// argon2, even with TestParams.
func newKeySet(n int) (*keySet, error) { return newLimitedKeySet(n, apikey.Limits{}) }

// newLimitedKeySet is newKeySet with limits l on every key.
func newLimitedKeySet(n int, l apikey.Limits) (*keySet, error) {
	ks := &keySet{store: memory.New(), keys: make([]string, n), index: make(map[string]int, n)}
	recs := make([]apikey.Record, n)
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hasher := apikey.Argon2id{Params: apikey.TestParams}
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := w; i < n; i += runtime.GOMAXPROCS(0) {
				key, err := apikey.GenerateKey(apikey.Server)
				if err != nil {
					errs <- err
					return
				}
				hash, err := hasher.Hash([]byte(key.Reveal()))
				if err != nil {
					errs <- err
					return
				}
				ks.keys[i] = key.Reveal()
				recs[i] = apikey.Record{
					ID: key.ID(), Type: apikey.Server, Environment: apikey.Production, Scopes: []string{apikey.AllScopes},
					CreatedAt: created, CreatedBy: "bench", Hash: apikey.NewOpaque(hash), Limits: l,
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	for i, rec := range recs {
		ks.index[rec.ID] = i
	}
	const batch = 10_000
	for i := 0; i < n; i += batch {
		if err := ks.store.Apply(context.Background(), apikey.Change{Insert: recs[i:min(i+batch, n)]}); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// manyKeys is the number of keys of BenchmarkManyKeys: the DESIGN.md
// target of 100,000 distinct active keys.
const manyKeys = 100_000

var manyKeysFixture = sync.OnceValues(func() (*keySet, error) { return newKeySet(manyKeys) })

// BenchmarkManyKeys spreads requests over 100,000 distinct keys for more
// than three cache lifetimes, on a fake clock, with a Validator in its
// default configuration. Each key gets a request every quarter of
// CacheTTL, all keys in turn; a key's first verifications (argon2) are
// spread over the first lifetime so that, from then on, every fourth
// request finds its key's cache entry past its deadline and re-validates
// it with one store read.
//
// It fails (these are correctness properties, not timings) unless, after
// the first verification of every key, there are no argon2 runs at all
// and at most one store read per key per cache lifetime. It reports them
// as argon2/op and reads/key/lifetime, and the heap that the filled cache
// takes per key as heap-B/key. ns/op is the mean cost of a request of the
// mix, fake clock included.
func BenchmarkManyKeys(b *testing.B) {
	ks, err := manyKeysFixture()
	if err != nil {
		b.Fatal(err)
	}
	n := len(ks.keys)
	// Requests per key per CacheTTL. With a request every quarter of the
	// TTL, each key is re-validated once per TTL.
	const perLifetime = 4
	ttl := DefaultCacheTTL
	if ttl%time.Duration(perLifetime*n) != 0 {
		b.Fatalf("CacheTTL %v is not a multiple of %d requests", ttl, perLifetime*n)
	}
	step := ttl / time.Duration(perLifetime*n) // clock time between requests
	clk := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	store := faultstore.New(ks.store)
	keyReads := make([]atomic.Int32, n) // Key reads per key
	store.Before(func(_ context.Context, c *faultstore.Call) error {
		if i, ok := ks.index[c.ID]; ok {
			keyReads[i].Add(1)
		}
		return nil
	}, faultstore.OpKey)
	// maxReads returns the most reads of any one key since its last call.
	maxReads := func() int {
		most := int32(0)
		for i := range keyReads {
			most = max(most, keyReads[i].Swap(0))
		}
		return int(most)
	}
	hasher := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	// The change feed is read once, at New: entries then live CacheTTL
	// after their read, as without a feed.
	v, err := New(Options{Store: store, Hasher: hasher, Now: clk.Now, FeedInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Close() })
	h := v.Handler(noop)
	requests := make([]*http.Request, n)
	for i, key := range ks.keys {
		requests[i] = benchRequest(key)
	}

	// Fill the cache: every key verified once, key i at the quarter of the
	// first lifetime that makes it re-validate at request i+4m for
	// m = 3-i%4, 7-i%4, ... of the stream below.
	heapBefore := heapInUse()
	for quarter := range perLifetime {
		var wg sync.WaitGroup
		var refused atomic.Int64
		for w := range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for i := w; i < n; i += runtime.GOMAXPROCS(0) {
					if i%perLifetime != perLifetime-1-quarter {
						continue
					}
					if w := serveOnce(h, requests[i]); w.Code != http.StatusOK {
						refused.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if refused.Load() != 0 {
			b.Fatalf("filling the cache: %d refusals", refused.Load())
		}
		clk.Advance(ttl / perLifetime)
	}
	heapPerKey := float64(heapInUse()-heapBefore) / float64(n)
	if got := hasher.Calls(faultstore.OpVerify); got != int64(n) {
		b.Fatalf("filling the cache: %d argon2 runs for %d keys", got, n)
	}
	if st := v.Stats(); st.CachedKeys != n {
		b.Fatalf("the cache holds %d of %d keys: size it for them", st.CachedKeys, n)
	}
	maxReads()
	start, reads := clk.Now(), store.Calls(faultstore.OpKey)

	// serve sends request j of the stream: key j mod n, step after j-1.
	j := 0
	serve := func() {
		clk.Advance(step)
		if w := serveOnce(h, requests[j%n]); w.Code != http.StatusOK {
			b.Fatalf("request %d: status %d", j, w.Code)
		}
		j++
	}
	// Three lifetimes, then the timed requests: no argon2, and at most one
	// read per key per lifetime.
	for lifetime := range 3 {
		for range perLifetime * n {
			serve()
		}
		if got := hasher.Calls(faultstore.OpVerify) - int64(n); got != 0 {
			b.Fatalf("lifetime %d: %d argon2 runs for keys already verified", lifetime+1, got)
		}
		if most := maxReads(); most > 1 {
			st := v.Stats()
			b.Fatalf("lifetime %d: a key was read %d times (misses %d, hits %d)", lifetime+1, most, st.CacheMisses, st.CacheHits)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
	lifetimes := float64(clk.Now().Sub(start)) / float64(ttl)
	if got := hasher.Calls(faultstore.OpVerify) - int64(n); got != 0 {
		b.Fatalf("%d argon2 runs for keys already verified", got)
	}
	if most, bound := maxReads(), 1+b.N/(perLifetime*n); most > bound {
		b.Fatalf("a key was read %d times in %d requests (%d lifetimes)", most, b.N, bound-1)
	}
	b.ReportMetric(float64(hasher.Calls(faultstore.OpVerify)-int64(n))/float64(b.N), "argon2/op")
	b.ReportMetric(float64(store.Calls(faultstore.OpKey)-reads)/float64(n)/lifetimes, "reads/key/lifetime")
	b.ReportMetric(heapPerKey, "heap-B/key")
}

// BenchmarkCachedKeys is BenchmarkCachedKey with 10,000 cached keys, one
// after the other: what a server with many keys in use pays per request
// when the cache's data for each key is no longer in the CPU's caches. The
// request is the same each time, with the next key in its header.
func BenchmarkCachedKeys(b *testing.B) {
	ks, err := tenThousandKeys()
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCachedKeys(b, ks)
}

// BenchmarkCachedKeysRateLimit is BenchmarkCachedKeys with the same rate
// limit on every key, as the keys of one plan have, and its RateLimit
// fields on every response: each key comes back 10,000 requests later,
// so that its decisions repeat those of the other keys.
func BenchmarkCachedKeysRateLimit(b *testing.B) {
	ks, err := tenThousandLimitedKeys()
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCachedKeys(b, ks)
}

func benchmarkCachedKeys(b *testing.B, ks *keySet) {
	h := cachedKeysHandler(b, ks)
	c := newKeyCycle(ks, 0)
	b.ReportAllocs()
	for b.Loop() {
		c.serve(h)
	}
	if c.w.code != http.StatusOK {
		b.Fatalf("status %d", c.w.code)
	}
}

// BenchmarkCachedKeysParallel is BenchmarkCachedKeys on every CPU at once,
// each goroutine starting at its own key: what the shared state of the
// cached path (its locks and counters) costs when two requests run at the
// same time, as they do in a server.
func BenchmarkCachedKeysParallel(b *testing.B) {
	ks, err := tenThousandKeys()
	if err != nil {
		b.Fatal(err)
	}
	h := cachedKeysHandler(b, ks)
	var start atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := newKeyCycle(ks, int(start.Add(4999)))
		for pb.Next() {
			if c.serve(h); c.w.code != http.StatusOK {
				b.Errorf("status %d", c.w.code)
				return
			}
		}
	})
}

// cachedKeysHandler returns the handler of a Validator over ks with every
// key of ks cached.
func cachedKeysHandler(b *testing.B, ks *keySet) http.Handler {
	v, err := New(Options{Store: ks.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Close() })
	h := v.Handler(noop)
	for _, key := range ks.keys {
		h.ServeHTTP(&discardWriter{h: http.Header{}}, benchRequest(key))
	}
	if st := v.Stats(); st.CachedKeys != len(ks.keys) {
		b.Fatalf("%d keys cached, want %d", st.CachedKeys, len(ks.keys))
	}
	return h
}

// keyCycle sends one request after the other, each with the next key of
// a keySet, reusing the request and the writer.
type keyCycle struct {
	keys   []string
	next   int
	r      *http.Request
	header []string // r's X-API-Key values
	w      *discardWriter
}

// newKeyCycle returns a keyCycle over ks that starts at key first (mod the
// number of keys).
func newKeyCycle(ks *keySet, first int) *keyCycle {
	r := benchRequest(ks.keys[0])
	return &keyCycle{keys: ks.keys, next: first % len(ks.keys), r: r, header: r.Header[canonicalAPIKey], w: &discardWriter{h: http.Header{}}}
}

// serve sends the next request to h; c.w holds its response.
func (c *keyCycle) serve(h http.Handler) {
	c.header[0] = c.keys[c.next]
	if c.next++; c.next == len(c.keys) {
		c.next = 0
	}
	clear(c.w.h)
	c.w.code = http.StatusOK
	h.ServeHTTP(c.w, c.r)
}

var (
	tenThousandKeys        = sync.OnceValues(func() (*keySet, error) { return newKeySet(10_000) })
	tenThousandLimitedKeys = sync.OnceValues(func() (*keySet, error) { return newLimitedKeySet(10_000, apikey.Limits{Rate: benchRate}) })
)

// serveOnce serves r into a fresh recorder.
func serveOnce(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestRevalidationNeedsNoArgon2: a key whose cache entry has passed its
// deadline, or was evicted by a change, is re-validated by one store read,
// without argon2: the table of verified keys remembers the hash it
// verified against. A changed hash is verified again.
func TestRevalidationNeedsNoArgon2(t *testing.T) {
	ks, err := newKeySet(1)
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	store := faultstore.New(ks.store)
	hasher := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	v, err := New(Options{Store: store, Hasher: hasher, Now: clk.Now, FeedInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h := v.Handler(noop)
	r := benchRequest(ks.keys[0])
	expect := func(step string, code int, verifies, reads int64) {
		t.Helper()
		if w := serveOnce(h, r); w.Code != code {
			t.Fatalf("%s: status %d, want %d", step, w.Code, code)
		}
		if got := hasher.Calls(faultstore.OpVerify); got != verifies {
			t.Fatalf("%s: %d argon2 runs, want %d", step, got, verifies)
		}
		if got := store.Calls(faultstore.OpKey); got != reads {
			t.Fatalf("%s: %d store reads, want %d", step, got, reads)
		}
	}
	expect("first request", http.StatusOK, 1, 1)
	expect("cached", http.StatusOK, 1, 1)
	for lifetime := range 3 {
		clk.Advance(DefaultCacheTTL)
		expect(fmt.Sprintf("lifetime %d", lifetime+2), http.StatusOK, 1, int64(2+lifetime))
	}

	// A change that keeps the hash (a new scope) evicts the key: it is read
	// again, still without argon2.
	key, err := apikey.ParseKey(ks.keys[0])
	if err != nil {
		t.Fatal(err)
	}
	v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, Environment: apikey.Production, KeyID: key.ID()})
	expect("evicted", http.StatusOK, 1, 5)

	// The stored hash changes (as an upgrade would change it): argon2 runs
	// once more.
	rec, err := ks.store.Key(context.Background(), key.ID())
	if err != nil {
		t.Fatal(err)
	}
	hash, err := apikey.Argon2id{Params: apikey.TestParams}.Hash([]byte(ks.keys[0]))
	if err != nil {
		t.Fatal(err)
	}
	rec.Hash = apikey.NewOpaque(hash)
	if err := ks.store.Apply(context.Background(), apikey.Change{Update: []apikey.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultCacheTTL)
	expect("new hash", http.StatusOK, 2, 6)
	clk.Advance(DefaultCacheTTL)
	expect("new hash, next lifetime", http.StatusOK, 2, 7)
}

// TestRevalidationsKeepTheThrottle: the throttle counts failures of at most
// throttleSize key ids. Re-validations of keys that verified before must
// not count there, or many keys in use would push out the counter of an
// id under attack, and give its attacker a fresh budget.
func TestRevalidationsKeepTheThrottle(t *testing.T) {
	ks, err := newKeySet(throttleSize + 1)
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	hasher := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
	v, err := New(Options{Store: ks.store, Hasher: hasher, Now: clk.Now, ThrottleFailures: 3, ThrottleWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h := v.Handler(noop)
	for _, key := range ks.keys[1:] { // not the victim: its wrong secrets run argon2
		if w := serveOnce(h, benchRequest(key)); w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}

	victim, err := apikey.ParseKey(ks.keys[0])
	if err != nil {
		t.Fatal(err)
	}
	wrong := func(c byte) string { // the victim's id, a wrong secret
		k, err := apikey.AssembleKey(apikey.Server, victim.ID(), strings.Repeat(string(c), apikey.SecretLength))
		if err != nil {
			t.Fatal(err)
		}
		return k.Reveal()
	}
	for _, c := range []byte("abc") {
		serveOnce(h, benchRequest(wrong(c)))
	}
	if w := serveOnce(h, benchRequest(wrong('d'))); w.Code != http.StatusTooManyRequests {
		t.Fatalf("budget spent: status %d, want 429", w.Code)
	}

	clk.Advance(DefaultCacheTTL) // every key re-validates
	for _, key := range ks.keys[1:] {
		if w := serveOnce(h, benchRequest(key)); w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	if w := serveOnce(h, benchRequest(wrong('e'))); w.Code != http.StatusTooManyRequests {
		t.Fatalf("after %d re-validations: status %d, want 429 (the budget was forgotten)", len(ks.keys)-1, w.Code)
	}
}

// TestUpgradeRemembersTheNewHash: the validator that upgraded a key's hash
// re-validates the key against it without argon2 once the change feed has
// evicted the key.
func TestUpgradeRemembersTheNewHash(t *testing.T) {
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := m.Bootstrap(context.Background(), apikey.Actor{ID: "test", Role: apikey.Owner}, apikey.Production)
	if err != nil {
		t.Fatal(err)
	}
	key := issued[0].Key
	stronger := apikey.TestParams
	stronger.Iterations = 2
	hasher := faultstore.NewHasher(apikey.Argon2id{Params: stronger})
	v, err := New(Options{Store: store, Hasher: hasher, FeedInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h := v.Handler(noop)
	r := benchRequest(key.Reveal())
	before, err := store.Key(context.Background(), key.ID())
	if err != nil {
		t.Fatal(err)
	}
	if w := serveOnce(h, r); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	// Wait for the upgrade to be stored, and for the cache to learn of it.
	k := keycache.KeyOf(key.Reveal())
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		rec, err := store.Key(context.Background(), key.ID())
		if err != nil {
			t.Fatal(err)
		}
		if match, _, _ := v.verifier.verified.Lookup(k, keycache.Fingerprint(rec.Hash.Reveal())); match && !rec.Hash.Equal(before.Hash) {
			break
		}
	}
	upgraded := hasher.Calls(faultstore.OpVerify)                                                            // the request's, and apikey.UpgradeHash's check of the key before it writes
	v.Invalidate(apikey.Event{Action: apikey.ActionRotate, Environment: apikey.Production, KeyID: key.ID()}) // as the feed would
	if w := serveOnce(h, r); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if got := hasher.Calls(faultstore.OpVerify); got != upgraded {
		t.Fatalf("%d argon2 runs, want %d", got, upgraded)
	}
}

// idOf returns the key id of the key string s.
func idOf(t *testing.T, s string) string {
	t.Helper()
	key, err := apikey.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return key.ID()
}
