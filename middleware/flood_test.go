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
	"github.com/keystile/keystile/storage/memory"
)

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

// floodHasher is an argon2id hasher that counts its runs per key id and
// records how many ran at once.
type floodHasher struct {
	apikey.Argon2id
	mu      sync.Mutex
	runs    map[string]int // key id -> Verify and Hash calls
	running atomic.Int64
	peak    atomic.Int64
}

func (h *floodHasher) count(secret []byte) func() {
	id := "?"
	if len(secret) == apikey.KeyLength {
		id = string(secret[7 : 7+apikey.IDLength])
	}
	h.mu.Lock()
	h.runs[id]++
	h.mu.Unlock()
	n := h.running.Add(1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return func() { h.running.Add(-1) }
}

func (h *floodHasher) Verify(secret []byte, encoded string) (bool, bool, error) {
	defer h.count(secret)()
	return h.Argon2id.Verify(secret, encoded)
}

func (h *floodHasher) Hash(secret []byte) (string, error) {
	defer h.count(secret)()
	return h.Argon2id.Hash(secret)
}

// snapshot returns the runs per key id so far.
func (h *floodHasher) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.runs))
	for id, n := range h.runs {
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

	hasher := &floodHasher{Argon2id: apikey.Argon2id{Params: floodParams}, runs: map[string]int{}}
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
			// Every verification of the id takes one unit of the budget
			// (in flight, then failed), and the window does not end during
			// the flood: exactly ThrottleFailures attempts are verified,
			// the rest are refused with 429 before any storage call.
			assert.Equal(t, map[string]int{"invalid_key": floodBudget, "too_many_failures": floodRequests - floodBudget}, codes)
			assert.Equal(t, floodBudget, runs[cached.ID()], "argon2 runs for the attacked key id")
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
			before := hasher.snapshot()
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

			runs := diffRuns(hasher.snapshot(), before)
			total := 0
			for _, n := range runs {
				total += n
			}
			bound := uint64(floodHashCap)*uint64(floodParams.Memory)<<10 + floodMargin
			t.Logf("%s: %d requests from %d goroutines in %s (%.0f req/s); argon2 runs: %d for the flood, %d for the steady uncached key; "+
				"at most %d at once; heap: baseline %.1f MiB, peak growth %.1f MiB (bound %.1f MiB = %d x %d KiB + %d MiB, %d samples); "+
				"cached key %d/%d ok (%.1f%%), uncached key %d/%d ok (%.1f%%)",
				fl.name, floodRequests, floodWorkers, elapsed.Round(time.Millisecond), floodRequests/elapsed.Seconds(),
				total-runs[uncached.ID()], runs[uncached.ID()], hasher.peak.Load(),
				mib(sampler.baseline), mib(growth), mib(bound), floodHashCap, floodParams.Memory, floodMargin>>20, sampler.samples,
				steady.cachedOK.Load(), steady.cachedAll.Load(), rate(steady.cachedOK.Load(), steady.cachedAll.Load()),
				steady.uncachedOK.Load(), steady.uncachedAll.Load(), rate(steady.uncachedOK.Load(), steady.uncachedAll.Load()))

			fl.check(t, codes, runs)
			assert.LessOrEqual(t, hasher.peak.Load(), int64(floodHashCap), "argon2 ran above the cap")
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
