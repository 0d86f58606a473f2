// Package memory is an in-memory keystile store for tests, examples and
// single-process services that can afford to lose keys on restart. It
// implements apikey.Store and every optional capability of package storage.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// feedRetention is how many change-feed entries the store keeps.
const feedRetention = 1 << 16

// envRef names an account's environment.
type envRef struct{ account, environment string }

func compareEnvRefs(a, b envRef) int {
	return cmp.Or(strings.Compare(a.account, b.account), strings.Compare(a.environment, b.environment))
}

// defaultSlot is the place of a default key: account, environment and type.
type defaultSlot struct {
	envRef
	typ apikey.KeyType
}

// Store is a thread-safe in-memory store. The zero value is not usable; call
// New. Every lookup is by index, as the storage contract asks: a default key
// by (account, environment, type), a page of keys or environments by
// binary search in a sorted list.
type Store struct {
	mu            sync.RWMutex
	keys          map[string]apikey.Record
	defaults      map[defaultSlot]string     // default key id by slot
	byEnv         map[envRef][]apikey.Record // each environment's keys in creation order (ids and times only)
	settings      map[envRef]apikey.Settings
	envs          []envRef         // every environment, sorted
	events        []apikey.Event   // every account's, oldest first
	accountEvents map[string][]int // each account's events: indexes into events; Seq n at [n-1]
	feed          []storage.Changed
	revision      int64
	quotas        map[string]quotaBalance // by lineage id (Record.LineageID), for lineages with a quota
	marks         map[timedMark]struct{}  // the (key, kind, expiry) of each time-based event (stream.go)
	deliveries    map[string]*delivery    // by endpoint (delivery.go)
	endpoints     endpointLog             // tenants' webhook endpoints (endpoint.go)
	usage         usageLog
	callers       callerLog   // (callers.go)
	instances     instanceLog // (instances.go)
	ix            keyIndexes  // owners, expiries, dead keys (owner.go)
}

var (
	_ apikey.Store             = (*Store)(nil)
	_ storage.ChangeFeed       = (*Store)(nil)
	_ storage.LastUsedRecorder = (*Store)(nil)
	_ storage.AuditLog         = (*Store)(nil)
	_ storage.QuotaLedger      = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{
		keys:          map[string]apikey.Record{},
		defaults:      map[defaultSlot]string{},
		byEnv:         map[envRef][]apikey.Record{},
		settings:      map[envRef]apikey.Settings{},
		accountEvents: map[string][]int{},
		quotas:        map[string]quotaBalance{},
		marks:         map[timedMark]struct{}{},
		deliveries:    map[string]*delivery{},
		endpoints:     endpointLog{byID: map[string]apikey.WebhookEndpoint{}, byAccount: map[string][]string{}},
	}
}

// Key implements apikey.Store.
func (s *Store) Key(ctx context.Context, id string) (apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Record{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.keys[id]
	if !ok {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return r.Clone(), nil
}

// DefaultKey implements apikey.Store.
func (s *Store) DefaultKey(ctx context.Context, account, environment string, t apikey.KeyType) (apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Record{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.defaults[defaultSlot{envRef{account, environment}, t}]
	if !ok {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return s.keys[id].Clone(), nil
}

// compareKeyOrder orders keys by creation time, then id.
func compareKeyOrder(a apikey.Record, b apikey.KeyPosition) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
}

// Keys implements apikey.Store.
func (s *Store) Keys(ctx context.Context, q apikey.KeyQuery) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.byEnv[envRef{q.Account, q.Environment}]
	i := 0
	if q.After != (apikey.KeyPosition{}) {
		var found bool
		i, found = slices.BinarySearchFunc(list, q.After, compareKeyOrder)
		if found {
			i++
		}
	}
	out := []apikey.Record{}
	for ; i < len(list) && len(out) < q.Limit; i++ {
		out = append(out, s.keys[list[i].ID].Clone())
	}
	return out, nil
}

// Settings implements apikey.Store.
func (s *Store) Settings(ctx context.Context, account, environment string) (apikey.Settings, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Settings{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.settings[envRef{account, environment}]
	if !ok {
		return apikey.Settings{}, apikey.ErrNotFound
	}
	return st.Clone(), nil
}

// Environments implements apikey.Store.
func (s *Store) Environments(ctx context.Context, q apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	after := envRef{q.After.Account, q.After.Environment}
	if q.Account != "" && after.account < q.Account {
		after = envRef{q.Account, ""}
	}
	i, found := slices.BinarySearchFunc(s.envs, after, compareEnvRefs)
	if found {
		i++
	}
	out := []apikey.Settings{}
	for ; i < len(s.envs) && len(out) < q.Limit; i++ {
		if q.Account != "" && s.envs[i].account != q.Account {
			break
		}
		out = append(out, s.settings[s.envs[i]].Clone())
	}
	return out, nil
}

// Accounts implements apikey.Store.
func (s *Store) Accounts(ctx context.Context, after string, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// The first environment of an account after "after": past every
	// environment name of "after" itself.
	i, _ := slices.BinarySearchFunc(s.envs, envRef{after, "\xff"}, compareEnvRefs)
	out := []string{}
	for ; i < len(s.envs) && len(out) < limit; i++ {
		if a := s.envs[i].account; a > after && (len(out) == 0 || out[len(out)-1] != a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Apply implements apikey.Store.
func (s *Store) Apply(ctx context.Context, c apikey.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(c); err != nil {
		return err
	}
	for _, r := range c.Update {
		s.revision++
		r = r.Clone()
		r.Revision = s.revision
		old := s.keys[r.ID]
		if old.LastUsedAt.After(r.LastUsedAt) {
			r.LastUsedAt = old.LastUsedAt
		}
		if old.Default && s.defaults[slotOf(old)] == old.ID {
			delete(s.defaults, slotOf(old)) // unless the change gave the slot to another key already
		}
		s.put(r)
	}
	for _, r := range c.Insert {
		s.revision++
		r = r.Clone()
		r.Revision = s.revision
		s.put(r)
		ref := envRef{r.Account, r.Environment}
		list := s.byEnv[ref]
		i, _ := slices.BinarySearchFunc(list, apikey.KeyPosition{CreatedAt: r.CreatedAt, ID: r.ID}, compareKeyOrder)
		s.byEnv[ref] = slices.Insert(list, i, apikey.Record{ID: r.ID, CreatedAt: r.CreatedAt})
	}
	for _, st := range c.Settings {
		s.revision++
		st = st.Clone()
		st.Revision = s.revision
		ref := envRef{st.Account, st.Environment}
		if _, ok := s.settings[ref]; !ok {
			i, _ := slices.BinarySearchFunc(s.envs, ref, compareEnvRefs)
			s.envs = slices.Insert(s.envs, i, ref)
		}
		s.settings[ref] = st
		s.publish(st.Account, st.Environment, "")
	}
	for _, e := range c.Events {
		s.appendEvent(e)
	}
	return nil
}

// appendEvent numbers e in its account's log and appends it to the log of
// every account, whose index (plus one) is its cursor in the event stream;
// s.mu is held.
func (s *Store) appendEvent(e apikey.Event) {
	mine := s.accountEvents[e.Account]
	e.Seq = int64(len(mine) + 1)
	s.accountEvents[e.Account] = append(mine, len(s.events))
	s.events = append(s.events, e)
}

// put stores r, its quota balance and its feed entry; s.mu is held.
func (s *Store) put(r apikey.Record) {
	old, had := s.keys[r.ID]
	s.keys[r.ID] = r
	s.reindex(old, had, r)
	s.putQuota(r)
	if r.Default {
		s.defaults[slotOf(r)] = r.ID
	}
	s.publish(r.Account, r.Environment, r.ID)
}

func slotOf(r apikey.Record) defaultSlot {
	return defaultSlot{envRef{r.Account, r.Environment}, r.Type}
}

// check validates a change against the current state; s.mu is held.
func (s *Store) check(c apikey.Change) error {
	if c.OpenAccount != "" {
		if err := s.refusing(c.OpenAccount); err != nil {
			return err
		}
	}
	after := map[string]apikey.Record{} // records the change writes, by id
	for _, r := range c.Update {
		cur, ok := s.keys[r.ID]
		if !ok {
			return fmt.Errorf("%w: key %s", apikey.ErrNotFound, r.Prefix())
		}
		if cur.Revision != r.Revision {
			return fmt.Errorf("%w: key %s changed since it was read", apikey.ErrConflict, r.Prefix())
		}
		after[r.ID] = r
	}
	for _, r := range c.Insert {
		if _, dup := after[r.ID]; dup {
			return fmt.Errorf("%w: key id %s written twice", apikey.ErrConflict, r.Prefix())
		}
		if _, ok := s.keys[r.ID]; ok {
			return fmt.Errorf("%w: key id %s exists", apikey.ErrConflict, r.Prefix())
		}
		after[r.ID] = r
	}
	for _, st := range c.Settings {
		cur, ok := s.settings[envRef{st.Account, st.Environment}]
		if (st.Revision == 0 && ok) || (st.Revision != 0 && (!ok || cur.Revision != st.Revision)) {
			return fmt.Errorf("%w: settings of %s changed since they were read", apikey.ErrConflict, st.Environment)
		}
	}
	// At most one default key per account, environment and type after the
	// change: count the change's defaults and the stored ones it keeps.
	defaults := map[defaultSlot]int{}
	for _, r := range after {
		if r.Default {
			defaults[slotOf(r)]++
		}
	}
	for slot, n := range defaults {
		if id, ok := s.defaults[slot]; ok {
			if _, replaced := after[id]; !replaced {
				n++
			}
		}
		if n > 1 {
			return fmt.Errorf("%w: %s already has a default %s key", apikey.ErrConflict, slot.environment, slot.typ)
		}
	}
	return nil
}

// refusing returns ErrAccountClosed if an environment of account is
// closed, else ErrAccountSuspended if one is suspended; s.mu is held.
func (s *Store) refusing(account string) error {
	suspended := false
	i, _ := slices.BinarySearchFunc(s.envs, envRef{account: account}, compareEnvRefs)
	for ; i < len(s.envs) && s.envs[i].account == account; i++ {
		st := s.settings[s.envs[i]]
		if !st.ClosedAt.IsZero() {
			return fmt.Errorf("%w: %s", apikey.ErrAccountClosed, account)
		}
		suspended = suspended || !st.SuspendedAt.IsZero()
	}
	if suspended {
		return fmt.Errorf("%w: %s", apikey.ErrAccountSuspended, account)
	}
	return nil
}

// publish appends a feed entry at the current revision; s.mu is held.
func (s *Store) publish(account, environment, keyID string) {
	if len(s.feed) == feedRetention {
		s.feed = slices.Delete(s.feed, 0, feedRetention/4)
	}
	s.feed = append(s.feed, storage.Changed{Revision: s.revision, Account: account, Environment: environment, KeyID: keyID})
}

// Changes implements storage.ChangeFeed. Each key entry carries a copy of
// the key's current record.
func (s *Store) Changes(ctx context.Context, since int64, limit int) ([]storage.Changed, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, since, err
	}
	if limit <= 0 {
		limit = 1000
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	pruned := len(s.feed) > 0 && s.feed[0].Revision > since+1 && since < s.revision
	if pruned || since > s.revision {
		return nil, s.revision, storage.ErrFeedGap
	}
	i, _ := slices.BinarySearchFunc(s.feed, since+1, func(c storage.Changed, rev int64) int {
		return cmp.Compare(c.Revision, rev)
	})
	out := slices.Clone(s.feed[i:min(len(s.feed), i+limit)])
	for j, c := range out {
		if r, ok := s.keys[c.KeyID]; ok && c.KeyID != "" {
			r = r.Clone()
			out[j].Key = &r
		}
	}
	next := since
	if len(out) > 0 {
		next = out[len(out)-1].Revision
	}
	return out, next, nil
}

// Revision implements storage.ChangeFeed.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.revision, nil
}

// RecordLastUsed implements storage.LastUsedRecorder.
func (s *Store) RecordLastUsed(ctx context.Context, used map[string]time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range used {
		if r, ok := s.keys[id]; ok && t.After(r.LastUsedAt) {
			r.LastUsedAt = t
			s.keys[id] = r
		}
	}
	return nil
}

// Events implements storage.AuditLog. It scans the log from the newest
// event: an in-memory store holds few.
func (s *Store) Events(ctx context.Context, q storage.EventQuery) ([]apikey.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Account == "" && q.Before > 0 {
		return nil, fmt.Errorf("%w: paging every account's events needs an account", apikey.ErrInvalidCursor)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.Event{}
	if q.Account == "" {
		for i := len(s.events) - 1; i >= 0 && (q.Limit <= 0 || len(out) < q.Limit); i-- {
			if e := s.events[i]; q.Environment == "" || e.Environment == q.Environment {
				out = append(out, e)
			}
		}
		return out, nil
	}
	mine := s.accountEvents[q.Account]
	i := len(mine) - 1
	if q.Before > 0 {
		i = min(i, int(q.Before)-2) // Seq n is at n-1
	}
	for ; i >= 0 && (q.Limit <= 0 || len(out) < q.Limit); i-- {
		if e := s.events[mine[i]]; q.Environment == "" || e.Environment == q.Environment {
			out = append(out, e)
		}
	}
	return out, nil
}
