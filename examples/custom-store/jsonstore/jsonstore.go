// Package jsonstore is an example of a custom keystile backend: a store that
// keeps every key, setting and audit event in one JSON file. It is written
// to be read, as a starting point for your own store; it passes the
// conformance suite in package storage/storetest.
//
// The whole state lives in memory and every successful Apply rewrites the
// file. That is fine for a few hundred keys and a modest audit log, not for
// more.
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
	data state
}

var (
	_ apikey.Store             = (*Store)(nil)
	_ storage.AuditLog         = (*Store)(nil)
	_ storage.LastUsedRecorder = (*Store)(nil)
)

// state is everything the store holds. Apply never modifies a state that
// readers may see: it changes a copy and swaps it in once the file is
// written. Records in the maps are never modified in place either, so a
// shallow copy of the maps is enough.
type state struct {
	revision int64                      // the last revision handed out
	keys     map[string]apikey.Record   // by key id
	settings map[string]apikey.Settings // by environment
	events   []apikey.Event             // oldest first
}

func (st state) clone() state {
	st.keys = maps.Clone(st.keys)
	st.settings = maps.Clone(st.settings)
	st.events = slices.Clone(st.events)
	return st
}

// Open returns a store backed by the file at path, loading it if it exists.
// The file is created by the first Apply, with permissions 0600: it holds
// key hashes.
func Open(path string) (*Store, error) {
	s := &Store{path: path, data: state{keys: map[string]apikey.Record{}, settings: map[string]apikey.Settings{}}}
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

// Key implements apikey.Store.
func (s *Store) Key(ctx context.Context, id string) (apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Record{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.data.keys[id]
	if !ok {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return r.Clone(), nil
}

// Keys implements apikey.Store.
func (s *Store) Keys(ctx context.Context, environment string) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.Record{}
	for _, r := range s.data.keys {
		if r.Environment == environment {
			out = append(out, r.Clone())
		}
	}
	slices.SortFunc(out, func(a, b apikey.Record) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Settings implements apikey.Store.
func (s *Store) Settings(ctx context.Context, environment string) (apikey.Settings, error) {
	if err := ctx.Err(); err != nil {
		return apikey.Settings{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.data.settings[environment]
	if !ok {
		return apikey.Settings{}, apikey.ErrNotFound
	}
	return st.Clone(), nil
}

// Environments implements apikey.Store.
func (s *Store) Environments(ctx context.Context) ([]apikey.Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.Settings{}
	for _, env := range slices.Sorted(maps.Keys(s.data.settings)) {
		out = append(out, s.data.settings[env].Clone())
	}
	return out, nil
}

// Apply implements apikey.Store. It builds the new state on a copy, checks
// the rules of apikey.Change on it, writes the file and only then makes the
// new state visible; on any error nothing changes.
func (s *Store) Apply(ctx context.Context, c apikey.Change) error {
	return s.update(ctx, func(next *state) error {
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
			if _, ok := next.keys[r.ID]; ok {
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
			if next.settings[set.Environment].Revision != set.Revision {
				return fmt.Errorf("%w: settings of %s changed since they were read", apikey.ErrConflict, set.Environment)
			}
			set = set.Clone()
			next.revision++
			set.Revision = next.revision
			next.settings[set.Environment] = set
		}
		next.events = append(next.events, c.Events...)
		return next.checkDefaults()
	})
}

// checkDefaults fails with ErrConflict if an environment has two default
// keys of one type.
func (st *state) checkDefaults() error {
	type slot struct {
		environment string
		typ         apikey.KeyType
	}
	seen := map[slot]bool{}
	for _, r := range st.keys {
		if !r.Default {
			continue
		}
		sl := slot{r.Environment, r.Type}
		if seen[sl] {
			return fmt.Errorf("%w: %s already has a default %s key", apikey.ErrConflict, r.Environment, r.Type)
		}
		seen[sl] = true
	}
	return nil
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

// Events implements storage.AuditLog.
func (s *Store) Events(ctx context.Context, environment string, limit int) ([]apikey.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.Event{}
	for _, e := range slices.Backward(s.data.events) {
		if limit > 0 && len(out) == limit {
			break
		}
		if environment == "" || e.Environment == environment {
			out = append(out, e)
		}
	}
	return out, nil
}

// update runs change on a copy of the state, writes the result to the file
// and swaps it in. If change or the write fails, nothing changes.
func (s *Store) update(ctx context.Context, change func(next *state) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil { // checked after the wait for the lock
		return err
	}
	next := s.data.clone()
	if err := change(&next); err != nil {
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
func (s *Store) write(st state) error {
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
