package apikey

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// OwnerIndex is an optional Store capability: it answers, by index, the
// keys of an account that were issued to one owner (Record.Owner), across
// the account's environments. Manager.OwnerKeys and Manager.RevokeOwner
// need it.
type OwnerIndex interface {
	// OwnerKeys returns a page of q.Account's keys whose Owner is q.Owner
	// (revoked keys too, unless q.NotRevoked), ordered by id (as bytes),
	// strictly after q.After: q.Limit of them while that many remain, an
	// empty list when there are no more. Answered by an index on (account,
	// owner, id), in time that does not grow with the account's other
	// keys.
	OwnerKeys(ctx context.Context, q OwnerQuery) ([]Record, error)
}

// OwnerQuery selects a page of an owner's keys (OwnerIndex.OwnerKeys).
type OwnerQuery struct {
	Account string
	// Owner is whom the keys were issued to; never empty.
	Owner string
	// NotRevoked, if set, leaves revoked keys out.
	NotRevoked bool
	// After is the id of the last key of the previous page; "" starts at
	// the first.
	After string
	// Limit is the most keys to return, at least 1.
	Limit int
}

// ExpiryIndex is an optional Store capability: it answers, by index, the
// keys of an account (or of one of its environments) that are not revoked
// and expire within a window: an expiry set at creation, or the end of a
// rotated-out key's grace. Manager.Expiring needs it.
type ExpiryIndex interface {
	// ExpiringKeys returns a page of the keys of q.Account (of
	// q.Environment only, when set) that are not revoked, whose ExpiresAt
	// is set, is at most q.Until and comes, with their id, strictly after
	// q.After: ordered by ExpiresAt, then id (as bytes), q.Limit of them
	// while that many remain. Answered by an index on (account, expires_at,
	// id), or (account, environment, expires_at, id), of keys not revoked.
	ExpiringKeys(ctx context.Context, q ExpiryQuery) ([]Record, error)
}

// ExpiryPosition is a place in a list of keys ordered by expiry, then id.
type ExpiryPosition struct {
	ExpiresAt time.Time
	ID        string
}

// ExpiryQuery selects a page of expiring keys (ExpiryIndex.ExpiringKeys).
type ExpiryQuery struct {
	Account string
	// Environment, if set, selects that environment's keys.
	Environment string
	// After is the last key of the previous page, or the start of the
	// window with an empty ID (every key expiring at that time comes
	// after it).
	After ExpiryPosition
	// Until is the end of the window, included.
	Until time.Time
	// Limit is the most keys to return, at least 1.
	Limit int
}

// KeyPurger is an optional Store capability: it deletes keys that died
// long ago. Manager.Purge needs it.
//
// It never deletes an imported key (Record.Imported): its record, whose
// id is derived from the legacy key's digest, is what makes a later Import
// of that digest fail, so that a revoked legacy key found again in the
// service's old table (a migration run twice) is never brought back.
//
// A deleted key is gone from every read (Key, Keys, the indexes), and the
// change feed gets one entry for it, at a revision of its own, whose Key
// is nil, so that every process evicts what it cached. Audit events and
// usage counts of the key are kept. The quota balance of the key's
// rotation lineage (Record.LineageID) is kept while a key of the lineage
// survives, and deleted with the lineage's last key.
type KeyPurger interface {
	// PurgeKeys deletes up to limit keys (limit >= 1), imported keys
	// aside, that were revoked, or expired, before before, in one
	// transaction, and returns them
	// (account, environment and id). Deleting fewer than limit means no
	// more are left. It finds them by index (revoked_at, and expires_at),
	// and holds the store's write lock for one batch only, so that other
	// writes wait for at most one batch.
	PurgeKeys(ctx context.Context, before time.Time, limit int) ([]PurgedKey, error)
}

// PurgedKey names a key that KeyPurger.PurgeKeys deleted.
type PurgedKey struct {
	Account, Environment, ID string
}

// Bounds of the owner, expiry and clean-up calls.
const (
	// MaxOwnerRevocation is the most keys RevokeOwner revokes in one
	// atomic write.
	MaxOwnerRevocation = 10_000
	// MaxOwnerRevocationRounds is the most writes of one RevokeOwner call:
	// the first, and one more each time its listing after a write finds
	// keys issued to the owner meanwhile.
	MaxOwnerRevocationRounds = 8
	// MaxExpiringWindow is the longest window of Expiring.
	MaxExpiringWindow = 366 * 24 * time.Hour
	// PurgeBatch is the most keys one transaction of Purge deletes.
	PurgeBatch = 500
)

// The audit actions of this file.
const (
	// ActionRevokeOwner is the summary event of RevokeOwner; each key it
	// revokes has an ActionRevoke event of its own.
	ActionRevokeOwner Action = "revoke_owner"
	// ActionPurge is the event of Purge: one per account and batch, whose
	// Detail says how many keys were deleted.
	ActionPurge Action = "purge"
)

// OwnerKeys returns a page of the public views of the keys of the actor's
// account issued to owner, in every environment, revoked ones included,
// ordered by key id. Every role may list. owner must be valid and not
// empty (ErrInvalidMetadata). A store without an OwnerIndex fails with an
// error wrapping errors.ErrUnsupported.
func (m *Manager) OwnerKeys(ctx context.Context, actor Actor, owner string, page Page) (KeyList, error) {
	if err := authorize(actor, ActionView); err != nil {
		return KeyList{}, err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return KeyList{}, err
	}
	if err := validOwnerName(owner); err != nil {
		return KeyList{}, err
	}
	limit, err := page.limit()
	if err != nil {
		return KeyList{}, err
	}
	after, err := parseIDCursor(page.After)
	if err != nil {
		return KeyList{}, err
	}
	idx, err := m.ownerIndex()
	if err != nil {
		return KeyList{}, err
	}
	keys, err := idx.OwnerKeys(ctx, OwnerQuery{Account: account, Owner: owner, After: after, Limit: limit + 1})
	if err != nil {
		return KeyList{}, err
	}
	return keyPage(keys, limit, m.Now(), func(last Record) string { return nameCursor(last.ID) }), nil
}

// OwnerRevocation is what RevokeOwner did.
type OwnerRevocation struct {
	// Revoked is how many keys were revoked.
	Revoked int `json:"revoked"`
	// SkippedDefaults are the displayable prefixes of the owner's default
	// keys, which were left as they are: a default key keeps its
	// environment working and is revoked only after a rotation (rotate
	// it, then call RevokeOwner again, or Revoke the rotated-out key).
	SkippedDefaults []string `json:"skipped_defaults"`
}

// RevokeOwner revokes every key of the actor's account issued to owner,
// in every environment. Each write is atomic (a compare-and-set of every
// key it revokes, retried from the start when another writer changed one
// of them), so a write revokes all the keys it listed or none. A key
// issued to owner by another writer between the listing and the write (a
// Create, or a SetOwner) is not in that write: after each write
// RevokeOwner lists the owner's keys again, and writes again while the
// listing finds keys to revoke, up to MaxOwnerRevocationRounds writes.
// When it returns without error, every key of owner that was committed
// before its last listing is revoked, default keys aside; when keys are
// still being issued to owner after the final round, it fails with an
// error wrapping ErrConflict, and the keys of the rounds before stay
// revoked (call it again, once the issuing has stopped). With an error,
// the OwnerRevocation counts the keys of the writes that were made.
//
// Owners only: the owner's keys may be in any environment. Keys revoked already are left
// alone; default keys are skipped and reported (see
// OwnerRevocation.SkippedDefaults, from the last listing), as Revoke
// refuses them. Each revoked key has an ActionRevoke event, and each
// write an ActionRevokeOwner event that names the owner and its counts:
// one per call (also when nothing was revoked), and one more for each
// round that found keys issued meanwhile. A listing of more than
// MaxOwnerRevocation keys to revoke fails with ErrTooManyKeys, and that
// write changes nothing. A store without an OwnerIndex fails with an
// error wrapping errors.ErrUnsupported.
func (m *Manager) RevokeOwner(ctx context.Context, actor Actor, owner string) (OwnerRevocation, error) {
	if err := authorize(actor, ActionRevokeOwner); err != nil {
		return OwnerRevocation{}, err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return OwnerRevocation{}, err
	}
	if err := validOwnerName(owner); err != nil {
		return OwnerRevocation{}, err
	}
	idx, err := m.ownerIndex()
	if err != nil {
		return OwnerRevocation{}, err
	}
	var out OwnerRevocation
	for round := 0; ; round++ {
		var revoked int
		err := m.retry(ctx, func() error {
			var err error
			revoked, out.SkippedDefaults, err = m.revokeOwnerRound(ctx, actor, idx, account, owner, round)
			return err
		})
		switch {
		case err != nil:
			return out, err
		case revoked == 0:
			return out, nil
		case round == MaxOwnerRevocationRounds:
			return out, fmt.Errorf("%w: revoke owner: keys were still being issued to owner %s after %d writes (%d keys revoked, %d left); call it again",
				ErrConflict, owner, round, out.Revoked, revoked)
		}
		out.Revoked += revoked
	}
}

// revokeOwnerRound lists owner's keys that are not revoked and revokes
// those that are not default keys, in one write, and returns how many it
// revoked and the prefixes of the default keys it skipped. The first round
// (round 0) writes its summary event also when it has nothing to revoke;
// a later round with nothing to revoke writes nothing. Round
// MaxOwnerRevocationRounds only lists, and returns how many keys it found
// to revoke.
func (m *Manager) revokeOwnerRound(ctx context.Context, actor Actor, idx OwnerIndex, account, owner string, round int) (int, []string, error) {
	keys, err := m.liveOwnerKeys(ctx, idx, account, owner, MaxOwnerRevocation, "revoke")
	if err != nil {
		return 0, nil, err
	}
	now := m.Now()
	skipped := []string{}
	var c Change
	for _, rec := range keys {
		if rec.Default {
			skipped = append(skipped, rec.Prefix())
			continue
		}
		rec.RevokedAt = now
		c.Update = append(c.Update, rec)
		c.Events = append(c.Events, keyEvent(now, actor, ActionRevoke, rec, "owner revoked"))
	}
	if round > 0 && len(c.Update) == 0 {
		return 0, skipped, nil
	}
	if round == MaxOwnerRevocationRounds {
		return len(c.Update), skipped, nil
	}
	detail := fmt.Sprintf("owner %s: %d keys revoked, %d default keys skipped", owner, len(c.Update), len(skipped))
	if round > 0 {
		detail += fmt.Sprintf(" (round %d: keys issued to the owner during the revocation)", round+1)
	}
	c.Events = append(c.Events, Event{Time: now, Actor: actor.audited(), Action: ActionRevokeOwner, Account: account, Detail: detail})
	if err := m.apply(ctx, c); err != nil {
		return 0, nil, err
	}
	return len(c.Update), skipped, nil
}

// liveOwnerKeys reads every key of owner that is not revoked, a page at a
// time, and refuses more than most, naming what the call would do (verb)
// in the error.
func (m *Manager) liveOwnerKeys(ctx context.Context, idx OwnerIndex, account, owner string, most int, verb string) ([]Record, error) {
	var keys []Record
	q := OwnerQuery{Account: account, Owner: owner, NotRevoked: true, Limit: MaxPageSize}
	for {
		page, err := idx.OwnerKeys(ctx, q)
		if err != nil {
			return nil, err
		}
		keys = append(keys, page...)
		if len(keys) > most {
			return nil, fmt.Errorf("%w: owner has more than %d keys to %s in one call", ErrTooManyKeys, most, verb)
		}
		if len(page) < q.Limit {
			return keys, nil
		}
		q.After = page[len(page)-1].ID
	}
}

// ExpiringRequest selects the keys that Manager.Expiring lists.
type ExpiringRequest struct {
	// Environment, if set, selects that environment's keys; empty selects
	// every environment of the account.
	Environment string
	// Within is the window, from now: the keys whose expiry (or end of
	// grace) is at most Within away. Required: 1 second to
	// MaxExpiringWindow.
	Within time.Duration
}

// Expiring returns a page of the public views of the keys of the actor's
// account (or of one environment) that are not revoked and expire within
// req.Within from now, expiries set at creation and ends of a rotated-out
// key's grace alike, soonest first (by expiry, then id). Keys that have
// expired already are not listed. Every role may list. A Within out of
// range fails with ErrInvalidTimeRange, an environment that was not
// bootstrapped with ErrUnknownEnvironment. A store without an ExpiryIndex
// fails with an error wrapping errors.ErrUnsupported.
//
// The window starts at the time of each call: a page read later starts
// after the previous page's last key and leaves out the keys that have
// expired since.
func (m *Manager) Expiring(ctx context.Context, actor Actor, req ExpiringRequest, page Page) (KeyList, error) {
	if err := authorize(actor, ActionView); err != nil {
		return KeyList{}, err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return KeyList{}, err
	}
	if req.Within < time.Second || req.Within > MaxExpiringWindow {
		return KeyList{}, fmt.Errorf("%w: within must be 1s to %s, got %s", ErrInvalidTimeRange, hours(MaxExpiringWindow), req.Within)
	}
	limit, err := page.limit()
	if err != nil {
		return KeyList{}, err
	}
	cursor, err := parseKeyCursor(page.After)
	if err != nil {
		return KeyList{}, err
	}
	if req.Environment != "" {
		if _, err := m.environment(ctx, actor, req.Environment); err != nil {
			return KeyList{}, err
		}
	}
	idx, ok := m.store.(ExpiryIndex)
	if !ok {
		return KeyList{}, fmt.Errorf("apikey: expiring: the store has no expiry index: %w", errors.ErrUnsupported)
	}
	now := m.Now()
	after := ExpiryPosition{ExpiresAt: now}
	if c := (ExpiryPosition{ExpiresAt: cursor.CreatedAt, ID: cursor.ID}); c.ExpiresAt.After(now) {
		after = c
	}
	keys, err := idx.ExpiringKeys(ctx, ExpiryQuery{Account: account, Environment: req.Environment, After: after,
		Until: now.Add(req.Within), Limit: limit + 1})
	if err != nil {
		return KeyList{}, err
	}
	return keyPage(keys, limit, now, func(last Record) string {
		return keyCursor(KeyPosition{CreatedAt: last.ExpiresAt, ID: last.ID})
	}), nil
}

// Purge deletes the keys, of every account, that were revoked or expired
// more than olderThan ago: the retention the service sets. Imported keys
// are kept (see KeyPurger): their records keep a revoked legacy key from
// being imported again. A zero olderThan purges nothing (keys are kept for
// ever unless the service asks); a negative one fails with
// ErrInvalidTimeRange. Only an operator acting across accounts (an Owner
// with Account AnyAccount) may purge.
//
// Keys are deleted in batches, one transaction each, until none is left
// or ctx is done: at most PurgeBatch keys, as many as take about 5 ms at
// the store's pace (the first batch is small), and after each batch Purge
// pauses for as long as it took, and at least 30 ms, so that validation never waits for it
// and other writes wait for one short batch at most. A service calls
// Purge from a ticker (see the example). Each batch appends one
// ActionPurge event per account it deleted keys of, after its deletion (a
// failure between the two leaves the keys deleted without that event).
// The keys' own audit events and usage counts stay (PruneUsage has a
// retention of its own); other processes drop the keys from their caches
// through the change feed. It returns how many keys it deleted, also when
// it fails part-way. A store without a KeyPurger fails with an error
// wrapping errors.ErrUnsupported.
func (m *Manager) Purge(ctx context.Context, actor Actor, olderThan time.Duration) (int, error) {
	if err := authorize(actor, ActionPurge); err != nil {
		return 0, err
	}
	if actor.Account != AnyAccount {
		return 0, fmt.Errorf("%w: purging keys needs an actor acting across accounts", ErrForbidden)
	}
	if olderThan < 0 {
		return 0, fmt.Errorf("%w: olderThan must not be negative, got %s", ErrInvalidTimeRange, olderThan)
	}
	p, ok := m.store.(KeyPurger)
	if !ok {
		return 0, fmt.Errorf("apikey: purge: the store cannot delete keys: %w", errors.ErrUnsupported)
	}
	if olderThan == 0 {
		return 0, nil
	}
	deleted, size := 0, minPurgeBatch
	cutoff := m.Now().Add(-olderThan)
	for {
		var batch []PurgedKey
		var took time.Duration
		err := m.retry(ctx, func() error { // a store under stricter isolation may report a lost race
			begin := time.Now() // the real clock, whatever m.now is: the pace is the store's
			var err error
			batch, err = p.PurgeKeys(ctx, cutoff, size)
			took = time.Since(begin)
			return err
		})
		deleted += len(batch)
		if err != nil {
			return deleted, err
		}
		if len(batch) > 0 {
			if err := m.apply(ctx, Change{Events: purgeEvents(m.Now(), actor, olderThan, batch)}); err != nil {
				return deleted, err
			}
		}
		if len(batch) < size {
			return deleted, nil
		}
		size = nextPurgeBatch(size, took)
		pause := time.NewTimer(max(took, purgePause)) // the store is other writers' for as long
		select {
		case <-ctx.Done():
			pause.Stop()
			return deleted, fmt.Errorf("apikey: purge: %w", ctx.Err())
		case <-pause.C:
		}
	}
}

// purgeSlice is how long Purge aims to hold the store's write lock per
// batch, and minPurgeBatch the fewest keys it deletes per batch (and its
// first batch's size). A SQLite writer waiting for the lock tries again
// after 1, 3, 8 and 18 ms (its busy handler's schedule), then every 15 to
// 25 ms: a batch that holds the lock for less than 8 ms keeps a waiting
// writer's wait under 20 ms. purgePause is the shortest pause after a
// batch: longer than the 25 ms between two tries, so that a waiting
// writer's next try falls in the pause and it waits for one batch at
// most. PostgreSQL queues the waiters.
const (
	purgeSlice    = 5 * time.Millisecond
	purgePause    = 30 * time.Millisecond
	minPurgeBatch = 25
)

// nextPurgeBatch returns the size of the batch that follows one of size
// keys that took took: the size that takes purgeSlice at that pace, at
// most twice size, within [minPurgeBatch, PurgeBatch].
func nextPurgeBatch(size int, took time.Duration) int {
	next := 2 * size
	if took > 0 {
		next = min(next, int(int64(size)*int64(purgeSlice)/int64(took)))
	}
	return min(max(next, minPurgeBatch), PurgeBatch)
}

// purgeEvents returns one ActionPurge event per account of batch, in the
// order of their first key.
func purgeEvents(now time.Time, actor Actor, olderThan time.Duration, batch []PurgedKey) []Event {
	counts := map[string]int{}
	var accounts []string
	for _, k := range batch {
		if counts[k.Account] == 0 {
			accounts = append(accounts, k.Account)
		}
		counts[k.Account]++
	}
	events := make([]Event, 0, len(accounts))
	for _, a := range accounts {
		events = append(events, Event{Time: now, Actor: actor.audited(), Action: ActionPurge, Account: a,
			Detail: fmt.Sprintf("%d keys deleted, revoked or expired more than %s ago", counts[a], hours(olderThan))})
	}
	return events
}

func (m *Manager) ownerIndex() (OwnerIndex, error) {
	idx, ok := m.store.(OwnerIndex)
	if !ok {
		return nil, fmt.Errorf("apikey: keys by owner: the store has no owner index: %w", errors.ErrUnsupported)
	}
	return idx, nil
}

// validOwnerName checks an owner named to find keys: valid, not empty.
func validOwnerName(owner string) error {
	if owner == "" {
		return fmt.Errorf("%w: owner is required", ErrInvalidMetadata)
	}
	return ValidateOwner(owner)
}

// parseIDCursor reads a cursor that holds a key id.
func parseIDCursor(s string) (string, error) {
	return parseNameCursor(s, func(id string) error {
		if len(id) != IDLength || !isBase62String(id) {
			return errBadCursor
		}
		return nil
	})
}

func isBase62String(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isBase62[s[i]] {
			return false
		}
	}
	return true
}
