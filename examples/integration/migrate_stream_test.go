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

// TestMigrateAddsEventStream upgrades a version-10 database, with keys and
// audit events, to version 11 on both engines: the events written before
// are in the stream, in order, and the stream goes on after them; a key
// that expires is found by DueKeys, and its time-based event is appended
// once; Migrate again changes nothing.
func TestMigrateAddsEventStream(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m := fixtureManager(t, s)
		_, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		extra, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}, ExpiresAt: fixtureNow.Add(time.Hour)})
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		migrateFrom(t, db, s, 11)

		events, next, err := s.EventsAfter(ctx, 0, 0)
		require.NoError(t, err)
		var actions []apikey.Action
		for _, se := range events {
			actions = append(actions, se.Event.Action)
		}
		assert.Equal(t, []apikey.Action{apikey.ActionBootstrap, apikey.ActionBootstrap, apikey.ActionCreate}, actions,
			"the events of version 10 are in the stream, in order")
		_, err = m.Revoke(ctx, owner, extra.View.ID)
		require.NoError(t, err)
		later, _, err := s.EventsAfter(ctx, next, 0)
		require.NoError(t, err)
		require.Len(t, later, 1)
		assert.Equal(t, apikey.ActionRevoke, later[0].Event.Action)

		// A key that expires, found by the new index, marked once.
		soon, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Scopes: []string{"orders:read"}, ExpiresAt: fixtureNow.Add(2 * time.Hour)})
		require.NoError(t, err)
		due, err := s.DueKeys(ctx, apikey.DueQuery{Kind: apikey.TimedExpiring, Until: fixtureNow.Add(3 * time.Hour), Limit: 10})
		require.NoError(t, err)
		require.Len(t, due, 1, "the revoked key is not due")
		assert.Equal(t, soon.View.ID, due[0].ID)
		te := apikey.TimedEvent{Kind: apikey.TimedExpiring, ExpiresAt: due[0].ExpiresAt, Event: apikey.Event{
			Time: fixtureNow, Actor: apikey.SystemActor, Action: apikey.ActionExpiring, Account: due[0].Account,
			Environment: due[0].Environment, KeyID: due[0].ID, KeyType: due[0].Type}}
		for i, want := range []int{1, 0} {
			n, err := s.AppendTimed(ctx, []apikey.TimedEvent{te})
			require.NoError(t, err)
			assert.Equal(t, want, n, "append %d", i)
		}
		due, err = s.DueKeys(ctx, apikey.DueQuery{Kind: apikey.TimedExpiring, Until: fixtureNow.Add(3 * time.Hour), Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, due, "a key with its event is no longer due for that kind")
	})
}
