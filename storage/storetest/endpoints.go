package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// endpoint returns an endpoint of account with id "ep_" and 24 hex digits
// ending in n; it is not stored.
func endpoint(account string, n int) apikey.WebhookEndpoint {
	return apikey.WebhookEndpoint{ID: fmt.Sprintf("ep_%024x", n), Account: account, URL: "https://hooks.example.com/in?t=1",
		Enabled: true, CreatedAt: base, UpdatedAt: base, Secret: apikey.NewOpaque("whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmU=")}
}

// tenantDelivery returns the delivery name of endpoint(acme, n), stored
// first when s keeps endpoints: such a store leases a tenant endpoint's
// name only while its endpoint exists.
func tenantDelivery(t *testing.T, s apikey.Store, n int) string {
	t.Helper()
	e := endpoint(acme, n)
	if es, ok := s.(storage.EndpointStore); ok {
		_, err := es.ApplyEndpoint(context.Background(), apikey.EndpointChange{Put: &e, Max: apikey.MaxEndpoints})
		require.NoError(t, err)
	}
	return e.DeliveryName()
}

// testEndpoints checks storage.EndpointStore's writes: an insert with its
// events, starting at the stream's end; a compare-and-set update that keeps
// every field; pages by account and of every account; a delete.
func testEndpoints(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	es := as[storage.EndpointStore](t, s)
	stream := as[storage.EventStream](t, s)
	apply(t, s, apikey.Change{Events: []apikey.Event{{Time: base, Actor: acmeOwner, Action: apikey.ActionCreate, Account: acme}}})

	e := endpoint(acme, 2)
	e.Actions = []apikey.Action{apikey.ActionRevoke, apikey.ActionRotate}
	e.Environment = "staging"
	e.SecretSealed = true
	e.Secret = apikey.OpaqueBytes([]byte{0, 1, 2, 255})
	ev := apikey.Event{Time: base, Actor: acmeOwner, Action: apikey.ActionCreateEndpoint, Account: acme, Detail: "endpoint " + e.ID}
	written, err := es.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &e, Max: 10, Events: []apikey.Event{ev}})
	require.NoError(t, err)
	assert.Positive(t, written.Revision)
	_, end, err := stream.EventsAfter(ctx, 0, 100)
	require.NoError(t, err)
	assert.Equal(t, end, written.Start, "an endpoint starts at the stream's end, its own event included")

	got, err := es.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	assert.Equal(t, e.URL, got.URL)
	assert.Equal(t, e.Actions, got.Actions)
	assert.Equal(t, "staging", got.Environment)
	assert.True(t, got.Enabled)
	assert.True(t, got.SecretSealed)
	assert.True(t, e.Secret.Equal(got.Secret), "the secret's bytes round-trip")
	assert.True(t, got.PreviousSecret.IsZero())
	assert.True(t, base.Equal(got.CreatedAt))
	assert.Equal(t, written.Start, got.Start)
	assert.Equal(t, written.Revision, got.Revision)

	_, err = es.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &e, Max: 10})
	require.ErrorIs(t, err, apikey.ErrConflict, "a second insert of the id")

	// Update: compare-and-set on the revision.
	upd := got
	upd.URL, upd.Actions, upd.Enabled = "https://other.example.com/", nil, false
	upd.PreviousSecret, upd.PreviousSecretUntil = got.Secret, base.Add(time.Hour)
	upd.Secret, upd.SecretSealed = apikey.NewOpaque("whsec_bmV3"), false
	upd.UpdatedAt = base.Add(time.Minute)
	after, err := es.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &upd})
	require.NoError(t, err)
	assert.Greater(t, after.Revision, got.Revision)
	_, err = es.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &upd})
	require.ErrorIs(t, err, apikey.ErrConflict, "a stale revision")
	missing := endpoint(acme, 99)
	missing.Revision = 1
	_, err = es.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &missing})
	require.ErrorIs(t, err, apikey.ErrNotFound)
	got, err = es.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	assert.Equal(t, "https://other.example.com/", got.URL)
	assert.Empty(t, got.Actions)
	assert.False(t, got.Enabled)
	assert.False(t, got.SecretSealed)
	assert.Equal(t, "whsec_bmV3", got.Secret.Reveal())
	assert.Equal(t, []byte{0, 1, 2, 255}, got.PreviousSecret.Bytes())
	assert.True(t, base.Add(time.Hour).Equal(got.PreviousSecretUntil))
	assert.True(t, base.Add(time.Minute).Equal(got.UpdatedAt))
	assert.Equal(t, written.Start, got.Start, "an update keeps the start")

	// Pages.
	for _, x := range []apikey.WebhookEndpoint{endpoint(acme, 1), endpoint(acme, 3), endpoint(globex, 4)} {
		_, err := es.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &x, Max: 10})
		require.NoError(t, err)
	}
	ids := func(q apikey.EndpointQuery) []string {
		list, err := es.Endpoints(ctx, q)
		require.NoError(t, err)
		var out []string
		for _, e := range list {
			out = append(out, e.ID[len(e.ID)-1:])
		}
		return out
	}
	assert.Equal(t, []string{"1", "2", "3"}, ids(apikey.EndpointQuery{Account: acme, Limit: 10}))
	assert.Equal(t, []string{"2", "3"}, ids(apikey.EndpointQuery{Account: acme, After: endpoint(acme, 1).ID, Limit: 2}))
	assert.Equal(t, []string{"4"}, ids(apikey.EndpointQuery{Account: globex, Limit: 10}))
	assert.Equal(t, []string{"1", "2", "3", "4"}, ids(apikey.EndpointQuery{Limit: 10}))
	assert.Equal(t, []string{"3", "4"}, ids(apikey.EndpointQuery{After: endpoint(acme, 2).ID, Limit: 10}))
	assert.Empty(t, ids(apikey.EndpointQuery{Account: "initech", Limit: 10}))

	// Delete.
	stale := got
	stale.Revision--
	_, err = es.ApplyEndpoint(ctx, apikey.EndpointChange{Delete: &stale})
	require.ErrorIs(t, err, apikey.ErrConflict)
	_, err = es.ApplyEndpoint(ctx, apikey.EndpointChange{Delete: &got,
		Events: []apikey.Event{{Time: base, Actor: acmeOwner, Action: apikey.ActionDeleteEndpoint, Account: acme}}})
	require.NoError(t, err)
	_, err = es.Endpoint(ctx, e.ID)
	require.ErrorIs(t, err, apikey.ErrNotFound)
	assert.Equal(t, []string{"1", "3"}, ids(apikey.EndpointQuery{Account: acme, Limit: 10}))
	_, err = es.ApplyEndpoint(ctx, apikey.EndpointChange{Delete: &got})
	require.ErrorIs(t, err, apikey.ErrNotFound)
	page, _, err := stream.EventsAfter(ctx, 0, 100)
	require.NoError(t, err)
	assert.Equal(t, apikey.ActionDeleteEndpoint, page[len(page)-1].Event.Action, "the delete's event, in the same write")
}

// testEndpointsBounded has eight writers on four handles insert endpoints
// of one account at once: exactly Max succeed, the others fail with
// ErrTooManyEndpoints and write nothing; a closed account refuses them.
func testEndpointsBounded(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	stores := c.peers(t, s, 4)
	const max = 5
	var (
		wg      sync.WaitGroup
		ok, too atomic.Int32
	)
	for i := range 8 {
		wg.Go(func() {
			es := stores[i%len(stores)].(storage.EndpointStore)
			e := endpoint(acme, 100+i)
			_, err := es.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &e, Max: max})
			switch {
			case err == nil:
				ok.Add(1)
			case assert.ErrorIs(t, err, apikey.ErrTooManyEndpoints):
				too.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(max), ok.Load())
	assert.Equal(t, int32(8-max), too.Load())
	list, err := as[storage.EndpointStore](t, s).Endpoints(ctx, apikey.EndpointQuery{Account: acme, Limit: 100})
	require.NoError(t, err)
	assert.Len(t, list, max)

	closed := record(globex, apikey.Production, apikey.Server, true)
	apply(t, s, apikey.Change{Insert: []apikey.Record{closed},
		Settings: []apikey.Settings{{Account: globex, Environment: apikey.Production, UpdatedAt: base, ClosedAt: base}}})
	e := endpoint(globex, 1)
	_, err = as[storage.EndpointStore](t, s).ApplyEndpoint(ctx, apikey.EndpointChange{Put: &e, Max: max, OpenAccount: globex,
		Events: []apikey.Event{{Time: base, Actor: globexOwner, Action: apikey.ActionCreateEndpoint, Account: globex}}})
	require.ErrorIs(t, err, apikey.ErrAccountClosed)
	_, err = as[storage.EndpointStore](t, s).Endpoint(ctx, e.ID)
	require.ErrorIs(t, err, apikey.ErrNotFound, "nothing written")
}

// testAccountEventsAfter checks that an account's events are read from a
// cursor in stream order, with their stream cursors, and no other
// account's.
func testAccountEventsAfter(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	es := as[storage.EndpointStore](t, s)
	stream := as[storage.EventStream](t, s)
	for i := range 6 {
		account := []string{acme, globex}[i%2]
		apply(t, s, apikey.Change{Events: []apikey.Event{{Time: base, Actor: acmeOwner, Action: apikey.ActionCreate,
			Account: account, Detail: fmt.Sprint(i)}}})
	}
	all, _, err := stream.EventsAfter(ctx, 0, 100)
	require.NoError(t, err)
	require.Len(t, all, 6)
	page, next, err := es.AccountEventsAfter(ctx, globex, 0, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, []string{"1", "3"}, []string{page[0].Event.Detail, page[1].Event.Detail})
	assert.Equal(t, all[1].Cursor, page[0].Cursor)
	assert.Equal(t, all[3].Cursor, page[1].Cursor)
	assert.Equal(t, int64(1), page[0].Event.Seq, "numbered in its account")
	assert.Equal(t, page[1].Cursor, next)
	page, next2, err := es.AccountEventsAfter(ctx, globex, next, 10)
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, "5", page[0].Event.Detail)
	page, next3, err := es.AccountEventsAfter(ctx, globex, page[0].Cursor, 10)
	require.NoError(t, err)
	assert.Empty(t, page)
	assert.Equal(t, next2, next3, "no event: the cursor given")
	page, _, err = es.AccountEventsAfter(ctx, "initech", 0, 10)
	require.NoError(t, err)
	assert.Empty(t, page)
}

// testEndpointsManager runs the Manager's endpoint calls on the store:
// create (the secret once, an event), list and get without secrets, update,
// rotate with an overlap, delete; each an audit event.
func testEndpointsManager(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: func() time.Time { return base }})
	require.NoError(t, err)
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: "https://hooks.example.com/keystile",
		Actions: []apikey.Action{apikey.ActionRevoke}})
	require.NoError(t, err)
	assert.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, issued.Secret.Reveal())
	id := issued.Endpoint.ID
	got, err := m.Endpoint(ctx, acmeOwner, id)
	require.NoError(t, err)
	assert.True(t, got.Secret.IsZero(), "never the secret again")
	assert.Equal(t, []apikey.Action{apikey.ActionRevoke}, got.Actions)
	_, err = m.Endpoint(ctx, globexOwner, id)
	require.ErrorIs(t, err, apikey.ErrNotFound, "another account's")
	list, next, err := m.Endpoints(ctx, apikey.Actor{ID: "ro", Role: apikey.ReadOnly, Account: acme}, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Empty(t, next)
	assert.True(t, list[0].Secret.IsZero())

	off := false
	upd, err := m.UpdateEndpoint(ctx, acmeOwner, id, apikey.EndpointUpdate{Enabled: &off})
	require.NoError(t, err)
	assert.False(t, upd.Enabled)
	rotated, err := m.RotateEndpointSecret(ctx, acmeOwner, id, time.Hour)
	require.NoError(t, err)
	assert.False(t, rotated.Secret.Equal(issued.Secret))
	stored, err := as[storage.EndpointStore](t, s).Endpoint(ctx, id)
	require.NoError(t, err)
	secrets, err := apikey.EndpointSecrets(stored, nil, base)
	require.NoError(t, err)
	require.Len(t, secrets, 2, "the old secret overlaps")
	assert.True(t, secrets[0].Equal(rotated.Secret))
	assert.True(t, secrets[1].Equal(issued.Secret))
	require.NoError(t, m.DeleteEndpoint(ctx, acmeOwner, id))
	_, err = m.Endpoint(ctx, acmeOwner, id)
	require.ErrorIs(t, err, apikey.ErrNotFound)

	events, err := as[storage.AuditLog](t, s).Events(ctx, storage.EventQuery{Account: acme})
	require.NoError(t, err)
	var actions []apikey.Action
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	assert.Equal(t, []apikey.Action{apikey.ActionDeleteEndpoint, apikey.ActionRotateEndpointSecret,
		apikey.ActionUpdateEndpoint, apikey.ActionCreateEndpoint}, actions)
}

// testEndpointDeleteForgetsDelivery checks that deleting an endpoint
// deletes its delivery state (storage.DeliveryLog under its DeliveryName)
// in the same write: its dead letters, which no one can read or replay
// once the endpoint is gone, and its cursor and lease, whose holder loses
// it. Another endpoint's state stays.
func testEndpointDeleteForgetsDelivery(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	es := as[storage.EndpointStore](t, s)
	l := as[storage.DeliveryLog](t, s)
	var written []apikey.WebhookEndpoint
	for _, e := range []apikey.WebhookEndpoint{endpoint(acme, 1), endpoint(acme, 2)} {
		w, err := es.ApplyEndpoint(ctx, apikey.EndpointChange{Put: &e, Max: 10})
		require.NoError(t, err)
		written = append(written, w)
		name := e.DeliveryName()
		_, ok, err := l.LeaseDelivery(ctx, name, "a", base, base.Add(time.Hour))
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, l.AdvanceDelivery(ctx, name, "a", base, 7, &apikey.DeadLetter{Cursor: 7, EventID: "evt_acme_3",
			Attempts: 3, Reason: "retry after 3 attempts (status 500)", At: base}))
	}
	gone, kept := written[0], written[1]
	_, err := es.ApplyEndpoint(ctx, apikey.EndpointChange{Delete: &gone,
		Events: []apikey.Event{{Time: base, Actor: acmeOwner, Action: apikey.ActionDeleteEndpoint, Account: acme}}})
	require.NoError(t, err)

	letters, err := l.DeadLetters(ctx, gone.DeliveryName(), 0, 10)
	require.NoError(t, err)
	assert.Empty(t, letters, "a deleted endpoint's dead letters are deleted with it")
	require.ErrorIs(t, l.AdvanceDelivery(ctx, gone.DeliveryName(), "a", base.Add(time.Minute), 8, nil), apikey.ErrLeaseLost,
		"the holder's lease is gone with the endpoint")
	for _, holder := range []string{"a", "b"} { // a's renewal after the delete, and another's first lease
		cursor, ok, err := l.LeaseDelivery(ctx, gone.DeliveryName(), holder, base.Add(time.Minute), base.Add(time.Hour))
		require.NoError(t, err)
		assert.False(t, ok, "%s: a deleted endpoint is not leased: the row would outlive the delete that forgets it", holder)
		assert.Zero(t, cursor, "%s: no cursor is left", holder)
	}

	letters, err = l.DeadLetters(ctx, kept.DeliveryName(), 0, 10)
	require.NoError(t, err)
	assert.Len(t, letters, 1, "another endpoint's dead letters stay")
	cursor, ok, err := l.LeaseDelivery(ctx, kept.DeliveryName(), "a", base.Add(time.Minute), base.Add(time.Hour))
	require.NoError(t, err)
	assert.True(t, ok)
	assert.EqualValues(t, 7, cursor, "another endpoint's cursor stays")
}
