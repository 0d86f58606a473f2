package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	keyevents "github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/storage"
)

// readStream reads es from cursor to its end, limit events a page, and
// returns the events and the cursor after them.
func readStream(t *testing.T, es storage.EventStream, cursor int64, limit int) ([]apikey.StreamEvent, int64) {
	t.Helper()
	var out []apikey.StreamEvent
	for {
		page, next, err := es.EventsAfter(context.Background(), cursor, limit)
		require.NoError(t, err)
		if len(page) == 0 {
			require.Equal(t, cursor, next, "an empty page returns the cursor it was given")
			return out, cursor
		}
		require.Equal(t, page[len(page)-1].Cursor, next, "the next cursor is the last event's")
		out = append(out, page...)
		cursor = next
	}
}

// testEventStream checks storage.EventStream: every account's events in
// the order their changes committed, each with its account's Seq, paged by
// cursor; a change that fails appends nothing.
func testEventStream(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	es := as[storage.EventStream](t, s)

	page, next, err := es.EventsAfter(ctx, 0, 10)
	require.NoError(t, err)
	assert.Empty(t, page, "a new store has no events")
	assert.Equal(t, int64(0), next)

	ev := func(account, detail string) apikey.Event {
		return apikey.Event{Time: base, Actor: owner, Action: apikey.ActionCreate, Account: account,
			Environment: apikey.Production, Detail: detail}
	}
	k := record(acme, apikey.Production, apikey.Server, false)
	apply(t, s, apikey.Change{Insert: []apikey.Record{k}, Events: []apikey.Event{ev(acme, "a1")}})
	apply(t, s, apikey.Change{Events: []apikey.Event{ev(globex, "g1"), ev(globex, "g2")}})
	k = mustKey(t, s, k.ID)
	k.Name = "renamed"
	e := ev(acme, "a2")
	e.KeyID, e.KeyType, e.Action = k.ID, k.Type, apikey.ActionRename
	apply(t, s, apikey.Change{Update: []apikey.Record{k}, Events: []apikey.Event{e}})

	// A change that fails writes no event.
	dup := record(acme, apikey.Production, apikey.Server, false)
	dup.ID = k.ID
	err = s.Apply(ctx, apikey.Change{Insert: []apikey.Record{dup}, Events: []apikey.Event{ev(acme, "lost")}})
	require.ErrorIs(t, err, apikey.ErrConflict)

	for _, limit := range []int{1, 2, 3, 0} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			got, last := readStream(t, es, 0, limit)
			require.Len(t, got, 4)
			var details []string
			var seqs []int64
			for i, se := range got {
				details, seqs = append(details, se.Event.Detail), append(seqs, se.Event.Seq)
				if i > 0 {
					assert.Greater(t, se.Cursor, got[i-1].Cursor, "cursors increase")
				}
			}
			assert.Equal(t, []string{"a1", "g1", "g2", "a2"}, details, "commit order")
			assert.Equal(t, []int64{1, 1, 2, 2}, seqs, "each event has its account's Seq")
			assert.Equal(t, got[3].Cursor, last)
			assert.Equal(t, e.KeyID, got[3].Event.KeyID)
			assert.Equal(t, apikey.ActionRename, got[3].Event.Action)
			assert.Equal(t, owner.ID, got[3].Event.Actor.ID)
			assert.True(t, base.Equal(got[3].Event.Time))
			assert.Equal(t, "evt_acme_2", got[3].Event.ID())

			// From the middle: the events after that cursor only.
			rest, _ := readStream(t, es, got[1].Cursor, limit)
			require.Len(t, rest, 2)
			assert.Equal(t, "g2", rest[0].Event.Detail)
		})
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = es.EventsAfter(canceled, 0, 10)
	require.ErrorIs(t, err, context.Canceled)
}

// testEventStreamConcurrent checks that a reader following the stream
// while many writers append, through several handles on the store (other
// processes), sees every event exactly once, in an order that keeps each
// writer's own order, and the same sequence as a read after the writers
// stopped: no event commits behind a cursor the reader has passed.
func testEventStreamConcurrent(t *testing.T, c Config) {
	s := c.New(t)
	stores := c.peers(t, s, 4)
	const (
		writers = 8
		changes = 20
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var (
		wg      sync.WaitGroup
		written = make(chan struct{})
		read    = make(chan struct{})
		seen    []apikey.StreamEvent
		readErr error
	)
	reader := as[storage.EventStream](t, stores[len(stores)-1])
	go func() { // the reader, polling a small page at a time
		defer close(read)
		var cursor int64
		finished := false
		for {
			page, next, err := reader.EventsAfter(ctx, cursor, 7)
			if err != nil {
				readErr = err
				return
			}
			seen, cursor = append(seen, page...), next
			if len(page) == 0 && finished {
				return
			}
			if len(page) == 0 {
				time.Sleep(time.Millisecond)
			}
			select {
			case <-written:
				finished = true // one more empty page after the writers ends the read
			default:
			}
		}
	}()

	for w := range writers {
		wg.Go(func() {
			st := stores[w%len(stores)]
			for i := range changes {
				account := []string{acme, globex}[(w+i)%2]
				e := func(j int) apikey.Event {
					return apikey.Event{Time: base, Actor: owner, Action: apikey.ActionCreate, Account: account,
						Environment: apikey.Production, Detail: fmt.Sprintf("w%02d-%03d-%d", w, i, j)}
				}
				ch := apikey.Change{Events: []apikey.Event{e(0), e(1)}}
				if i%2 == 0 { // with a key: a write that takes revisions
					r := record(account, apikey.Production, apikey.Client, false)
					ch = apikey.Change{Insert: []apikey.Record{r}, Events: []apikey.Event{e(0)}}
				}
				if !assert.NoError(t, st.Apply(ctx, ch)) {
					return
				}
			}
		})
	}
	wg.Wait()
	close(written)
	<-read
	require.NoError(t, readErr)

	want := writers * changes * 3 / 2
	all, _ := readStream(t, as[storage.EventStream](t, s), 0, 0)
	require.Len(t, all, want, "every event is in the stream")
	require.Len(t, seen, want, "the reader saw every event once")
	last := map[int]string{}
	details := map[string]bool{}
	for i, se := range seen {
		assert.Equal(t, all[i].Cursor, se.Cursor, "the reader's order is the stream's")
		assert.Equal(t, all[i].Event.Detail, se.Event.Detail)
		if i > 0 {
			assert.Greater(t, se.Cursor, seen[i-1].Cursor)
		}
		d := se.Event.Detail
		assert.False(t, details[d], "%s seen twice", d)
		details[d] = true
		var w int
		_, err := fmt.Sscanf(d, "w%02d-", &w)
		require.NoError(t, err)
		assert.Greater(t, d, last[w], "each writer's events in the order it wrote them")
		last[w] = d
	}
	for _, account := range []string{acme, globex} {
		var seqs []int64
		for _, se := range all {
			if se.Event.Account == account {
				seqs = append(seqs, se.Event.Seq)
			}
		}
		for i, seq := range seqs {
			assert.Equal(t, int64(i+1), seq, "%s's events are numbered in stream order", account)
		}
	}
}

// testEventStreamLifecycle checks that every lifecycle change the Manager
// makes reaches the stream as an event: created, rotated, grace changed,
// disabled, enabled, limits changed, revoked, suspended, resumed and the
// account closed.
func testEventStreamLifecycle(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	es := as[storage.EventStream](t, s)
	m := manager(t, s)
	bootstrap(t, m, acmeOwner, apikey.Production)
	extra, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Scopes: []string{"customers:read"}, ExpiresAt: m.Now().Add(48 * time.Hour)})
	require.NoError(t, err)
	rotated, err := m.Rotate(ctx, acmeOwner, apikey.RotateRequest{KeyID: extra.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	_, err = m.ChangeGrace(ctx, acmeOwner, extra.View.ID, 30*time.Minute, apikey.APIPolicy)
	require.NoError(t, err)
	_, err = m.Disable(ctx, acmeOwner, rotated.View.ID)
	require.NoError(t, err)
	_, err = m.Enable(ctx, acmeOwner, rotated.View.ID)
	require.NoError(t, err)
	_, err = m.SetLimits(ctx, acmeOwner, rotated.View.ID, apikey.Limits{Rate: apikey.RateLimit{Requests: 10, Window: time.Second}})
	require.NoError(t, err)
	_, err = m.Revoke(ctx, acmeOwner, rotated.View.ID)
	require.NoError(t, err)
	require.NoError(t, m.SuspendAccount(ctx, operator, acme))
	require.NoError(t, m.ResumeAccount(ctx, operator, acme))
	_, err = m.CloseAccount(ctx, acmeOwner, acme)
	require.NoError(t, err)

	got, _ := readStream(t, es, 0, 5)
	var actions []apikey.Action
	for _, se := range got {
		if n := len(actions); n == 0 || actions[n-1] != se.Event.Action {
			actions = append(actions, se.Event.Action) // one entry per run of the same action
		}
		assert.Equal(t, acme, se.Event.Account)
	}
	assert.Equal(t, []apikey.Action{
		apikey.ActionBootstrap, apikey.ActionCreate, apikey.ActionRotate, apikey.ActionCreate,
		apikey.ActionChangeGrace, apikey.ActionDisable, apikey.ActionEnable, apikey.ActionSetLimits,
		apikey.ActionRevoke, apikey.ActionSuspend, apikey.ActionResume, apikey.ActionClose, apikey.ActionRevoke,
	}, actions)
}

// testTimedEvents checks storage.TimedEventLog: DueKeys answers the keys
// of every account in the window, by expiry then id, without revoked keys
// or those whose kind is written; AppendTimed writes each (key, kind,
// expiry) once, and nothing for a key revoked or whose expiry moved.
func testTimedEvents(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	l := as[storage.TimedEventLog](t, s)
	var ids []string
	var change apikey.Change
	for i, k := range []struct {
		account string
		in      time.Duration
		revoked bool
	}{
		{acme, time.Hour, false}, {globex, 2 * time.Hour, false}, {acme, 3 * time.Hour, true},
		{globex, 30 * time.Hour, false}, {acme, 0, false}, {globex, -time.Hour, false},
	} {
		r := record(k.account, apikey.Production, apikey.Server, false)
		r.ID = newID(fmt.Sprintf("t%d", i))
		if k.in != 0 {
			r.ExpiresAt = base.Add(k.in)
		}
		if k.revoked {
			r.RevokedAt = base
		}
		ids = append(ids, r.ID)
		change.Insert = append(change.Insert, r)
	}
	apply(t, s, change)

	due := func(kind apikey.TimedKind, after apikey.ExpiryPosition, until time.Time, limit int) []string {
		t.Helper()
		keys, err := l.DueKeys(ctx, apikey.DueQuery{Kind: kind, After: after, Until: until, Limit: limit})
		require.NoError(t, err)
		out := []string{}
		for _, k := range keys {
			out = append(out, k.ID)
		}
		return out
	}
	from := apikey.ExpiryPosition{ExpiresAt: base}
	assert.Equal(t, []string{ids[0], ids[1]}, due(apikey.TimedExpiring, from, base.Add(24*time.Hour), 10),
		"both accounts, by expiry; the revoked key and those outside the window left out")
	assert.Equal(t, []string{ids[5], ids[0], ids[1], ids[3]}, due(apikey.TimedEnded, apikey.ExpiryPosition{}, base.Add(48*time.Hour), 10))
	assert.Equal(t, []string{ids[0]}, due(apikey.TimedExpiring, from, base.Add(24*time.Hour), 1), "a page")
	first, err := l.DueKeys(ctx, apikey.DueQuery{Kind: apikey.TimedExpiring, After: from, Until: base.Add(24 * time.Hour), Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{ids[1]}, due(apikey.TimedExpiring,
		apikey.ExpiryPosition{ExpiresAt: first[0].ExpiresAt, ID: first[0].ID}, base.Add(24*time.Hour), 10), "the next page")

	timed := func(kind apikey.TimedKind, id string, at time.Time) apikey.TimedEvent {
		r := mustKey(t, s, id)
		return apikey.TimedEvent{Kind: kind, ExpiresAt: at, Event: apikey.Event{Time: base, Actor: apikey.SystemActor,
			Action: apikey.ActionExpiring, Account: r.Account, Environment: r.Environment, KeyID: id, KeyType: r.Type}}
	}
	_, cursor, err := as[storage.EventStream](t, s).EventsAfter(ctx, 0, 0)
	require.NoError(t, err)
	n, err := l.AppendTimed(ctx, []apikey.TimedEvent{
		timed(apikey.TimedExpiring, ids[0], base.Add(time.Hour)),
		timed(apikey.TimedExpiring, ids[0], base.Add(time.Hour)),   // the same twice in one call
		timed(apikey.TimedExpiring, ids[1], base.Add(time.Minute)), // not its expiry
		timed(apikey.TimedExpiring, ids[2], base.Add(3*time.Hour)), // revoked
		timed(apikey.TimedEnded, ids[0], base.Add(time.Hour)),      // another kind
	})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = l.AppendTimed(ctx, []apikey.TimedEvent{timed(apikey.TimedExpiring, ids[0], base.Add(time.Hour))})
	require.NoError(t, err)
	assert.Zero(t, n, "written once")
	got, _ := readStream(t, as[storage.EventStream](t, s), cursor, 0)
	require.Len(t, got, 2)
	assert.Equal(t, ids[0], got[0].Event.KeyID)
	assert.Equal(t, int64(1), got[0].Event.Seq, "numbered in the key's account")
	assert.Equal(t, []string{ids[1]}, due(apikey.TimedExpiring, from, base.Add(24*time.Hour), 10),
		"a key with its event is no longer due for that kind")
}

// testTimedEventsRacingScanners runs several events.Scanners (package apikey/events) at once, over
// several handles on the store (other processes), each stepping several
// times: every key gets exactly one event per kind.
func testTimedEventsRacingScanners(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	stores := c.peers(t, s, 4)
	const keys = 60
	var change apikey.Change
	want := map[string]apikey.Action{}
	for i := range keys {
		r := record([]string{acme, globex}[i%2], apikey.Production, apikey.Client, false)
		r.ExpiresAt = base.Add(time.Duration(i+1) * time.Minute)
		if i%3 == 0 {
			r.RotatedAt, r.ExpiryLimit = base.Add(-time.Hour), base.Add(time.Hour)
		}
		change.Insert = append(change.Insert, r)
		want[r.ID] = apikey.ActionExpired
		if i%3 == 0 {
			want[r.ID] = apikey.ActionGraceEnded
		}
	}
	apply(t, s, change)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for i := range 8 {
		wg.Go(func() {
			now := base // first every key is expiring, then every key has expired
			sc, err := keyevents.NewScanner(keyevents.ScannerOptions{Store: stores[i%len(stores)], Window: time.Hour,
				Batch: 7, Now: func() time.Time { return now }})
			if !assert.NoError(t, err) {
				return
			}
			for step := range 6 {
				if step == 3 {
					now = base.Add(2 * time.Hour)
				}
				n, err := sc.Step(ctx)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 2*keys, total, "the scanners wrote one expiring and one ended event per key between them")
	got, _ := readStream(t, as[storage.EventStream](t, s), 0, 0)
	count := map[string]map[apikey.Action]int{}
	for _, se := range got {
		if count[se.Event.KeyID] == nil {
			count[se.Event.KeyID] = map[apikey.Action]int{}
		}
		count[se.Event.KeyID][se.Event.Action]++
	}
	require.Len(t, count, keys)
	for id, action := range want {
		assert.Equal(t, map[apikey.Action]int{apikey.ActionExpiring: 1, action: 1}, count[id], id)
	}
}
