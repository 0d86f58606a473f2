package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestMigrateAddsEndpoints upgrades a database of version 14, with keys
// and events, to sqlstore.SchemaVersion on both engines: an account has no
// endpoint, its events are read by account from the stream, an endpoint
// can be created (starting at the stream's end), read back and rotated,
// and Migrate again changes nothing.
func TestMigrateAddsEndpoints(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
		require.NoError(t, err)
		_, err = m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		migrateFrom(t, db, s, 15)

		list, _, err := m.Endpoints(ctx, owner, apikey.Page{})
		require.NoError(t, err)
		assert.Empty(t, list)
		page, _, err := s.AccountEventsAfter(ctx, owner.InAccount(), 0, 10)
		require.NoError(t, err)
		assert.Len(t, page, 2, "the bootstrap's events, from before the migration")
		issued, err := m.CreateEndpoint(ctx, owner, apikey.EndpointRequest{URL: "https://hooks.example.com/in"})
		require.NoError(t, err)
		stored, err := s.Endpoint(ctx, issued.Endpoint.ID)
		require.NoError(t, err)
		_, end, err := s.EventsAfter(ctx, 0, 100)
		require.NoError(t, err)
		assert.Equal(t, end, stored.Start)
		_, err = m.RotateEndpointSecret(ctx, owner, issued.Endpoint.ID, 0)
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx))
		got, err := m.Endpoint(ctx, owner, issued.Endpoint.ID)
		require.NoError(t, err)
		assert.Equal(t, "https://hooks.example.com/in", got.URL)
	})
}

// TestMigrateIndexesDeadLetters upgrades a database of version 15, with
// dead letters, to version 16 on both engines: each letter is numbered
// from its event id by the rule of apikey.EventIDSeq (odd ids included),
// pages by number and look-ups by event id find the letters of before,
// a letter written after the upgrade joins them, and Migrate again
// changes nothing.
func TestMigrateIndexesDeadLetters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 16)
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Equal(t, 15, version)

		ids := []string{"evt_acme_1", "evt_acme_0007", "evt_acme_3", "custom", "evt_acme_+5", "evt_acme_5x", "17",
			"evt_acme_1000000000000000000", "evt_acme_999999999999999999", "evt_a--b-2e-40_4", "evt_acme_"}
		for i, id := range ids {
			_, err := db.Exec(placeholders(b.dialect, `INSERT INTO keystile_dead_letters (endpoint, event_cursor, event_id, attempts, reason, dead_at)
				VALUES (?, ?, ?, 1, 'server error', 0)`), "ops", i+1, id)
			require.NoError(t, err, id)
		}
		require.NoError(t, s.Migrate(ctx))
		require.NoError(t, s.Migrate(ctx), "again: nothing to do")
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		assert.Equal(t, sqlstore.SchemaVersion, version)

		rows, err := db.Query(`SELECT event_id, event_seq FROM keystile_dead_letters WHERE endpoint = 'ops' ORDER BY event_cursor`)
		require.NoError(t, err)
		numbered := map[string]int64{}
		for rows.Next() {
			var id string
			var seq int64
			require.NoError(t, rows.Scan(&id, &seq))
			numbered[id] = seq
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		require.Len(t, numbered, len(ids))
		for _, id := range ids {
			assert.Equal(t, apikey.EventIDSeq(id), numbered[id], "%q is numbered as apikey.EventIDSeq numbers it", id)
		}

		page, err := s.DeadLettersBySeq(ctx, "ops", 2, 3)
		require.NoError(t, err)
		var got []string
		for _, l := range page {
			got = append(got, l.EventID)
		}
		assert.Equal(t, []string{"evt_acme_3", "evt_a--b-2e-40_4", "evt_acme_0007"}, got)
		l, err := s.DeadLetterByEventID(ctx, "ops", "custom")
		require.NoError(t, err)
		assert.Equal(t, int64(4), l.Cursor)
		assert.Equal(t, apikey.DeadLetterDead, l.State)

		now := time.Now()
		_, ok, err := s.LeaseDelivery(ctx, "ops", "a", now, now.Add(time.Minute))
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.AdvanceDelivery(ctx, "ops", "a", now, 20,
			&apikey.DeadLetter{Cursor: 20, EventID: "evt_acme_8", Attempts: 1, Reason: "server error", At: now}))
		page, err = s.DeadLettersBySeq(ctx, "ops", 7, 10)
		require.NoError(t, err)
		require.NotEmpty(t, page)
		assert.Equal(t, "evt_acme_8", page[0].EventID, "a letter of the new version, in its place")
	})
}

// TestMigrateTypesDeadLetters upgrades a database of version 16, with dead
// letters, to version 17 on both engines: each letter takes the action of
// the event at its cursor, a letter whose event is not there none; the
// store reads the types back, its replaying letters are found (by the
// index of version 17), a letter written after the upgrade keeps its
// own type, and Migrate again changes nothing.
func TestMigrateTypesDeadLetters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		db := b.open(t, dsn)
		defer db.Close()
		actor := apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}
		now := time.Now()
		require.NoError(t, s.Apply(ctx, apikey.Change{Events: []apikey.Event{
			{Time: now, Actor: actor, Action: apikey.ActionCreate, Account: "acme", Environment: "production", KeyID: "k1"},
			{Time: now, Actor: actor, Action: apikey.ActionRevoke, Account: "acme", Environment: "production", KeyID: "k1"},
		}}))
		page, _, err := s.EventsAfter(ctx, 0, 10)
		require.NoError(t, err)
		require.Len(t, page, 2)
		undoVersions(t, db, 17)
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Equal(t, 16, version)

		gone := page[1].Cursor + 100 // no event there
		for _, l := range []struct {
			cursor int64
			id     string
			state  string
		}{{page[0].Cursor, page[0].Event.ID(), "dead"}, {page[1].Cursor, page[1].Event.ID(), "replaying"}, {gone, "evt_acme_99", "replaying"}} {
			_, err := db.Exec(placeholders(b.dialect, `INSERT INTO keystile_dead_letters
				(endpoint, event_cursor, event_id, event_seq, attempts, reason, dead_at, state)
				VALUES (?, ?, ?, ?, 1, 'server error', 0, ?)`), "ops", l.cursor, l.id, apikey.EventIDSeq(l.id), l.state)
			require.NoError(t, err, l.id)
		}
		require.NoError(t, s.Migrate(ctx))
		require.NoError(t, s.Migrate(ctx), "again: nothing to do")
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		assert.Equal(t, sqlstore.SchemaVersion, version)

		letters, err := s.DeadLetters(ctx, "ops", 0, 10)
		require.NoError(t, err)
		require.Len(t, letters, 3)
		assert.Equal(t, []apikey.Action{apikey.ActionCreate, apikey.ActionRevoke, ""},
			[]apikey.Action{letters[0].Type, letters[1].Type, letters[2].Type}, "the action of the event at each cursor")
		replaying, err := s.Replaying(ctx, "ops", 10)
		require.NoError(t, err)
		require.Len(t, replaying, 2)
		assert.Equal(t, []int64{page[1].Cursor, gone}, []int64{replaying[0].Cursor, replaying[1].Cursor})
		assert.Equal(t, apikey.ActionRevoke, replaying[0].Type)

		_, ok, err := s.LeaseDelivery(ctx, "ops", "a", now, now.Add(time.Minute))
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.AdvanceDelivery(ctx, "ops", "a", now, gone+1, &apikey.DeadLetter{Cursor: gone + 1,
			EventID: "evt_acme_100", Type: apikey.ActionRotate, Attempts: 1, Reason: "server error", At: now}))
		l, err := s.DeadLetterByEventID(ctx, "ops", "evt_acme_100")
		require.NoError(t, err)
		assert.Equal(t, apikey.ActionRotate, l.Type, "a letter of the new version")
	})
}
