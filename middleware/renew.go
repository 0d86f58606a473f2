package middleware

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
)

// Renewal keeps the cache entries of the keys in use from ending: a
// request served from an entry past its renewal time (see cache.lifetime)
// queues the entry's key id, once per entry, and a goroutine of its own
// (renewLoop) reads the queued keys every second, off the request path,
// and remakes their entries from the records as the change feed does
// (applyKeyChange). A key
// whose stored hash is unchanged gets a new lifetime without argon2; a
// revoked, expired or changed key is then refused from memory, or read
// again on its next request. With Options.BatchRenewals and a store that
// implements storage.KeyBatchReader, one call reads up to 1,000 keys;
// otherwise each key is one Key call, as its re-validation on a request
// would have been.
//
// A key in steady use is therefore re-validated about once per CacheTTL
// without a request waiting for it, and no entry is served past CacheTTL
// after its record was read. A key whose first request after the renewal
// time comes after the end is re-validated on that request.

// renewEvery is how often the renewal goroutine renews the queued keys (at
// most every CacheTTL/8). It is a variable so that internal tests can keep
// the goroutine out of their way and call renewQueued themselves.
var renewEvery = time.Second

// renewBatch is how many keys one storage.KeyBatchReader call reads.
const renewBatch = 1000

// renewQueue holds the keys whose entries are due for renewal.
type renewQueue struct {
	mu   sync.Mutex
	keys []dueKey
	max  int // keys beyond it are dropped: their entries end as without renewal
}

// dueKey is a key id queued for renewal by a request at time at.
type dueKey struct {
	id string
	at time.Time
}

func (q *renewQueue) add(keys ...dueKey) {
	q.mu.Lock()
	q.keys = append(q.keys, keys[:min(len(keys), max(q.max-len(q.keys), 0))]...)
	q.mu.Unlock()
}

// take empties the queue and returns its keys sorted by id, each once,
// with the earliest time it was queued at.
func (q *renewQueue) take() []dueKey {
	q.mu.Lock()
	keys := q.keys
	q.keys = nil
	q.mu.Unlock()
	slices.SortFunc(keys, func(a, b dueKey) int {
		if c := strings.Compare(a.id, b.id); c != 0 {
			return c
		}
		return a.at.Compare(b.at)
	})
	return slices.CompactFunc(keys, func(a, b dueKey) bool { return a.id == b.id })
}

// queueRenewal queues the key of e, a cached entry just served at now, for
// renewal once its renewal time has come.
func (v *Validator) queueRenewal(e *entry, now time.Time) {
	if v.cache.valid == nil || now.Before(e.renewAt) || e.queued.Load() || !e.queued.CompareAndSwap(false, true) {
		return
	}
	v.renewals.add(dueKey{e.keyID, now})
}

// renewLoop renews the queued keys every renewEvery, in a goroutine of its
// own, so that a slow store delays no change-feed read.
func (v *Validator) renewLoop(ctx context.Context) {
	t := time.NewTicker(max(min(v.renewEvery, v.cfg.CacheTTL/8), time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.renewQueued(ctx)
		}
	}
}

// renewQueued renews the entries of the queued keys. If the store fails or
// takes more than 5 seconds, the error goes to OnBackgroundError and the
// keys not renewed are queued again, for the next pass: their entries
// keep their lifetimes, and end at CacheTTL after their records were read
// if the store does not answer by then.
func (v *Validator) renewQueued(ctx context.Context) {
	keys := v.renewals.take()
	if len(keys) == 0 {
		return
	}
	readCtx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	for i := 0; i < len(keys); i += renewBatch {
		if err := v.renew(readCtx, keys[i:min(i+renewBatch, len(keys))]); err != nil {
			if ctx.Err() == nil { // not closing
				v.cfg.OnBackgroundError(err)
				v.renewals.add(keys[i:]...)
			}
			return
		}
	}
}

// renew reads the records of keys and remakes their entries. A new
// entry's lifetime starts when its key was queued, a little before the
// read: it never outlives CacheTTL after the read, and a key in steady
// use is renewed once per lifetime, however late renewLoop runs.
func (v *Validator) renew(ctx context.Context, keys []dueKey) (err error) {
	defer catchPanic("renewing cached keys", &err)
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.id
	}
	token := v.cache.startToken() // the records are read after it
	recs, err := v.readKeys(ctx, ids)
	if err != nil {
		return fmt.Errorf("middleware: renewing cached keys: %w", err)
	}
	for _, k := range keys {
		v.applyKeyChange(k.id, recs[k.id], token, k.at)
	}
	v.stats.renewals.Add(uint64(len(keys)))
	return nil
}

// readKeys reads the records of ids: in one call with Options.BatchRenewals
// and a storage.KeyBatchReader, else one Key call each. An id with no
// record maps to nil. Of records of the same id (a store that breaks the
// KeyBatchReader contract), the newest revision is kept; records of ids not
// asked for are left out.
func (v *Validator) readKeys(ctx context.Context, ids []string) (map[string]*apikey.Record, error) {
	out := make(map[string]*apikey.Record, len(ids))
	if v.batch != nil {
		recs, err := v.batch.KeysByID(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			out[id] = nil
		}
		for i := range recs {
			if cur, asked := out[recs[i].ID]; asked && (cur == nil || recs[i].Revision > cur.Revision) {
				out[recs[i].ID] = &recs[i]
			}
		}
		return out, nil
	}
	for _, id := range ids {
		rec, err := v.cfg.Store.Key(ctx, id)
		switch {
		case errors.Is(err, apikey.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[id] = &rec
		}
	}
	return out, nil
}
