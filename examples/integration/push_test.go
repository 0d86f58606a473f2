package integration_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
	"github.com/keystile/keystile/storage/sqlstore/pgnotify"
)

// These tests check the push path on PostgreSQL (sqlstore notifies, package
// pgnotify listens, middleware.Options.FeedWake reads the feed) and that
// neither a revocation nor the end of a cache lifetime costs an argon2 run
// in a process that verified the key before.

// TestNotifyChannel: the Listener listens by default where the store
// notifies. The two constants live in different modules, so only a module
// that imports both can check that they agree.
func TestNotifyChannel(t *testing.T) {
	assert.Equal(t, sqlstore.NotifyChannel, pgnotify.Channel)
}

// pushBound is how soon a process that LISTENs must refuse a key revoked by
// another process: generous for a loaded machine, and far below its
// FeedInterval of an hour, which only the push path can explain.
const pushBound = 2 * time.Second

// TestPushBetweenProcesses: process B (a TestHelperProcess) follows the
// change feed of a PostgreSQL store every hour and on every wake of a
// pgnotify.Listener. B accepts and caches a key; this process revokes it
// through its own Manager and store (another pool); B refuses it within
// pushBound.
func TestPushBetweenProcesses(t *testing.T) {
	be := postgresBackend
	dsn := be.fresh(t)
	a := newStack(t, be, dsn, testFeedInterval)
	_, err := a.manager.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	issued, err := a.manager.Create(context.Background(), owner, apikey.CreateRequest{
		Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)
	key := issued.Key

	b := startHelper(t, be, dsn, helperConfig{feedInterval: time.Hour, push: true})
	require.Equal(t, accepted, b.get(t, "/orders", key), "process B, first request")
	require.Equal(t, accepted, b.get(t, "/orders", key), "process B, second request")
	require.Equal(t, 1, b.count(t, "/verifies"), "process B verified the key once and then served it from its cache")

	start := time.Now()
	_, err = a.manager.Revoke(context.Background(), owner, key.ID())
	require.NoError(t, err)
	want := result{http.StatusUnauthorized, "revoked_key"}
	delay := awaitRefusal(t, start, pushBound, want, func() result {
		return b.get(t, "/orders", key)
	})
	t.Logf("process %d, FeedInterval 1h, woken by pgnotify: refused the key %s after the revocation began (bound %s)",
		b.cmd.Process.Pid, delay.Round(time.Millisecond), pushBound)
	require.Equal(t, want, b.get(t, "/orders", key), "process B keeps refusing")
	b.stop(t)
}

// TestRevocationWithoutArgon2BetweenProcesses: process B verified a key
// once (one argon2 run) and serves it from its cache; once this process has
// revoked it and B has read the change feed, B refuses it from memory (no
// argon2 run, no Key read: the feed entry carried the revoked record), on
// SQLite and PostgreSQL.
func TestRevocationWithoutArgon2BetweenProcesses(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			dsn := be.fresh(t)
			a := newStack(t, be, dsn, testFeedInterval)
			_, err := a.manager.Bootstrap(context.Background(), owner, apikey.Production)
			require.NoError(t, err)
			issued, err := a.manager.Create(context.Background(), owner, apikey.CreateRequest{
				Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: time.Now().Add(time.Hour),
			})
			require.NoError(t, err)
			key := issued.Key

			b := startHelper(t, be, dsn, helperConfig{feedInterval: testFeedInterval})
			require.Equal(t, accepted, b.get(t, "/orders", key))
			require.Equal(t, accepted, b.get(t, "/orders", key))
			require.Equal(t, 1, b.count(t, "/verifies"), "process B verified the key once")
			readsBefore := b.count(t, "/keyreads")
			require.Equal(t, 1, readsBefore, "process B read the key once and then served it from its cache")

			_, err = a.manager.Revoke(context.Background(), owner, key.ID())
			require.NoError(t, err)
			rev, err := a.store.Revision(context.Background())
			require.NoError(t, err)
			require.Eventually(t, func() bool { return b.count(t, "/feedrevision") >= int(rev) },
				testFeedInterval+2*time.Second, pollEvery, "process B read the change feed up to the revocation")
			want := result{http.StatusUnauthorized, "revoked_key"}
			for range 3 {
				require.Equal(t, want, b.get(t, "/orders", key), "process B refuses the key")
			}
			assert.Equal(t, 1, b.count(t, "/verifies"), "argon2 runs in process B after the revocation")
			assert.Equal(t, readsBefore, b.count(t, "/keyreads"),
				"Key reads in process B: the feed updated its cached entry, the refusals come from memory")
			b.stop(t)
		})
	}
}

// testClock is a clock that the test moves.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestCacheDeadlineWithoutArgon2: a Validator with a CacheTTL of a second
// verifies a key once (one Key read, one argon2 run) and serves it from its
// cache (no read). When the TTL has passed on its clock, the next request
// re-validates the key by one Key read and no argon2 run: the stored hash
// is the one the key verified against. The new entry is cached again.
func TestCacheDeadlineWithoutArgon2(t *testing.T) {
	const ttl = time.Second
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			dsn := be.fresh(t)
			clock := newTestClock()
			s := newStackWith(t, be, dsn, stackOptions{feedInterval: testFeedInterval, cacheTTL: ttl, now: clock.Now})
			_, err := s.manager.Bootstrap(context.Background(), owner, apikey.Production)
			require.NoError(t, err)
			issued, err := s.manager.Create(context.Background(), owner, apikey.CreateRequest{
				Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: time.Now().Add(time.Hour),
			})
			require.NoError(t, err)
			h := s.validator.Handler(okHandler)
			counts := func() (verifies, reads int64) { return s.hasher.verifies.Load(), s.read.keyReads.Load() }
			steps := []struct {
				name           string
				advance        time.Duration
				verifies, read int64 // totals after the request
			}{
				{"first request: loaded and verified", 0, 1, 1},
				{"within the TTL: cached", ttl / 2, 1, 1},
				{"TTL passed: one Key read, no argon2", ttl, 1, 2},
				{"cached again", ttl / 2, 1, 2},
				{"TTL passed again", ttl, 1, 3},
			}
			for _, st := range steps {
				clock.Advance(st.advance)
				require.Equal(t, accepted, serve(t, h, issued.Key, ""), st.name)
				verifies, reads := counts()
				assert.Equal(t, st.verifies, verifies, "%s: hasher Verify calls", st.name)
				assert.Equal(t, st.read, reads, "%s: store Key reads", st.name)
			}
		})
	}
}
