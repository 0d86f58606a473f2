package faulttest

import (
	"context"
	"database/sql"
	"errors"
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
	"github.com/keystile/keystile/internal/fakeclock"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/faultstore"
)

// The fault tests run the middleware and the Manager over a real backend
// behind storage/faultstore, and switch faults on and off: errors, slow
// calls past the request deadline, cancelled requests, a database that goes
// away and comes back.

// A Backend opens stores on fresh data.
type Backend struct {
	// Name names the backend's subtests.
	Name string
	// Open returns a store on a fresh, empty database, and a function that
	// opens another handle on the same data (another process's pool).
	Open func(t *testing.T) (apikey.Store, func() apikey.Store)
	// Postgres reports that Open returns a store on PostgreSQL with a
	// DB() *sql.DB method (*sqlstore.Store): StorageFaults then also runs
	// the faults that only a PostgreSQL server can produce.
	Postgres bool
}

// faultEnv is a backend behind a fault store, with production bootstrapped,
// a Manager and a Validator on the fault store, and a settable clock.
type faultEnv struct {
	t      *testing.T
	clock  *fakeclock.Clock
	inner  apikey.Store
	peer   func() apikey.Store
	fs     *faultstore.Store
	m      *apikey.Manager
	v      *middleware.Validator
	h      http.Handler
	server apikey.Key // default server key
	client apikey.Key // default publishable key

	mu     sync.Mutex
	events []apikey.Event // reported by the Manager's OnEvent
	bg     []error        // the Validator's background errors
}

func newFaultEnv(t *testing.T, b Backend, configure func(*middleware.Options)) *faultEnv {
	t.Helper()
	e := &faultEnv{t: t, clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	e.inner, e.peer = b.Open(t)
	e.fs = faultstore.New(e.inner)
	var err error
	e.m, err = apikey.NewManager(apikey.ManagerOptions{
		Store: e.fs.Exact(), Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: e.clock.Now,
		OnEvent: func(ev apikey.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
			if e.v != nil {
				e.v.Invalidate(ev)
			}
		},
	})
	require.NoError(t, err)
	issued, err := e.m.Bootstrap(context.Background(), Owner, apikey.Production)
	require.NoError(t, err)
	e.server, e.client = issued[0].Key, issued[1].Key
	e.v = e.validator(e.fs, configure)
	e.h = e.v.Require(AnyType)(OKHandler)
	return e
}

// validator returns a Validator on store, closed when the test ends.
func (e *faultEnv) validator(fs *faultstore.Store, configure func(*middleware.Options)) *middleware.Validator {
	e.t.Helper()
	opts := middleware.Options{
		Store: fs.Exact(), Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: e.clock.Now,
		CacheTTL: time.Minute, FeedInterval: 10 * time.Millisecond,
		OnBackgroundError: func(err error) {
			e.mu.Lock()
			e.bg = append(e.bg, err)
			e.mu.Unlock()
		},
	}
	if configure != nil {
		configure(&opts)
	}
	v, err := middleware.New(opts)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = v.Close() })
	return v
}

// create makes a key with an expiry in an hour (so that it can be revoked).
func (e *faultEnv) create() apikey.Key {
	e.t.Helper()
	is, err := e.m.Create(context.Background(), Owner, apikey.CreateRequest{
		Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: e.clock.Now().Add(time.Hour)})
	require.NoError(e.t, err)
	return is.Key
}

func (e *faultEnv) backgroundErrors() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.bg)
}

// auditEvents returns the stored audit events of a key and action, read
// from the inner store behind the faults.
func (e *faultEnv) auditEvents(keyID string, action apikey.Action) int {
	e.t.Helper()
	events, err := e.inner.(storage.AuditLog).Events(context.Background(), storage.EventQuery{Account: apikey.DefaultAccount, Environment: apikey.Production})
	require.NoError(e.t, err)
	n := 0
	for _, ev := range events {
		if ev.KeyID == keyID && ev.Action == action {
			n++
		}
	}
	return n
}

// reported counts the events of a key and action that OnEvent received.
func (e *faultEnv) reported(keyID string, action apikey.Action) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.KeyID == keyID && ev.Action == action {
			n++
		}
	}
	return n
}

// outcome is the status and code of a response.
type outcome struct {
	status     int
	code       string
	retryAfter string
}

func (o outcome) String() string {
	if o.code == "" {
		return fmt.Sprint(o.status)
	}
	return fmt.Sprintf("%d %s (Retry-After %q)", o.status, o.code, o.retryAfter)
}

// do serves a request with key through h under ctx and returns its outcome.
func do(ctx context.Context, h http.Handler, key string, headers ...string) outcome {
	w := Serve(h, Request(key, headers...).WithContext(ctx))
	o := outcome{status: w.Code, retryAfter: w.Header().Get("Retry-After")}
	if w.Code != http.StatusOK {
		o.code = ProblemCode(w.Body.Bytes())
	}
	return o
}

var (
	ok200       = outcome{status: 200}
	unavailable = outcome{503, "unavailable", "1"}
	busy        = outcome{503, "busy", "1"}
	errInjected = errors.New("injected: connection reset by peer")
)

// StorageFaults runs every fault against every backend, a subtest per
// backend and fault. The fault table of the report is the t.Logf lines:
// "fault | seen | recovery".
func StorageFaults(t *testing.T, backends ...Backend) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			for _, ft := range storageFaults {
				if ft.postgresOnly && !b.Postgres {
					continue // a fault only a PostgreSQL server can produce
				}
				t.Run(ft.name, func(t *testing.T) { ft.run(t, b) })
			}
		})
	}
}

var storageFaults = []struct {
	name         string
	run          func(t *testing.T, b Backend)
	postgresOnly bool
}{
	{"every call fails", testEveryCallFails, false},
	{"down then up", testDownThenUp, false},
	{"slow calls past the deadline", testSlowCalls, false},
	{"cancelled requests", testCancelledRequests, false},
	{"no goroutine leak", testNoGoroutineLeak, false},
	{"revocation while a feed is down", testRevocationWhileFeedDown, false},
	{"revocation while a process is cut off", testRevocationWhileCutOff, false},
	{"failed audit writes", testFailedAuditWrites, false},
	{"failed last-used writes", testFailedLastUsedWrites, false},
	{"settings unavailable at start", testSettingsUnavailableAtStart, false},
	{"table locked in the database", testTableLocked, true},
	{"connections killed by the database", testConnectionsKilled, true},
}

func testEveryCallFails(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	ctx := context.Background()
	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	wrong := Forge(apikey.Server, e.server.ID(), 'w')

	e.fs.Fail(errInjected)
	for name, key := range map[string]string{"valid uncached": e.server.Reveal(), "unknown": unknown.Reveal(), "wrong secret": wrong} {
		assert.Equal(t, unavailable, do(ctx, e.h, key), "%s key during the outage: never 401", name)
	}
	calls := e.fs.Calls(faultstore.OpKey)
	assert.Equal(t, outcome{401, "malformed_key", ""}, do(ctx, e.h, "server-junk"), "junk needs no storage")
	assert.Equal(t, calls, e.fs.Calls(faultstore.OpKey), "junk made a storage call")
	e.fs.Up()
	assert.Equal(t, ok200, do(ctx, e.h, e.server.Reveal()), "the outage was not cached")
	assert.Equal(t, outcome{401, "invalid_key", ""}, do(ctx, e.h, unknown.Reveal()))
	t.Logf("fault table | every call fails with an error | uncached valid, unknown and wrong-secret keys: %s; junk: 401 malformed_key without a storage call | next request after Up: 200", unavailable)
}

func testDownThenUp(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	ctx := context.Background()
	uncached := e.create()
	require.Equal(t, ok200, do(ctx, e.h, e.server.Reveal())) // cached for a minute

	e.fs.Down()
	e.clock.Advance(47 * time.Second) // an entry lives 4/5 of the TTL or more (48 s), never more than the TTL
	assert.Equal(t, ok200, do(ctx, e.h, e.server.Reveal()), "a cached key is served for its cache lifetime")
	assert.Equal(t, unavailable, do(ctx, e.h, uncached.Reveal()), "an uncached key")
	e.clock.Advance(13 * time.Second)
	assert.Equal(t, unavailable, do(ctx, e.h, e.server.Reveal()), "nothing is served past the cache TTL")

	e.fs.Up()
	assert.Equal(t, ok200, do(ctx, e.h, e.server.Reveal()))
	assert.Equal(t, ok200, do(ctx, e.h, uncached.Reveal()))
	t.Logf("fault table | database down | cached key: 200 for its cache lifetime (47 s ok, 60 s 503); uncached key: %s | next request after Up: 200", unavailable)
}

func testSlowCalls(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	const deadline = 50 * time.Millisecond
	const slack = 500 * time.Millisecond
	e.fs.Delay(10*time.Second, faultstore.OpKey)

	// Concurrent requests with one slow key, and some with others: each
	// gives up at its own deadline.
	keys := []string{e.server.Reveal(), e.client.Reveal(), e.create().Reveal()}
	var wg sync.WaitGroup
	outcomes := make([]outcome, 24)
	took := make([]time.Duration, len(outcomes))
	for i := range outcomes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			outcomes[i] = do(ctx, e.h, keys[i%len(keys)])
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, o := range outcomes {
		assert.Equal(t, busy, o)
		assert.Less(t, took[i], deadline+slack, "request %d took %s", i, took[i])
	}

	e.fs.Delay(20*time.Millisecond, faultstore.OpKey)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	assert.Equal(t, ok200, do(ctx, e.h, e.server.Reveal()), "slow within the deadline")
	e.fs.Up()
	assert.Equal(t, ok200, do(context.Background(), e.h, e.client.Reveal()))
	t.Logf("fault table | key lookups take 10 s, requests have a %s deadline | %s after at most %s each | 200 (a 20 ms lookup within the deadline is served)", deadline, busy, maxDuration(took).Round(time.Millisecond))
}

func maxDuration(d []time.Duration) time.Duration {
	var m time.Duration
	for _, x := range d {
		m = max(m, x)
	}
	return m
}

func testCancelledRequests(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Equal(t, busy, do(ctx, e.h, e.server.Reveal()), "a request cancelled before it starts")

	// Cancelled while its key lookup hangs.
	e.fs.Delay(10*time.Second, faultstore.OpKey)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	assert.Equal(t, busy, do(ctx, e.h, e.server.Reveal()), "cancelled while the lookup hangs")
	took := time.Since(start)
	assert.Less(t, took, time.Second)

	e.fs.Up()
	assert.Equal(t, ok200, do(context.Background(), e.h, e.server.Reveal()), "nothing of the cancelled requests was cached")
	t.Logf("fault table | request cancelled (before it starts; after 20 ms of a hanging lookup) | %s, in %s | next request: 200", busy, took.Round(time.Millisecond))
}

func testNoGoroutineLeak(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	require.Equal(t, ok200, do(context.Background(), e.h, e.client.Reveal())) // the pools have connections
	before := runtime.NumGoroutine()

	v := e.validator(e.fs, func(o *middleware.Options) { o.LastUsedInterval = 5 * time.Millisecond })
	h := v.Handler(OKHandler)
	extra := []string{e.create().Reveal(), e.create().Reveal(), e.server.Reveal()}
	faults := []func(){
		func() { e.fs.Delay(10*time.Second, faultstore.OpKey, faultstore.OpChanges) },
		func() { e.fs.Down() },
		func() { e.fs.Fail(errInjected, faultstore.OpKey, faultstore.OpRecordLastUsed) },
		func() { e.fs.Up() },
	}
	for _, fault := range faults {
		fault()
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(5+i%20)*time.Millisecond)
				defer cancel()
				if i%4 == 0 {
					cancel()
				}
				do(ctx, h, extra[i%len(extra)])
			})
		}
		wg.Wait()
		time.Sleep(20 * time.Millisecond) // let the feed and last-used loops meet the fault
	}
	require.NoError(t, v.Close())

	// Poll by hand: testify's Eventually runs its condition in a goroutine.
	after := runtime.NumGoroutine()
	for deadline := time.Now().Add(3 * time.Second); after > before && time.Now().Before(deadline); after = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	if after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: before %d, after %d\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
	t.Logf("fault table | 128 requests under hanging, failing and cancelled calls, then Close | goroutines before %d, after %d | no leak", before, after)
}

// cachedInProcessB creates a key and a second process B (its own handle on
// the data, behind its own fault store, and its own validator) that has the
// key cached.
func (e *faultEnv) cachedInProcessB() (apikey.Key, *faultstore.Store, http.Handler) {
	key := e.create()
	fsB := faultstore.New(e.peer())
	hB := e.validator(fsB, nil).Handler(OKHandler)
	require.Equal(e.t, ok200, do(context.Background(), hB, key.Reveal()))
	return key, fsB, hB
}

// testRevocationWhileFeedDown: process B caches a key, B's change feed goes
// down, the key is revoked through process A; once B's feed is back, B
// refuses the key within the feed bound.
func testRevocationWhileFeedDown(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	key, fsB, hB := e.cachedInProcessB()

	fsB.Down(faultstore.OpChanges, faultstore.OpRevision)
	_, err := e.m.Revoke(context.Background(), Owner, key.ID())
	require.NoError(t, err)
	assert.Equal(t, outcome{401, "revoked_key", ""}, do(context.Background(), e.h, key.Reveal()), "A evicts at once")
	time.Sleep(50 * time.Millisecond) // five feed polls fail
	during := do(context.Background(), hB, key.Reveal())
	require.Positive(t, fsB.Calls(faultstore.OpChanges))

	fsB.Up()
	up := time.Now()
	var seen outcome
	for time.Since(up) < 2*time.Second {
		if seen = do(context.Background(), hB, key.Reveal()); seen.status != http.StatusOK {
			break
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(up)
	assert.Equal(t, outcome{401, "revoked_key", ""}, seen)
	assert.Less(t, took, time.Second, "B refuses the key within the feed bound (FeedInterval 10 ms)")
	t.Logf("fault table | B's change feed down while A revokes a key B cached | B, feed down: %s (cached until the feed returns or its cache TTL ends) | B refuses it %s after Up: %s", during, took.Round(time.Millisecond), seen)
}

// testRevocationWhileCutOff: B is cut off from the store entirely while the
// key is revoked; B never serves it past its cache TTL, and refuses it
// once the store is back.
func testRevocationWhileCutOff(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	key, fsB, hB := e.cachedInProcessB()

	fsB.Down()
	_, err := e.m.Revoke(context.Background(), Owner, key.ID())
	require.NoError(t, err)
	e.clock.Advance(time.Minute)
	assert.Equal(t, unavailable, do(context.Background(), hB, key.Reveal()), "not served past the cache TTL")
	fsB.Up()
	assert.Equal(t, outcome{401, "revoked_key", ""}, do(context.Background(), hB, key.Reveal()))
	t.Logf("fault table | B cut off from the store while A revokes a key B cached | B: cached up to its TTL, then %s | B after Up: 401 revoked_key", unavailable)
}

// testFailedAuditWrites: a failed write is an error to the caller, and
// neither the change nor its audit event is stored; the retried call
// stores both, once.
func testFailedAuditWrites(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	ctx := context.Background()
	key := e.create()
	require.Equal(t, ok200, do(ctx, e.h, key.Reveal()))

	e.fs.Fail(errInjected, faultstore.OpApply)
	_, err := e.m.Revoke(ctx, Owner, key.ID())
	require.ErrorIs(t, err, errInjected, "Revoke reports the failed write")
	_, err = e.m.Create(ctx, Owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	require.ErrorIs(t, err, errInjected, "Create reports the failed write")
	_, err = e.m.SetAllowedOrigins(ctx, Owner, apikey.Production, []string{"https://app.example.com"})
	require.ErrorIs(t, err, errInjected, "SetAllowedOrigins reports the failed write")

	e.fs.Fail(nil, faultstore.OpApply)
	e.fs.Delay(10*time.Second, faultstore.OpApply)
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	_, err = e.m.Revoke(short, Owner, key.ID())
	require.ErrorIs(t, err, context.DeadlineExceeded, "a write past the deadline is an error")

	assert.Zero(t, e.auditEvents(key.ID(), apikey.ActionRevoke), "no audit event for a failed write")
	assert.Zero(t, e.reported(key.ID(), apikey.ActionRevoke), "OnEvent not called for a failed write")
	rec, err := e.inner.Key(ctx, key.ID())
	require.NoError(t, err)
	assert.True(t, rec.RevokedAt.IsZero(), "the failed revocation changed nothing")
	keys, err := e.inner.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: apikey.MaxPageSize})
	require.NoError(t, err)
	assert.Len(t, keys, 3, "the failed Create stored nothing")
	assert.Equal(t, ok200, do(ctx, e.h, key.Reveal()), "the key was not revoked")

	e.fs.Up()
	_, err = e.m.Revoke(ctx, Owner, key.ID())
	require.NoError(t, err)
	assert.Equal(t, 1, e.auditEvents(key.ID(), apikey.ActionRevoke))
	assert.Equal(t, 1, e.reported(key.ID(), apikey.ActionRevoke))
	assert.Equal(t, outcome{401, "revoked_key", ""}, do(ctx, e.h, key.Reveal()))
	t.Logf("fault table | writes fail (error; or slower than the caller's deadline) | Revoke, Create, SetAllowedOrigins return the error; nothing stored, no audit event, no OnEvent | the retried Revoke stores the change and exactly one audit event")
}

// testFailedLastUsedWrites: last-used times that cannot be written are kept
// and written once the store is back.
func testFailedLastUsedWrites(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, func(o *middleware.Options) { o.LastUsedInterval = 5 * time.Millisecond })
	e.fs.Fail(errInjected, faultstore.OpRecordLastUsed)
	require.Equal(t, ok200, do(context.Background(), e.h, e.server.Reveal()))
	for deadline := time.Now().Add(2 * time.Second); e.backgroundErrors() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	require.Positive(t, e.backgroundErrors(), "the failed write is reported")
	e.fs.Up()
	var last time.Time
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		rec, err := e.inner.Key(context.Background(), e.server.ID())
		require.NoError(t, err)
		if last = rec.LastUsedAt; !last.IsZero() {
			break
		}
	}
	assert.True(t, last.Equal(e.clock.Now()), "last used %s, want %s", last, e.clock.Now())
	t.Logf("fault table | last-used writes fail | requests 200; OnBackgroundError reports it; the times are kept | written at the next flush after Up")
}

func testSettingsUnavailableAtStart(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	_, err := e.m.SetAllowedOrigins(context.Background(), Owner, apikey.Production, []string{"https://app.example.com"})
	require.NoError(t, err)
	fs := faultstore.New(e.inner)
	fs.Down(faultstore.OpEnvironments)
	v := e.validator(fs, nil)
	h := v.Require(AnyType)(OKHandler)
	browser := []string{"Origin", "https://app.example.com"}
	assert.Equal(t, unavailable, do(context.Background(), h, e.client.Reveal(), browser...), "origins unknown: fail closed")
	assert.Equal(t, unavailable, do(context.Background(), h, e.client.Reveal()),
		"no Origin: the account's suspension is not known yet: fail closed")
	fs.Up()
	var seen outcome
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if seen = do(context.Background(), h, e.client.Reveal(), browser...); seen.status == http.StatusOK {
			break
		}
	}
	assert.Equal(t, ok200, seen)
	assert.Equal(t, ok200, do(context.Background(), h, e.client.Reveal()))
	t.Logf("fault table | settings cannot be loaded at start | every key: %s | 200 once the settings load in the background", unavailable)
}

// postgresDB returns the database of the PostgreSQL backend.
func (e *faultEnv) postgresDB() *sql.DB {
	// An interface rather than *sqlstore.Store, so that this package (and
	// package middleware's tests) need not compile the SQL backend.
	s, ok := e.inner.(interface{ DB() *sql.DB })
	if !ok {
		e.t.Fatal("a PostgreSQL-only fault ran on a backend without a *sql.DB")
	}
	return s.DB()
}

// testTableLocked: a real slow database, not an injected delay: another
// transaction holds an exclusive lock on the keys table, so key lookups
// block in the server until the request's deadline cancels them.
func testTableLocked(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	db := e.postgresDB()
	tx, err := db.BeginTx(context.Background(), nil)
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = tx.Exec("LOCK TABLE keystile_keys IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	const deadline = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	seen := do(ctx, e.h, e.server.Reveal())
	took := time.Since(start)
	assert.Equal(t, busy, seen)
	assert.Less(t, took, deadline+time.Second)

	require.NoError(t, tx.Rollback())
	assert.Equal(t, ok200, do(context.Background(), e.h, e.server.Reveal()))
	t.Logf("fault table | PostgreSQL: keys table locked by another transaction, %s deadline | %s in %s (the query is cancelled) | 200 once the lock is released", deadline, seen, took.Round(time.Millisecond))
}

// testConnectionsKilled: the server terminates every connection of the
// pool, as a restart or failover would. Requests in the meantime get 200
// or 503, never 401, and the pool recovers by itself.
func testConnectionsKilled(t *testing.T, b Backend) {
	e := newFaultEnv(t, b, nil)
	db := e.postgresDB()
	keys := []apikey.Key{e.server, e.client, e.create(), e.create()}
	var next atomic.Int64
	cold := func() outcome { // a request that must reach the database
		k := keys[int(next.Add(1))%len(keys)]
		e.v.Invalidate(apikey.Event{Action: apikey.ActionSetScopes, KeyID: k.ID()})
		return do(context.Background(), e.h, k.Reveal())
	}
	// Open four connections at once and put them back: the pool then holds
	// at least three for the database to kill.
	conns := make([]*sql.Conn, 4)
	for i := range conns {
		c, err := db.Conn(context.Background())
		require.NoError(t, err)
		require.NoError(t, c.PingContext(context.Background()))
		conns[i] = c
	}
	for _, c := range conns {
		require.NoError(t, c.Close())
	}
	require.Equal(t, ok200, cold())

	var killed int
	require.NoError(t, db.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = current_setting('application_name') AND pid <> pg_backend_pid()`).Scan(&killed))
	require.GreaterOrEqual(t, killed, 3)

	// A killed connection is found dead only when it is next used (pgx
	// pings only connections idle for over a second), and database/sql
	// reuses the most recent idle connection first: a dead one can sit in
	// the pool for a while. So the rule is not "the next request works" but:
	// each killed connection costs at most one request, a 503 (never a
	// 401), and then the pool serves again. Rounds of concurrent requests
	// draw on several connections at once, the dead ones included.
	seen := map[string]int{}
	failed, goodRounds := 0, 0
	for round := 0; goodRounds < 3; round++ {
		require.Less(t, round, 50, "the pool did not recover: %v", seen)
		outcomes := make([]outcome, 4)
		var wg sync.WaitGroup
		for i := range outcomes {
			wg.Go(func() { outcomes[i] = cold() })
		}
		wg.Wait()
		goodRounds++
		for _, o := range outcomes {
			seen[o.String()]++
			if o != ok200 {
				require.Equal(t, unavailable, o, "during the failover")
				failed++
				goodRounds = 0
			}
		}
	}
	assert.LessOrEqual(t, failed, killed, "a killed connection cost more than one request")
	t.Logf("fault table | PostgreSQL terminates the pool's %d other connections | cold requests until 3 rounds of 4 succeed: %v | 200 (database/sql reconnects); %d requests failed, at most one per killed connection", killed, seen, failed)
}
