package envsettings

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a memory store and a table over it, with the errors the
// table reported.
type fixture struct {
	store    *memory.Store
	table    *Table
	mu       sync.Mutex
	reported []error
}

func newFixture(t testing.TB, envs ...apikey.Settings) *fixture {
	t.Helper()
	f := &fixture{store: memory.New()}
	f.table = New(f.store, func(err error) {
		f.mu.Lock()
		f.reported = append(f.reported, err)
		f.mu.Unlock()
	})
	f.put(t, envs...)
	return f
}

// put writes settings to the store, inserting or replacing them.
func (f *fixture) put(t testing.TB, envs ...apikey.Settings) {
	t.Helper()
	for i := range envs {
		envs[i].UpdatedAt = now
		if cur, err := f.store.Settings(context.Background(), envs[i].Account, envs[i].Environment); err == nil {
			envs[i].Revision = cur.Revision
		}
	}
	for len(envs) > 0 {
		n := min(len(envs), 999)
		require.NoError(t, f.store.Apply(context.Background(), apikey.Change{Settings: envs[:n]}))
		envs = envs[n:]
	}
}

func (f *fixture) reports() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.reported...)
}

func env(account, environment string, origins ...string) apikey.Settings {
	return apikey.Settings{Account: account, Environment: environment, AllowedOrigins: origins}
}

func closedEnv(account, environment string, origins ...string) apikey.Settings {
	s := env(account, environment, origins...)
	s.ClosedAt = now
	return s
}

func suspendedEnv(account, environment string, origins ...string) apikey.Settings {
	s := env(account, environment, origins...)
	s.SuspendedAt = now
	return s
}

// pending reports whether the table signalled queued reloads, and
// consumes the signal.
func pending(t *Table) bool {
	select {
	case <-t.Pending():
		return true
	default:
		return false
	}
}

// TestLookups checks Allows, Closed and Has after a load, table by table.
func TestLookups(t *testing.T) {
	f := newFixture(t,
		env("a", "production", "https://app.a.example"),
		env("a", "staging", "https://*.preview.a.example", "http://localhost:3000"),
		env("a", "development", apikey.AnyOrigin),
		env("a", "empty"),
		closedEnv("b", "production", "https://app.b.example"),
		env("b", "staging", "https://*.amazonaws.com", "https://app.b.example"), // saved before the rule
		suspendedEnv("d", "production", "https://app.d.example"),
		func() apikey.Settings { s := closedEnv("d", "staging"); s.SuspendedAt = now; return s }(),
	)
	require.False(t, f.table.Loaded())
	require.NoError(t, f.table.Load(context.Background()))
	require.True(t, f.table.Loaded())
	assert.Equal(t, 8, f.table.Len())

	const closed, suspended = Closed, Suspended
	tests := []struct {
		account, environment, origin string
		allowed, known               bool
		state                        State
	}{
		{"a", "production", "https://app.a.example", true, true, Open},
		{"a", "production", "https://APP.a.example:443", true, true, Open},
		{"a", "production", "http://app.a.example", false, true, Open},
		{"a", "production", "https://evil.example", false, true, Open},
		{"a", "production", "null", false, true, Open},
		{"a", "staging", "https://pr-1.preview.a.example", true, true, Open},
		{"a", "staging", "https://preview.a.example", false, true, Open},
		{"a", "staging", "http://localhost:3000", true, true, Open},
		{"a", "staging", "http://localhost:3001", false, true, Open},
		{"a", "development", "https://anything.example", true, true, Open},
		{"a", "development", "null", false, true, Open},
		{"a", "empty", "https://app.a.example", false, true, Open},
		{"b", "production", "https://app.b.example", false, true, closed},
		{"b", "staging", "https://attacker-bucket.s3.amazonaws.com", false, true, Open},
		{"b", "staging", "https://app.b.example", true, true, Open},
		{"a", "unknown", "https://app.a.example", false, false, Open},
		{"c", "production", "https://app.a.example", false, false, Open},
		{"d", "production", "https://app.d.example", false, true, suspended},
		{"d", "staging", "https://app.d.example", false, true, closed},
	}
	for _, tt := range tests {
		t.Run(tt.account+"/"+tt.environment+" "+tt.origin, func(t *testing.T) {
			allowed, known := f.table.Allows(tt.account, tt.environment, tt.origin)
			assert.Equal(t, tt.allowed, allowed, "allowed")
			assert.Equal(t, tt.known, known, "known")
			assert.Equal(t, tt.state, f.table.State(tt.account, tt.environment), "state")
			assert.Equal(t, tt.known, f.table.Has(tt.account, tt.environment), "has")
		})
	}

	reports := f.reports()
	require.Len(t, reports, 1)
	assert.ErrorIs(t, reports[0], apikey.ErrInvalidOrigin)
	assert.Contains(t, reports[0].Error(), "account b, environment staging")
	assert.Contains(t, reports[0].Error(), "entry 1")
}

// TestAnyAllows checks the preflight index after a load and after
// replacements: an entry counts while one open environment lists it.
func TestAnyAllows(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t,
		env("a", "production", "https://shared.example", "https://a.example", "https://a.example"),
		env("b", "production", "https://shared.example", "https://*.b.example"),
		closedEnv("c", "production", "https://c.example"),
		env("d", "production", "https://*.amazonaws.com"), // saved before the rule: ignored
	)
	require.NoError(t, f.table.Load(ctx))
	steps := []struct {
		name    string
		change  func(t *testing.T)
		allowed []string
		refused []string
	}{
		{"loaded", func(*testing.T) {},
			[]string{"https://shared.example", "https://a.example", "https://x.b.example", "https://y.x.b.example"},
			[]string{"https://b.example", "https://c.example", "https://attacker.s3.amazonaws.com", "https://evil.example", "null"}},
		{"a drops shared", func(t *testing.T) {
			f.put(t, env("a", "production", "https://a.example"))
			require.NoError(t, f.table.Reload(ctx, "a", "production"))
		}, []string{"https://shared.example", "https://a.example"}, nil},
		{"b drops shared", func(t *testing.T) {
			f.put(t, env("b", "production", "https://*.b.example"))
			require.NoError(t, f.table.Reload(ctx, "b", "production"))
		}, []string{"https://a.example", "https://x.b.example"}, []string{"https://shared.example"}},
		{"a lists its entry twice, then once", func(t *testing.T) {
			f.put(t, env("a", "production", "https://a.example", "https://a.example", "https://a2.example"))
			require.NoError(t, f.table.Reload(ctx, "a", "production"))
			f.put(t, env("a", "production", "https://a2.example"))
			require.NoError(t, f.table.Reload(ctx, "a", "production"))
		}, []string{"https://a2.example"}, []string{"https://a.example"}},
		{"b is suspended", func(t *testing.T) {
			f.put(t, suspendedEnv("b", "production", "https://*.b.example"))
			require.NoError(t, f.table.Reload(ctx, "b", "production"))
		}, nil, []string{"https://x.b.example"}},
		{"b resumes", func(t *testing.T) {
			f.put(t, env("b", "production", "https://*.b.example"))
			require.NoError(t, f.table.Reload(ctx, "b", "production"))
		}, []string{"https://x.b.example"}, nil},
		{"b closes", func(t *testing.T) {
			f.put(t, closedEnv("b", "production", "https://*.b.example"))
			require.NoError(t, f.table.Reload(ctx, "b", "production"))
		}, nil, []string{"https://x.b.example"}},
		{"a allows any origin", func(t *testing.T) {
			f.put(t, env("a", "production", apikey.AnyOrigin))
			require.NoError(t, f.table.Reload(ctx, "a", "production"))
		}, []string{"https://evil.example", "https://x.b.example"}, []string{"null", "https://evil.example/"}},
		{"a is reloaded from scratch", func(t *testing.T) {
			f.put(t, env("a", "production"))
			require.NoError(t, f.table.Load(ctx))
		}, nil, []string{"https://evil.example", "https://a2.example"}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.change(t)
			for _, o := range step.allowed {
				assert.True(t, f.table.AnyAllows(o), o)
			}
			for _, o := range step.refused {
				assert.False(t, f.table.AnyAllows(o), o)
			}
		})
	}
}

// TestIndexCountsAreExact checks the index's counts after many
// replacements: they equal the counts of a fresh load.
func TestIndexCountsAreExact(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	lists := [][]string{
		{"https://a.example"}, {"https://a.example", "https://*.b.example"}, {}, {apikey.AnyOrigin, "https://a.example"},
		{"https://*.b.example", "https://*.b.example"},
	}
	for i := range 20 {
		f.put(t, env(fmt.Sprint("acct-", i%4), "production", lists[i%len(lists)]...))
	}
	require.NoError(t, f.table.Load(ctx))
	for i := range 200 {
		s := env(fmt.Sprint("acct-", i%7), "production", lists[(i*3)%len(lists)]...)
		if i%11 == 0 {
			s.ClosedAt = now
		}
		if i%13 == 0 {
			s.SuspendedAt = now
		}
		f.put(t, s)
		require.NoError(t, f.table.Reload(ctx, s.Account, s.Environment))
	}
	replaced := f.table.c
	replacedRefused := f.table.refused.Load()
	require.NoError(t, f.table.Load(ctx))
	assert.Equal(t, f.table.c.index, replaced.index)
	assert.Equal(t, f.table.c.size, replaced.size)
	assert.Equal(t, f.table.c.refused, replaced.refused)
	assert.Equal(t, f.table.refused.Load(), replacedRefused)
}

// TestStates checks the count of closed and suspended environments behind
// State's lock-free path, through suspension, resumption and closing.
func TestStates(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, env("a", "production"), env("a", "staging"))
	require.NoError(t, f.table.Load(ctx))
	assert.Zero(t, f.table.refused.Load())
	assert.Equal(t, Open, f.table.State("a", "production"))

	steps := []struct {
		name        string
		put         []apikey.Settings
		reload      []string
		production  State
		staging     State
		refusedSeen int64
	}{
		{"production suspended", []apikey.Settings{suspendedEnv("a", "production"), suspendedEnv("a", "staging")}, []string{"production"}, Suspended, Open, 1},
		{"staging reloaded twice", nil, []string{"staging", "staging"}, Suspended, Suspended, 2},
		{"resumed", []apikey.Settings{env("a", "production"), env("a", "staging")}, []string{"production", "staging"}, Open, Open, 0},
		{"closed", []apikey.Settings{closedEnv("a", "production"), closedEnv("a", "staging")}, []string{"production"}, Closed, Open, 1},
		{"closed while suspended", []apikey.Settings{func() apikey.Settings { s := closedEnv("a", "staging"); s.SuspendedAt = now; return s }()}, []string{"staging"}, Closed, Closed, 2},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if len(step.put) > 0 {
				f.put(t, step.put...)
			}
			for _, e := range step.reload {
				require.NoError(t, f.table.Reload(ctx, "a", e))
			}
			assert.Equal(t, step.production, f.table.State("a", "production"))
			assert.Equal(t, step.staging, f.table.State("a", "staging"))
			assert.Equal(t, step.refusedSeen, f.table.refused.Load())
			assert.Equal(t, Open, f.table.State("b", "production"))
		})
	}
	allowed, known := f.table.Allows("a", "production", "https://a.example")
	assert.False(t, allowed)
	assert.True(t, known)
}

// TestNotLoaded checks the table before its first load: nothing is known,
// a lookup queues a full load, and Reload reads nothing.
func TestNotLoaded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, env("a", "production", "https://a.example"))
	assert.False(t, f.table.Loaded())
	assert.False(t, pending(f.table))
	require.NoError(t, f.table.Reload(ctx, "a", "production"))
	assert.False(t, f.table.Has("a", "production"))
	assert.True(t, pending(f.table))

	allowed, known := f.table.Allows("a", "production", "https://a.example")
	assert.False(t, allowed)
	assert.False(t, known)
	assert.True(t, pending(f.table))
	assert.False(t, f.table.AnyAllows("https://a.example"))
	assert.Equal(t, Unknown, f.table.State("a", "production"), "a suspension is not known before the first load")

	require.NoError(t, f.table.ReloadPending(ctx))
	assert.Equal(t, Open, f.table.State("a", "production"))
	assert.True(t, f.table.Loaded())
	allowed, known = f.table.Allows("a", "production", "https://a.example")
	assert.True(t, allowed)
	assert.True(t, known)
}

// TestUnknownEnvironment checks that a lookup of an environment the table
// does not hold queues it once; a reload reads it (one Store.Settings
// call), and an environment the store does not have is remembered as
// missing: not queued again until Reload reads it.
func TestUnknownEnvironment(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	counted := faultstore.New(f.store)
	f.table = New(counted, nil)
	require.NoError(t, f.table.Load(ctx))
	f.put(t, env("a", "production", "https://a.example"))

	_, known := f.table.Allows("a", "production", "https://a.example")
	assert.False(t, known)
	_, known = f.table.Allows("b", "production", "https://a.example")
	assert.False(t, known)
	assert.True(t, pending(f.table))
	require.NoError(t, f.table.ReloadPending(ctx))
	assert.EqualValues(t, 2, counted.Calls(faultstore.OpSettings))

	allowed, known := f.table.Allows("a", "production", "https://a.example")
	assert.True(t, allowed)
	assert.True(t, known)
	assert.Equal(t, 1, f.table.Len())
	_, known = f.table.Allows("b", "production", "https://a.example")
	assert.False(t, known, "missing from the store")
	assert.False(t, pending(f.table), "a missing environment is not queued again")
	assert.False(t, f.table.Has("b", "production"))

	f.put(t, env("b", "production", "https://a.example"))
	require.NoError(t, f.table.Reload(ctx, "b", "production"))
	_, known = f.table.Allows("b", "production", "https://a.example")
	assert.True(t, known)
	assert.Equal(t, 2, f.table.Len())
}

// TestQueueBound checks that beyond MaxPending queued environments a full
// load is due instead.
func TestQueueBound(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, env("a", "production"))
	counted := faultstore.New(f.store)
	f.table = New(counted, nil)
	require.NoError(t, f.table.Load(ctx))
	for i := range MaxPending {
		f.table.Allows("a", fmt.Sprint("env-", i), "https://a.example")
	}
	n, full := f.table.pending.len()
	assert.Equal(t, MaxPending, n)
	assert.False(t, full)
	f.table.Allows("a", "one-more", "https://a.example")
	n, full = f.table.pending.len()
	assert.Equal(t, MaxPending, n)
	assert.True(t, full)

	require.NoError(t, f.table.ReloadPending(ctx))
	assert.EqualValues(t, 0, counted.Calls(faultstore.OpSettings), "a full load reads no single environment")
	assert.EqualValues(t, 2, counted.Calls(faultstore.OpEnvironments))
	n, full = f.table.pending.len()
	assert.Zero(t, n)
	assert.False(t, full)
}

// TestStoreErrors checks that errors of the store are returned, wrapped,
// leave the table as it was, and queue a retry that ReloadPending does.
func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, env("a", "production", "https://a.example"))
	fs := faultstore.New(f.store)
	table := New(fs, nil)

	fs.Down()
	err := table.Load(ctx)
	require.ErrorIs(t, err, faultstore.ErrDown)
	assert.Contains(t, err.Error(), "envsettings: ")
	assert.False(t, table.Loaded())
	assert.True(t, pending(table))
	require.ErrorIs(t, table.ReloadPending(ctx), faultstore.ErrDown)
	_, full := table.pending.len()
	assert.True(t, full, "still due")

	fs.Up()
	require.NoError(t, table.ReloadPending(ctx))
	require.True(t, table.Loaded())

	f.put(t, env("a", "production", "https://a2.example"), env("a", "staging", "https://s.example"))
	fs.Down(faultstore.OpSettings)
	err = table.Reload(ctx, "a", "production")
	require.ErrorIs(t, err, faultstore.ErrDown)
	assert.Contains(t, err.Error(), "account a, environment production")
	require.Error(t, table.Reload(ctx, "a", "staging"))
	allowed, known := table.Allows("a", "production", "https://a.example")
	assert.True(t, allowed, "unchanged")
	assert.True(t, known)
	n, full := table.pending.len()
	assert.Equal(t, 2, n)
	assert.False(t, full)
	err = table.ReloadPending(ctx)
	require.ErrorIs(t, err, faultstore.ErrDown)
	assert.Contains(t, err.Error(), "1 more failed")
	n, _ = table.pending.len()
	assert.Equal(t, 2, n, "still queued")

	fs.Up()
	require.NoError(t, table.ReloadPending(ctx))
	allowed, _ = table.Allows("a", "production", "https://a2.example")
	assert.True(t, allowed)
	allowed, _ = table.Allows("a", "staging", "https://s.example")
	assert.True(t, allowed)
	n, _ = table.pending.len()
	assert.Zero(t, n)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	table.pending.add(key{"a", "production"})
	require.ErrorIs(t, table.ReloadPending(cancelled), context.Canceled)
	n, _ = table.pending.len()
	assert.Equal(t, 1, n, "kept for the next run")
}

// TestInvalidOrigins checks stored lists that are invalid today: the
// invalid entries and those beyond apikey.MaxOrigins are ignored and
// reported by position, never by content; the rest apply.
func TestInvalidOrigins(t *testing.T) {
	ctx := context.Background()
	long := make([]string, apikey.MaxOrigins+10)
	for i := range long {
		long[i] = fmt.Sprintf("https://app-%d.example.com", i)
	}
	f := newFixture(t,
		env("a", "production", "https://*.amazonaws.com", "https://a.example", "https://secret-looking-value.windows.net/path"),
		env("a", "staging", long...),
	)
	require.NoError(t, f.table.Load(ctx))
	for _, tt := range []struct {
		environment, origin string
		want                bool
	}{
		{"production", "https://a.example", true},
		{"production", "https://attacker-bucket.s3.amazonaws.com", false},
		{"production", "https://console.amazonaws.com", false},
		{"staging", "https://app-0.example.com", true},
		{"staging", fmt.Sprintf("https://app-%d.example.com", apikey.MaxOrigins-1), true},
		{"staging", fmt.Sprintf("https://app-%d.example.com", apikey.MaxOrigins), false},
	} {
		allowed, known := f.table.Allows("a", tt.environment, tt.origin)
		assert.True(t, known)
		assert.Equal(t, tt.want, allowed, tt.origin)
		assert.Equal(t, tt.want, f.table.AnyAllows(tt.origin), tt.origin)
	}
	reports := f.reports()
	require.Len(t, reports, 2)
	assert.ErrorIs(t, reports[0], apikey.ErrInvalidOrigin)
	assert.Contains(t, reports[0].Error(), "entry 1")
	assert.Contains(t, reports[0].Error(), "entry 3")
	assert.NotContains(t, reports[0].Error(), "secret-looking-value")
	assert.ErrorIs(t, reports[1], apikey.ErrTooManyOrigins)
	assert.Contains(t, reports[1].Error(), fmt.Sprintf("entries %d to %d", apikey.MaxOrigins+1, len(long)))

	// A load with many invalid lists reports a bounded number of errors.
	var bad []apikey.Settings
	for i := range 3 * maxReports {
		bad = append(bad, env(fmt.Sprint("bad-", i), "production", "https://*.amazonaws.com"))
	}
	f.put(t, bad...)
	f.mu.Lock()
	f.reported = nil
	f.mu.Unlock()
	require.NoError(t, f.table.Load(ctx))
	reports = f.reports()
	require.Len(t, reports, maxReports+1)
	assert.Contains(t, reports[maxReports].Error(), fmt.Sprintf("%d more environments", 3*maxReports+2-maxReports))
}

// TestLookupsDoNotAllocate checks the request path's lookups: no
// allocation, but one (the public suffix look-up's) when a wildcard admits
// the origin.
func TestLookupsDoNotAllocate(t *testing.T) {
	f := newFixture(t, env("a", "production", "https://a.example", "https://*.b.example"), closedEnv("c", "production"))
	require.NoError(t, f.table.Load(context.Background()))
	assert.Zero(t, testing.AllocsPerRun(100, func() { f.table.Allows("a", "production", "https://a.example") }))
	assert.LessOrEqual(t, testing.AllocsPerRun(100, func() { f.table.Allows("a", "production", "https://x.b.example") }), 1.0)
	assert.Zero(t, testing.AllocsPerRun(100, func() { f.table.Allows("a", "production", "https://evil.example") }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { f.table.State("a", "production") }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { f.table.AnyAllows("https://evil.x.example") }))
}

// len returns the number of queued environments and whether a full load is
// due.
func (q *queue) len() (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.envs), q.full
}

// Loaded reports whether a full load has succeeded.
func (t *Table) Loaded() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.c.envs != nil
}
