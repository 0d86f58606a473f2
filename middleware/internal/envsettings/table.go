// Package envsettings holds, in memory, what the middleware needs of every
// account's environments' settings: the allowed origins of publishable keys
// and whether the account is closed or suspended.
package envsettings

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/keystile/keystile/apikey"
)

const (
	PageSize   = 1000 // the Limit of each Store.Environments call of a Load
	MaxPending = 1024 // queued environments; beyond, a full load is due instead
	maxReports = 10   // invalid allowed-origin lists one Load reports one by one
)

// Store is what the table reads: apikey.Store satisfies it.
type Store interface {
	Settings(ctx context.Context, account, environment string) (apikey.Settings, error)
	Environments(ctx context.Context, q apikey.EnvironmentQuery) ([]apikey.Settings, error)
}

// key names an account's environment.
type key struct{ account, environment string }

// State is whether an environment's keys may be used at all.
type State uint8

// The states of an environment, Closed winning over Suspended.
const (
	Open      State = iota // its keys work
	Suspended              // the account is suspended: its keys are refused until it resumes
	Closed                 // the account is closed: its keys are refused for good
	Unknown                // the table has not loaded yet: its keys cannot be checked
)

// settings is what the table keeps of one environment; never modified once
// in the table.
type settings struct {
	origins apikey.OriginSet // empty for an environment that is not Open
	state   State
	missing bool // the store has none: not queued again until Reload
}

// Table is the settings of every account's environments, safe for
// concurrent use. Load and Reload are serialised, so that a read that began
// before a change never replaces one that began after it.
type Table struct {
	store   Store
	report  func(error)
	pending *queue
	write   sync.Mutex   // serialises Load and Reload; taken before mu
	mu      sync.RWMutex // guards c
	c       contents     // c.envs is nil until the first Load succeeds
	// refused is c.refused, read without the lock, plus one until the
	// first Load succeeds: State takes no lock only while every
	// environment is known to be Open.
	refused atomic.Int64
}

// New returns an empty table that reads store. report, if not nil, receives
// the invalid allowed-origin entries (by position, never by content) while
// Load or Reload runs.
func New(store Store, report func(error)) *Table {
	if report == nil {
		report = func(error) {}
	}
	pending := &queue{envs: map[key]struct{}{}, ready: make(chan struct{}, 1)}
	t := &Table{store: store, report: report, pending: pending}
	t.refused.Store(1) // not loaded
	return t
}

// Len returns the number of environments in the table.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.c.size
}

// Has reports whether the table holds an environment's settings.
func (t *Table) Has(account, environment string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.c.envs[key{account, environment}]
	return ok && !s.missing
}

// Allows reports whether an environment allows origin for its publishable
// keys, and whether the table knows its settings (if not, queued to load).
func (t *Table) Allows(account, environment, origin string) (allowed, known bool) {
	k := key{account, environment}
	t.mu.RLock()
	s, ok := t.c.envs[k]
	loaded := t.c.envs != nil
	t.mu.RUnlock()
	switch {
	case !loaded:
		t.pending.addFull()
		return false, false
	case !ok:
		t.pending.add(k)
		return false, false
	case s.missing:
		return false, false
	}
	return s.origins.Allows(origin), true
}

// State returns the state in which the table holds an environment: Open
// unless it holds it closed or suspended, and Unknown (with a full load
// queued) until the first Load succeeds, so that a suspended account's
// keys are never admitted for want of its settings. It takes no lock
// while every environment is known to be Open.
func (t *Table) State(account, environment string) State {
	if t.refused.Load() == 0 {
		return Open
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.c.envs == nil {
		t.pending.addFull()
		return Unknown
	}
	return t.c.envs[key{account, environment}].state
}

// AnyAllows reports whether some open environment of any account allows
// the request origin origin (a CORS preflight carries no key).
func (t *Table) AnyAllows(origin string) bool {
	r, ok := apikey.ParseRequestOrigin(origin)
	if !ok {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.c.index.allows(r)
}

// Queue queues a reload of an environment's settings for ReloadPending.
func (t *Table) Queue(account, environment string) { t.pending.add(key{account, environment}) }

// QueueAll queues a full load for ReloadPending.
func (t *Table) QueueAll() { t.pending.addFull() }

// Pending signals that reloads are queued for ReloadPending.
func (t *Table) Pending() <-chan struct{} { return t.pending.ready }

// Load reads every environment's settings, a page at a time, and replaces
// the table with them. On an error it queues a full load.
func (t *Table) Load(ctx context.Context) error {
	t.write.Lock()
	defer t.write.Unlock()
	t.pending.take() // this load covers them
	// Parsed pages first, then maps made at their final size.
	type entry struct {
		k key
		s settings
	}
	var pages [][]entry
	envs, entries, invalid := 0, 0, 0
	after := apikey.EnvironmentPosition{}
	for {
		page, err := t.store.Environments(ctx, apikey.EnvironmentQuery{After: after, Limit: PageSize})
		if err != nil {
			t.pending.addFull()
			return fmt.Errorf("envsettings: loading environment settings: %w", err)
		}
		parsed := make([]entry, len(page))
		for i, st := range page {
			s, err := parse(st)
			if err != nil {
				if invalid++; invalid <= maxReports {
					t.report(err)
				}
			}
			parsed[i] = entry{key{st.Account, st.Environment}, s}
			entries += s.origins.Len()
		}
		pages = append(pages, parsed)
		envs += len(page)
		if len(page) < PageSize {
			break
		}
		last := page[len(page)-1]
		after = apikey.EnvironmentPosition{Account: last.Account, Environment: last.Environment}
	}
	if invalid > maxReports {
		t.report(fmt.Errorf("envsettings: %d more environments have allowed-origin entries that are ignored", invalid-maxReports))
	}
	fresh := contents{envs: make(map[key]settings, envs), index: make(originIndex, entries)}
	for _, page := range pages {
		for _, e := range page {
			fresh.put(e.k, e.s)
		}
	}
	t.mu.Lock()
	t.c = fresh
	t.refused.Store(int64(fresh.refused))
	t.mu.Unlock()
	return nil
}

// Reload reads one environment's settings and replaces its entry. On an
// error it queues the environment (before the first Load, a full load).
func (t *Table) Reload(ctx context.Context, account, environment string) error {
	k := key{account, environment}
	t.write.Lock()
	defer t.write.Unlock()
	if t.c.envs == nil { // not loaded yet; t.c changes only under t.write
		t.pending.addFull()
		return nil
	}
	st, err := t.store.Settings(ctx, account, environment)
	var s settings
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		s.missing = true
	case err != nil:
		t.pending.add(k)
		return fmt.Errorf("envsettings: loading the settings of account %s, environment %s: %w", account, environment, err)
	default:
		if s, err = parse(st); err != nil {
			t.report(err)
		}
	}
	t.mu.Lock()
	t.c.put(k, s)
	t.refused.Store(int64(t.c.refused))
	t.mu.Unlock()
	return nil
}

// contents is one version of the table's entries with their counts.
type contents struct {
	envs    map[key]settings
	index   originIndex
	size    int // environments, missing ones aside
	refused int // environments that are not Open
}

// put replaces the entry of k, and its counts.
func (c *contents) put(k key, s settings) {
	if old, ok := c.envs[k]; ok {
		c.count(old, -1)
	}
	c.envs[k] = s
	c.count(s, 1)
}

// count adds (d = 1) or removes (d = -1) the counts of an entry.
func (c *contents) count(s settings, d int) {
	c.index.add(s, int32(d))
	if !s.missing {
		c.size += d
	}
	if s.state != Open {
		c.refused += d
	}
}

// ReloadPending does the queued reloads. Failed reloads stay queued.
func (t *Table) ReloadPending(ctx context.Context) error {
	envs, full := t.pending.take()
	if full {
		return t.Load(ctx)
	}
	var first error
	failed := 0
	for k := range envs {
		err := ctx.Err()
		if err != nil {
			t.pending.add(k)
		} else {
			err = t.Reload(ctx, k.account, k.environment)
		}
		if err != nil {
			first = cmp.Or(first, err)
			failed++
		}
	}
	if failed > 1 {
		return fmt.Errorf("%w (and %d more failed reloads)", first, failed-1)
	}
	return first
}

// parse returns the table entry of st, without the allowed-origin entries
// that do not parse or exceed apikey.MaxOrigins, named by position in err.
func parse(st apikey.Settings) (settings, error) {
	switch { // its keys are refused: no origin is needed
	case !st.ClosedAt.IsZero():
		return settings{state: Closed}, nil
	case !st.SuspendedAt.IsZero():
		return settings{state: Suspended}, nil
	}
	if len(st.AllowedOrigins) == 0 {
		return settings{}, nil
	}
	origins := make([]apikey.Origin, 0, min(len(st.AllowedOrigins), apikey.MaxOrigins))
	var errs []error
	for i, entry := range st.AllowedOrigins {
		if len(origins) == apikey.MaxOrigins {
			errs = append(errs, fmt.Errorf("entries %d to %d: %w", i+1, len(st.AllowedOrigins), apikey.ErrTooManyOrigins))
			break
		}
		o, err := apikey.ParseOrigin(entry)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", i+1, err))
			continue
		}
		origins = append(origins, o)
	}
	s := settings{origins: apikey.NewOriginSet(origins...)}
	if len(errs) > 0 {
		return s, fmt.Errorf("envsettings: account %s, environment %s: allowed-origin entries ignored: %w", st.Account, st.Environment, errors.Join(errs...))
	}
	return s, nil
}

// originIndex counts, for each allowed-origin entry, the Open environments
// that allow it, so that a preflight looks up only its origin's candidates.
type originIndex map[apikey.Origin]int32

// add counts the entries of s (d = 1), or removes them (d = -1).
func (x originIndex) add(s settings, d int32) {
	if s.state != Open || s.missing {
		return
	}
	for o := range s.origins.All() {
		if d > 0 {
			x[o]++ // one map operation: a full load adds every entry
		} else if n := x[o] - 1; n > 0 {
			x[o] = n
		} else {
			delete(x, o)
		}
	}
}

// allows reports whether some counted entry admits r.
func (x originIndex) allows(r apikey.RequestOrigin) bool {
	if len(x) == 0 {
		return false
	}
	for o := range r.Candidates() {
		if x[o] > 0 && o.Admits(r) {
			return true
		}
	}
	return false
}

// queue holds the environments waiting for a reload, and whether a full
// load is due. Adding never blocks.
type queue struct {
	mu    sync.Mutex
	envs  map[key]struct{}
	full  bool
	ready chan struct{}
}

// add queues one environment; at MaxPending it asks for a full load.
func (q *queue) add(k key) {
	q.mu.Lock()
	if _, ok := q.envs[k]; !ok && len(q.envs) >= MaxPending {
		q.full = true
	} else {
		q.envs[k] = struct{}{}
	}
	q.mu.Unlock()
	q.signal()
}

// addFull asks for a full load.
func (q *queue) addFull() {
	q.mu.Lock()
	q.full = true
	q.mu.Unlock()
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns and forgets what is queued.
func (q *queue) take() (envs map[key]struct{}, full bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	envs, full = q.envs, q.full
	q.envs, q.full = map[key]struct{}{}, false
	return envs, full
}
