package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// seen returns a caller seen n times, first at minute first and last at
// minute last after base.
func seen(addr, agent string, n int64, first, last int) apikey.Caller {
	return apikey.Caller{Address: addr, UserAgent: agent, Requests: n,
		FirstSeen: base.Add(time.Duration(first) * time.Minute), LastSeen: base.Add(time.Duration(last) * time.Minute)}
}

func callersOf(t testing.TB, l storage.CallerLog, keyID string) apikey.KeyCallers {
	t.Helper()
	got, err := l.Callers(context.Background(), keyID)
	require.NoError(t, err)
	for _, c := range got.Callers {
		assert.Equal(t, time.UTC, c.LastSeen.Location(), "times come back in UTC")
	}
	return got
}

// testCallerLog: reports are merged per key and caller, within one call
// and across calls; a key's callers come back most recently seen first;
// keys are kept apart; a key with none has none.
func testCallerLog(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.CallerLog](t, s)
	ctx := context.Background()
	require.NoError(t, l.RecordCallers(ctx, nil), "an empty batch")
	require.NoError(t, l.RecordCallers(ctx, []apikey.KeyCallers{
		{Account: acme, KeyID: "acmeK1", Callers: []apikey.Caller{
			seen("192.0.2.1", "curl/8.5", 3, 0, 2),
			seen("2001:db8::1", "", 1, 1, 1),
		}},
		{Account: globex, KeyID: "globexK1", Callers: []apikey.Caller{seen("192.0.2.1", "curl/8.5", 7, 0, 9)}},
		{Account: acme, KeyID: "acmeK1", Callers: []apikey.Caller{seen("192.0.2.1", "curl/8.5", 2, -1, 1)},
			Others: 1, OtherRequests: 4},
	}))
	require.NoError(t, l.RecordCallers(ctx, []apikey.KeyCallers{
		{Account: acme, KeyID: "acmeK1", Callers: []apikey.Caller{
			seen("2001:db8::1", "", 5, 3, 6),
			seen("192.0.2.1", "Go-http-client/1.1", 1, 4, 4),
		}},
	}))

	tests := map[string]struct {
		key  string
		want apikey.KeyCallers
	}{
		"merged, most recent first": {key: "acmeK1", want: apikey.KeyCallers{Account: acme, KeyID: "acmeK1",
			Callers: []apikey.Caller{
				seen("2001:db8::1", "", 6, 1, 6),
				seen("192.0.2.1", "Go-http-client/1.1", 1, 4, 4),
				seen("192.0.2.1", "curl/8.5", 5, -1, 2),
			}, Others: 1, OtherRequests: 4}},
		"another account's key": {key: "globexK1", want: apikey.KeyCallers{Account: globex, KeyID: "globexK1",
			Callers: []apikey.Caller{seen("192.0.2.1", "curl/8.5", 7, 0, 9)}}},
		"no callers": {key: "acmeK2", want: apikey.KeyCallers{KeyID: "acmeK2"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := callersOf(t, l, tt.key)
			if len(got.Callers) == 0 {
				got.Callers = nil
			}
			assert.Equal(t, tt.want, got)
		})
	}
	k := callersOf(t, l, "acmeK1")
	assert.Equal(t, int64(16), k.Requests(), "callers' and others' requests")
	assert.True(t, base.Add(6*time.Minute).Equal(k.LastSeen()))
}

// testCallerLogBound: a key keeps its apikey.MaxCallers most recently seen
// callers; each one dropped counts in Others with its requests, also when
// a caller is dropped, seen again and dropped again.
func testCallerLogBound(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.CallerLog](t, s)
	ctx := context.Background()
	var batch []apikey.Caller
	for i := range apikey.MaxCallers + 4 {
		batch = append(batch, seen(fmt.Sprintf("192.0.2.%d", i), "agent", int64(i+1), i, i))
	}
	require.NoError(t, l.RecordCallers(ctx, []apikey.KeyCallers{{Account: acme, KeyID: "acmeK1", Callers: batch}}))
	got := callersOf(t, l, "acmeK1")
	require.Len(t, got.Callers, apikey.MaxCallers)
	assert.Equal(t, "192.0.2.19", got.Callers[0].Address, "the most recently seen first")
	assert.Equal(t, "192.0.2.4", got.Callers[apikey.MaxCallers-1].Address, "the oldest kept")
	assert.Equal(t, int64(4), got.Others, "four dropped")
	assert.Equal(t, int64(1+2+3+4), got.OtherRequests, "with their requests")

	// The first caller comes back, pushes out the oldest kept, and is
	// the most recent.
	require.NoError(t, l.RecordCallers(ctx, []apikey.KeyCallers{{Account: acme, KeyID: "acmeK1",
		Callers: []apikey.Caller{seen("192.0.2.0", "agent", 10, 30, 30)}}}))
	got = callersOf(t, l, "acmeK1")
	require.Len(t, got.Callers, apikey.MaxCallers)
	assert.Equal(t, seen("192.0.2.0", "agent", 10, 30, 30), got.Callers[0])
	assert.Equal(t, "192.0.2.5", got.Callers[apikey.MaxCallers-1].Address)
	assert.Equal(t, int64(5), got.Others)
	assert.Equal(t, int64(1+2+3+4+5), got.OtherRequests)
	assert.Equal(t, int64(10+20*21/2), got.Requests(), "no request lost")
}

// testCallerLogConcurrent: writers on every peer record distinct callers
// of one key at once; every request and every caller is counted once,
// listed or among the others.
func testCallerLogConcurrent(t *testing.T, c Config) {
	s := c.New(t)
	as[storage.CallerLog](t, s)
	stores := c.peers(t, s, 4)
	logs := make([]storage.CallerLog, len(stores))
	for i, p := range stores {
		logs[i] = as[storage.CallerLog](t, p)
	}
	const rounds = 5
	var wg sync.WaitGroup
	errs := make(chan error, len(logs)*rounds)
	for w, l := range logs {
		wg.Go(func() {
			for r := range rounds {
				errs <- l.RecordCallers(context.Background(), []apikey.KeyCallers{{Account: acme, KeyID: "acmeK1",
					Callers: []apikey.Caller{
						seen(fmt.Sprintf("198.51.100.%d", w*rounds+r), "agent", 2, r, r),
						seen("192.0.2.1", "shared", 1, r, r),
					}}})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got := callersOf(t, logs[0], "acmeK1")
	assert.Len(t, got.Callers, apikey.MaxCallers)
	distinct := len(logs)*rounds + 1
	assert.Equal(t, int64(distinct-apikey.MaxCallers), got.Others, "each dropped caller counted once")
	assert.Equal(t, int64(len(logs)*rounds*3), got.Requests(), "every request counted once")
}

// testManagerCallers: Manager.Callers reports the callers of a rotated-out
// key to every role of its account, nothing for an active key, and
// ErrNotFound to another account.
func testManagerCallers(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.CallerLog](t, s)
	m := manager(t, s)
	ctx := context.Background()
	bootstrap(t, m, acmeOwner, apikey.Production)
	old, err := m.Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
	require.NoError(t, err)
	list, err := m.List(ctx, acmeOwner, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	var rotated, active apikey.View
	for _, k := range list.Keys {
		switch {
		case k.Status == apikey.Expiring:
			rotated = k
		case k.ID == old.View.ID:
			active = k
		}
	}
	require.NotEmpty(t, rotated.ID, "the rotated-out key")
	require.NotEmpty(t, active.ID, "its replacement")
	require.NoError(t, l.RecordCallers(ctx, []apikey.KeyCallers{{Account: acme, KeyID: rotated.ID,
		Callers: []apikey.Caller{seen("192.0.2.1", "curl/8.5", 3, 0, 2), seen("192.0.2.2", "", 1, 5, 5)}, Others: 2, OtherRequests: 6}}))

	for _, role := range []apikey.Role{apikey.Owner, apikey.Member, apikey.ReadOnly} {
		t.Run(string(role), func(t *testing.T) {
			got, err := m.Callers(ctx, apikey.Actor{ID: "viewer", Role: role, Account: acme}, rotated.Prefix)
			require.NoError(t, err)
			assert.Equal(t, rotated.ID, got.KeyID)
			assert.Equal(t, apikey.Expiring, got.Status)
			assert.False(t, got.RotatedAt.IsZero())
			assert.Equal(t, int64(10), got.Requests)
			assert.True(t, base.Add(5*time.Minute).Equal(got.LastUsedAt))
			assert.Equal(t, []apikey.Caller{seen("192.0.2.2", "", 1, 5, 5), seen("192.0.2.1", "curl/8.5", 3, 0, 2)}, got.Callers)
			assert.Equal(t, int64(2), got.Others)
		})
	}
	got, err := m.Callers(ctx, acmeOwner, active.ID)
	require.NoError(t, err)
	assert.True(t, got.RotatedAt.IsZero(), "an active key was not rotated out")
	assert.Empty(t, got.Callers)
	assert.Zero(t, got.Requests)

	_, err = m.Callers(ctx, globexOwner, rotated.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "another account's key")
}

// testPurgeDeletesCallers: a purged key's callers go with it.
func testPurgeDeletesCallers(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.CallerLog](t, s)
	p := as[storage.KeyPurger](t, s)
	ctx := context.Background()
	dead, alive := record(acme, apikey.Production, apikey.Server, false), record(acme, apikey.Production, apikey.Server, false)
	dead.RotatedAt, dead.ExpiresAt = base.Add(-72*time.Hour), base.Add(-48*time.Hour)
	alive.RotatedAt, alive.ExpiresAt = base.Add(-time.Hour), base.Add(time.Hour)
	apply(t, s, apikey.Change{Insert: []apikey.Record{dead, alive}})
	var reports []apikey.KeyCallers
	for _, id := range []string{dead.ID, alive.ID} {
		var callers []apikey.Caller
		for i := range apikey.MaxCallers + 1 {
			callers = append(callers, seen(fmt.Sprintf("192.0.2.%d", i), "agent", 1, i, i))
		}
		reports = append(reports, apikey.KeyCallers{Account: acme, KeyID: id, Callers: callers})
	}
	require.NoError(t, l.RecordCallers(ctx, reports))
	got, err := p.PurgeKeys(ctx, base.Add(-24*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, dead.ID, got[0].ID)
	gone := callersOf(t, l, dead.ID)
	assert.Empty(t, gone.Callers, "a purged key's callers are deleted")
	assert.Zero(t, gone.Others, "and its others")
	kept := callersOf(t, l, alive.ID)
	assert.Len(t, kept.Callers, apikey.MaxCallers, "a live key's callers stay")
	assert.Equal(t, int64(1), kept.Others)
}

// testCallersCleanUserAgents: every user agent is stored as
// apikey.CleanUserAgent returns it, so that one the store could not hold
// (a NUL byte, invalid UTF-8) fails no batch: the other keys of the batch
// keep their callers; two agents that differ only by control characters
// are one caller.
func testCallersCleanUserAgents(t *testing.T, c Config) {
	s := c.New(t)
	l := as[storage.CallerLog](t, s)
	ctx := context.Background()
	long := strings.Repeat("a", apikey.MaxUserAgentLength+10)
	require.NoError(t, l.RecordCallers(ctx, []apikey.KeyCallers{
		{Account: acme, KeyID: "acmeK1", Callers: []apikey.Caller{
			seen("192.0.2.1", "bad\x00agent", 1, 0, 1),
			seen("192.0.2.1", "bad\tagent\xff", 2, 0, 2),
			seen("192.0.2.2", long, 1, 0, 3),
		}},
		{Account: globex, KeyID: "globexK1", Callers: []apikey.Caller{seen("192.0.2.3", "curl/8.5", 1, 0, 1)}},
	}), "a user agent the store cannot hold does not fail the batch")
	assert.Equal(t, []apikey.Caller{
		seen("192.0.2.2", long[:apikey.MaxUserAgentLength], 1, 0, 3),
		seen("192.0.2.1", "badagent", 3, 0, 2),
	}, callersOf(t, l, "acmeK1").Callers)
	assert.Equal(t, []apikey.Caller{seen("192.0.2.3", "curl/8.5", 1, 0, 1)}, callersOf(t, l, "globexK1").Callers,
		"another account's key keeps its caller")
}
