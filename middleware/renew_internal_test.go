package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/fakeclock"
	"github.com/keystile/keystile/storage/memory"
)

// renewStore counts the reads of Key and KeysByID of a memory store, and
// can hide KeysByID or make every read fail.
type renewStore struct {
	*memory.Store
	keyReads   atomic.Int64 // Key calls
	batchReads atomic.Int64 // KeysByID calls
	batchKeys  atomic.Int64 // ids passed to KeysByID
	down       atomic.Bool
}

var errStoreDown = errors.New("store: connection refused")

func (s *renewStore) Key(ctx context.Context, id string) (apikey.Record, error) {
	s.keyReads.Add(1)
	if s.down.Load() {
		return apikey.Record{}, errStoreDown
	}
	return s.Store.Key(ctx, id)
}

func (s *renewStore) KeysByID(ctx context.Context, ids []string) ([]apikey.Record, error) {
	s.batchReads.Add(1)
	s.batchKeys.Add(int64(len(ids)))
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.Store.KeysByID(ctx, ids)
}

// idOf returns the key id of the key string s.
func idOf(t *testing.T, s string) string {
	t.Helper()
	key, err := apikey.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return key.ID()
}

// renewFixture is a Validator on a fake clock over n keys, with renewal
// left to the test, which calls renewQueued itself.
type renewFixture struct {
	v        *Validator
	store    *renewStore
	clk      *fakeclock.Clock
	hasher   *countingHasher
	keys     []string
	requests []*http.Request
	errs     atomic.Int64 // OnBackgroundError calls
}

func newRenewFixture(t *testing.T, n int, batch bool) *renewFixture {
	t.Helper()
	ks, err := newKeySet(n)
	if err != nil {
		t.Fatal(err)
	}
	f := &renewFixture{
		store:  &renewStore{Store: ks.store},
		clk:    fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		hasher: &countingHasher{Argon2id: apikey.Argon2id{Params: apikey.TestParams}},
		keys:   ks.keys,
	}
	defer func(every time.Duration) { renewEvery = every }(renewEvery)
	renewEvery = time.Hour // no renewal but the test's
	f.v, err = New(Options{
		Store: f.store, Hasher: f.hasher, Now: f.clk.Now, FeedInterval: time.Hour, BatchRenewals: batch,
		OnBackgroundError: func(error) { f.errs.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.v.Close() })
	for _, key := range ks.keys {
		f.requests = append(f.requests, benchRequest(key))
	}
	f.serveAll(t, http.StatusOK) // every key verified once, and cached
	return f
}

// serveAll sends every key once and checks the status of each response.
func (f *renewFixture) serveAll(t *testing.T, want int) {
	t.Helper()
	h := f.v.Handler(noop)
	for i, r := range f.requests {
		if code := serveOnce(h, r).Code; code != want {
			t.Fatalf("key %d: status %d, want %d", i, code, want)
		}
	}
}

// renewalDue is a time after an entry's creation at which, whatever its
// renewal time (after 4/5 to all of DefaultCacheTTL: see cache.lifetime),
// the entry is due for renewal and has not ended.
const renewalDue = DefaultCacheTTL - time.Millisecond

// TestRenewalKeepsKeysInUse: keys used once their entries are due for
// renewal are renewed by one store call in the background, and are then
// served past the end of those entries with no read and no argon2 on any
// request.
func TestRenewalKeepsKeysInUse(t *testing.T) {
	for _, batch := range []bool{true, false} {
		f := newRenewFixture(t, 3, batch)
		keyReads := f.store.keyReads.Load() // the first verifications

		f.clk.Advance(DefaultCacheTTL / 2) // no renewal is due before 4/5 of the TTL
		f.serveAll(t, http.StatusOK)
		f.v.renewQueued(context.Background())
		if got := f.v.Stats().CacheRenewals; got != 0 {
			t.Fatalf("batch %v: %d keys renewed halfway through their lifetime, want 0", batch, got)
		}

		f.clk.Advance(renewalDue - DefaultCacheTTL/2)
		f.serveAll(t, http.StatusOK)
		f.v.renewQueued(context.Background())
		if got := f.v.Stats().CacheRenewals; got != 3 {
			t.Fatalf("batch %v: %d keys renewed, want 3", batch, got)
		}
		if batch {
			if calls, keys := f.store.batchReads.Load(), f.store.batchKeys.Load(); calls != 1 || keys != 3 {
				t.Fatalf("renewal: %d KeysByID calls for %d ids, want 1 for 3", calls, keys)
			}
			if got := f.store.keyReads.Load() - keyReads; got != 0 {
				t.Fatalf("renewal: %d Key calls, want 0", got)
			}
		} else {
			if got := f.store.keyReads.Load() - keyReads; got != 3 {
				t.Fatalf("renewal without BatchRenewals: %d Key calls, want 3", got)
			}
			if got := f.store.batchReads.Load(); got != 0 {
				t.Fatalf("renewal without BatchRenewals: %d KeysByID calls, want 0 (the store's Key may differ)", got)
			}
		}

		reads, batchReads, misses := f.store.keyReads.Load(), f.store.batchReads.Load(), f.v.Stats().CacheMisses
		f.clk.Advance(time.Second) // past the end of every first lifetime
		f.serveAll(t, http.StatusOK)
		if got := f.store.keyReads.Load() - reads; got != 0 {
			t.Fatalf("batch %v: %d Key reads on requests after the renewal, want 0", batch, got)
		}
		if got := f.store.batchReads.Load() - batchReads; got != 0 {
			t.Fatalf("batch %v: %d KeysByID calls on requests, want 0", batch, got)
		}
		if got := f.v.Stats().CacheMisses - misses; got != 0 {
			t.Fatalf("batch %v: %d cache misses after the renewal, want 0", batch, got)
		}
		if got := f.hasher.verifies.Load(); got != 3 {
			t.Fatalf("batch %v: %d argon2 runs for 3 keys, want 3", batch, got)
		}
	}
}

// TestRenewalRefusesChangedKeys: a renewal that reads a revoked key makes
// its entry refuse it, from memory, with no change feed.
func TestRenewalRefusesChangedKeys(t *testing.T) {
	f := newRenewFixture(t, 2, true)
	ctx := context.Background()
	keyID := idOf(t, f.keys[0])
	rec, err := f.store.Store.Key(ctx, keyID)
	if err != nil {
		t.Fatal(err)
	}
	rec.RevokedAt = f.clk.Now()
	if err := f.store.Apply(ctx, apikey.Change{Update: []apikey.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(renewalDue)
	f.serveAll(t, http.StatusOK) // still cached: nothing told this process
	f.v.renewQueued(ctx)

	h, reads := f.v.Handler(noop), f.store.keyReads.Load()
	if code := serveOnce(h, f.requests[0]).Code; code != http.StatusUnauthorized {
		t.Fatalf("revoked key after the renewal: %d, want 401", code)
	}
	if code := serveOnce(h, f.requests[1]).Code; code != http.StatusOK {
		t.Fatalf("the other key after the renewal: %d, want 200", code)
	}
	if got := f.store.keyReads.Load() - reads; got != 0 {
		t.Fatalf("%d Key reads after the renewal, want 0", got)
	}
}

// TestRenewalSkipsIdleKeys: a key not used between its entry's renewal
// time and its end is not renewed; its next request re-validates it with
// one store read, without argon2.
func TestRenewalSkipsIdleKeys(t *testing.T) {
	f := newRenewFixture(t, 2, true)
	h := f.v.Handler(noop)
	f.clk.Advance(renewalDue)
	if code := serveOnce(h, f.requests[0]).Code; code != http.StatusOK { // key 1 idle
		t.Fatalf("status %d", code)
	}
	f.v.renewQueued(context.Background())
	if got := f.store.batchKeys.Load(); got != 1 {
		t.Fatalf("%d keys renewed, want 1 (the key in use)", got)
	}
	f.clk.Advance(time.Second)
	reads := f.store.keyReads.Load()
	f.serveAll(t, http.StatusOK)
	if got := f.store.keyReads.Load() - reads; got != 1 {
		t.Fatalf("%d Key reads, want 1 (the idle key's re-validation)", got)
	}
	if got := f.hasher.verifies.Load(); got != 2 {
		t.Fatalf("%d argon2 runs for 2 keys, want 2", got)
	}
}

// TestRenewalFailureKeepsLifetimes: when the store fails during a renewal,
// the error is reported, the entries end when their lifetimes end, and
// requests then fail closed until the store is back.
func TestRenewalFailureKeepsLifetimes(t *testing.T) {
	f := newRenewFixture(t, 2, true)
	f.clk.Advance(renewalDue)
	f.serveAll(t, http.StatusOK)
	f.store.down.Store(true)
	f.v.renewQueued(context.Background())
	if got := f.errs.Load(); got != 1 {
		t.Fatalf("%d background errors, want 1", got)
	}
	if got := f.v.Stats().CacheRenewals; got != 0 {
		t.Fatalf("%d keys renewed while the store was down", got)
	}
	f.serveAll(t, http.StatusOK) // still within their lifetimes
	f.clk.Advance(time.Second)
	f.serveAll(t, http.StatusServiceUnavailable)
	f.store.down.Store(false)
	f.serveAll(t, http.StatusOK)
}

// TestRenewalFailureRetries: keys whose renewal failed are renewed at the
// next pass once the store answers again.
func TestRenewalFailureRetries(t *testing.T) {
	f := newRenewFixture(t, 2, true)
	f.clk.Advance(renewalDue)
	f.serveAll(t, http.StatusOK)
	f.store.down.Store(true)
	f.v.renewQueued(context.Background())
	f.store.down.Store(false)
	f.v.renewQueued(context.Background())
	if got := f.v.Stats().CacheRenewals; got != 2 {
		t.Fatalf("%d keys renewed after the store came back, want 2", got)
	}
	reads := f.store.keyReads.Load()
	f.clk.Advance(time.Second)
	f.serveAll(t, http.StatusOK)
	if got := f.store.keyReads.Load() - reads; got != 0 {
		t.Fatalf("%d Key reads after the renewal, want 0", got)
	}
}

// confusedStore's KeysByID returns, after the records asked for, an older
// copy of each and a record nobody asked for: a store that breaks the
// KeyBatchReader contract.
type confusedStore struct {
	*memory.Store
	older map[string]apikey.Record
	extra apikey.Record
}

func (s *confusedStore) KeysByID(ctx context.Context, ids []string) ([]apikey.Record, error) {
	recs, err := s.Store.KeysByID(ctx, ids)
	for _, r := range recs {
		if old, ok := s.older[r.ID]; ok {
			recs = append(recs, old)
		}
	}
	return append(recs, s.extra), err
}

// TestRenewalKeepsTheNewestRecord: of two records of one key in a batch,
// the renewal applies the newer: a revoked key is not served again from
// the older copy.
func TestRenewalKeepsTheNewestRecord(t *testing.T) {
	ks, err := newKeySet(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keyID := idOf(t, ks.keys[0])
	active, err := ks.store.Key(ctx, keyID)
	if err != nil {
		t.Fatal(err)
	}
	store := &confusedStore{Store: ks.store, older: map[string]apikey.Record{keyID: active}}
	otherID := idOf(t, ks.keys[1])
	if store.extra, err = ks.store.Key(ctx, otherID); err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	defer func(every time.Duration) { renewEvery = every }(renewEvery)
	renewEvery = time.Hour
	v, err := New(Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clk.Now, FeedInterval: time.Hour, BatchRenewals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h, r := v.Handler(noop), benchRequest(ks.keys[0])
	if code := serveOnce(h, r).Code; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	revoked := active
	revoked.RevokedAt = clk.Now()
	if err := ks.store.Apply(ctx, apikey.Change{Update: []apikey.Record{revoked}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(renewalDue)
	if code := serveOnce(h, r).Code; code != http.StatusOK { // nothing told this process yet
		t.Fatalf("before the renewal: %d", code)
	}
	v.renewQueued(ctx)
	if code := serveOnce(h, r).Code; code != http.StatusUnauthorized {
		t.Fatalf("after a renewal that read the revoked and the older record: %d, want 401", code)
	}
	if got := v.Stats().CacheRenewals; got != 1 {
		t.Fatalf("%d keys renewed, want 1 (the record nobody asked for is left out)", got)
	}
}

// TestEvictionBookkeepingKeepsRecentTokens: when the table of evicted key
// ids is full, only verifications (and renewals) that started before the
// older half of its evictions are treated as stale. It used to forget
// every id and make every token stale, so a renewal of many keys made its
// own later keys stale, and they were read again on their next request.
func TestEvictionBookkeepingKeepsRecentTokens(t *testing.T) {
	c, err := newCache(config{Options: Options{CacheTTL: DefaultCacheTTL}})
	if err != nil {
		t.Fatal(err)
	}
	old := c.startToken()
	for i := range maxEvictedIDs - 1 {
		c.evict(fmt.Sprintf("old-%d", i))
	}
	token := c.startToken()
	for i := range 100 { // the table overflows at the first of these
		c.evict(fmt.Sprintf("new-%d", i))
	}
	if c.stale("untouched", token) {
		t.Error("a token taken 100 evictions ago is stale for a key id evicted before it")
	}
	if !c.stale("new-7", token) {
		t.Error("a key id evicted after the token is not stale")
	}
	if !c.stale("untouched", old) {
		t.Error("a token older than the forgotten evictions is not stale")
	}
	if n := len(c.evictedAt); n > maxEvictedIDs {
		t.Errorf("%d evicted ids remembered, want at most %d", n, maxEvictedIDs)
	}
}

// hangingStore's KeysByID waits until release is closed (or its context
// ends), after closing entered.
type hangingStore struct {
	*memory.Store
	entered, release chan struct{}
	once             sync.Once
}

func (s *hangingStore) KeysByID(ctx context.Context, ids []string) ([]apikey.Record, error) {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.KeysByID(ctx, ids)
}

// TestSlowRenewalDelaysNoRevocation: a renewal waiting for the store does
// not hold up the change feed, which applies a revocation made elsewhere
// meanwhile. Renewals used to run in the feed's loop: the revocation
// waited for the renewal's 5-second timeout.
func TestSlowRenewalDelaysNoRevocation(t *testing.T) {
	ks, err := newKeySet(2)
	if err != nil {
		t.Fatal(err)
	}
	store := &hangingStore{Store: ks.store, entered: make(chan struct{}), release: make(chan struct{})}
	defer close(store.release)
	clk := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	defer func(every time.Duration) { renewEvery = every }(renewEvery)
	renewEvery = 5 * time.Millisecond
	v, err := New(Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clk.Now,
		FeedInterval: 5 * time.Millisecond, BatchRenewals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h := v.Handler(noop)
	renewed, revoked := benchRequest(ks.keys[0]), benchRequest(ks.keys[1])
	for _, r := range []*http.Request{renewed, revoked} {
		if code := serveOnce(h, r).Code; code != http.StatusOK {
			t.Fatalf("first request: %d", code)
		}
	}
	clk.Advance(renewalDue)
	if code := serveOnce(h, renewed).Code; code != http.StatusOK {
		t.Fatalf("request that queues the renewal: %d", code)
	}
	select {
	case <-store.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no renewal started")
	}

	keyID := idOf(t, ks.keys[1])
	ctx := context.Background()
	rec, err := ks.store.Key(ctx, keyID)
	if err != nil {
		t.Fatal(err)
	}
	rec.RevokedAt = clk.Now()
	if err := ks.store.Apply(ctx, apikey.Change{Update: []apikey.Record{rec}}); err != nil { // another process
		t.Fatal(err)
	}
	start := time.Now()
	for serveOnce(h, revoked).Code != http.StatusUnauthorized {
		if time.Since(start) > 2*time.Second {
			t.Fatal("the revocation was not applied within 2 s while a renewal waited for the store")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUnchangedRenewalIsNoEviction: renewing an unchanged key leaves
// verifications of it in flight valid; a renewal that reads a change ends
// them, as an eviction does. Every renewal used to count as an eviction,
// which with many keys in use made slow verifications stale.
func TestUnchangedRenewalIsNoEviction(t *testing.T) {
	f := newRenewFixture(t, 1, true)
	keyID := idOf(t, f.keys[0])
	f.clk.Advance(renewalDue)
	f.serveAll(t, http.StatusOK)
	token := f.v.cache.startToken() // a verification of the key starts
	f.v.renewQueued(context.Background())
	if got := f.v.Stats().CacheRenewals; got != 1 {
		t.Fatalf("%d keys renewed, want 1", got)
	}
	if f.v.cache.stale(keyID, token) {
		t.Fatal("a renewal that read the same revision made a verification in flight stale")
	}

	ctx := context.Background()
	rec, err := f.store.Store.Key(ctx, keyID)
	if err != nil {
		t.Fatal(err)
	}
	rec.Scopes = []string{"invoices:read"}
	if err := f.store.Apply(ctx, apikey.Change{Update: []apikey.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(renewalDue)
	f.serveAll(t, http.StatusOK)
	token = f.v.cache.startToken()
	f.v.renewQueued(ctx)
	if !f.v.cache.stale(keyID, token) {
		t.Fatal("a renewal that read a changed record left a verification in flight valid")
	}
}
