// Package jsonstore is an example of a custom keystile backend: a store that
// keeps every key, setting and audit event of every account in one JSON
// file. It is written to be read, as a starting point for your own store;
// it passes the conformance suite in package storage/storetest.
//
// The whole state lives in memory, with the indexes that the storage
// contract asks for: the default key of an (account, environment, type) is
// a map lookup, and a page of keys or environments is a binary search in a
// sorted list, so reads cost the same however many keys there are. Writes
// do not: every successful Apply rewrites the whole file and rebuilds the
// indexes, which is fine for a few thousand keys and a modest audit log,
// not for more. A store for millions of keys keeps them in a database and
// lets its indexes answer (see storage/sqlstore).
package jsonstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// Store keeps keystile's data in one JSON file. It implements apikey.Store,
// storage.AuditLog and storage.LastUsedRecorder. Its methods are safe for
// concurrent use by one process. It keeps no file open: there is nothing to
// close.
//
// Store is for one process only. It does not implement storage.ChangeFeed
// and never re-reads the file, so other processes opening the same file
// neither see its changes nor keep theirs: the last writer wins.
type Store struct {
	path string
	mu   sync.RWMutex // guards data
	data *state
}

var (
	_ apikey.Store             = (*Store)(nil)
	_ storage.AuditLog         = (*Store)(nil)
	_ storage.LastUsedRecorder = (*Store)(nil)
)

// envRef names an account's environment.
type envRef struct{ account, environment string }

// slot is the place of a default key.
type slot struct {
	envRef
	typ apikey.KeyType
}

// state is everything the store holds, and its indexes. A state that
// readers may see is never modified: Apply changes a copy and swaps it in
// once the file is written. Records in the maps are never modified in place
// either, so a shallow copy of the maps is enough.
type state struct {
	revision int64                      // the last revision handed out
	keys     map[string]apikey.Record   // by key id
	settings map[envRef]apikey.Settings // by account and environment
	events   []apikey.Event             // oldest first; Seq counts each account's

	// Indexes over keys and settings, rebuilt by index after every change.
	defaults map[slot]string     // the default key's id, by slot
	byEnv    map[envRef][]string // each environment's key ids, in creation order
	envs     []envRef            // every environment, by account, then name
}

func newState() *state {
	return &state{keys: map[string]apikey.Record{}, settings: map[envRef]apikey.Settings{}}
}

// clone returns a copy of st to change; index rebuilds its indexes.
func (st *state) clone() *state {
	return &state{
		revision: st.revision,
		keys:     maps.Clone(st.keys),
		settings: maps.Clone(st.settings),
		events:   slices.Clone(st.events),
		envs:     st.envs, // read by Apply's checks; index replaces it
	}
}

// index rebuilds the indexes from keys and settings. It fails with
// ErrConflict if an account's environment has two default keys of one
// type: the one rule of apikey.Change that looks across records.
func (st *state) index() error {
	st.defaults = map[slot]string{}
	st.byEnv = map[envRef][]string{}
	for id, r := range st.keys {
		ref := envRef{r.Account, r.Environment}
		st.byEnv[ref] = append(st.byEnv[ref], id)
		if !r.Default {
			continue
		}
		sl := slot{ref, r.Type}
		if _, taken := st.defaults[sl]; taken {
			return fmt.Errorf("%w: %s/%s already has a default %s key", apikey.ErrConflict, r.Account, r.Environment, r.Type)
		}
		st.defaults[sl] = id
	}
	for _, list := range st.byEnv {
		slices.SortFunc(list, func(a, b string) int { return compareKey(st.keys[a], keyPosition(st.keys[b])) })
	}
	st.envs = slices.SortedFunc(maps.Keys(st.settings), compareEnv)
	return nil
}

// compareKey orders keys by creation time, then id (as bytes).
func compareKey(r apikey.Record, p apikey.KeyPosition) int {
	return cmp.Or(r.CreatedAt.Compare(p.CreatedAt), strings.Compare(r.ID, p.ID))
}

func keyPosition(r apikey.Record) apikey.KeyPosition {
	return apikey.KeyPosition{CreatedAt: r.CreatedAt, ID: r.ID}
}

// compareEnv orders environments by account, then name (as bytes).
func compareEnv(a, b envRef) int {
	return cmp.Or(strings.Compare(a.account, b.account), strings.Compare(a.environment, b.environment))
}

// Open returns a store backed by the file at path, loading it if it exists
// (a file of any format version up to the current one; see formatVersion).
// The file is created by the first Apply, with permissions 0600: it holds
// key hashes.
func Open(path string) (*Store, error) {
	s := &Store{path: path, data: newState()}
	if err := s.data.index(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jsonstore: %w", err)
	}
	if s.data, err = decode(b); err != nil {
		return nil, fmt.Errorf("jsonstore: %s: %w", path, err)
	}
	return s, nil
}

// snapshot returns the current state. No one modifies it: writers build a
// new state and swap it in (see update), so it may be read without a lock.
func (s *Store) snapshot(ctx context.Context) (*state, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data, nil
}

// Key implements apikey.Store.
func (s *Store) Key(ctx context.Context, id string) (apikey.Record, error) {
	st, err := s.snapshot(ctx)
	if err != nil {
		return apikey.Record{}, err
	}
	r, ok := st.keys[id]
	if !ok {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return r.Clone(), nil
}

// DefaultKey implements apikey.Store, by index.
func (s *Store) DefaultKey(ctx context.Context, account, environment string, t apikey.KeyType) (apikey.Record, error) {
	st, err := s.snapshot(ctx)
	if err != nil {
		return apikey.Record{}, err
	}
	id, ok := st.defaults[slot{envRef{account, environment}, t}]
	if !ok {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return st.keys[id].Clone(), nil
}

// Keys implements apikey.Store: a binary search for the first key after
// q.After in the environment's keys, then at most q.Limit of them.
func (s *Store) Keys(ctx context.Context, q apikey.KeyQuery) ([]apikey.Record, error) {
	st, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	list := st.byEnv[envRef{q.Account, q.Environment}]
	i := sort.Search(len(list), func(i int) bool { return compareKey(st.keys[list[i]], q.After) > 0 })
	out := []apikey.Record{}
	for ; i < len(list) && len(out) < q.Limit; i++ {
		out = append(out, st.keys[list[i]].Clone())
	}
	return out, nil
}

// Settings implements apikey.Store.
func (s *Store) Settings(ctx context.Context, account, environment string) (apikey.Settings, error) {
	st, err := s.snapshot(ctx)
	if err != nil {
		return apikey.Settings{}, err
	}
	set, ok := st.settings[envRef{account, environment}]
	if !ok {
		return apikey.Settings{}, apikey.ErrNotFound
	}
	return set.Clone(), nil
}

// Environments implements apikey.Store: a binary search for the first
// environment after q.After (and in q.Account, if set), then at most
// q.Limit of them.
func (s *Store) Environments(ctx context.Context, q apikey.EnvironmentQuery) ([]apikey.Settings, error) {
	st, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	after := envRef{q.After.Account, q.After.Environment}
	if q.Account != "" && compareEnv(after, envRef{q.Account, ""}) < 0 {
		after = envRef{q.Account, ""} // the account's first environment comes after this
	}
	i := sort.Search(len(st.envs), func(i int) bool { return compareEnv(st.envs[i], after) > 0 })
	out := []apikey.Settings{}
	for ; i < len(st.envs) && len(out) < q.Limit; i++ {
		if q.Account != "" && st.envs[i].account != q.Account {
			break
		}
		out = append(out, st.settings[st.envs[i]].Clone())
	}
	return out, nil
}

// Accounts implements apikey.Store: a binary search for the first
// environment of an account after after, then the distinct accounts from
// there.
func (s *Store) Accounts(ctx context.Context, after string, limit int) ([]string, error) {
	st, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	i := sort.Search(len(st.envs), func(i int) bool { return st.envs[i].account > after })
	out := []string{}
	for ; i < len(st.envs) && len(out) < limit; i++ {
		if a := st.envs[i].account; len(out) == 0 || out[len(out)-1] != a {
			out = append(out, a)
		}
	}
	return out, nil
}

// Apply implements apikey.Store. It builds the new state on a copy, checks
// the rules of apikey.Change on it, writes the file and only then makes the
// new state visible; on any error nothing changes.
func (s *Store) Apply(ctx context.Context, c apikey.Change) error {
	return s.update(ctx, func(next *state) error {
		if c.OpenAccount != "" {
			if err := next.refusing(c.OpenAccount); err != nil {
				return err
			}
		}
		for _, r := range c.Update {
			cur, ok := next.keys[r.ID]
			if !ok {
				return fmt.Errorf("%w: key %s", apikey.ErrNotFound, r.Prefix())
			}
			if cur.Revision != r.Revision {
				return fmt.Errorf("%w: key %s changed since it was read", apikey.ErrConflict, r.Prefix())
			}
			r = r.Clone()
			if cur.LastUsedAt.After(r.LastUsedAt) { // last use is recorded separately: keep the later
				r.LastUsedAt = cur.LastUsedAt
			}
			next.revision++
			r.Revision = next.revision
			next.keys[r.ID] = r
		}
		for _, r := range c.Insert {
			if _, ok := next.keys[r.ID]; ok { // in any account: key ids are unique
				return fmt.Errorf("%w: key id %s exists", apikey.ErrConflict, r.Prefix())
			}
			r = r.Clone()
			next.revision++
			r.Revision = next.revision
			next.keys[r.ID] = r
		}
		for _, set := range c.Settings {
			// Revision 0 creates the settings, any other must match the
			// stored one. Missing settings read as Revision 0, so one
			// comparison covers both.
			ref := envRef{set.Account, set.Environment}
			if next.settings[ref].Revision != set.Revision {
				return fmt.Errorf("%w: settings of %s changed since they were read", apikey.ErrConflict, set.Environment)
			}
			set = set.Clone()
			next.revision++
			set.Revision = next.revision
			next.settings[ref] = set
		}
		for _, e := range c.Events {
			e.Seq = lastSeq(next.events, e.Account) + 1
			next.events = append(next.events, e)
		}
		return nil
	})
}

// RecordLastUsed implements storage.LastUsedRecorder. It changes no
// revision, so it never makes a concurrent Apply conflict.
func (s *Store) RecordLastUsed(ctx context.Context, used map[string]time.Time) error {
	return s.update(ctx, func(next *state) error {
		for id, t := range used {
			if r, ok := next.keys[id]; ok && t.After(r.LastUsedAt) {
				r.LastUsedAt = t.UTC()
				next.keys[id] = r
			}
		}
		return nil
	})
}

// refusing returns ErrAccountClosed if an environment of account is
// closed, else ErrAccountSuspended if one is suspended: a binary search for
// the account's first environment, then its few others.
func (st *state) refusing(account string) error {
	suspended := false
	i := sort.Search(len(st.envs), func(i int) bool { return st.envs[i].account >= account })
	for ; i < len(st.envs) && st.envs[i].account == account; i++ {
		set := st.settings[st.envs[i]]
		if !set.ClosedAt.IsZero() {
			return fmt.Errorf("%w: %s", apikey.ErrAccountClosed, account)
		}
		suspended = suspended || !set.SuspendedAt.IsZero()
	}
	if suspended {
		return fmt.Errorf("%w: %s", apikey.ErrAccountSuspended, account)
	}
	return nil
}

// lastSeq returns the Seq of the newest event of account in events (oldest
// first), 0 if it has none: an event's Seq is its place in its account's
// log (see storage.AuditLog).
func lastSeq(events []apikey.Event, account string) int64 {
	for _, e := range slices.Backward(events) {
		if e.Account == account {
			return e.Seq
		}
	}
	return 0
}

// Events implements storage.AuditLog. It scans the log back from the
// newest event: a file store keeps a modest log.
func (s *Store) Events(ctx context.Context, q storage.EventQuery) ([]apikey.Event, error) {
	if q.Account == "" && q.Before > 0 {
		return nil, fmt.Errorf("%w: paging every account's events needs an account", apikey.ErrInvalidCursor)
	}
	st, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	out := []apikey.Event{}
	for _, e := range slices.Backward(st.events) {
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
		if q.Before > 0 && e.Seq >= q.Before {
			continue
		}
		if (q.Account == "" || e.Account == q.Account) && (q.Environment == "" || e.Environment == q.Environment) {
			out = append(out, e)
		}
	}
	return out, nil
}

// update runs change on a copy of the state, rebuilds the indexes, writes
// the result to the file and swaps it in. If change, the indexes or the
// write fail, nothing changes.
func (s *Store) update(ctx context.Context, change func(next *state) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil { // checked after the wait for the lock
		return err
	}
	next := s.data.clone()
	if err := change(next); err != nil {
		return err
	}
	if err := next.index(); err != nil {
		return err
	}
	if err := s.write(next); err != nil {
		return fmt.Errorf("jsonstore: %w", err)
	}
	s.data = next
	return nil
}

// write replaces the file atomically: it writes a temporary file in the same
// directory, syncs it and renames it over the old one, so that the path
// always holds either the old state or the new. (A store that must survive
// power loss would also sync the directory after the rename.)
func (s *Store) write(st *state) error {
	b, err := encode(st)
	if err != nil {
		return err
	}
	// CreateTemp makes the file with permissions 0600, which the rename keeps.
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // cleans up after a failure; finds nothing after the rename
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path)
}
