package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/memory"
)

// The flood of BenchmarkFloodWithNewKey: wrong secrets for floodIDs
// harvested key ids, sent by floodConns connections as fast as the
// middleware answers.
const (
	floodIDs      = 1_000
	floodConns    = 256
	floodVerified = 10 // keys verified before the flood, used throughout
	// floodWarmup bounds the flood's first phase, in which every attacked
	// key id fails for the first time.
	floodWarmup = 90 * time.Second
)

// fixedHasher hashes every secret to one precomputed hash: the flood's
// key ids get DefaultParams hashes without 1,000 argon2 runs to make them.
type fixedHasher struct {
	apikey.Argon2id
	encoded string
}

func (h fixedHasher) Hash([]byte) (string, error) { return h.encoded, nil }

// failureMeter is argon2id at DefaultParams that counts the verifications
// that found no match and the time they took.
type failureMeter struct {
	apikey.Argon2id
	failures atomic.Int64
	nanos    atomic.Int64
}

func (h *failureMeter) Verify(secret []byte, encoded string) (bool, bool, error) {
	start := time.Now()
	match, outdated, err := h.Argon2id.Verify(secret, encoded)
	if !match {
		h.failures.Add(1)
		h.nanos.Add(int64(time.Since(start)))
	}
	return match, outdated, err
}

// BenchmarkFloodWithNewKey runs the flood of wrong secrets for 1,000
// harvested key ids at full speed against a Validator with default options
// (argon2id at DefaultParams, MaxConcurrentHashes = NumCPU), first until
// every attacked id failed once (or floodWarmup), then while each
// iteration verifies a valid key never seen before. ns/op is that key's
// verification time. Run it once, the flood takes seconds to set up:
//
//	go test -run '^$' -bench FloodWithNewKey -benchtime 20x ./middleware
//
// Metrics: verified-served-% (requests of keys verified before the flood,
// half of them evicted from the cache first, that got 200), new-key-max-ms
// (the slowest never-seen key), fail-hashes/s and fail-cpu-% (argon2 runs
// that found no match during the iterations, and their CPU time over all
// of GOMAXPROCS), all-fail-hashes/s (the same from the flood's start),
// warmup-s, warmup-fail-hashes and warmup-new-key-max-ms (the first
// phase, in which a never-seen key is verified once a second). Iterations are 50 ms
// apart: 1200x spans a throttle window. The attacked ids' own keys are
// never used: see BenchmarkFloodWithNewKeyIDsInUse for a server whose
// clients use them.
func BenchmarkFloodWithNewKey(b *testing.B) { benchmarkFlood(b, false) }

// BenchmarkFloodWithNewKeyIDsInUse is BenchmarkFloodWithNewKey where the
// attacked key ids are those of keys in use, each verified once before the
// flood, as on a server whose key ids were harvested from its own clients:
// the steady state of such a flood. It has no warm-up (no attacked id
// fails with argon2), and takes about 30 s to make and verify the keys
// at DefaultParams.
func BenchmarkFloodWithNewKeyIDsInUse(b *testing.B) { benchmarkFlood(b, true) }

// benchmarkFlood runs the flood; with inUse the attacked ids' keys verify
// before it.
func benchmarkFlood(b *testing.B, inUse bool) {
	ctx := context.Background()
	store := memory.New()
	real, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := real.Bootstrap(ctx, owner, apikey.Production); err != nil {
		b.Fatal(err)
	}
	newKey := func(m *apikey.Manager) apikey.Key {
		is, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
		if err != nil {
			b.Fatal(err)
		}
		return is.Key
	}
	encoded, err := apikey.Argon2id{}.Hash([]byte("a secret nobody sends"))
	if err != nil {
		b.Fatal(err)
	}
	harvest, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: fixedHasher{encoded: encoded}})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, floodIDs)
	var inUseKeys []apikey.Key // verified before the flood, with inUse
	if inUse {
		inUseKeys = make([]apikey.Key, floodIDs)
		var wg sync.WaitGroup
		for w := range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for i := w; i < floodIDs; i += runtime.GOMAXPROCS(0) {
					inUseKeys[i] = newKey(real)
				}
			})
		}
		wg.Wait()
	}
	for i := range ids {
		if inUse {
			ids[i] = inUseKeys[i].ID()
		} else {
			ids[i] = newKey(harvest).ID()
		}
	}
	verified := make([]apikey.Key, floodVerified)
	for i := range verified {
		verified[i] = newKey(real)
	}
	// Never-seen keys: one a second during the warm-up, one per iteration.
	fresh := make([]apikey.Key, int(floodWarmup/time.Second)+b.N)
	for i := range fresh {
		fresh[i] = newKey(real)
	}

	hasher := &failureMeter{}
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	h := v.Require(anyType)(okHandler)
	for _, k := range verified {
		if code := serve(h, request(k.Reveal())).Code; code != http.StatusOK {
			b.Fatalf("verifying a key before the flood: %d", code)
		}
	}
	var wg sync.WaitGroup
	var notOK atomic.Int64
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := w; i < len(inUseKeys); i += runtime.GOMAXPROCS(0) {
				if serve(h, request(inUseKeys[i].Reveal())).Code != http.StatusOK {
					notOK.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if notOK.Load() > 0 {
		b.Fatalf("%d attacked ids' keys did not verify before the flood", notOK.Load())
	}
	warmupTarget := int64(floodIDs) // every attacked id fails once
	if inUse {
		warmupTarget = 0 // none needs argon2 to fail
	}

	stop := make(chan struct{})
	var sent atomic.Int64
	for c := range floodConns {
		wg.Go(func() {
			for i := c; ; i += floodConns {
				select {
				case <-stop:
					return
				default:
				}
				// A new secret every time: no cached failure answers it.
				k, err := apikey.AssembleKey(apikey.Server, ids[i%floodIDs], fmt.Sprintf("%043d", i))
				if err != nil {
					panic(err)
				}
				serve(h, request(k.Reveal()))
				sent.Add(1)
			}
		})
	}
	var servedOK, servedAll atomic.Int64
	for c := range 4 {
		wg.Go(func() {
			for i := c; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := verified[i%floodVerified]
				if i%2 == 0 { // read again from the store: no argon2 for a verified key
					v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, KeyID: k.ID()})
				}
				if serve(h, request(k.Reveal())).Code == http.StatusOK {
					servedOK.Add(1)
				}
				servedAll.Add(1)
				time.Sleep(time.Millisecond)
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	warmupStart := time.Now()
	var warmupWorst time.Duration
	for hasher.failures.Load() < warmupTarget && time.Since(warmupStart) < floodWarmup {
		t0 := time.Now()
		if code := serve(h, request(fresh[0].Reveal())).Code; code != http.StatusOK {
			b.Errorf("a key never seen before, during the warm-up: %d", code)
		}
		warmupWorst = max(warmupWorst, time.Since(t0))
		fresh = fresh[1:]
		time.Sleep(time.Second - time.Since(t0))
	}
	warmup := time.Since(warmupStart)
	warmupFailures := hasher.failures.Load()
	servedOK.Store(0)
	servedAll.Store(0)

	latencies := make([]time.Duration, 0, b.N)
	failures, nanos := hasher.failures.Load(), hasher.nanos.Load()
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		w := serve(h, request(fresh[i].Reveal()))
		latencies = append(latencies, time.Since(t0))
		if w.Code != http.StatusOK {
			b.Errorf("a key never seen before: %d %s", w.Code, w.Body.String())
		}
		b.StopTimer()
		time.Sleep(50 * time.Millisecond) // samples spread over the flood
		b.StartTimer()
	}
	b.StopTimer()
	elapsed := time.Since(start)
	failures, nanos = hasher.failures.Load()-failures, hasher.nanos.Load()-nanos

	b.ReportMetric(100*float64(servedOK.Load())/float64(max(servedAll.Load(), 1)), "verified-served-%")
	b.ReportMetric(float64(slices.Max(latencies))/float64(time.Millisecond), "new-key-max-ms")
	b.ReportMetric(float64(failures)/elapsed.Seconds(), "fail-hashes/s")
	b.ReportMetric(100*float64(nanos)/(elapsed.Seconds()*1e9*float64(runtime.GOMAXPROCS(0))), "fail-cpu-%")
	b.ReportMetric(warmup.Seconds(), "warmup-s")
	b.ReportMetric(float64(warmupWorst)/float64(time.Millisecond), "warmup-new-key-max-ms")
	b.ReportMetric(float64(warmupFailures), "warmup-fail-hashes")
	b.ReportMetric(float64(hasher.failures.Load())/time.Since(warmupStart).Seconds(), "all-fail-hashes/s")
	b.ReportMetric(float64(sent.Load())/time.Since(warmupStart).Seconds(), "flood-req/s")
}
