package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/sqlstore"
	"github.com/keystile/keystile/storage/sqlstore/pgnotify"
)

// These tests check the consistency promise of DESIGN.md end to end: a
// change made through one process's Manager is enforced by another process,
// which had the key cached, within the bound that its FeedInterval sets.
// Each "process" (a stack) has its own *sql.DB pool, sqlstore.Store,
// apikey.Manager and middleware.Validator on one shared database; the two
// share no memory but the database. TestPropagationBetweenProcesses runs
// stack B in a separate OS process.

const (
	// testFeedInterval is stack B's Options.FeedInterval in the tests.
	testFeedInterval = 100 * time.Millisecond
	// testCacheTTL is long enough that only the change feed can explain an
	// eviction during a test.
	testCacheTTL = 10 * time.Minute
	// feedSlack is what the propagation bound allows beyond FeedInterval:
	// one change-feed query, a settings reload and scheduling under -race on
	// a loaded machine. It mirrors the documented default bound: a 1 s
	// FeedInterval, at most 2 s.
	feedSlack = time.Second
	// pollEvery is how often the tests present the key while they wait.
	pollEvery = 2 * time.Millisecond
)

// testHasher is what both the Manager and the Validator of a stack hash
// with.
var testHasher = apikey.Argon2id{Params: apikey.TestParams}

// countingHasher counts the verifications of the hasher it wraps, to tell a
// cached key (no verification) from a loaded one.
type countingHasher struct {
	apikey.Hasher
	verifies atomic.Int64
}

func (h *countingHasher) Verify(secret []byte, encoded string) (match, outdated bool, err error) {
	h.verifies.Add(1)
	return h.Hasher.Verify(secret, encoded)
}

// countingStore counts the Key reads of the store it wraps: the loads of
// keys that a Validator does not serve from its cache. Embedding the
// *sqlstore.Store keeps its optional interfaces (the change feed, batched
// last-used writes), which the Validator finds by type assertion.
type countingStore struct {
	*sqlstore.Store
	keyReads atomic.Int64
}

var (
	_ storage.ChangeFeed       = (*countingStore)(nil)
	_ storage.LastUsedRecorder = (*countingStore)(nil)
)

func (s *countingStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	s.keyReads.Add(1)
	return s.Store.Key(ctx, id)
}

// A stack is what one app instance runs: its own pool, store, Validator and
// Manager, the Manager's OnEvent being the Validator's Invalidate. The
// Validator reads the store through read, which counts its key loads, and
// hashes with hasher, which counts its argon2 runs.
type stack struct {
	store     *sqlstore.Store
	read      *countingStore
	manager   *apikey.Manager
	validator *middleware.Validator
	hasher    *countingHasher
}

// stackOptions are the Validator options that differ between the tests.
type stackOptions struct {
	feedInterval time.Duration    // zero: middleware.DefaultFeedInterval
	cacheTTL     time.Duration    // zero: testCacheTTL
	feedWake     <-chan struct{}  // nil: polling only
	now          func() time.Time // nil: time.Now
}

// newStack opens a stack on dsn, a database that be.fresh returned, with
// the given FeedInterval and a 10-minute CacheTTL. It is closed when tb
// ends.
func newStack(tb testing.TB, be backend, dsn string, feedInterval time.Duration) *stack {
	tb.Helper()
	return newStackWith(tb, be, dsn, stackOptions{feedInterval: feedInterval})
}

// newStackWith is newStack with more options.
func newStackWith(tb testing.TB, be backend, dsn string, opts stackOptions) *stack {
	tb.Helper()
	if opts.cacheTTL == 0 {
		opts.cacheTTL = testCacheTTL
	}
	s := &stack{
		store:  be.store(tb, dsn, sqlstore.Options{}),
		hasher: &countingHasher{Hasher: testHasher},
	}
	s.read = &countingStore{Store: s.store}
	v, err := middleware.New(middleware.Options{
		Store:             s.read,
		Hasher:            s.hasher,
		CacheTTL:          opts.cacheTTL,
		FeedInterval:      opts.feedInterval,
		FeedWake:          opts.feedWake,
		Now:               opts.now,
		OnBackgroundError: func(err error) { tb.Logf("%s stack: background error: %v", be.name, err) },
	})
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, v.Close()) }) // before the pool closes
	s.validator = v
	s.manager, err = apikey.NewManager(apikey.ManagerOptions{Store: s.store, Hasher: testHasher, OnEvent: v.Invalidate})
	require.NoError(tb, err)
	return s
}

// okHandler answers 200 to a request whose key the middleware accepted.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if _, ok := middleware.FromContext(r.Context()); !ok {
		http.Error(w, "no identity", http.StatusInternalServerError)
	}
})

// result is a response's status and, for a problem response, its code.
type result struct {
	status int
	code   string
}

func (r result) String() string { return fmt.Sprintf("%d %s", r.status, r.code) }

var accepted = result{status: http.StatusOK}

func resultOf(tb testing.TB, status int, body []byte) result {
	tb.Helper()
	res := result{status: status}
	if status != http.StatusOK {
		var p struct {
			Code string `json:"code"`
		}
		require.NoError(tb, json.Unmarshal(body, &p), "problem body %q", body)
		res.code = p.Code
	}
	return res
}

// serve presents key (with origin as the Origin header, if not empty) to h
// through an httptest.ResponseRecorder.
func serve(tb testing.TB, h http.Handler, key apikey.Key, origin string) result {
	tb.Helper()
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	r.Header.Set("X-API-Key", key.Reveal())
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return resultOf(tb, w.Code, w.Body.Bytes())
}

// awaitRefusal calls try every pollEvery until it returns want or deadline
// has passed since start, and returns how long after start want came. Until
// then every answer must be accepted: the cached key still being served.
func awaitRefusal(tb testing.TB, start time.Time, deadline time.Duration, want result, try func() result) time.Duration {
	tb.Helper()
	for {
		got := try()
		elapsed := time.Since(start)
		if got == want {
			return elapsed
		}
		require.Equal(tb, accepted, got, "after %s: neither the cached key nor the refusal", elapsed)
		require.Less(tb, elapsed, deadline, "still accepted after %s, want %s", elapsed, want)
		time.Sleep(pollEvery)
	}
}

// A propagationCase is a lifecycle change that must reach stack B.
type propagationCase struct {
	name   string
	policy middleware.Policy // of the route stack B serves
	// prepare runs on stack A before stack B starts: it returns the key to
	// present, the Origin header to send ("" for none) and the change to
	// make through A's Manager.
	prepare func(t *testing.T, m *apikey.Manager, boot []apikey.Issued) (key apikey.Key, origin string, change func(context.Context) error)
	want    result // stack B's answer once the change reached it
}

const (
	appOrigin   = "https://app.example.com"
	adminOrigin = "https://admin.example.com"
)

var propagationCases = []propagationCase{
	{
		name: "revoke",
		prepare: func(t *testing.T, m *apikey.Manager, _ []apikey.Issued) (apikey.Key, string, func(context.Context) error) {
			issued, err := m.Create(context.Background(), owner, apikey.CreateRequest{
				Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, Name: "worker", ExpiresAt: time.Now().Add(time.Hour),
			})
			require.NoError(t, err)
			return issued.Key, "", func(ctx context.Context) error {
				_, err := m.Revoke(ctx, owner, issued.Key.ID())
				return err
			}
		},
		want: result{http.StatusUnauthorized, "revoked_key"},
	},
	{
		name: "disable",
		prepare: func(t *testing.T, m *apikey.Manager, _ []apikey.Issued) (apikey.Key, string, func(context.Context) error) {
			issued, err := m.Create(context.Background(), owner, apikey.CreateRequest{
				Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, Name: "worker",
			})
			require.NoError(t, err)
			return issued.Key, "", func(ctx context.Context) error {
				_, err := m.Disable(ctx, owner, issued.Key.ID())
				return err
			}
		},
		want: result{http.StatusUnauthorized, "key_disabled"},
	},
	{
		name: "suspend",
		prepare: func(t *testing.T, m *apikey.Manager, boot []apikey.Issued) (apikey.Key, string, func(context.Context) error) {
			return boot[0].Key, "", func(ctx context.Context) error { // the default server key
				return m.SuspendAccount(ctx, apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}, apikey.DefaultAccount)
			}
		},
		want: result{http.StatusForbidden, "account_suspended"},
	},
	{
		name: "grace ended",
		prepare: func(t *testing.T, m *apikey.Manager, boot []apikey.Issued) (apikey.Key, string, func(context.Context) error) {
			old := boot[0].Key // the default server key
			_, err := m.Rotate(context.Background(), owner, apikey.RotateRequest{KeyID: old.ID(), Grace: time.Hour})
			require.NoError(t, err)
			return old, "", func(ctx context.Context) error {
				_, err := m.ChangeGrace(ctx, owner, old.ID(), 0, apikey.APIPolicy)
				return err
			}
		},
		want: result{http.StatusUnauthorized, "expired_key"},
	},
	{
		name:   "scope dropped",
		policy: middleware.Policy{Scope: "orders:write"},
		prepare: func(t *testing.T, m *apikey.Manager, _ []apikey.Issued) (apikey.Key, string, func(context.Context) error) {
			issued, err := m.Create(context.Background(), owner, apikey.CreateRequest{
				Environment: apikey.Production, Type: apikey.Server, Name: "orders", Scopes: []string{"orders:write"},
			})
			require.NoError(t, err)
			return issued.Key, "", func(ctx context.Context) error {
				_, err := m.SetScopes(ctx, owner, issued.Key.ID(), []string{"orders:read"})
				return err
			}
		},
		want: result{http.StatusForbidden, "insufficient_scope"},
	},
	{
		name:   "origin removed",
		policy: middleware.Policy{Types: []apikey.KeyType{apikey.Client}}, // the zero Policy admits server keys only
		prepare: func(t *testing.T, m *apikey.Manager, boot []apikey.Issued) (apikey.Key, string, func(context.Context) error) {
			_, err := m.SetAllowedOrigins(context.Background(), owner, apikey.Production, []string{appOrigin, adminOrigin})
			require.NoError(t, err)
			return boot[1].Key, appOrigin, func(ctx context.Context) error { // the default publishable key
				_, err := m.SetAllowedOrigins(ctx, owner, apikey.Production, []string{adminOrigin})
				return err
			}
		},
		want: result{http.StatusForbidden, "origin_not_allowed"},
	},
}

// TestPropagationBetweenStacks runs each lifecycle change on SQLite and
// PostgreSQL with two stacks on one database: stack B accepts and caches a
// key (a second request verifies nothing), stack A changes it through its
// Manager, A refuses it at once (its OnEvent evicted it) and B refuses it
// within its FeedInterval plus feedSlack; B's CacheTTL is 10 minutes, so
// only the change feed can explain it.
func TestPropagationBetweenStacks(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for _, tc := range propagationCases {
				t.Run(tc.name, func(t *testing.T) {
					dsn := be.fresh(t)
					a := newStack(t, be, dsn, testFeedInterval)
					boot, err := a.manager.Bootstrap(context.Background(), owner, apikey.Production)
					require.NoError(t, err)
					key, origin, change := tc.prepare(t, a.manager, boot)
					b := newStack(t, be, dsn, testFeedInterval)

					ha := a.validator.Require(tc.policy)(okHandler)
					hb := b.validator.Require(tc.policy)(okHandler)
					require.Equal(t, accepted, serve(t, ha, key, origin), "stack A")
					require.Equal(t, accepted, serve(t, hb, key, origin), "stack B, first request")
					require.EqualValues(t, 1, b.hasher.verifies.Load(), "stack B verified the key")
					require.Equal(t, accepted, serve(t, hb, key, origin), "stack B, second request")
					require.EqualValues(t, 1, b.hasher.verifies.Load(), "stack B served the key from its cache")

					start := time.Now()
					require.NoError(t, change(context.Background()))
					changed := time.Since(start)
					require.Equal(t, tc.want, serve(t, ha, key, origin), "stack A, right after its own change")

					bound := testFeedInterval + feedSlack
					delay := awaitRefusal(t, start, testFeedInterval+2*time.Second, tc.want, func() result {
						return serve(t, hb, key, origin)
					})
					t.Logf("%s/%s: stack B refused the key %s after the change began (the change took %s; FeedInterval %s, bound %s)",
						be.name, tc.name, delay.Round(time.Millisecond), changed.Round(time.Millisecond), testFeedInterval, bound)
					assert.Less(t, delay, bound)
					require.Equal(t, tc.want, serve(t, hb, key, origin), "stack B keeps refusing")
				})
			}
		})
	}
}

// The helper processes run stack B of the tests between processes. The
// parent tells them what to run in these environment variables.
const (
	helperEnv     = "KEYSTILE_TEST_HELPER_PROCESS" // the backend name
	helperDSNEnv  = "KEYSTILE_TEST_HELPER_DSN"
	helperFeedEnv = "KEYSTILE_TEST_HELPER_FEED_INTERVAL"
	helperPushEnv = "KEYSTILE_TEST_HELPER_PUSH" // "pgnotify": FeedWake from a pgnotify.Listener
	helperTTLEnv  = "KEYSTILE_TEST_HELPER_CACHE_TTL"
)

// TestPropagationBetweenProcesses runs stack B in a second OS process (this
// test binary, run again as TestHelperProcess) serving HTTP on loopback,
// for SQLite (two processes on one file) and PostgreSQL: B accepts and
// caches a key, this process revokes it through stack A's Manager, and B
// refuses it within its FeedInterval plus feedSlack.
func TestPropagationBetweenProcesses(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			dsn := be.fresh(t)
			a := newStack(t, be, dsn, testFeedInterval)
			_, err := a.manager.Bootstrap(context.Background(), owner, apikey.Production)
			require.NoError(t, err)
			issued, err := a.manager.Create(context.Background(), owner, apikey.CreateRequest{
				Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: time.Now().Add(time.Hour),
			})
			require.NoError(t, err)
			key := issued.Key

			b := startHelper(t, be, dsn, helperConfig{feedInterval: testFeedInterval})
			require.Equal(t, accepted, b.get(t, "/orders", key), "process B, first request")
			require.Equal(t, accepted, b.get(t, "/orders", key), "process B, second request")
			require.Equal(t, 1, b.count(t, "/verifies"), "process B verified the key once and then served it from its cache")

			start := time.Now()
			_, err = a.manager.Revoke(context.Background(), owner, key.ID())
			require.NoError(t, err)
			want := result{http.StatusUnauthorized, "revoked_key"}
			bound := testFeedInterval + feedSlack
			delay := awaitRefusal(t, start, testFeedInterval+2*time.Second, want, func() result {
				return b.get(t, "/orders", key)
			})
			t.Logf("%s: process %d refused the key %s after the revocation began (FeedInterval %s, bound %s)",
				be.name, b.cmd.Process.Pid, delay.Round(time.Millisecond), testFeedInterval, bound)
			assert.Less(t, delay, bound)
			b.stop(t)
		})
	}
}

// helperConfig is what a helper process's stack runs with.
type helperConfig struct {
	feedInterval time.Duration // zero: middleware.DefaultFeedInterval
	push         bool          // FeedWake from a pgnotify.Listener (PostgreSQL only)
	cacheTTL     time.Duration // zero: testCacheTTL
}

// env returns the environment variables that pass c, be and dsn to the
// helper.
func (c helperConfig) env(be backend, dsn string) []string {
	env := []string{helperEnv + "=" + be.name, helperDSNEnv + "=" + dsn, helperFeedEnv + "=" + c.feedInterval.String()}
	if c.push {
		env = append(env, helperPushEnv+"=pgnotify")
	}
	if c.cacheTTL > 0 {
		env = append(env, helperTTLEnv+"="+c.cacheTTL.String())
	}
	return env
}

// helperMark starts every line of a helper's protocol on its stdout, which
// also carries the testing package's own output.
const helperMark = "keystile-helper: "

// helper is a running helper process.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // the helper's protocol lines, without helperMark; closed when it exits
	output *syncBuffer // its whole stdout, for failure messages
	stderr *syncBuffer
	done   chan error
	once   sync.Once

	base   string // http://127.0.0.1:port, for TestHelperProcess
	client *http.Client
}

// syncBuffer is a bytes.Buffer that exec's copying goroutine and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startProcess runs this test binary again as the test named run, with env
// added to this process's environment. The process is stopped when tb
// ends.
func startProcess(tb testing.TB, run string, env []string) *helper {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	h := &helper{cmd: cmd, lines: make(chan string, 16), output: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = h.stderr
	var err error
	h.stdin, err = cmd.StdinPipe()
	require.NoError(tb, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() { h.stop(tb) })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(h.output, line)
			if msg, ok := strings.CutPrefix(line, helperMark); ok {
				h.lines <- msg
			}
		}
		close(h.lines)
		h.done <- cmd.Wait()
	}()
	return h
}

// next returns the helper's next protocol line, failing tb if none comes
// within timeout or the helper exits.
func (h *helper) next(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			tb.Fatalf("helper process %d exited:\n%s\n%s", h.cmd.Process.Pid, h.output, h.stderr)
		}
		return line
	case <-time.After(timeout):
		tb.Fatalf("helper process %d said nothing within %s:\n%s\n%s", h.cmd.Process.Pid, timeout, h.output, h.stderr)
	}
	return ""
}

// send writes one line to the helper's stdin.
func (h *helper) send(tb testing.TB, format string, args ...any) {
	tb.Helper()
	_, err := fmt.Fprintf(h.stdin, format+"\n", args...)
	require.NoError(tb, err, "helper stderr:\n%s", h.stderr)
}

// startHelper starts stack B in a TestHelperProcess and waits until it
// serves.
func startHelper(tb testing.TB, be backend, dsn string, c helperConfig) *helper {
	tb.Helper()
	h := startProcess(tb, "TestHelperProcess", c.env(be, dsn))
	h.client = &http.Client{Timeout: 5 * time.Second}
	addr, ok := strings.CutPrefix(h.next(tb, 30*time.Second), "listening ")
	require.True(tb, ok, "helper process did not start serving:\n%s\n%s", h.output, h.stderr)
	h.base = "http://" + addr
	return h
}

// get presents key to the helper's path.
func (h *helper) get(tb testing.TB, path string, key apikey.Key) result {
	tb.Helper()
	r, err := http.NewRequest(http.MethodGet, h.base+path, nil)
	require.NoError(tb, err)
	r.Header.Set("X-API-Key", key.Reveal())
	resp, err := h.client.Do(r)
	require.NoError(tb, err, "helper stderr:\n%s", h.stderr)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return resultOf(tb, resp.StatusCode, body)
}

// count returns one of the helper's counters: "/verifies" (its hasher's
// Verify calls) or "/keyreads" (its Validator's Key reads).
func (h *helper) count(tb testing.TB, path string) int {
	tb.Helper()
	resp, err := h.client.Get(h.base + path)
	require.NoError(tb, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	n, err := strconv.Atoi(strings.TrimSpace(string(body)))
	require.NoError(tb, err, "body %q", body)
	return n
}

// stop closes the helper's stdin, which makes it shut down, and waits for
// it; it kills a helper that does not exit within 10 s. A helper that failed
// fails the test.
func (h *helper) stop(tb testing.TB) {
	h.once.Do(func() {
		_ = h.stdin.Close()
		go func() {
			for range h.lines { // protocol lines nobody asked for
			}
		}()
		select {
		case err := <-h.done:
			assert.NoError(tb, err, "helper process failed:\n%s\n%s", h.output, h.stderr)
		case <-time.After(10 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.done
			tb.Errorf("helper process did not exit within 10 s:\n%s\n%s", h.output, h.stderr)
		}
	})
}

// helperStack opens the stack that the helper's environment describes, or
// returns nil when the environment names none: a helper test run in the
// normal test run does nothing.
func helperStack(t *testing.T) *stack {
	name := os.Getenv(helperEnv)
	if name == "" {
		return nil
	}
	i := slices.IndexFunc(backends, func(b backend) bool { return b.name == name })
	require.GreaterOrEqual(t, i, 0, "unknown backend %q", name)
	be, dsn := backends[i], os.Getenv(helperDSNEnv)
	opts := stackOptions{}
	var err error
	opts.feedInterval, err = time.ParseDuration(os.Getenv(helperFeedEnv))
	require.NoError(t, err)
	if ttl := os.Getenv(helperTTLEnv); ttl != "" {
		opts.cacheTTL, err = time.ParseDuration(ttl)
		require.NoError(t, err)
	}
	if os.Getenv(helperPushEnv) == "pgnotify" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := pgnotify.Listen(ctx, dsn, pgnotify.Options{OnError: func(err error) { t.Logf("pgnotify: %v", err) }})
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, l.Close()) }) // after the Validator's Close
		opts.feedWake = l.Wake()
	}
	return newStackWith(t, be, dsn, opts)
}

// TestHelperProcess is not a test: it is stack B of the tests between
// processes when run with KEYSTILE_TEST_HELPER_PROCESS set, and does
// nothing otherwise. It serves "/orders" behind the Validator, and
// "/verifies", "/keyreads" and "/feedrevision" (see helper.count) on a
// loopback port,
// prints "listening <addr>", and shuts down when its stdin closes.
func TestHelperProcess(t *testing.T) {
	s := helperStack(t)
	if s == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/orders", s.validator.Handler(okHandler))
	mux.HandleFunc("/verifies", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, s.hasher.verifies.Load())
	})
	mux.HandleFunc("/keyreads", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, s.read.keyReads.Load())
	})
	mux.HandleFunc("/feedrevision", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, s.validator.Stats().FeedRevision)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf(helperMark+"listening %s\n", ln.Addr())

	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.ErrorIs(t, <-served, http.ErrServerClosed)
}
