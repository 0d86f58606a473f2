package apikey_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// countingStore counts the dead-letter reads of a memory store: the calls
// of each read and the letters they return.
type countingStore struct {
	*memory.Store
	scans, bySeq, byEvent, letters atomic.Int32
}

func (s *countingStore) DeadLetters(ctx context.Context, endpoint string, after int64, limit int) ([]apikey.DeadLetter, error) {
	s.scans.Add(1)
	out, err := s.Store.DeadLetters(ctx, endpoint, after, limit)
	s.letters.Add(int32(len(out)))
	return out, err
}

func (s *countingStore) DeadLettersBySeq(ctx context.Context, endpoint string, after int64, limit int) ([]apikey.DeadLetter, error) {
	s.bySeq.Add(1)
	out, err := s.Store.DeadLettersBySeq(ctx, endpoint, after, limit)
	s.letters.Add(int32(len(out)))
	return out, err
}

func (s *countingStore) DeadLetterByEventID(ctx context.Context, endpoint, eventID string) (apikey.DeadLetter, error) {
	s.byEvent.Add(1)
	l, err := s.Store.DeadLetterByEventID(ctx, endpoint, eventID)
	if err == nil {
		s.letters.Add(1)
	}
	return l, err
}

func (s *countingStore) reset() {
	s.scans.Store(0)
	s.bySeq.Store(0)
	s.byEvent.Store(0)
	s.letters.Store(0)
}

// TestEndpointDeadLettersPageReadsItsPageOnly: a page of an endpoint's
// dead letters (any role may ask for one), and a replay of one letter by
// its event id, read the store from that page's or letter's place, by its
// index (ReplayLog.DeadLettersBySeq, DeadLetterByEventID), never every
// letter from the endpoint's first: a tenant whose receiver fails
// everything has as many letters as events, and each request would read
// them all.
func TestEndpointDeadLettersPageReadsItsPageOnly(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{Store: memory.New()}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	issued, err := m.CreateEndpoint(ctx, acmeOwnerActor, apikey.EndpointRequest{URL: "https://hooks.example.com/"})
	require.NoError(t, err)
	name := issued.Endpoint.DeliveryName()
	now := time.Now()
	_, ok, err := store.LeaseDelivery(ctx, name, "h", now, now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	const n = 5 * apikey.MaxPageSize
	for i := int64(1); i <= n; i++ {
		require.NoError(t, store.AdvanceDelivery(ctx, name, "h", now, i,
			&apikey.DeadLetter{Cursor: i, EventID: fmt.Sprintf("evt_acme_%d", i), Attempts: 1, Reason: "failed", At: now}))
	}

	reader := apikey.Actor{ID: "ro", Role: apikey.ReadOnly, Account: "acme"}
	store.reset()
	page, next, err := m.EndpointDeadLetters(ctx, reader, issued.Endpoint.ID, apikey.Page{After: fmt.Sprint(n - 10), Limit: 5})
	require.NoError(t, err)
	require.Len(t, page, 5)
	assert.Equal(t, fmt.Sprintf("evt_acme_%d", n-9), page[0].EventID, "the page starts after its cursor")
	assert.Equal(t, fmt.Sprint(n-5), next)
	assert.Equal(t, int32(1), store.bySeq.Load(), "a late page is one read from its place")
	assert.Zero(t, store.scans.Load(), "no read from the endpoint's first letter")
	assert.Equal(t, int32(5), store.letters.Load(), "the page's letters only")

	store.reset()
	page, next, err = m.EndpointDeadLetters(ctx, reader, issued.Endpoint.ID, apikey.Page{After: next, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page, 5, "the last page")
	assert.Equal(t, fmt.Sprintf("evt_acme_%d", n), page[4].EventID)
	assert.Empty(t, next)
	assert.Equal(t, int32(5), store.letters.Load())

	store.reset()
	replayed, err := m.Replay(ctx, acmeOwnerActor, issued.Endpoint.ID, fmt.Sprintf("evt_acme_%d", n))
	require.NoError(t, err)
	assert.Equal(t, 1, replayed)
	assert.Equal(t, int32(1), store.byEvent.Load(), "a replay of the last letter looks it up by its event id")
	assert.Zero(t, store.scans.Load()+store.bySeq.Load(), "no read of the endpoint's letters")
	assert.Equal(t, int32(1), store.letters.Load())
	l, err := store.DeadLetterByEventID(ctx, name, fmt.Sprintf("evt_acme_%d", n))
	require.NoError(t, err)
	assert.Equal(t, apikey.DeadLetterReplaying, l.State)

	store.reset()
	_, err = m.Replay(ctx, acmeOwnerActor, issued.Endpoint.ID, fmt.Sprintf("evt_acme_%d", n+1))
	require.ErrorIs(t, err, apikey.ErrNotFound, "no letter of that event")
	assert.Equal(t, int32(1), store.byEvent.Load())
	assert.Zero(t, store.scans.Load()+store.bySeq.Load()+store.letters.Load())
}

// TestEventIDSeq: the number that ends an event id (Event.ID), or 0 for a
// string that is not such an id.
func TestEventIDSeq(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want int64
	}{
		{"evt_acme_17", 17},
		{apikey.Event{Account: "a.b@c-d", Seq: 42}.ID(), 42},
		{apikey.Event{Account: apikey.AnyAccount, Seq: 3}.ID(), 3},
		{"evt_acme_999999999999999999", 999999999999999999},
		{"evt_acme_0", 0},
		{"evt_acme_0007", 7},
		{"evt_acme_1000000000000000000", 0}, // 19 digits
		{"evt_acme_", 0},
		{"evt_acme_+5", 0},
		{"evt_acme_-5", 0},
		{"evt_acme_5x", 0},
		{"17", 0},
		{"", 0},
		{"custom", 0},
	} {
		assert.Equal(t, tt.want, apikey.EventIDSeq(tt.id), "%q", tt.id)
	}
}
