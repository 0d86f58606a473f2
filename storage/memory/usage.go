package memory

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.UsageRecorder = (*Store)(nil)

// usageKey names one stored usage count. Key ids are unique across
// accounts, so a key's environment is not part of it.
type usageKey struct {
	account, keyID, outcome string
	hour                    int64 // Unix microseconds
}

// usageLog holds the usage counts, with a lock of its own so that counting
// never waits for key changes.
type usageLog struct {
	mu     sync.Mutex
	counts map[usageKey]*apikey.UsageCount
}

// usageLimit is the size of a page of Usage when the query names none.
const usageLimit = 1000

// RecordUsage implements storage.UsageRecorder. Hours are truncated to the
// hour, in UTC.
func (s *Store) RecordUsage(ctx context.Context, counts []apikey.UsageCount) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u := &s.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.counts == nil {
		u.counts = map[usageKey]*apikey.UsageCount{}
	}
	for _, c := range counts {
		c.Hour = c.Hour.UTC().Truncate(time.Hour)
		k := usageKey{account: c.Account, keyID: c.KeyID, outcome: c.Outcome, hour: c.Hour.UnixMicro()}
		if cur, ok := u.counts[k]; ok {
			cur.Count += c.Count
			continue
		}
		added := c // only a new count escapes
		u.counts[k] = &added
	}
	return nil
}

func compareUsage(a, b apikey.UsageCount) int {
	return cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(a.KeyID, b.KeyID), strings.Compare(a.Outcome, b.Outcome))
}

// Usage implements storage.UsageRecorder. It scans every count: an
// in-memory store holds few.
func (s *Store) Usage(ctx context.Context, q apikey.UsageQuery) ([]apikey.UsageCount, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = usageLimit
	}
	u := &s.usage
	u.mu.Lock()
	out := []apikey.UsageCount{}
	for _, c := range u.counts {
		switch {
		case c.Account != q.Account,
			q.Environment != "" && c.Environment != q.Environment,
			q.KeyID != "" && c.KeyID != q.KeyID,
			c.Hour.Before(q.From), !c.Hour.Before(q.To),
			q.After != nil && compareUsage(*c, *q.After) <= 0:
			continue
		}
		out = append(out, *c)
	}
	u.mu.Unlock()
	slices.SortFunc(out, compareUsage)
	return out[:min(len(out), limit)], nil
}

// PruneUsage implements storage.UsageRecorder.
func (s *Store) PruneUsage(ctx context.Context, before time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	u := &s.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	var n int64
	for k, c := range u.counts {
		if c.Hour.Before(before) {
			delete(u.counts, k)
			n++
		}
	}
	return n, nil
}
