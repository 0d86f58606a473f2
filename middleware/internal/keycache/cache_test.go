package keycache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestKeyCoversTheWholeKey changes each byte of a key in turn: every change
// must give another Key, in the public head as in the secret and checksum,
// since a cache hit skips the format and checksum checks.
func TestKeyCoversTheWholeKey(t *testing.T) {
	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	s := key.Reveal()
	k := KeyOf(s)
	for i := range len(s) {
		b := []byte(s)
		b[i] ^= 1
		assert.NotEqual(t, k, KeyOf(string(b)), "changing byte %d left the Key unchanged", i)
	}
	_, err = apikey.ParseKey("client-" + s[len("server-"):])
	require.Error(t, err, "a server key with its type changed parsed")
	assert.NotEqual(t, k, KeyOf("client-"+s[len("server-"):]), "the Key ignores the key's type")
}

func newKey(t testing.TB) (Key, string) {
	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	return KeyOf(key.Reveal()), key.ID()
}

// matches and refutes are the answers of s.Lookup(k, hash), one at a time.
func matches(s *Verified, k Key, hash uint64) (match, outdated bool) {
	match, outdated, _ = s.Lookup(k, hash)
	return match, outdated
}

func refutes(s *Verified, k Key, hash uint64) bool {
	_, _, refuted := s.Lookup(k, hash)
	return refuted
}

// TestVerifiedTellsHeadsApart remembers keys in a table of one bucket, so
// that every key shares it: a Key with the same digest under another head
// is not taken for the one that verified, a hash it did not verify against
// does not match, the bucket keeps verifiedWays keys, and slots stay 32
// bytes.
func TestVerifiedTellsHeadsApart(t *testing.T) {
	k, _ := newKey(t)
	other := k
	other.head[0] = 'c'
	table := NewVerified(0)
	table.mask = 0 // one bucket: only the tags tell keys apart
	require.False(t, table.Contains(k), "an empty table contains a key")
	table.Add(k, 42, false)
	require.True(t, table.Contains(k))
	match, _ := matches(table, k, 42)
	require.True(t, match, "a key that verified does not match its hash")
	match, _ = matches(table, k, 43)
	require.False(t, match, "a key matches a hash it did not verify against")
	require.False(t, table.Contains(other), "a key with another head is taken for the key that verified")
	table.Add(other, 43, true)
	match, outdated := matches(table, other, 43)
	require.True(t, match && outdated)
	require.True(t, table.Contains(k), "a bucket with free slots dropped a key")
	table.Add(k, 44, false) // an upgrade replaces the key's hash
	match, _ = matches(table, k, 42)
	require.False(t, match)
	for range verifiedWays {
		k2, _ := newKey(t)
		table.Add(k2, 1, false)
	}
	require.False(t, table.Contains(k), "a full bucket keeps its oldest key")
	require.Equal(t, uintptr(32), unsafe.Sizeof(verifiedSlot{}), "slot size")
}

// TestVerifiedRefutesOtherKeysOfTheID: once a key verified against a hash,
// every other key of its id (same head, another secret) is refuted for that
// hash, and only for it; the key itself, and keys of other ids, are not,
// even in a table of one bucket where only the tags tell ids apart. Keys of
// one id share a bucket.
func TestVerifiedRefutesOtherKeysOfTheID(t *testing.T) {
	k, _ := newKey(t)
	sameID := k
	sameID.sum[0] ^= 1 // another secret of the same id
	otherID, _ := newKey(t)
	table := NewVerified(0)
	first, _, _ := table.ref(k)
	firstSame, _, _ := table.ref(sameID)
	require.Equal(t, first, firstSame, "keys of one id in different buckets")

	table.mask = 0 // one bucket
	require.False(t, refutes(table, sameID, 42), "an empty table refutes a key")
	table.Add(k, 42, false)
	assert.True(t, refutes(table, sameID, 42), "another key of the id")
	assert.False(t, refutes(table, sameID, 43), "another hash of the id")
	assert.False(t, refutes(table, k, 42), "the key that verified")
	assert.False(t, refutes(table, otherID, 42), "a key of another id")
	table.Add(sameID, 43, false) // the id's hash changed to that of sameID
	assert.True(t, refutes(table, k, 43))
	assert.False(t, refutes(table, sameID, 43))
}

// TestEntriesAreServedWhileFresh: a valid entry is served before its own
// Until or before the cache's feed deadline, a failure only before its
// Until, and an evicted entry never.
func TestEntriesAreServedWhileFresh(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c, err := New[int](10, true)
	require.NoError(t, err)
	k, id := newKey(t)
	c.AddValid(&Entry[int]{Key: k, KeyID: id, Value: 7, Until: now.Add(time.Minute)}, c.Token())
	require.NotNil(t, c.Get(k, now))
	require.Nil(t, c.Get(k, now.Add(time.Minute)), "served past Until")
	c.SetFresh(now.Add(2 * time.Minute))
	require.NotNil(t, c.Get(k, now.Add(time.Minute)), "not served before the feed deadline")
	require.Nil(t, c.Get(k, now.Add(2*time.Minute)), "served past the feed deadline")
	c.Evict(id)
	require.Nil(t, c.Get(k, now), "an evicted entry is served")

	f, fid := newKey(t)
	c.AddFailed(&Entry[int]{Key: f, KeyID: fid, Fail: errors.New("no"), Until: now.Add(time.Second)}, c.Token())
	require.NotNil(t, c.Get(f, now))
	require.Nil(t, c.Get(f, now.Add(time.Second)), "a failure served past its Until (the feed deadline is for valid keys)")
}

// TestStaleResultsAreNotCached: an outcome read before an eviction of its
// key id, or before a purge, is not cached; evictions of other ids do not
// matter.
func TestStaleResultsAreNotCached(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c, err := New[int](10, true)
	require.NoError(t, err)
	k, id := newKey(t)
	token := c.Token()
	c.Evict("another")
	c.AddValid(&Entry[int]{Key: k, KeyID: id, Until: now.Add(time.Minute)}, token)
	require.NotNil(t, c.Get(k, now), "an eviction of another id made a result stale")

	token = c.Token()
	c.Evict(id)
	c.AddValid(&Entry[int]{Key: k, KeyID: id, Until: now.Add(time.Minute)}, token)
	require.Nil(t, c.Get(k, now), "a result read before an eviction was cached")
	require.Greater(t, c.Generation(id), token)

	f, fid := newKey(t)
	token = c.Token()
	c.Purge()
	c.AddFailed(&Entry[int]{Key: f, KeyID: fid, Until: now.Add(time.Minute)}, token)
	require.Nil(t, c.Get(f, now), "a failure read before a purge was cached")
}

// TestEvictionBookkeepingKeepsRecentTokens: when the table of evicted key
// ids is full, only verifications that started before the older half of
// its evictions are stale.
func TestEvictionBookkeepingKeepsRecentTokens(t *testing.T) {
	c, err := New[int](10, true)
	require.NoError(t, err)
	old := c.Token()
	for i := range maxEvictedIDs - 1 {
		c.Evict(fmt.Sprintf("old-%d", i))
	}
	token := c.Token()
	for i := range 100 { // the table overflows at the first of these
		c.Evict(fmt.Sprintf("new-%d", i))
	}
	assert.False(t, c.Stale("untouched", token), "a token taken 100 evictions ago is stale for a key id evicted before it")
	assert.True(t, c.Stale("new-7", token), "a key id evicted after the token is not stale")
	assert.True(t, c.Stale("untouched", old), "a token older than the forgotten evictions is not stale")
	assert.LessOrEqual(t, len(c.evictedAt), maxEvictedIDs)
}

// TestUnchangedUpdateIsNoEviction: remaking every entry of a key id from the
// revision they were made from leaves verifications in flight valid; an
// update from another revision ends them, as an eviction does; an update
// read before an eviction only evicts.
func TestUnchangedUpdateIsNoEviction(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c, err := New[int](10, true)
	require.NoError(t, err)
	k, id := newKey(t)
	c.AddValid(&Entry[int]{Key: k, KeyID: id, Revision: 3, Value: 1, Until: now.Add(time.Minute)}, c.Token())
	remake := func(rev int64, value int) func(old *Entry[int]) *Entry[int] {
		return func(old *Entry[int]) *Entry[int] {
			return &Entry[int]{Key: old.Key, KeyID: id, Revision: rev, Value: value, Until: now.Add(time.Minute)}
		}
	}
	token := c.Token()
	c.Update(id, c.Token(), 3, remake(3, 2))
	require.False(t, c.Stale(id, token), "an unchanged update made a verification in flight stale")
	require.Equal(t, 2, c.Get(k, now).Value)

	c.Update(id, c.Token(), 4, remake(4, 3))
	require.True(t, c.Stale(id, token), "a changed update left a verification in flight valid")
	require.Equal(t, 3, c.Get(k, now).Value)

	token = c.Token()
	c.Evict(id)
	c.AddValid(&Entry[int]{Key: k, KeyID: id, Revision: 5, Value: 4, Until: now.Add(time.Minute)}, c.Token())
	c.Update(id, token, 5, remake(5, 5))
	require.Nil(t, c.Get(k, now), "an update read before an eviction was applied")
}

// TestLastUseIsNotedOncePerSecond: Touch notes a key's last use at most
// once a second per entry; TakeUsed empties the notes and RestoreUsed puts
// them back.
func TestLastUseIsNotedOncePerSecond(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c, err := New[int](10, true)
	require.NoError(t, err)
	k, id := newKey(t)
	e := &Entry[int]{Key: k, KeyID: id, Until: now.Add(time.Minute)}
	c.AddValid(e, c.Token())
	c.Touch(e, now)
	used := c.TakeUsed()
	require.Equal(t, map[string]time.Time{id: now}, used)
	c.Touch(e, now.Add(500*time.Millisecond))
	require.Empty(t, c.TakeUsed(), "noted twice within a second")
	c.Touch(e, now.Add(time.Second))
	c.RestoreUsed(used)
	require.Equal(t, map[string]time.Time{id: now.Add(time.Second)}, c.TakeUsed())
}

// TestLastUseIsKeptToTheSecond: whatever became of an entry between its
// uses (in the cache, pushed out, replaced, evicted, never cached), TakeUsed
// returns its last second of use in the period, once, and nothing in a
// period without a new second.
func TestLastUseIsKeptToTheSecond(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		size  int
		token func(c *Cache[int], id string) uint64 // of e's AddValid
		then  func(c *Cache[int], e *Entry[int])    // between its first uses
	}{
		{name: "cached", size: 10},
		{name: "pushed out of the LRU", size: 1, then: func(c *Cache[int], _ *Entry[int]) {
			k, id := newKey(t)
			c.AddValid(&Entry[int]{Key: k, KeyID: id, Until: now.Add(time.Minute)}, c.Token())
		}},
		{name: "replaced", size: 10, then: func(c *Cache[int], e *Entry[int]) {
			c.AddValid(&Entry[int]{Key: e.Key, KeyID: e.KeyID, Until: now.Add(time.Minute)}, c.Token())
		}},
		{name: "evicted", size: 10, then: func(c *Cache[int], e *Entry[int]) { c.Evict(e.KeyID) }},
		{name: "purged", size: 10, then: func(c *Cache[int], _ *Entry[int]) { c.Purge() }},
		{name: "gone stale before caching", size: 10, token: func(c *Cache[int], id string) uint64 {
			token := c.Token()
			c.Evict(id)
			return token
		}},
		{name: "cache disabled", size: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New[int](tc.size, true)
			require.NoError(t, err)
			k, id := newKey(t)
			e := &Entry[int]{Key: k, KeyID: id, Until: now.Add(time.Minute)}
			token := c.Token()
			if tc.token != nil {
				token = tc.token(c, id)
			}
			c.AddValid(e, token)
			c.Touch(e, now)
			c.Touch(e, now.Add(500*time.Millisecond))
			if tc.then != nil {
				tc.then(c, e)
			}
			c.Touch(e, now.Add(time.Second))
			c.Touch(e, now.Add(1500*time.Millisecond))
			require.Equal(t, map[string]time.Time{id: now.Add(time.Second)}, c.TakeUsed())
			require.Empty(t, c.noted, "TakeUsed left entries noted")
			c.Touch(e, now.Add(1900*time.Millisecond))
			require.Empty(t, c.TakeUsed(), "a use within a second already taken was noted")
			c.Touch(e, now.Add(2*time.Second))
			c.Touch(e, now.Add(2*time.Second))
			require.Equal(t, map[string]time.Time{id: now.Add(2 * time.Second)}, c.TakeUsed())
		})
	}
}

// TestRecencyIsRefreshedOncePerPeriod: an entry's first use in a last-used
// period moves it to the front of the LRU, later ones in the period do not
// (so the LRU evicts by first use in the period), and an entry pushed out
// after its first use still has its last use taken.
func TestRecencyIsRefreshedOncePerPeriod(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c, err := New[int](2, true)
	require.NoError(t, err)
	add := func() *Entry[int] {
		k, id := newKey(t)
		e := &Entry[int]{Key: k, KeyID: id, Until: now.Add(time.Minute)}
		c.AddValid(e, c.Token())
		return e
	}
	a, b := add(), add()
	c.Touch(b, now)
	c.Touch(a, now) // a is the most recent
	c.Touch(b, now.Add(time.Second))
	require.Len(t, c.noted, 2, "an entry was noted twice in a period")
	d := add()
	require.Nil(t, c.Get(b.Key, now), "a later use in the period moved an entry to the front of the LRU")
	require.NotNil(t, c.Get(a.Key, now), "the entry first used last was pushed out")
	require.Equal(t, map[string]time.Time{a.KeyID: now, b.KeyID: now.Add(time.Second)}, c.TakeUsed(),
		"the last use of an entry pushed out was lost")

	c.Touch(a, now.Add(time.Second)) // a new period: a moves in front of d
	add()
	require.Nil(t, c.Get(d.Key, now), "the first use in a new period left an entry behind")
	require.NotNil(t, c.Get(a.Key, now), "the first use in a new period did not move the entry to the front")
	require.Equal(t, map[string]time.Time{a.KeyID: now.Add(time.Second)}, c.TakeUsed())
}

// TestNotedStaysWithinTheCacheSize: entries used in a period are kept for
// TakeUsed, at most as many as the cache holds, however many pass through
// the cache; every last use is taken.
func TestNotedStaysWithinTheCacheSize(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const size = 4
	c, err := New[int](size, true)
	require.NoError(t, err)
	want := map[string]time.Time{}
	for i := range 10 * size {
		k, id := newKey(t)
		e := &Entry[int]{Key: k, KeyID: id, Until: now.Add(time.Minute)}
		c.AddValid(e, c.Token())
		at := now.Add(time.Duration(i) * time.Second)
		c.Touch(e, at)
		want[id] = at
		require.LessOrEqual(t, len(c.noted), size, "after %d entries", i+1)
	}
	require.Equal(t, want, c.TakeUsed())
}

// TestEndedEntriesAreNotKept: an entry used and then gone from the cache
// (pushed out, replaced, evicted, updated, purged) is not kept in memory
// once the cache holds others, before the next TakeUsed, which still
// returns its last use.
func TestEndedEntriesAreNotKept(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const size = 2
	fill := func(c *Cache[*[1 << 10]byte]) { // pushes out every entry, the LRU's last evicted one too
		for range size + 1 {
			k, id := newKey(t)
			c.AddValid(&Entry[*[1 << 10]byte]{Key: k, KeyID: id, Until: now.Add(time.Minute)}, c.Token())
		}
	}
	for _, tc := range []struct {
		name string
		end  func(c *Cache[*[1 << 10]byte], e *Entry[*[1 << 10]byte])
	}{
		{"pushed out of the LRU", func(*Cache[*[1 << 10]byte], *Entry[*[1 << 10]byte]) {}},
		{"replaced", func(c *Cache[*[1 << 10]byte], e *Entry[*[1 << 10]byte]) {
			c.AddValid(&Entry[*[1 << 10]byte]{Key: e.Key, KeyID: e.KeyID, Until: now.Add(time.Minute)}, c.Token())
		}},
		{"evicted", func(c *Cache[*[1 << 10]byte], e *Entry[*[1 << 10]byte]) { c.Evict(e.KeyID) }},
		{"updated", func(c *Cache[*[1 << 10]byte], e *Entry[*[1 << 10]byte]) {
			c.Update(e.KeyID, c.Token(), e.Revision+1, func(old *Entry[*[1 << 10]byte]) *Entry[*[1 << 10]byte] {
				return &Entry[*[1 << 10]byte]{Key: old.Key, KeyID: old.KeyID, Revision: old.Revision + 1, Until: now.Add(time.Minute)}
			})
		}},
		{"purged", func(c *Cache[*[1 << 10]byte], _ *Entry[*[1 << 10]byte]) { c.Purge() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New[*[1 << 10]byte](size, true)
			require.NoError(t, err)
			k, id := newKey(t)
			e := &Entry[*[1 << 10]byte]{Key: k, KeyID: id, Value: new([1 << 10]byte), Until: now.Add(time.Minute)}
			c.AddValid(e, c.Token())
			c.Touch(e, now)
			gone := weak.Make(e.Value)
			tc.end(c, e)
			e = nil
			fill(c)
			runtime.GC()
			assert.Nil(t, gone.Value(), "the ended entry is kept")
			assert.Equal(t, now, c.TakeUsed()[id], "the ended entry's last use")
		})
	}
}

// TestTouchRacingTakeUsedIsNeverLost: with uses and TakeUsed concurrent
// (run it with -race), the results of TakeUsed together hold each key's
// last second of use: of entries listed until TakeUsed, of entries whose
// list is folded before it, and of entries noted by key id. Every entry is
// noted before TakeUsed starts, then used at a few more seconds by two
// goroutines going through the entries in opposite orders, so that a use
// may find its entry noted in an epoch that TakeUsed or a fold is ending,
// or, with evict, ended by an eviction that drops it from the noted
// entries.
func TestTouchRacingTakeUsedIsNeverLost(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const entries, seconds, rounds = 1024, 2, 20
	for _, tc := range []struct {
		name     string
		size     int
		maxNoted int // 0: as New sets it
		evict    bool
	}{
		{name: "listed", size: entries},
		{name: "folded", size: entries, maxNoted: 64},
		{name: "evicted while used", size: entries, evict: true},
		{name: "cache disabled", size: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range rounds {
				c, err := New[int](tc.size, true)
				require.NoError(t, err)
				if tc.maxNoted > 0 {
					c.maxNoted = tc.maxNoted
				}
				es := make([]*Entry[int], entries)
				for i := range es {
					var k Key
					binary.LittleEndian.PutUint64(k.sum[:], uint64(i))
					es[i] = &Entry[int]{Key: k, KeyID: fmt.Sprint("id-", i), Until: now.Add(time.Minute)}
					c.AddValid(es[i], c.Token())
					c.Touch(es[i], now) // noted: the first TakeUsed reads them all while they are used
				}
				got := map[string]time.Time{}
				take := func() {
					for id, at := range c.TakeUsed() {
						if at.After(got[id]) {
							got[id] = at
						}
					}
				}
				done := make(chan struct{})
				var taking, touching sync.WaitGroup
				taking.Go(func() {
					for {
						select {
						case <-done:
							return
						default:
							take()
						}
					}
				})
				for _, order := range []func([]*Entry[int]) iter.Seq2[int, *Entry[int]]{slices.All[[]*Entry[int]], slices.Backward[[]*Entry[int]]} {
					touching.Go(func() {
						for _, e := range order(es) {
							for s := 1; s <= seconds; s++ {
								c.Touch(e, now.Add(time.Duration(s)*time.Second))
							}
						}
					})
				}
				if tc.evict {
					touching.Go(func() {
						for _, e := range es {
							c.Evict(e.KeyID)
						}
					})
				}
				touching.Wait()
				close(done)
				taking.Wait()
				take()
				for _, e := range es {
					require.Equal(t, now.Add(seconds*time.Second), got[e.KeyID], "the last use of %s was lost", e.KeyID)
				}
			}
		})
	}
}

// TestDisabledCacheHoldsNothing: a disabled cache serves nothing and still
// notes last uses.
func TestDisabledCacheHoldsNothing(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c, err := New[int](-1, true)
	require.NoError(t, err)
	require.False(t, c.Enabled())
	k, id := newKey(t)
	e := &Entry[int]{Key: k, KeyID: id, Until: now.Add(time.Minute)}
	c.AddValid(e, c.Token())
	require.Nil(t, c.Get(k, now))
	c.Touch(e, now)
	require.Len(t, c.TakeUsed(), 1)
	_, err = New[int](0, true)
	require.Error(t, err)
}

// TestFailuresEndWithAnEvictionOfTheirKeyID: a cached failure (an unknown
// key id, such as an imported key presented before its import) is not
// served after an eviction of its key id, by Evict, by an Update (the
// key's record came into being) or by Purge, also when it was added after
// the eviction began; evictions of other key ids, in its bucket or not,
// leave it cached.
func TestFailuresEndWithAnEvictionOfTheirKeyID(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fail := func(c *Cache[int], k Key, id string, token uint64) {
		c.AddFailed(&Entry[int]{Key: k, KeyID: id, Fail: errors.New("unknown"), Until: now.Add(time.Minute)}, token)
	}
	for _, tc := range []struct {
		name  string
		evict func(c *Cache[int], id string)
	}{
		{"evict", func(c *Cache[int], id string) { c.Evict(id) }},
		{"update", func(c *Cache[int], id string) {
			c.Update(id, c.Token(), 1, func(*Entry[int]) *Entry[int] { t.Fatal("a failure remade"); return nil })
		}},
		{"purge", func(c *Cache[int], _ string) { c.Purge() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New[int](100, true)
			require.NoError(t, err)
			k, id := newKey(t)
			fail(c, k, id, c.Token())
			for i := range 3 * evictionBuckets { // every bucket, the failure's included
				c.Evict(fmt.Sprintf("other-%d", i))
			}
			require.NotNil(t, c.Get(k, now), "evictions of other key ids dropped a failure")
			require.NotNil(t, c.Get(k, now), "a failure checked under the lock was dropped")
			tc.evict(c, id)
			require.Nil(t, c.Get(k, now), "a failure served after an eviction of its key id")
			_, failed := c.Sizes()
			require.Zero(t, failed, "a dropped failure is kept")

			token := c.Token() // a verification that read before the eviction, and adds after it
			fail(c, k, id, token)
			tc.evict(c, id)
			require.Nil(t, c.Get(k, now), "a failure read before an eviction of its key id is served")
		})
	}
}

// TestFailuresStayBounded: failures of many key ids, and evictions of many
// more, keep the cache at its size and the eviction bookkeeping bounded.
func TestFailuresStayBounded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c, err := New[int](64, true)
	require.NoError(t, err)
	for i := range 2 * maxEvictedIDs {
		k, id := newKey(t)
		c.AddFailed(&Entry[int]{Key: k, KeyID: id, Fail: errors.New("unknown"), Until: now.Add(time.Minute)}, c.Token())
		c.Evict(fmt.Sprintf("other-%d", i))
		c.Get(k, now)
	}
	_, failed := c.Sizes()
	assert.LessOrEqual(t, failed, 64)
	assert.LessOrEqual(t, len(c.evictedAt), maxEvictedIDs)
	assert.Empty(t, c.index, "failures are not indexed")
}
