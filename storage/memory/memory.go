// Package memory is an in-memory keystile store for tests, examples and
// single-process services that can afford to lose keys on restart. It
// implements apikey.Store and every optional capability of package storage.
package memory

import (
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

// Store is a thread-safe in-memory store. The zero value is not usable; call
// New.
type Store struct {
	mu       sync.RWMutex
	keys     map[string]apikey.Record
	settings map[string]apikey.Settings
	events   []apikey.Event
	feed     []storage.Changed
	revision int64
}

var (
	_ apikey.Store             = (*Store)(nil)
	_ storage.ChangeFeed       = (*Store)(nil)
	_ storage.LastUsedRecorder = (*Store)(nil)
	_ storage.AuditLog         = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{keys: map[string]apikey.Record{}, settings: map[string]apikey.Settings{}}
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

// Keys implements apikey.Store.
func (s *Store) Keys(ctx context.Context, environment string) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	out := []apikey.Record{}
	for _, r := range s.keys {
		if r.Environment == environment {
			out = append(out, r.Clone())
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b apikey.Record) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
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
	st, ok := s.settings[environment]
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
	out := make([]apikey.Settings, 0, len(s.settings))
	for _, st := range s.settings {
		out = append(out, st.Clone())
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b apikey.Settings) int { return strings.Compare(a.Environment, b.Environment) })
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
		if last := s.keys[r.ID].LastUsedAt; last.After(r.LastUsedAt) {
			r.LastUsedAt = last
		}
		s.keys[r.ID] = r
		s.publish(r.Environment, r.ID)
	}
	for _, r := range c.Insert {
		s.revision++
		r = r.Clone()
		r.Revision = s.revision
		s.keys[r.ID] = r
		s.publish(r.Environment, r.ID)
	}
	for _, st := range c.Settings {
		s.revision++
		st = st.Clone()
		st.Revision = s.revision
		s.settings[st.Environment] = st
		s.publish(st.Environment, "")
	}
	s.events = append(s.events, c.Events...)
	return nil
}

// check validates a change against the current state; s.mu is held.
func (s *Store) check(c apikey.Change) error {
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
		cur, ok := s.settings[st.Environment]
		if (st.Revision == 0 && ok) || (st.Revision != 0 && (!ok || cur.Revision != st.Revision)) {
			return fmt.Errorf("%w: settings of %s changed since they were read", apikey.ErrConflict, st.Environment)
		}
	}
	// At most one default key per environment and type after the change.
	type slot struct {
		env string
		typ apikey.KeyType
	}
	defaults := map[slot]int{}
	for _, r := range after {
		if r.Default {
			defaults[slot{r.Environment, r.Type}]++
		}
	}
	for sl := range defaults {
		for id, r := range s.keys {
			if _, replaced := after[id]; !replaced && r.Default && r.Environment == sl.env && r.Type == sl.typ {
				defaults[sl]++
			}
		}
		if defaults[sl] > 1 {
			return fmt.Errorf("%w: %s already has a default %s key", apikey.ErrConflict, sl.env, sl.typ)
		}
	}
	return nil
}

// publish appends a feed entry at the current revision; s.mu is held.
func (s *Store) publish(environment, keyID string) {
	if len(s.feed) == feedRetention {
		s.feed = slices.Delete(s.feed, 0, feedRetention/4)
	}
	s.feed = append(s.feed, storage.Changed{Revision: s.revision, Environment: environment, KeyID: keyID})
}

// Changes implements storage.ChangeFeed.
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
		return int(c.Revision - rev)
	})
	out := slices.Clone(s.feed[i:min(len(s.feed), i+limit)])
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

// Events implements storage.AuditLog.
func (s *Store) Events(ctx context.Context, environment string, limit int) ([]apikey.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []apikey.Event{}
	for i := len(s.events) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if e := s.events[i]; environment == "" || e.Environment == environment {
			out = append(out, e)
		}
	}
	return out, nil
}
