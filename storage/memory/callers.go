package memory

import (
	"context"
	"slices"
	"sync"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.CallerLog = (*Store)(nil)

// callerLog holds the callers of keys rotated out, by key id, with a lock
// of its own so that recording never waits for key changes. A key's
// callers and others are one entry, written and deleted together. Lock
// order: Store.mu, then callerLog.mu (PurgeKeys); RecordCallers and
// Callers take callerLog.mu alone.
type callerLog struct {
	mu   sync.Mutex
	keys map[string]apikey.KeyCallers
}

// RecordCallers implements storage.CallerLog, with apikey.MergeCallers.
func (s *Store) RecordCallers(ctx context.Context, reports []apikey.KeyCallers) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := &s.callers
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]apikey.KeyCallers{}
	}
	for _, r := range reports {
		l.keys[r.KeyID] = apikey.MergeCallers(l.keys[r.KeyID], r)
	}
	return nil
}

// Callers implements storage.CallerLog.
func (s *Store) Callers(ctx context.Context, keyID string) (apikey.KeyCallers, error) {
	if err := ctx.Err(); err != nil {
		return apikey.KeyCallers{}, err
	}
	l := &s.callers
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.keys[keyID]
	if !ok {
		return apikey.KeyCallers{KeyID: keyID}, nil
	}
	k.Callers = slices.Clone(k.Callers)
	return k, nil
}

// forget deletes the callers of key id.
func (l *callerLog) forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.keys, id)
}
