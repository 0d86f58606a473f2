package memory

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var (
	_ storage.OwnerIndex  = (*Store)(nil)
	_ storage.ExpiryIndex = (*Store)(nil)
	_ storage.KeyPurger   = (*Store)(nil)
)

// ownerRef names an account's owner.
type ownerRef struct{ account, owner string }

// timed is a key in a list ordered by a time, then id.
type timed struct {
	at          time.Time
	id          string
	environment string
}

func compareTimed(a, b timed) int {
	return cmp.Or(a.at.Compare(b.at), strings.Compare(a.id, b.id))
}

// keyIndexes are the sorted lists that answer OwnerKeys, ExpiringKeys and
// PurgeKeys by binary search, and the number of keys of each rotation
// lineage (whose quota balance goes with its last key).
type keyIndexes struct {
	owners   map[ownerRef][]string // ids, sorted, of keys with an owner
	expiring map[string][]timed    // by account: keys with an expiry, not revoked, by expiry
	due      []timed               // every account's keys with an expiry, not revoked, by expiry (stream.go)
	dead     []timed               // keys revoked or with an expiry, by the earlier of the two; imported keys never
	lineages map[string]int        // keys per lineage id
}

// deadAt is when r stopped (or stops) working for good: the earlier of
// its revocation and its expiry; zero if neither is set, and for an
// imported key, which PurgeKeys keeps.
func deadAt(r apikey.Record) time.Time {
	switch {
	case r.Imported():
		return time.Time{}
	case r.RevokedAt.IsZero():
		return r.ExpiresAt
	case r.ExpiresAt.IsZero() || r.RevokedAt.Before(r.ExpiresAt):
		return r.RevokedAt
	}
	return r.ExpiresAt
}

func insertSorted[T any](list []T, v T, compare func(T, T) int) []T {
	i, found := slices.BinarySearchFunc(list, v, compare)
	if found {
		return list
	}
	return slices.Insert(list, i, v)
}

func removeSorted[T any](list []T, v T, compare func(T, T) int) []T {
	i, found := slices.BinarySearchFunc(list, v, compare)
	if !found {
		return list
	}
	return slices.Delete(list, i, i+1)
}

// reindex moves a key from its old record's places in the indexes (had:
// it existed) to its new one's; s.mu is held.
func (s *Store) reindex(old apikey.Record, had bool, r apikey.Record) {
	ix := &s.ix
	if ix.owners == nil {
		ix.owners, ix.expiring, ix.lineages = map[ownerRef][]string{}, map[string][]timed{}, map[string]int{}
	}
	if had {
		s.unindex(old)
	}
	if r.Owner != "" {
		ref := ownerRef{r.Account, r.Owner}
		ix.owners[ref] = insertSorted(ix.owners[ref], r.ID, strings.Compare)
	}
	if !r.ExpiresAt.IsZero() && r.RevokedAt.IsZero() {
		ix.expiring[r.Account] = insertSorted(ix.expiring[r.Account], timed{r.ExpiresAt, r.ID, r.Environment}, compareTimed)
		ix.due = insertSorted(ix.due, timed{r.ExpiresAt, r.ID, r.Environment}, compareTimed)
	}
	if at := deadAt(r); !at.IsZero() {
		ix.dead = insertSorted(ix.dead, timed{at, r.ID, r.Environment}, compareTimed)
	}
	ix.lineages[r.LineageID()]++
}

// unindex removes a key's record from the indexes; s.mu is held.
func (s *Store) unindex(r apikey.Record) {
	ix := &s.ix
	if r.Owner != "" {
		ref := ownerRef{r.Account, r.Owner}
		if ids := removeSorted(ix.owners[ref], r.ID, strings.Compare); len(ids) > 0 {
			ix.owners[ref] = ids
		} else {
			delete(ix.owners, ref)
		}
	}
	if !r.ExpiresAt.IsZero() && r.RevokedAt.IsZero() {
		if list := removeSorted(ix.expiring[r.Account], timed{r.ExpiresAt, r.ID, r.Environment}, compareTimed); len(list) > 0 {
			ix.expiring[r.Account] = list
		} else {
			delete(ix.expiring, r.Account)
		}
		ix.due = removeSorted(ix.due, timed{r.ExpiresAt, r.ID, r.Environment}, compareTimed)
	}
	if at := deadAt(r); !at.IsZero() {
		ix.dead = removeSorted(ix.dead, timed{at, r.ID, r.Environment}, compareTimed)
	}
	if ix.lineages[r.LineageID()]--; ix.lineages[r.LineageID()] <= 0 {
		delete(ix.lineages, r.LineageID())
	}
}

// OwnerKeys implements storage.OwnerIndex: a binary search in the owner's
// sorted ids.
func (s *Store) OwnerKeys(ctx context.Context, q apikey.OwnerQuery) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := s.ix.owners[ownerRef{q.Account, q.Owner}]
	i, found := slices.BinarySearch(ids, q.After)
	if found {
		i++
	}
	out := []apikey.Record{}
	for ; i < len(ids) && len(out) < q.Limit; i++ {
		if r := s.keys[ids[i]]; !q.NotRevoked || r.RevokedAt.IsZero() {
			out = append(out, r.Clone())
		}
	}
	return out, nil
}

// ExpiringKeys implements storage.ExpiryIndex: a binary search in the
// account's keys ordered by expiry. An environment is selected by skipping
// the account's other keys of the window.
func (s *Store) ExpiringKeys(ctx context.Context, q apikey.ExpiryQuery) ([]apikey.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.ix.expiring[q.Account]
	i, found := slices.BinarySearchFunc(list, timed{at: q.After.ExpiresAt, id: q.After.ID}, compareTimed)
	if found {
		i++
	}
	out := []apikey.Record{}
	for ; i < len(list) && len(out) < q.Limit && !list[i].at.After(q.Until); i++ {
		if q.Environment == "" || list[i].environment == q.Environment {
			out = append(out, s.keys[list[i].id].Clone())
		}
	}
	return out, nil
}

// PurgeKeys implements storage.KeyPurger: the keys that died first, from
// the sorted list of dead keys. Each deleted key gets a feed entry at a
// revision of its own; its callers (storage.CallerLog) go with it, its
// lineage's quota balance with the lineage's last key.
func (s *Store) PurgeKeys(ctx context.Context, before time.Time, limit int) ([]apikey.PurgedKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []apikey.PurgedKey{}
	for len(out) < limit && len(s.ix.dead) > 0 && s.ix.dead[0].at.Before(before) {
		r := s.keys[s.ix.dead[0].id]
		s.unindex(r)
		delete(s.keys, r.ID)
		ref := envRef{r.Account, r.Environment}
		if list := removeSorted(s.byEnv[ref], r, func(a, b apikey.Record) int {
			return compareKeyOrder(a, apikey.KeyPosition{CreatedAt: b.CreatedAt, ID: b.ID})
		}); len(list) > 0 {
			s.byEnv[ref] = list
		} else {
			delete(s.byEnv, ref)
		}
		if s.defaults[slotOf(r)] == r.ID {
			delete(s.defaults, slotOf(r))
		}
		if lineage := r.LineageID(); s.ix.lineages[lineage] == 0 {
			delete(s.quotas, lineage)
		}
		s.callers.forget(r.ID)
		s.revision++
		s.publish(r.Account, r.Environment, r.ID)
		out = append(out, apikey.PurgedKey{Account: r.Account, Environment: r.Environment, ID: r.ID})
	}
	return out, nil
}
