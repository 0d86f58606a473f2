package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// feedBatch is how many change-feed entries one request asks for.
const feedBatch = 1000

// feedState is the position of the change-feed follower. Only the
// background loop (and New, before it starts) touches it.
type feedState struct {
	following bool  // since is a revision read from the store
	since     int64 // the last revision applied
}

// startFeed reads the store's current revision, from which the follower
// starts. If it fails, pollFeed retries.
func (v *Validator) startFeed(ctx context.Context) {
	if v.feed == nil {
		return
	}
	rev, err := v.feedRevision(ctx)
	if err != nil {
		v.cfg.OnBackgroundError(fmt.Errorf("middleware: reading the change feed revision: %w", err))
		return
	}
	// Entries cached before this revision was read may be stale: drop them.
	v.cache.purge()
	v.pos = feedState{following: true, since: rev}
	v.feedRead(rev)
}

// pollFeed applies every change since the last poll: it updates or evicts
// the cached entries of changed keys (see applyKeyChange) and reloads the
// settings of each environment whose settings changed (one Store.Settings
// read each). On storage.ErrFeedGap it drops the whole cache and reloads
// every environment's settings. If the store does not answer,
// cached keys keep working until their cache TTL ends.
func (v *Validator) pollFeed(ctx context.Context) {
	if !v.pos.following {
		v.startFeed(ctx)
		if v.pos.following {
			v.reloadSettings(ctx)
		}
		return
	}
	changed := map[envKey]struct{}{} // environments whose settings changed
	defer func() {
		for k := range changed {
			if err := v.reloadEnv(ctx, k); err != nil {
				if ctx.Err() == nil {
					v.cfg.OnBackgroundError(err)
				}
				v.addPending(k) // retried after this poll, and at the next ones
			}
		}
	}()
	for {
		token := v.cache.startToken() // the records of this page are read after it
		now := v.cfg.Now()            // and after now, where their entries' lifetimes start
		changes, next, err := v.feedChanges(ctx, v.pos.since)
		if errors.Is(err, storage.ErrFeedGap) {
			v.cache.purge()
			v.pos.since = next
			clear(changed)
			v.reloadSettings(ctx)
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				v.cfg.OnBackgroundError(fmt.Errorf("middleware: following the change feed: %w", err))
			}
			return
		}
		keys := map[string]*apikey.Record{} // the page's changed keys, and their records if the store sent them
		for _, c := range changes {
			switch {
			case c.KeyID != "":
				keys[c.KeyID] = c.Key
			case c.Account == "":
				// A store that does not name accounts: reload everything.
				v.markFullReload()
			case len(changed) < maxPendingEnvs:
				changed[envKey{c.Account, c.Environment}] = struct{}{}
			default:
				v.markFullReload()
			}
		}
		for id, rec := range keys {
			v.applyKeyChange(id, rec, token, now)
		}
		v.pos.since = next
		v.feedRead(next)
		if len(changes) < feedBatch {
			return
		}
	}
}

// applyKeyChange updates the cached entries of the key id from its record
// rec, read after token and after now (where the new entries' lifetimes
// start), so that the key's next request is answered from memory: a
// revoked, expired or rescoped key is refused with no storage call and no
// argon2. An entry is remade only while the stored hash is one the
// presented key verified against in this process; otherwise, and when the
// store sent no record (rec nil), the key is evicted and read again when
// it is next presented.
func (v *Validator) applyKeyChange(id string, rec *apikey.Record, token uint64, now time.Time) {
	if rec == nil || rec.ID != id {
		v.cache.evict(id)
		return
	}
	hashPrint := fingerprint(rec.Hash.Reveal())
	v.cache.update(id, token, rec.Revision, func(old *entry) *entry {
		k, outdated := old.ident.presented, old.outdated
		if rec.Revision < old.revision {
			// A verification read a newer record after the page was read
			// (revisions only grow): never go back.
			return nil
		}
		if old.hashPrint != hashPrint {
			var match bool
			if match, outdated = v.verified.matches(k, hashPrint); !match {
				return nil
			}
		}
		if old.ident.Type != rec.Type {
			return nil
		}
		return newValidEntry(v, k, *rec, hashPrint, outdated, now)
	})
}

// feedRead records a successful read of the change feed up to rev.
func (v *Validator) feedRead(rev int64) {
	v.stats.feedRevision.Store(rev)
	v.stats.feedReadAt.Store(v.cfg.Now().UnixNano())
}

// feedRevision and feedChanges call the store's change feed; a panic of the
// store becomes an error, so that a faulty custom store cannot end the
// process.
func (v *Validator) feedRevision(ctx context.Context) (rev int64, err error) {
	defer catchPanic("reading the change feed revision", &err)
	return v.feed.Revision(ctx)
}

func (v *Validator) feedChanges(ctx context.Context, since int64) (changes []storage.Changed, next int64, err error) {
	defer catchPanic("following the change feed", &err)
	return v.feed.Changes(ctx, since, feedBatch)
}
