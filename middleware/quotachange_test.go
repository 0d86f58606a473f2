package middleware_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// TestQuotaRaisedKeepsLeasedUses: a key with a quota of 100 spends 15
// uses through the middleware, whose lease holds more of the balance than
// that; raising the quota to 200 admits exactly the 185 uses left, not
// the 100 the store would grant if the uses leased but not spent counted
// as spent.
func TestQuotaRaisedKeepsLeasedUses(t *testing.T) {
	f := newFixture(t, nil)
	k := f.limited(apikey.Limits{Quota: apikey.Quota{Limit: 100}})
	check := func() error {
		_, err := f.v.Check(request(k.Reveal()), middleware.Policy{})
		return err
	}
	for i := range 15 {
		require.NoError(t, check(), "request %d", i)
	}
	_, err := f.manager.SetLimits(context.Background(), owner, k.ID(), apikey.Limits{Quota: apikey.Quota{Limit: 200}})
	require.NoError(t, err)

	admitted := 0
	for ; admitted < 400; admitted++ {
		if err := check(); err != nil {
			require.ErrorIs(t, err, middleware.ErrQuotaExhausted, "after %d admitted", admitted)
			break
		}
	}
	assert.Equal(t, 185, admitted, "200 - 15 spent")
	err = check()
	assert.True(t, errors.Is(err, middleware.ErrQuotaExhausted), "the quota stays exhausted: %v", err)
}
