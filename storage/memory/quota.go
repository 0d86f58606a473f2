package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// quotaBalance is the balance of a key's quota.
type quotaBalance struct {
	quota   apikey.Quota // the quota the balance was set from
	balance int64
	// period is the index (apikey.QuotaPeriod.Index) of the period whose
	// refill balance holds; meaningless until leased.
	period int64
	leased bool // leased from since the quota was set (else full)
	// generation is the revision of the change that set the quota (see
	// storage.QuotaLease.Generation).
	generation int64
	// returnsFrom is the generation from which returns are accepted: the
	// revision of the change that set the balance full or changed its
	// period (see storage.QuotaLedger).
	returnsFrom int64
}

// putQuota keeps the quota balance of r's lineage in step with r: full
// when the quota is new, kept while it is the same, changed keeping what
// was spent or leased when it differs (see changed), gone without one. A
// rotated-out key never writes it: the balance follows the lineage's
// current key. s.mu is held.
func (s *Store) putQuota(r apikey.Record) {
	s.putOwnerQuota(r)
	if !r.RotatedAt.IsZero() {
		return
	}
	id := r.LineageID()
	q := r.Limits.Quota
	if q.IsZero() {
		delete(s.quotas, id)
		return
	}
	s.setQuota(id, q, r.Revision)
}

// setQuota sets the quota of balance id to q at revision rev: full when
// the balance is new, kept while q is the same, changed (see changed) when
// it differs. s.mu is held.
func (s *Store) setQuota(id string, q apikey.Quota, rev int64) {
	cur, ok := s.quotas[id]
	switch {
	case !ok:
		s.quotas[id] = quotaBalance{quota: q, balance: q.Limit, generation: rev, returnsFrom: rev}
	case cur.quota != q:
		s.quotas[id] = cur.changed(q, rev)
	}
}

// putOwnerQuota keeps the balance of r's owner (apikey.OwnerBalanceID) in
// step with r's OwnerLimits, as putQuota keeps a lineage's: full when new,
// kept while the quota is the same, changed keeping what was spent or
// leased. A key without an owner quota leaves it: every key of an owner
// carries the same OwnerLimits, and a balance whose quota was removed is
// kept, so that setting it again does not refill it. s.mu is held.
func (s *Store) putOwnerQuota(r apikey.Record) {
	q := r.OwnerLimits.Quota
	if r.Owner == "" || q.IsZero() {
		return
	}
	s.setQuota(apikey.OwnerBalanceID(r.Account, r.Owner), q, r.Revision)
}

// changed returns b under quota q, set at revision rev: what was spent or
// leased of the old limit stays so (the balance is q's limit minus it, at
// most the limit, and below zero when it exceeds the limit). While the
// period is the same, the refill state and the generation from which
// returns are accepted are kept; a new period accepts the returns of
// leases taken from rev on.
func (b quotaBalance) changed(q apikey.Quota, rev int64) quotaBalance {
	spent := b.quota.Limit - b.balance
	next := quotaBalance{quota: q, balance: min(q.Limit-spent, q.Limit), generation: rev, returnsFrom: rev}
	if q.Period == b.quota.Period {
		next.period, next.leased, next.returnsFrom = b.period, b.leased, b.returnsFrom
	}
	return next
}

// balanceOf returns the id of the balance keyID spends from (an owner's
// balance id names itself), and false for an unknown key; s.mu is held.
func (s *Store) balanceOf(keyID string) (string, bool) {
	if apikey.IsOwnerBalanceID(keyID) {
		return keyID, true
	}
	r, ok := s.keys[keyID]
	return r.LineageID(), ok
}

// refill adds the refills of the boundaries passed since b's period to the
// balance, from at least zero and never beyond the limit, and moves b to
// now's period (never back).
func (b *quotaBalance) refill(now time.Time) {
	idx := b.quota.Period.Index(now)
	if !b.leased {
		b.period, b.leased = idx, true
		return
	}
	if idx <= b.period {
		return
	}
	if q := b.quota; q.Refill > 0 {
		passed := idx - b.period
		if passed >= (q.Limit+q.Refill-1)/q.Refill {
			b.balance = q.Limit
		} else {
			b.balance = min(q.Limit, max(b.balance, 0)+q.Refill*passed)
		}
	}
	b.period = idx
}

// LeaseQuota implements storage.QuotaLedger.
func (s *Store) LeaseQuota(ctx context.Context, keyID string, want int64, now time.Time) (storage.QuotaLease, error) {
	if err := ctx.Err(); err != nil {
		return storage.QuotaLease{}, err
	}
	if want < 1 {
		return storage.QuotaLease{}, fmt.Errorf("memory: lease quota: want must be at least 1, got %d", want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.balanceOf(keyID)
	if !ok {
		return storage.QuotaLease{}, fmt.Errorf("%w: no such key", apikey.ErrNotFound)
	}
	b, ok := s.quotas[id]
	if !ok {
		return storage.QuotaLease{Unlimited: true}, nil
	}
	b.refill(now)
	granted := min(want, max(b.balance, 0))
	b.balance -= granted
	s.quotas[id] = b
	if granted < want {
		s.exhausted(id, keyID, b, now)
	}
	lease := storage.QuotaLease{Granted: granted, Remaining: max(b.balance, 0), LeasedAt: now, Generation: b.generation}
	if b.quota.Refill > 0 {
		lease.NextRefill = b.quota.Period.Next(now)
	}
	return lease, nil
}

// exhausted appends the apikey.ActionQuotaExhausted event of balance id,
// found empty at now by a lease of keyID, unless this quota (its
// generation) already has one in b's period. s.mu is held.
func (s *Store) exhausted(id, keyID string, b quotaBalance, now time.Time) {
	mark := timedMark{id, apikey.QuotaExhaustedKind(b.generation), b.period}
	if _, done := s.marks[mark]; done {
		return
	}
	s.marks[mark] = struct{}{}
	s.appendEvent(apikey.QuotaExhaustedEvent(id, s.keys[keyID], b.quota, now))
}

// ReturnQuota implements storage.QuotaLedger.
func (s *Store) ReturnQuota(ctx context.Context, keyID string, n int64, lease storage.QuotaLease, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := s.balanceOf(keyID)
	b, ok := s.quotas[id]
	if !ok || !b.leased || lease.Generation < b.returnsFrom {
		return nil
	}
	p := b.quota.Period
	if idx := p.Index(lease.LeasedAt); idx != b.period || idx != p.Index(now) {
		return nil // the lease's period has ended, or the balance moved on
	}
	// Never above the limit, whatever n; Limit - balance cannot overflow (a
	// balance is above -apikey.MaxQuotaUses).
	b.balance += min(n, b.quota.Limit-b.balance)
	s.quotas[id] = b
	return nil
}
