package apikey_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/keystile/keystile/apikey"
)

func TestOwnerOfBalanceID(t *testing.T) {
	for _, tc := range []struct {
		id, account, owner string
		ok                 bool
	}{
		{apikey.OwnerBalanceID("acme", "user-1"), "acme", "user-1", true},
		{apikey.OwnerBalanceID("acme", "team/a:b"), "acme", "team/a:b", true}, // an account holds no "/"
		{"k1234567890", "", "", false},
		{"owner:acme", "", "", false},
	} {
		account, owner, ok := apikey.OwnerOfBalanceID(tc.id)
		assert.Equal(t, tc.ok, ok, tc.id)
		assert.Equal(t, tc.account, account, tc.id)
		assert.Equal(t, tc.owner, owner, tc.id)
	}
}

func TestQuotaExhaustedEvent(t *testing.T) {
	now := time.Date(2026, 12, 6, 15, 4, 5, 0, time.UTC)
	key := apikey.Record{ID: "k1234567890", Account: "acme", Environment: apikey.Production, Type: apikey.Server}
	for _, tc := range []struct {
		name      string
		balance   string
		q         apikey.Quota
		want      apikey.Event
		wantOwner bool
	}{
		{"a key's, daily", key.ID, apikey.Quota{Limit: 1000, Refill: 500, Period: apikey.Daily}, apikey.Event{
			Account: "acme", Environment: apikey.Production, KeyID: key.ID, KeyType: apikey.Server,
			Detail: "quota of 1000 uses exhausted, refills 500 at 2026-12-07T00:00:00Z"}, false},
		{"a key's, never refilled", key.ID, apikey.Quota{Limit: 10}, apikey.Event{
			Account: "acme", Environment: apikey.Production, KeyID: key.ID, KeyType: apikey.Server,
			Detail: "quota of 10 uses exhausted"}, false},
		{"a key's, one use", key.ID, apikey.Quota{Limit: 1, Refill: 1, Period: apikey.Daily}, apikey.Event{
			Account: "acme", Environment: apikey.Production, KeyID: key.ID, KeyType: apikey.Server,
			Detail: "quota of 1 use exhausted, refills 1 at 2026-12-07T00:00:00Z"}, false},
		{"a key's, two uses", key.ID, apikey.Quota{Limit: 2}, apikey.Event{
			Account: "acme", Environment: apikey.Production, KeyID: key.ID, KeyType: apikey.Server,
			Detail: "quota of 2 uses exhausted"}, false},
		{"an owner's, one use", apikey.OwnerBalanceID("globex", "user-1"), apikey.Quota{Limit: 1},
			apikey.Event{Account: "globex", Detail: "owner user-1: quota of 1 use exhausted"}, true},
		{"an owner's, monthly", apikey.OwnerBalanceID("globex", "user-1"), apikey.Quota{Limit: 5, Refill: 5, Period: apikey.Monthly},
			apikey.Event{Account: "globex", Detail: "owner user-1: quota of 5 uses exhausted, refills 5 at 2027-01-01T00:00:00Z"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			want.Time, want.Actor, want.Action = now, apikey.SystemActor, apikey.ActionQuotaExhausted
			assert.Equal(t, want, apikey.QuotaExhaustedEvent(tc.balance, key, tc.q, now))
		})
	}
	assert.NotEqual(t, apikey.QuotaExhaustedKind(1), apikey.QuotaExhaustedKind(2), "one kind per generation")
}
