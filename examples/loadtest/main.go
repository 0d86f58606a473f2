// Command loadtest is the server that scripts/load.sh drives with wrk: one
// HTTP server on loopback, over a SQLite store in a temporary directory, with
// three routes that share one handler:
//
//	GET /bare         the handler alone
//	GET /protected    the handler behind the keystile middleware (v.Handler)
//	GET /bare-fields  the handler writing the response fields that
//	                  /protected adds to an admitted request, with no key
//	                  checked (Vary, and with -limits the RateLimit fields)
//	GET /cpu          the CPU time the process has used, in microseconds
//
// Throughput on a shared machine varies from one run to the next; the CPU
// time the server spends per request, which load.sh reads from /cpu
// around each run, varies much less.
//
// It bootstraps the production environment with apikey.DefaultParams. With
// -keys N it also creates N server keys, hashed with apikey.LightParams so
// that creating them takes seconds, and writes them to a file, one per
// line, for wrk to spread its requests over. The middleware verifies with
// apikey.Argon2id{} (DefaultParams), as the README advises, so it upgrades
// those hashes (one argon2 run at DefaultParams each, about 25 ms): before
// it reports ready, the server sends every key through the middleware once,
// waits for the upgrades, and sends every key again, spread over a cache
// lifetime (-spread), as in a server that has been running a while: each
// key's cache entry then ends at its own time, and the load test measures
// cached keys plus one store read per key per minute, not a burst of
// 10,000 reads at once. Then it prints the listening address, the bootstrapped server key,
// the file of the other keys (with -keys) and "ready" on stdout, and serves
// until SIGINT or SIGTERM, when it logs the middleware's counters:
//
//	addr http://127.0.0.1:40123
//	key server-...
//	keys /tmp/keystile-loadtest-.../keys.txt
//	ready
//
// Comparing the two routes under the same load measures what the middleware
// costs per request with cached keys. The printed keys are secrets of a
// throwaway store that is deleted on exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/limit"
	"github.com/keystile/keystile/storage/sqlstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	keys := flag.Int("keys", 0, "also create this many server keys, written to a file for wrk")
	spread := flag.Duration("spread", middleware.DefaultCacheTTL, "with -keys, how long the last warm-up pass over the keys lasts")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the serving (after the warm-up) to this file")
	limited := flag.String("limits", "", `"rate": give every key a rate limit that the load never reaches; "quota": a quota too (loadLimits)`)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *keys, *spread, *cpuProfile, *limited, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// hello is the handler of both routes: a small JSON body.
func hello(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"message":"hello","ok":true}` + "\n"))
}

// vary is the Vary field that the middleware writes on every response
// (TestRun compares it with /protected's).
var vary = []string{"Origin, Sec-Fetch-Site, X-API-Key"}

// bareWithFields returns the bare handler that also writes the fields that
// the middleware adds to the response of a key far below rate (Vary, and
// the RateLimit fields unless rate is zero): what these fields cost
// without keystile's check, for scripts/load.sh.
func bareWithFields(rate apikey.RateLimit) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Vary"] = vary
		if !rate.IsZero() {
			limit.SetHeaders(w.Header(), rate, limit.Decision{Allowed: true, Remaining: rate.Requests - 1, Reset: time.Nanosecond})
		}
		hello(w, r)
	}
}

// loadLimits are the limits of every key with -limits ("rate": Rate
// only; "quota": both): enforced on every request (a rate limit per
// process, a quota spent from leases), never reached by the load.
var loadLimits = map[string]apikey.Limits{
	"":     {},
	"rate": {Rate: apikey.RateLimit{Requests: 1_000_000, Window: time.Second}},
	"quota": {
		Rate:  apikey.RateLimit{Requests: 1_000_000, Window: time.Second},
		Quota: apikey.Quota{Limit: apikey.MaxQuotaUses},
	},
}

// owner is the actor that sets the store up.
var owner = apikey.Actor{ID: "loadtest", Role: apikey.Owner}

// run serves until ctx ends, printing the address, the keys and "ready" to
// out.
func run(ctx context.Context, addr string, extraKeys int, spread time.Duration, cpuProfile string, limited string, out io.Writer) error {
	dir, err := os.MkdirTemp("", "keystile-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := exampledb.Open(ctx, filepath.Join(dir, "keystile.db"))
	if err != nil {
		return err
	}
	defer store.DB().Close()

	hasher := apikey.Argon2id{Params: apikey.DefaultParams}
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher})
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			_ = v.Close()
		}
	}()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: hasher, OnEvent: v.Invalidate})
	if err != nil {
		return err
	}
	issued, err := m.Bootstrap(ctx, owner, apikey.Production)
	if err != nil {
		return err
	}
	limits, ok := loadLimits[limited]
	if !ok {
		return fmt.Errorf("-limits %q: want rate or quota", limited)
	}
	if !limits.IsZero() {
		if _, err := m.SetLimits(ctx, owner, issued[0].Key.ID(), limits); err != nil {
			return err
		}
	}
	keysFile := ""
	if extraKeys > 0 {
		start := time.Now()
		keys, err := createKeys(ctx, store, v, extraKeys, limits)
		if err != nil {
			return err
		}
		log.Printf("created %d keys in %v", len(keys), time.Since(start).Round(time.Millisecond))
		keysFile = filepath.Join(dir, "keys.txt")
		if err := os.WriteFile(keysFile, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
			return err
		}
		start = time.Now()
		if err := warmUp(ctx, store, v, keys, spread); err != nil {
			return err
		}
		st := v.Stats()
		log.Printf("warmed up in %v: %d keys cached, %d argon2 verifications", time.Since(start).Round(time.Millisecond), st.CachedKeys, st.Hashes)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /bare", hello)
	mux.Handle("GET /protected", v.Handler(http.HandlerFunc(hello)))
	mux.HandleFunc("GET /cpu", cpuTime)
	mux.HandleFunc("GET /bare-fields", bareWithFields(limits.Rate))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "addr http://%s\nkey %s\n", ln.Addr(), issued[0].Key.Reveal())
	if keysFile != "" {
		fmt.Fprintf(out, "keys %s\n", keysFile)
	}
	fmt.Fprintln(out, "ready")

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	st := v.Stats()
	log.Printf("served: %d cache hits, %d misses, %d argon2 verifications, %d keys cached",
		st.CacheHits, st.CacheMisses, st.Hashes, st.CachedKeys)
	closed = true
	if cerr := v.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// createKeys creates n full-access server keys in production with limits, hashed with
// apikey.LightParams on every CPU, and returns them.
func createKeys(ctx context.Context, store *sqlstore.Store, v *middleware.Validator, n int, limits apikey.Limits) ([]string, error) {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.LightParams}, OnEvent: v.Invalidate})
	if err != nil {
		return nil, err
	}
	keys := make([]string, n)
	err = parallel(n, func(i int) error {
		is, err := m.Create(ctx, owner, apikey.CreateRequest{
			Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes},
			Name: fmt.Sprintf("load %d", i), Limits: limits,
		})
		keys[i] = is.Key.Reveal()
		return err
	})
	return keys, err
}

// warmUp sends every key through the middleware, waits until the
// middleware has upgraded every key's hash to DefaultParams, and sends
// every key once more, spread over spread: the cache then holds them all,
// verified against their final hashes (the middleware remembers the hashes
// it upgraded, so the second pass is one store read per key, without
// argon2), with lifetimes that end at different times.
//
// The second pass evicts each key's entry before it sends the key: an
// entry still live from the first pass would be a cache hit, which keeps
// its lifetime, and most keys' lifetimes would then end together, in the
// first seconds of the measured runs (8,326 of 10,000 did so).
func warmUp(ctx context.Context, store *sqlstore.Store, v *middleware.Validator, keys []string, spread time.Duration) error {
	check := func(i int) error {
		r := httptest.NewRequest(http.MethodGet, "/protected", nil)
		r.Header.Set(middleware.HeaderAPIKey, keys[i])
		_, err := v.Check(r.WithContext(ctx), middleware.Policy{})
		return err
	}
	if err := parallel(len(keys), check); err != nil {
		return err
	}
	for {
		weak, err := weakHashes(ctx, store)
		if err != nil {
			return err
		}
		if weak == 0 {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	// The change feed reports every upgrade within a second or two (and
	// updates the key's cache entry): wait for that, then send the keys
	// again, a sixtieth of them at a time.
	if err := sleep(ctx, 3*middleware.DefaultFeedInterval); err != nil {
		return err
	}
	const steps = 60
	for step := range steps {
		first, last := step*len(keys)/steps, (step+1)*len(keys)/steps
		err := parallel(last-first, func(i int) error {
			key, err := apikey.ParseKey(keys[first+i])
			if err != nil {
				return err
			}
			v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, Environment: apikey.Production, KeyID: key.ID()})
			return check(first + i)
		})
		if err != nil {
			return err
		}
		if err := sleep(ctx, spread/steps); err != nil {
			return err
		}
	}
	return nil
}

// sleep waits for d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// weakHashes counts the production keys whose stored hash is weaker than
// DefaultParams.
func weakHashes(ctx context.Context, store *sqlstore.Store) (int, error) {
	weak := 0
	q := apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: apikey.MaxPageSize}
	for {
		recs, err := store.Keys(ctx, q)
		if err != nil {
			return 0, err
		}
		for _, rec := range recs {
			p, _, _, err := apikey.DecodePHC(rec.Hash.Reveal())
			if err != nil {
				return 0, err
			}
			if p.Memory < apikey.DefaultParams.Memory || p.Iterations < apikey.DefaultParams.Iterations {
				weak++
			}
		}
		if len(recs) < q.Limit {
			return weak, nil
		}
		last := recs[len(recs)-1]
		q.After = apikey.KeyPosition{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}

// parallel runs fn(0) ... fn(n-1) on every CPU and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
