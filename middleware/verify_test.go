package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// TestConcurrentFirstRequests: 100 concurrent first requests with one new
// key cause exactly one argon2 verification.
func TestConcurrentFirstRequests(t *testing.T) {
	// No change feed: its entry for the new key would evict it once more.
	f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour })
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	h := f.v.Handler(okHandler)
	var wg sync.WaitGroup
	start := make(chan struct{})
	codes := make([]int, 100)
	for i := range codes {
		wg.Go(func() {
			<-start
			codes[i] = serve(h, request(key.Reveal())).Code
		})
	}
	close(start)
	wg.Wait()
	for _, c := range codes {
		require.Equal(t, http.StatusOK, c)
	}
	assert.EqualValues(t, 1, f.verifies())
}

// TestJunkCausesNoHashing: 10,000 malformed or unknown keys cause no argon2
// verification.
func TestJunkCausesNoHashing(t *testing.T) {
	f := newFixture(t, nil)
	known := f.keys["production/server"].Reveal()
	for i := range 10_000 {
		var junk string
		switch i % 4 {
		case 0: // unknown, well-formed
			k, err := apikey.GenerateKey(apikey.Server)
			require.NoError(t, err)
			junk = k.Reveal()
		case 1: // bad checksum of a real key
			junk = known[:len(known)-2] + fmt.Sprintf("%02d", i%100)
			if junk == known {
				continue
			}
		case 2: // wrong length
			junk = known[:i%len(known)]
		case 3: // junk characters
			junk = "server-" + fmt.Sprintf("%062d", i)
		}
		_, err := f.v.Check(request(junk), middleware.Policy{})
		require.Error(t, err)
	}
	assert.Zero(t, f.verifies())
}

func TestWaitingForHashGivesUpWithContext(t *testing.T) {
	f := newFixture(t, nil)
	// Every verification waits until release is closed.
	entered, release := make(chan struct{}, 10), make(chan struct{})
	hasher := newHasher(apikey.TestParams)
	hasher.Before(func(context.Context, *faultstore.Call) error {
		entered <- struct{}{}
		<-release
		return nil
	}, faultstore.OpVerify)
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: hasher, Now: f.clock.Now, MaxConcurrentHashes: 1})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)

	first := make(chan int)
	go func() { first <- serve(h, request(f.keys["production/server"].Reveal())).Code }()
	<-entered // the only slot is taken

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	w := serve(h, request(f.keys["staging/server"].Reveal()).WithContext(ctx))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "busy", decodeProblem(t, w).Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))

	close(release)
	require.Equal(t, http.StatusOK, <-first)
}

func TestOutdatedHashIsUpgraded(t *testing.T) {
	f := newFixture(t, nil)
	stronger := apikey.TestParams
	stronger.Iterations = 2
	hasher := newHasher(stronger)
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: hasher, Now: f.clock.Now})
	require.NoError(t, err)
	defer v.Close()
	key := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(v.Handler(okHandler), request(key.Reveal())).Code)
	require.Eventually(t, func() bool {
		rec, err := f.store.Key(context.Background(), key.ID())
		require.NoError(t, err)
		p, _, _, err := apikey.DecodePHC(rec.Hash.Reveal())
		require.NoError(t, err)
		return p.Iterations == 2
	}, time.Second, 5*time.Millisecond)
	match, outdated, err := hasher.Inner().Verify([]byte(key.Reveal()), mustHash(t, f, key.ID()))
	require.NoError(t, err)
	assert.True(t, match)
	assert.False(t, outdated)
}

// TestUpgradedHashNeedsNoArgon2: the validator that upgraded a hash made
// it from the key, so the key's next verification, against the new hash,
// runs no argon2.
func TestUpgradedHashNeedsNoArgon2(t *testing.T) {
	f := newFixture(t, nil)
	stronger := apikey.TestParams
	stronger.Iterations = 2
	hasher := newHasher(stronger)
	v, err := middleware.New(middleware.Options{Store: f.store, Hasher: hasher, Now: f.clock.Now})
	require.NoError(t, err)
	defer v.Close()
	key := f.keys["production/server"]
	before := mustHash(t, f, key.ID())
	require.Equal(t, http.StatusOK, serve(v.Handler(okHandler), request(key.Reveal())).Code)
	require.Eventually(t, func() bool { return mustHash(t, f, key.ID()) != before }, 5*time.Second, time.Millisecond)
	upgraded := hasher.Calls(faultstore.OpVerify) // the request's, and apikey.UpgradeHash's check of the key before it writes
	f.clock.Advance(middleware.DefaultCacheTTL)   // loaded again, with the new hash
	require.Equal(t, http.StatusOK, serve(v.Handler(okHandler), request(key.Reveal())).Code)
	assert.Equal(t, upgraded, hasher.Calls(faultstore.OpVerify), "argon2 ran for the upgraded hash")
}

// Flood parameters. argon2 gets a memory cost large enough that heap growth
// from concurrent hashes shows (4 MiB each), with the cap at 2.
var floodParams = apikey.Params{Memory: 4096, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

const (
	floodRequests = 10_000
	floodWorkers  = 96
	floodHashCap  = 2
	// floodSpreadIDs is the number of real key ids that the fourth flood
	// sends wrong secrets for.
	floodSpreadIDs = 16
	floodBudget    = middleware.DefaultThrottleFailures
	// floodMargin is the heap a flood may add beyond the argon2 memory of
	// floodHashCap concurrent hashes: requests in flight, recorders, the
	// caches and the throttle table at full size, and garbage not yet
	// collected.
	floodMargin = 64 << 20
)

// floodRuns counts a hasher's runs per key id and how many ran at once.
type floodRuns struct {
	mu      sync.Mutex
	runs    map[string]int // key id -> Verify and Hash calls
	running atomic.Int64
	peak    atomic.Int64
}

// newFloodHasher returns an argon2id hasher with floodParams, and the
// count of its runs.
func newFloodHasher() (*faultstore.Hasher, *floodRuns) {
	r := &floodRuns{runs: map[string]int{}}
	h := newHasher(floodParams)
	h.Before(func(_ context.Context, c *faultstore.Call) error {
		id := "?"
		if len(c.Secret) == apikey.KeyLength {
			id = string(c.Secret[7 : 7+apikey.IDLength])
		}
		r.mu.Lock()
		r.runs[id]++
		r.mu.Unlock()
		n := r.running.Add(1)
		for {
			p := r.peak.Load()
			if n <= p || r.peak.CompareAndSwap(p, n) {
				break
			}
		}
		return nil
	}, faultstore.OpHash, faultstore.OpVerify)
	h.After(func(context.Context, *faultstore.Call) { r.running.Add(-1) }, faultstore.OpHash, faultstore.OpVerify)
	return h, r
}

// snapshot returns the runs per key id so far.
func (r *floodRuns) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.runs))
	for id, n := range r.runs {
		out[id] = n
	}
	return out
}

// heapSampler records the peak of HeapInuse while it runs.
type heapSampler struct {
	stop     chan struct{}
	done     chan struct{}
	peak     uint64
	samples  int
	baseline uint64
}

func startHeapSampler() *heapSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{}), baseline: ms.HeapInuse, peak: ms.HeapInuse}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			s.peak = max(s.peak, ms.HeapInuse, ms.HeapAlloc)
			s.samples++
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops sampling and returns the peak growth over the baseline.
func (s *heapSampler) finish() uint64 {
	close(s.stop)
	<-s.done
	return s.peak - min(s.peak, s.baseline)
}

// steadyClient sends a cached valid key and a valid key that it evicts
// before every request (so that each of its requests is a cold
// verification competing with the flood for argon2), until stop is closed.
type steadyClient struct {
	cachedOK, cachedAll     atomic.Int64
	uncachedOK, uncachedAll atomic.Int64
	done                    chan struct{}
}

func startSteadyClient(v *middleware.Validator, h http.Handler, cached, uncached apikey.Key, stop <-chan struct{}) *steadyClient {
	c := &steadyClient{done: make(chan struct{})}
	var wg sync.WaitGroup
	loop := func(fn func()) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				fn()
				runtime.Gosched()
			}
		})
	}
	loop(func() {
		c.cachedAll.Add(1)
		if serve(h, request(cached.Reveal())).Code == http.StatusOK {
			c.cachedOK.Add(1)
		}
	})
	loop(func() {
		v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, KeyID: uncached.ID()})
		c.uncachedAll.Add(1)
		if serve(h, request(uncached.Reveal())).Code == http.StatusOK {
			c.uncachedOK.Add(1)
		}
	})
	go func() {
		wg.Wait()
		close(c.done)
	}()
	return c
}

func rate(ok, all int64) float64 {
	if all == 0 {
		return 0
	}
	return 100 * float64(ok) / float64(all)
}

// TestFloods sends three floods of 10,000 requests each through the
// middleware from many goroutines, while a steady client keeps using valid
// keys: malformed keys and well-formed unknown keys cost no argon2 run; wrong
// secrets for one real key id cost exactly the throttle budget; the heap
// stays below the argon2 cap times its memory plus a fixed margin; and the
// valid keys are served throughout.
func TestFloods(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the floods take a few seconds; run without -short, as scripts/test.sh does")
	}
	clock := newClock() // fixed: one throttle window and one cache lifetime for the whole test
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: floodParams}, Now: clock.Now})
	require.NoError(t, err)
	issued, err := m.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	cached, uncached := issued[0].Key, issued[1].Key
	// More real key ids, for a flood of wrong secrets spread over them,
	// which is where the argon2 cap bounds memory.
	var spread []apikey.Key
	for range floodSpreadIDs {
		is, err := m.Create(context.Background(), owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
		require.NoError(t, err)
		spread = append(spread, is.Key)
	}
	spreadIDs := func(runs map[string]int) (n int) {
		for _, k := range spread {
			assert.Equal(t, floodBudget, runs[k.ID()], "argon2 runs for attacked key id %s", k.ID())
			n += runs[k.ID()]
		}
		return n
	}

	hasher, flood := newFloodHasher()
	v, err := middleware.New(middleware.Options{
		Store: store, Hasher: hasher, Now: clock.Now,
		MaxConcurrentHashes: floodHashCap,
		FeedInterval:        time.Hour, // the feed must not evict the cached key
	})
	require.NoError(t, err)
	defer v.Close()
	h := v.Require(anyType)(okHandler)                                       // the uncached key is a publishable key
	require.Equal(t, http.StatusOK, serve(h, request(cached.Reveal())).Code) // cached from now on

	floods := []struct {
		name  string
		keys  func(i int) string
		check func(t *testing.T, codes map[string]int, runs map[string]int)
	}{
		{"malformed keys", func(i int) string { return malformedKey(cached.Reveal(), i) },
			func(t *testing.T, codes, runs map[string]int) {
				assert.Equal(t, map[string]int{"malformed_key": floodRequests}, codes)
				assert.Zero(t, otherRuns(runs, uncached.ID()), "argon2 runs for malformed keys")
			}},
		{"unknown keys", func(int) string {
			k, err := apikey.GenerateKey(apikey.Server)
			if err != nil {
				panic(err)
			}
			return k.Reveal()
		}, func(t *testing.T, codes, runs map[string]int) {
			assert.Equal(t, map[string]int{"invalid_key": floodRequests}, codes)
			assert.Zero(t, otherRuns(runs, uncached.ID()), "argon2 runs for unknown keys")
		}},
		{"wrong secrets for one key id", func(i int) string {
			k, err := apikey.AssembleKey(apikey.Server, cached.ID(), fmt.Sprintf("%043d", i))
			if err != nil {
				panic(err)
			}
			return k.Reveal()
		}, func(t *testing.T, codes, runs map[string]int) {
			// The key of the id verified against its stored hash, which
			// admits one key: every other secret is refuted without argon2.
			assert.Equal(t, map[string]int{"invalid_key": floodRequests}, codes)
			assert.Zero(t, runs[cached.ID()], "argon2 runs for the attacked key id")
			assert.Zero(t, otherRuns(runs, uncached.ID(), cached.ID()))
		}},
		{"wrong secrets for many key ids", func(i int) string {
			k, err := apikey.AssembleKey(apikey.Server, spread[i%floodSpreadIDs].ID(), fmt.Sprintf("%043d", i))
			if err != nil {
				panic(err)
			}
			return k.Reveal()
		}, func(t *testing.T, codes, runs map[string]int) {
			// The budget is per key id: ThrottleFailures verifications for
			// each, run at most MaxConcurrentHashes at a time.
			verified := floodSpreadIDs * floodBudget
			assert.Equal(t, map[string]int{"invalid_key": verified, "too_many_failures": floodRequests - verified}, codes)
			assert.Equal(t, verified, spreadIDs(runs))
			assert.Equal(t, verified, otherRuns(runs, uncached.ID()))
		}},
	}
	for _, fl := range floods {
		t.Run(fl.name, func(t *testing.T) {
			keys := make([]string, floodRequests)
			for i := range keys {
				keys[i] = fl.keys(i)
			}
			before := flood.snapshot()
			sampler := startHeapSampler()
			stop := make(chan struct{})
			steady := startSteadyClient(v, h, cached, uncached, stop)

			var mu sync.Mutex
			codes := map[string]int{}
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range floodWorkers {
				wg.Go(func() {
					local := map[string]int{}
					for {
						i := next.Add(1) - 1
						if i >= floodRequests {
							break
						}
						w := serve(h, request(keys[i]))
						code := "ok"
						if w.Code != http.StatusOK {
							code = problemCode(w.Body.Bytes())
						}
						local[code]++
						runtime.Gosched() // as a server's connections would interleave
					}
					mu.Lock()
					for c, n := range local {
						codes[c] += n
					}
					mu.Unlock()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			close(stop)
			<-steady.done
			growth := sampler.finish()

			runs := diffRuns(flood.snapshot(), before)
			total := 0
			for _, n := range runs {
				total += n
			}
			bound := uint64(floodHashCap)*uint64(floodParams.Memory)<<10 + floodMargin
			t.Logf("%s: %d requests from %d goroutines in %s (%.0f req/s); argon2 runs: %d for the flood, %d for the steady uncached key; "+
				"at most %d at once; heap: baseline %.1f MiB, peak growth %.1f MiB (bound %.1f MiB = %d x %d KiB + %d MiB, %d samples); "+
				"cached key %d/%d ok (%.1f%%), uncached key %d/%d ok (%.1f%%)",
				fl.name, floodRequests, floodWorkers, elapsed.Round(time.Millisecond), floodRequests/elapsed.Seconds(),
				total-runs[uncached.ID()], runs[uncached.ID()], flood.peak.Load(),
				mib(sampler.baseline), mib(growth), mib(bound), floodHashCap, floodParams.Memory, floodMargin>>20, sampler.samples,
				steady.cachedOK.Load(), steady.cachedAll.Load(), rate(steady.cachedOK.Load(), steady.cachedAll.Load()),
				steady.uncachedOK.Load(), steady.uncachedAll.Load(), rate(steady.uncachedOK.Load(), steady.uncachedAll.Load()))

			fl.check(t, codes, runs)
			assert.LessOrEqual(t, flood.peak.Load(), int64(floodHashCap), "argon2 ran above the cap")
			assert.Less(t, growth, bound, "peak heap growth")
			require.Positive(t, steady.cachedAll.Load())
			require.Positive(t, steady.uncachedAll.Load())
			assert.Equal(t, steady.cachedAll.Load(), steady.cachedOK.Load(), "the cached valid key failed during the flood")
			assert.Equal(t, steady.uncachedAll.Load(), steady.uncachedOK.Load(), "the uncached valid key failed during the flood")
		})
	}
}

// malformedKey returns the i-th of a mix of malformed keys made from a real
// one: a bad checksum, a wrong length, a foreign character, a wrong prefix,
// a missing separator.
func malformedKey(real string, i int) string {
	switch i % 5 {
	case 0:
		sum := fmt.Sprintf("%06d", i)
		if real[len(real)-6:] == sum {
			sum = "zzzzzz"
		}
		return real[:len(real)-6] + sum
	case 1:
		return real[:1+i%(len(real)-1)]
	case 2:
		return real[:20] + "-" + real[21:]
	case 3:
		return "secret" + real[6:]
	default:
		return real[:19] + "x" + real[20:]
	}
}

// otherRuns counts the argon2 runs of key ids other than those named.
func otherRuns(runs map[string]int, except ...string) int {
	n := 0
	for id, r := range runs {
		skip := false
		for _, e := range except {
			skip = skip || id == e
		}
		if !skip {
			n += r
		}
	}
	return n
}

func diffRuns(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for id, n := range after {
		if d := n - before[id]; d > 0 {
			out[id] = d
		}
	}
	return out
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// TestHasherPanicReleasesSlots: hasher panics release the throttle slot and
// the argon2 slot.
func TestHasherPanicReleasesSlots(t *testing.T) {
	f := newFixture(t, nil)
	key := f.keys["production/server"]
	// The first 3 * DefaultThrottleFailures verifications panic.
	var n atomic.Int64
	n.Store(3 * middleware.DefaultThrottleFailures)
	hh := newHasher(apikey.TestParams)
	hh.Before(func(context.Context, *faultstore.Call) error {
		if n.Add(-1) >= 0 {
			panic("boom")
		}
		return nil
	}, faultstore.OpVerify)
	v, err := middleware.New(middleware.Options{
		Store: f.store, Now: f.clock.Now, Hasher: hh, MaxConcurrentHashes: 1,
		OnBackgroundError: func(error) {},
	})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)
	for range 3 * middleware.DefaultThrottleFailures {
		assert.Equal(t, http.StatusServiceUnavailable, serve(h, request(key.Reveal())).Code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	assert.Equal(t, http.StatusOK, serve(h, request(key.Reveal()).WithContext(ctx)).Code)
	s := v.Stats()
	assert.Zero(t, s.HashesRunning)
	assert.Zero(t, s.HashesWaiting)
}

// TestNoRequestServedAfterRevocation: no request that starts after Revoke
// and Invalidate returned is served, under concurrency, with and without
// caching.
func TestNoRequestServedAfterRevocation(t *testing.T) {
	for _, size := range []int{0, -1, 1} {
		for iter := range 15 {
			f := newFixture(t, nil)
			key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
			other := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
			slow := faultstore.New(f.store.Inner())
			slow.After(func(context.Context, *faultstore.Call) { time.Sleep(200 * time.Microsecond) }, faultstore.OpKey)
			v, err := middleware.New(middleware.Options{Store: slow, Hasher: f.hasher, Now: f.clock.Now,
				CacheSize: size, CacheTTL: time.Millisecond})
			require.NoError(t, err)
			h := v.Handler(okHandler)
			var revoked atomic.Bool
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 6 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						k := key
						if g == 0 {
							k = other
						}
						after := revoked.Load()
						code := serve(h, request(k.Reveal())).Code
						if after && k.Equal(key) && code == http.StatusOK {
							t.Errorf("size %d iter %d: served after revocation", size, iter)
						}
						f.clock.Advance(time.Millisecond)
					}
				})
			}
			time.Sleep(time.Duration(iter%5) * time.Millisecond)
			_, err = f.manager.Revoke(context.Background(), owner, key.ID())
			require.NoError(t, err)
			v.Invalidate(apikey.Event{Action: apikey.ActionRevoke, Environment: apikey.Production, KeyID: key.ID()})
			revoked.Store(true)
			time.Sleep(5 * time.Millisecond)
			close(stop)
			wg.Wait()
			v.Close()
		}
	}
}

// TestDroppedHashUpgradeIsRetried: an upgrade of an outdated hash that
// lost a race is tried again when the key is loaded again, although the
// key is then recognised without argon2.
func TestDroppedHashUpgradeIsRetried(t *testing.T) {
	// The first hash-changing Apply fails with ErrConflict, as a concurrent
	// change of the key would.
	st := faultstore.New(memory.New())
	var failed atomic.Bool
	st.Before(func(_ context.Context, c *faultstore.Call) error {
		if len(c.Change.Update) == 1 && len(c.Change.Events) == 0 && failed.CompareAndSwap(false, true) {
			return apikey.ErrConflict
		}
		return nil
	}, faultstore.OpApply)
	clk := newClock()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: st, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clk.Now})
	require.NoError(t, err)
	is, err := m.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	key := is[0].Key
	before, _ := st.Key(context.Background(), key.ID())
	strong := apikey.TestParams
	strong.Iterations = 2
	v, err := middleware.New(middleware.Options{Store: st, Hasher: apikey.Argon2id{Params: strong}, Now: clk.Now, CacheTTL: time.Second, FeedInterval: time.Hour})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	require.Eventually(t, failed.Load, 5*time.Second, time.Millisecond, "the first upgrade lost a race")
	clk.Advance(2 * time.Second) // the cache entry expires: loaded again
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	require.Eventually(t, func() bool {
		after, _ := st.Key(context.Background(), key.ID())
		return !after.Hash.Equal(before.Hash)
	}, 5*time.Second, time.Millisecond, "the upgrade was tried again")
}

// countRewrites counts, per key id, the updates stored through fs that
// change a key's hash (rewritesOf), and the finished Apply calls that tried
// to change a hash (attempts).
func countRewrites(fs *faultstore.Store) (rewritesOf func(id string) int, attempts *atomic.Int64) {
	var mu sync.Mutex
	rewrites := map[string]int{}
	attempts = new(atomic.Int64)
	var changing sync.Map // *faultstore.Call -> the ids whose hash it changes
	fs.Before(func(ctx context.Context, c *faultstore.Call) error {
		var ids []string
		for _, r := range c.Change.Update {
			if old, err := fs.Inner().Key(ctx, r.ID); err == nil && !old.Hash.Equal(r.Hash) {
				ids = append(ids, r.ID)
			}
		}
		changing.Store(c, ids)
		return nil
	}, faultstore.OpApply)
	fs.After(func(_ context.Context, c *faultstore.Call) {
		ids, _ := changing.LoadAndDelete(c)
		if changed := ids.([]string); len(changed) > 0 {
			mu.Lock()
			if c.Err == nil {
				for _, id := range changed {
					rewrites[id]++
				}
			}
			mu.Unlock()
			attempts.Add(1)
		}
	}, faultstore.OpApply)
	return func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return rewrites[id]
	}, attempts
}

// TestNoRehashPingPong runs two validators with different argon2 parameters
// on one store, as in the middle of a rollout of new parameters, and sends
// every key to each of them in turn with the cache off. A hash is rewritten
// only towards stronger parameters: once per key when the keys were hashed
// with the weaker of two dominated parameter sets, never when they were
// hashed with the stronger one or the two sets are incomparable.
func TestNoRehashPingPong(t *testing.T) {
	weak := apikey.TestParams
	strong := apikey.TestParams
	strong.Memory, strong.Iterations = 16, 2
	moreMemory := apikey.TestParams
	moreMemory.Memory = 16
	morePasses := apikey.TestParams
	morePasses.Iterations = 2
	tests := []struct {
		name         string
		manager      apikey.Params // hashes the keys at creation
		first, other apikey.Params // the two validators, first served first
		rewrites     int           // per key
	}{
		{"weak keys, weak validator first", weak, weak, strong, 1},
		{"weak keys, strong validator first", weak, strong, weak, 1},
		{"strong keys", strong, weak, strong, 0},
		{"incomparable", moreMemory, moreMemory, morePasses, 0},
		{"incomparable, other validator first", moreMemory, morePasses, moreMemory, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store := faultstore.New(memory.New())
			rewritesOf, attempts := countRewrites(store)
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: tt.manager}})
			require.NoError(t, err)
			issued, err := m.Bootstrap(ctx, owner, apikey.Production)
			require.NoError(t, err)
			var outdated atomic.Int64 // requests whose verification found the hash outdated
			var handlers []http.Handler
			for _, p := range []apikey.Params{tt.first, tt.other} {
				// A verification that reports the hash outdated starts one
				// background upgrade, unless it is the upgrade's own:
				// apikey.UpgradeHash asks Outdated, then verifies the key
				// against the stored hash before it writes.
				hasher := newHasher(p)
				var upgrading atomic.Int64 // Outdated said yes; the upgrade's Verify is next
				hasher.After(func(_ context.Context, c *faultstore.Call) {
					if c.Err == nil && c.Outdated {
						upgrading.Add(1)
					}
				}, faultstore.OpOutdated)
				hasher.After(func(_ context.Context, c *faultstore.Call) {
					if !c.Match || !c.Outdated {
						return
					}
					for n := upgrading.Load(); n > 0; n = upgrading.Load() {
						if upgrading.CompareAndSwap(n, n-1) {
							return
						}
					}
					outdated.Add(1)
				}, faultstore.OpVerify)
				v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher, CacheSize: -1})
				require.NoError(t, err)
				t.Cleanup(func() { _ = v.Close() })
				handlers = append(handlers, v.Require(anyType)(okHandler))
			}
			for _, is := range issued {
				key := is.Key.Reveal()
				for i := range 20 {
					w := serve(handlers[i%2], request(key))
					require.Equal(t, http.StatusOK, w.Code, w.Body.String())
					// Every outdated report starts one background upgrade:
					// wait for it before the next request.
					require.Eventually(t, func() bool { return attempts.Load() == outdated.Load() },
						5*time.Second, time.Millisecond, "request %d", i)
				}
				assert.Equal(t, tt.rewrites, rewritesOf(is.Key.ID()), "hash rewrites of %s", is.Key)
			}
		})
	}
}

// TestOutcomesStayCachedWhileOtherKeysChange: evicting one key while
// another is being verified must not stop the other's outcome, valid or
// failed, from being cached.
func TestOutcomesStayCachedWhileOtherKeysChange(t *testing.T) {
	f := newFixture(t, nil)
	// Every verification evicts an unrelated key id, as a busy change feed
	// does.
	f.hasher.Before(func(context.Context, *faultstore.Call) error {
		f.v.Invalidate(apikey.Event{Action: apikey.ActionRevoke, Environment: apikey.Staging, KeyID: "unrelated000"})
		return nil
	}, faultstore.OpVerify)
	h := f.v.Handler(okHandler)
	wrong := forge(apikey.Server, f.keys["production/server"].ID(), 'w')
	real := f.keys["staging/server"]
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, serve(h, request(wrong)).Code)
		require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code)
	}
	assert.EqualValues(t, 2, f.verifies(), "one verification each, then cached")
}

// TestNoVerificationResultFromBeforeRevocation: a request that arrives after
// Revoke returned must not join a verification that read the key before the
// revocation.
func TestNoVerificationResultFromBeforeRevocation(t *testing.T) {
	f := newFixture(t, nil)
	key := f.create(apikey.CreateRequest{
		Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes},
		ExpiresAt: f.clock.Now().Add(time.Hour),
	})
	// The first Key read holds its record, read before whatever happens
	// meanwhile, until release is closed.
	gated := faultstore.New(f.store.Inner())
	read, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	gated.After(func(context.Context, *faultstore.Call) { once.Do(func() { close(read); <-release }) }, faultstore.OpKey)
	v, err := middleware.New(middleware.Options{Store: gated, Hasher: f.hasher, Now: f.clock.Now})
	require.NoError(t, err)
	defer v.Close()
	h := v.Handler(okHandler)

	first := make(chan int, 1)
	go func() { first <- serve(h, request(key.Reveal())).Code }()
	<-read // the first request holds the record from before the revocation

	_, err = f.manager.Revoke(context.Background(), owner, key.ID())
	require.NoError(t, err)
	v.Invalidate(apikey.Event{Action: apikey.ActionRevoke, Environment: apikey.Production, KeyID: key.ID()})

	second := make(chan int, 1)
	go func() { second <- serve(h, request(key.Reveal())).Code }()
	select {
	case code := <-second: // it did not wait for the stale verification
		assert.Equal(t, http.StatusUnauthorized, code)
		close(release)
	case <-time.After(200 * time.Millisecond): // it joined it: let it finish
		close(release)
		assert.Equal(t, http.StatusUnauthorized, <-second, "a request after Revoke got a result read before it")
	}
	assert.Equal(t, http.StatusUnauthorized, <-first, "the result was read before an eviction of its key id")
}

// wrongSecret returns a key of k's id and type with the i-th wrong secret.
func wrongSecret(t *testing.T, k apikey.Key, i int) string {
	t.Helper()
	w, err := apikey.AssembleKey(k.Type(), k.ID(), fmt.Sprintf("%043d", i))
	require.NoError(t, err)
	return w.Reveal()
}

// TestVerifiedKeyRefutesWrongSecrets: a stored hash admits one key, so once
// a key verified against it, a flood of wrong secrets for its id (from
// many goroutines, each a new secret) is refused as invalid without a
// single argon2 run, and without throttling the id; the key itself keeps
// being served without argon2.
func TestVerifiedKeyRefutesWrongSecrets(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour })
	h := f.v.Require(anyType)(okHandler)
	real := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code)
	before := f.verifies()

	const workers, each = 8, 50
	var wg sync.WaitGroup
	codes := make([]string, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := w * each; i < (w+1)*each; i++ {
				codes[i] = problemCode(serve(h, request(wrongSecret(t, real, i))).Body.Bytes())
			}
		})
	}
	wg.Wait()
	for i, c := range codes {
		require.Equal(t, "invalid_key", c, "wrong secret %d", i)
	}
	assert.Equal(t, before, f.verifies(), "argon2 runs for wrong secrets of a verified key's id")

	f.v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, KeyID: real.ID()})
	assert.Equal(t, http.StatusOK, serve(h, request(real.Reveal())).Code)
	assert.Equal(t, before, f.verifies(), "the verified key, read again")
}

// TestChangedHashEndsRefutation: what a key that verified says about its
// id holds only for the hash it verified against. When the id's stored
// hash becomes that of another key (same id, new secret), the new key
// verifies with argon2 and the old one is refused.
func TestChangedHashEndsRefutation(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour })
	h := f.v.Require(anyType)(okHandler)
	old := f.keys["production/server"]
	require.Equal(t, http.StatusOK, serve(h, request(old.Reveal())).Code)

	replacement, err := apikey.AssembleKey(apikey.Server, old.ID(), "Replacement"+fmt.Sprintf("%032d", 7))
	require.NoError(t, err)
	ctx := context.Background()
	rec, err := f.store.Key(ctx, old.ID())
	require.NoError(t, err)
	hash, err := apikey.Argon2id{Params: apikey.TestParams}.Hash([]byte(replacement.Reveal()))
	require.NoError(t, err)
	rec.Hash = apikey.NewOpaque(hash)
	require.NoError(t, f.store.Apply(ctx, apikey.Change{Update: []apikey.Record{rec}}))
	f.v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, KeyID: old.ID()})

	before := f.verifies()
	w := serve(h, request(replacement.Reveal()))
	assert.Equal(t, http.StatusOK, w.Code, "the key of the new hash: %s", w.Body.String())
	assert.Equal(t, before+1, f.verifies(), "verified with argon2")
	assert.Equal(t, http.StatusUnauthorized, serve(h, request(old.Reveal())).Code, "the key of the old hash")
	assert.Equal(t, before+1, f.verifies(), "refuted by the new key")
}

// TestNeverVerifiedIDVerifies: for a key id whose key never verified in
// this process, a wrong secret runs argon2 and is refused, and the real
// key then verifies.
func TestNeverVerifiedIDVerifies(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.FeedInterval = time.Hour })
	h := f.v.Require(anyType)(okHandler)
	require.Equal(t, http.StatusOK, serve(h, request(f.keys["production/server"].Reveal())).Code)
	key := f.keys["staging/server"]
	before := f.verifies()
	assert.Equal(t, http.StatusUnauthorized, serve(h, request(wrongSecret(t, key, 1))).Code)
	assert.Equal(t, before+1, f.verifies(), "a wrong secret of an id never verified runs argon2")
	assert.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code)
	assert.Equal(t, before+2, f.verifies())
}
