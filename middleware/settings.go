package middleware

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/keystile/keystile/apikey"
)

// The environments' settings (allowed origins, and whether the account was
// closed) are held in a table of every account's environments, which the
// request path reads without a lock while the background loop and
// Invalidate update it:
//
//   - at start, and after a gap in the change feed, the table is loaded in
//     full, a page of settingsPage environments at a time, and swapped in;
//   - a change-feed entry or an Invalidate event for one environment's
//     settings reads that environment's settings alone (one Store.Settings
//     call) and replaces its entry.
//
// The table is split into settingsShards maps, each replaced whole (copy
// on write) when one of its entries changes: a lookup is an atomic load and
// a map read, with no lock and no allocation; an update copies one shard.

// settingsPage is how many environments one Store.Environments call of a
// full load asks for.
const settingsPage = 1000

// settingsShards is the number of shards of the table (a power of two, at
// most 256: shardOf returns a uint8).
const settingsShards = 256

// maxPendingEnvs bounds the environments waiting for a reload; beyond it a
// full reload is done instead.
const maxPendingEnvs = 1024

// envKey names an account's environment.
type envKey struct{ account, environment string }

// envSettings is what the request path needs of one environment's
// settings. It is immutable once in the table.
type envSettings struct {
	// origins are the parsed allowed origins: none admits no browser
	// origin, apikey.AnyOrigin every one.
	origins []apikey.Origin
	// patterns are the distinct normalised entries of origins, as the
	// preflight index counts them.
	patterns []string
	// closed reports that the account was closed: its keys are refused.
	closed bool
	// missing is a tombstone: the store has no settings for the
	// environment (see reloadEnv).
	missing bool
}

func (s *envSettings) allows(origin string) bool {
	for _, allowed := range s.origins {
		if allowed.Match(origin) {
			return true
		}
	}
	return false
}

// settingsTable is one full load of the settings, updated entry by entry
// afterwards.
type settingsTable struct {
	seed   maphash.Seed
	shards [settingsShards]atomic.Pointer[map[envKey]*envSettings]
	index  originIndex
	size   atomic.Int64 // environments known (tombstones aside)
}

func (t *settingsTable) shard(k envKey) *atomic.Pointer[map[envKey]*envSettings] {
	return &t.shards[t.shardOf(k)]
}

// shardOf spreads the environments over the shards, those of one account
// too (an account with many environments is no hot spot).
func (t *settingsTable) shardOf(k envKey) uint8 {
	h := maphash.String(t.seed, k.account) ^ maphash.String(t.seed, k.environment)*0x9e3779b97f4a7c15
	return uint8(h & (settingsShards - 1))
}

// get returns the settings of an environment, or nil.
func (t *settingsTable) get(k envKey) *envSettings {
	m := t.shard(k).Load()
	if m == nil {
		return nil
	}
	return (*m)[k]
}

// has reports whether the table holds an environment's settings.
func (t *settingsTable) has(k envKey) bool {
	s := t.get(k)
	return s != nil && !s.missing
}

// put replaces the entry of k (nil removes it). Writers are serialised by
// settingsState.mu.
func (t *settingsTable) put(k envKey, s *envSettings) {
	p := t.shard(k)
	var m map[envKey]*envSettings
	if cur := p.Load(); cur != nil {
		m = maps.Clone(*cur)
	} else {
		m = map[envKey]*envSettings{}
	}
	old := m[k]
	if s == nil {
		delete(m, k)
	} else {
		m[k] = s
	}
	p.Store(&m)
	t.index.replace(k.environment, old, s)
	t.size.Add(int64(known(s) - known(old)))
}

func known(s *envSettings) int {
	if s == nil || s.missing {
		return 0
	}
	return 1
}

// settingsState holds every account's environments' settings: the table,
// the preflight index, the full and per-environment loads, and the queue
// of reloads for the follower.
type settingsState struct {
	store  apikey.Store
	report func(error)     // Options.OnBackgroundError
	ctx    context.Context // ends at Close

	table atomic.Pointer[settingsTable] // nil until the first full load
	mu    sync.Mutex                    // serialises loads and updates of the table

	// anyClosed reports that some environment was seen closed: until then
	// no request looks its environment up (checkClosed).
	anyClosed atomic.Bool

	pendingMu sync.Mutex
	pending   map[envKey]struct{} // environments to reload
	full      bool                // a full reload was asked for
	signal    chan struct{}       // wakes the background loop; capacity 1
}

func newSettings(ctx context.Context, store apikey.Store, report func(error)) *settingsState {
	return &settingsState{store: store, report: report, ctx: ctx, pending: map[envKey]struct{}{}, signal: make(chan struct{}, 1)}
}

// lookup returns the settings of an account's environment, or nil when
// they are not loaded (or the store has none).
func (s *settingsState) lookup(account, environment string) *envSettings {
	t := s.table.Load()
	if t == nil {
		return nil
	}
	if e := t.get(envKey{account, environment}); e != nil && !e.missing {
		return e
	}
	return nil
}

// checkClosed refuses a key whose account was closed: CloseAccount marks
// every environment's settings closed before it revokes the keys, so a key
// created in a race with the close, which the close did not revoke, is
// refused too.
func (ss *settingsState) checkClosed(id *Identity) error {
	if !ss.anyClosed.Load() {
		return nil
	}
	if s := ss.lookup(id.Account, id.Environment); s != nil && s.closed {
		return refuse(ErrRevokedKey, "the key's account was closed")
	}
	return nil
}

// parseSettings fills es, the table entry of st, appending its origins and
// patterns to the backing arrays *origins and *patterns (a full load
// allocates them once per page). An allowed-origin entry that does not
// parse is skipped and reported; the environment admits only the entries
// that parse. parsed, if not nil, remembers the entries parsed during one
// full load, so that an entry shared by many environments (a localhost
// origin) is parsed once.
func (ss *settingsState) parseSettings(st apikey.Settings, es *envSettings, origins *[]apikey.Origin, patterns *[]string, parsed map[string]apikey.Origin) {
	es.closed = !st.ClosedAt.IsZero()
	if es.closed {
		return // its keys are refused: no origin is needed
	}
	o0, p0 := len(*origins), len(*patterns)
	for _, entry := range st.AllowedOrigins {
		o, ok := parsed[entry]
		if !ok {
			var err error
			if o, err = apikey.ParseOrigin(entry); err != nil {
				ss.report(fmt.Errorf("middleware: account %s, environment %s: %w", st.Account, st.Environment, err))
				continue
			}
			if parsed != nil {
				parsed[entry] = o
			}
		}
		*origins = append(*origins, o)
		pattern := o.String()
		if pattern == entry {
			pattern = entry // keep the store's string, not a copy
		}
		if !contains((*patterns)[p0:], pattern) {
			*patterns = append(*patterns, pattern)
		}
	}
	// Full slice expressions: appending to one never writes into the next.
	es.origins = (*origins)[o0:len(*origins):len(*origins)]
	es.patterns = (*patterns)[p0:len(*patterns):len(*patterns)]
}

// newEnvSettings returns the table entry of st, allocated on its own.
func (ss *settingsState) newEnvSettings(st apikey.Settings) *envSettings {
	es := &envSettings{}
	origins := make([]apikey.Origin, 0, len(st.AllowedOrigins))
	patterns := make([]string, 0, len(st.AllowedOrigins))
	ss.parseSettings(st, es, &origins, &patterns, nil)
	return es
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// loadSettings reads every account's environments' settings, a page at a
// time, and replaces the table. Memory: each page's entries, origins and
// patterns are allocated in three arrays, and the shards and the preflight
// index are allocated at their final size once every page is read.
func (ss *settingsState) loadSettings(ctx context.Context) error {
	// One load or update at a time: a read that began before a change must
	// not replace the table of a read that began after it.
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.takePending() // this load covers them
	t := &settingsTable{seed: maphash.MakeSeed()}
	// Each page's entries, kept until the shards can be sized: a slice per
	// page, so that nothing is copied as the list grows.
	type loaded struct {
		k     envKey
		s     *envSettings
		shard uint8
	}
	var pagesRead [][]loaded
	count := 0
	var perShard [settingsShards]int
	patterns := 0
	parsed := map[string]apikey.Origin{}
	closed := false
	done := make(chan struct{})
	defer close(done) // ends the reader if this load ends early
	pages, errc := ss.pageEnvironments(ctx, done)
	for page := range pages {
		entries := 0
		for _, st := range page {
			entries += len(st.AllowedOrigins)
		}
		ess := make([]envSettings, len(page))
		originArr := make([]apikey.Origin, 0, entries)
		patternArr := make([]string, 0, entries)
		read := make([]loaded, len(page))
		for i, st := range page {
			k := envKey{st.Account, st.Environment}
			ss.parseSettings(st, &ess[i], &originArr, &patternArr, parsed)
			shard := t.shardOf(k)
			read[i] = loaded{k, &ess[i], shard}
			perShard[shard]++
			patterns += indexed(&ess[i])
			closed = closed || ess[i].closed
		}
		pagesRead = append(pagesRead, read)
		count += len(read)
		if len(parsed) > 4*settingsPage {
			clear(parsed) // a cache of shared entries, not of every entry
		}
	}
	if err := <-errc; err != nil {
		ss.markFullReload() // retried at the next poll or request that needs it
		return fmt.Errorf("middleware: loading environment settings: %w", err)
	}
	var shards [settingsShards]map[envKey]*envSettings
	for i, n := range perShard {
		if n > 0 {
			shards[i] = make(map[envKey]*envSettings, n)
		}
	}
	t.index.grow(patterns)
	for _, read := range pagesRead {
		for _, e := range read {
			shards[e.shard][e.k] = e.s
			t.index.add(e.k.environment, e.s)
		}
	}
	for i := range shards {
		if shards[i] != nil {
			t.shards[i].Store(&shards[i])
		}
	}
	t.size.Store(int64(count))
	ss.table.Store(t)
	if closed {
		ss.anyClosed.Store(true)
	}
	return nil
}

// pageEnvironments reads every account's environments' settings, a page
// at a time, in a goroutine of its own, so that the store's next page is
// read while the last one is parsed. It closes pages after the last page
// or an error, then sends the error (or nil) on errc. It stops early when
// done is closed.
func (ss *settingsState) pageEnvironments(ctx context.Context, done <-chan struct{}) (<-chan []apikey.Settings, <-chan error) {
	pages, errc := make(chan []apikey.Settings, 1), make(chan error, 1)
	go func() {
		var err error
		defer func() {
			close(pages)
			errc <- err
		}()
		after := apikey.EnvironmentPosition{}
		for {
			var page []apikey.Settings
			page, err = ss.store.Environments(ctx, apikey.EnvironmentQuery{After: after, Limit: settingsPage})
			if err != nil {
				return
			}
			select {
			case pages <- page:
			case <-done:
				return
			}
			if len(page) < settingsPage {
				return
			}
			last := page[len(page)-1]
			after = apikey.EnvironmentPosition{Account: last.Account, Environment: last.Environment}
		}
	}()
	return pages, errc
}

// reloadEnv reads one environment's settings (one Store.Settings call) and
// updates its entry. Without a table yet, it asks for a full load instead.
func (ss *settingsState) reloadEnv(ctx context.Context, k envKey) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	t := ss.table.Load()
	if t == nil {
		ss.requestFullReload()
		return nil
	}
	st, err := ss.store.Settings(ctx, k.account, k.environment)
	var es *envSettings
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		// A key of an environment without settings: remember that, so that
		// its requests do not read the store again until the change feed
		// or Invalidate reports the environment.
		es = &envSettings{missing: true}
	case err != nil:
		return fmt.Errorf("middleware: loading the settings of account %s, environment %s: %w", k.account, k.environment, err)
	default:
		es = ss.newEnvSettings(st)
	}
	t.put(k, es)
	if es.closed {
		ss.anyClosed.Store(true)
	}
	return nil
}

// reloadEnvNow reloads one environment's settings before it returns, so
// that a change made through this process's Manager holds for the next
// request. If the store does not answer within startupTimeout, the
// background loop retries.
func (ss *settingsState) reloadEnvNow(account, environment string) {
	ctx, cancel := context.WithTimeout(ss.ctx, startupTimeout)
	defer cancel()
	k := envKey{account, environment}
	if err := ss.reloadEnv(ctx, k); err != nil {
		ss.report(err)
		ss.requestReload(k)
	}
}

// requestReload asks the background loop to reload one environment's
// settings soon. It never blocks.
func (ss *settingsState) requestReload(k envKey) {
	ss.addPending(k)
	ss.wake()
}

// addPending notes that an environment's settings are to be reloaded, for
// the background loop to do at its next wake-up (at the latest the next
// change-feed poll).
func (ss *settingsState) addPending(k envKey) {
	ss.pendingMu.Lock()
	defer ss.pendingMu.Unlock()
	if len(ss.pending) < maxPendingEnvs {
		ss.pending[k] = struct{}{}
	} else {
		ss.full = true
	}
}

// requestFullReload asks the background loop to reload every environment's
// settings soon. It never blocks.
func (ss *settingsState) requestFullReload() {
	ss.markFullReload()
	ss.wake()
}

// markFullReload notes that a full reload is due, for the background loop
// to do at its next wake-up.
func (ss *settingsState) markFullReload() {
	ss.pendingMu.Lock()
	ss.full = true
	ss.pendingMu.Unlock()
}

func (ss *settingsState) wake() {
	select {
	case ss.signal <- struct{}{}:
	default:
	}
}

// takePending returns the environments waiting for a reload and whether a
// full reload was asked for, and forgets both.
func (ss *settingsState) takePending() (map[envKey]struct{}, bool) {
	ss.pendingMu.Lock()
	defer ss.pendingMu.Unlock()
	pending, full := ss.pending, ss.full
	if len(pending) == 0 {
		pending = nil
	} else {
		ss.pending = map[envKey]struct{}{}
	}
	ss.full = false
	return pending, full
}

// reloadPending does the reloads asked for: in full, or one environment at
// a time. Failed reloads are reported and asked for again, to be retried at
// the next wake-up (a change-feed poll, or another request).
func (ss *settingsState) reloadPending(ctx context.Context) {
	pending, full := ss.takePending()
	if full {
		ss.reloadSettings(ctx)
		return
	}
	var failed []envKey
	for k := range pending {
		if err := ss.reloadEnv(ctx, k); err != nil {
			if ctx.Err() == nil {
				ss.report(err)
			}
			failed = append(failed, k)
		}
	}
	for _, k := range failed {
		ss.addPending(k)
	}
}

// reloadSettings does a full load, reporting a failure (the load asks for
// another).
func (ss *settingsState) reloadSettings(ctx context.Context) {
	if err := ss.loadSettings(ctx); err != nil && ctx.Err() == nil {
		ss.report(err)
	}
}
