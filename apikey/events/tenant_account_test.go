package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/internal/webhooktest"
	"github.com/keystile/keystile/storage/memory"
)

var operator = apikey.Actor{ID: "op", Role: apikey.Owner, Account: apikey.AnyAccount}

// acmeEndpoint bootstraps acme and registers an endpoint of it that
// receives every event, at a receiver that answers 2xx, and returns a
// TenantDeliverer that has delivered the events so far.
func acmeEndpoint(t *testing.T) (*apikey.Manager, *memory.Store, *webhooktest.Receiver, apikey.IssuedEndpoint, *events.TenantDeliverer) {
	t.Helper()
	ctx := context.Background()
	store := memory.New()
	m, sealer := tenantManager(t, store)
	rs := &receiverServer{}
	issued, err := m.CreateEndpoint(ctx, acmeOwner, apikey.EndpointRequest{URL: rs.start(t)})
	require.NoError(t, err)
	secret, err := webhook.ParseSecret(issued.Secret.Reveal())
	require.NoError(t, err)
	rs.rcv = webhooktest.NewReceiver(secret, 0)
	_, err = m.Bootstrap(ctx, acmeOwner, apikey.Production)
	require.NoError(t, err)
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: store, Sender: webhooktest.LoopbackSender(t), Sealer: sealer})
	require.NoError(t, err)
	n, err := d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	require.Equal(t, 2, n, "the bootstrap's two events")
	return m, store, rs.rcv, issued, d
}

// appendAcme appends an event of acme, as a revocation or the Scanner may
// while the account is suspended or closed.
func appendAcme(t *testing.T, store *memory.Store, detail string) {
	t.Helper()
	require.NoError(t, store.Apply(context.Background(), apikey.Change{Events: []apikey.Event{{Time: time.Now().UTC(), Actor: apikey.SystemActor,
		Action: apikey.ActionExpired, Account: "acme", Environment: apikey.Production, Detail: detail}}}))
}

// TestTenantDelivererPausesSuspendedAccount: while its account is
// suspended an endpoint receives nothing, its events wait with its cursor
// (none is dead-lettered), and once the account is resumed it receives
// them all, in order.
func TestTenantDelivererPausesSuspendedAccount(t *testing.T) {
	ctx := context.Background()
	m, store, rcv, issued, d := acmeEndpoint(t)
	require.NoError(t, m.SuspendAccount(ctx, operator, "acme"))
	appendAcme(t, store, "while suspended")
	n, err := d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, 2, rcv.Count(), "nothing delivered while suspended")
	dead, err := store.DeadLetters(ctx, issued.Endpoint.DeliveryName(), 0, 10)
	require.NoError(t, err)
	assert.Empty(t, dead)

	require.NoError(t, m.ResumeAccount(ctx, operator, "acme"))
	n, err = d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "the suspension's event, the one appended meanwhile and the resumption's")
	stored, err := store.Endpoint(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	stream, _, err := store.AccountEventsAfter(ctx, "acme", stored.Start, 0)
	require.NoError(t, err)
	rcv.AssertDelivered(t, stream)
}

// TestTenantDelivererStopsClosedAccount: a closed account's endpoint
// receives nothing more, not even the events waiting when it closed; it is
// kept, and its owner may delete it.
func TestTenantDelivererStopsClosedAccount(t *testing.T) {
	ctx := context.Background()
	m, store, rcv, issued, d := acmeEndpoint(t)
	appendAcme(t, store, "waiting when the account closes")
	_, err := m.CloseAccount(ctx, acmeOwner, "acme")
	require.NoError(t, err)
	appendAcme(t, store, "after the close")
	n, err := d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, 2, rcv.Count(), "nothing delivered after the close")
	_, err = store.Endpoint(ctx, issued.Endpoint.ID)
	require.NoError(t, err, "kept")
	require.NoError(t, m.DeleteEndpoint(ctx, acmeOwner, issued.Endpoint.ID))
}

// TestTenantDelivererRetryStopsWhenAccountSuspended: an account suspended
// while its endpoint's event is being retried gives it no further attempt;
// the event waits with its cursor, not dead-lettered, and is delivered
// after the resumption.
func TestTenantDelivererRetryStopsWhenAccountSuspended(t *testing.T) {
	ctx := context.Background()
	m, store, rcv, issued, d := retryingEndpoint(t)
	rcv.change = func() { assert.NoError(t, m.SuspendAccount(ctx, operator, "acme")) }
	_, err := d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, len(rcv.got()), "no attempt after the account was suspended")
	dead, err := store.DeadLetters(ctx, issued.Endpoint.DeliveryName(), 0, 10)
	require.NoError(t, err)
	assert.Empty(t, dead, "the event waits, not dead-lettered")

	rcv.change = nil
	require.NoError(t, m.ResumeAccount(ctx, operator, "acme"))
	_, err = d.Step(ctx, issued.Endpoint.ID)
	require.NoError(t, err)
	got := rcv.got()
	require.Equal(t, 4, len(got), "the event's three attempts once resumed")
	assert.Equal(t, got[0].header.Get(webhook.HeaderID), got[1].header.Get(webhook.HeaderID), "the same event")
}
