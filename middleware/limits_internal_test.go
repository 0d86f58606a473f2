package middleware

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/limit"
)

func TestUses(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 uses"},
		{1, "1 use"},
		{2, "2 uses"},
		{10, "10 uses"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, tc.want, uses(tc.n))
		})
	}
}

// A request of a key limited by its own rate and its owner's reads the
// clock of rate limits once (the system clock costs about 50 ns a read),
// and both limits decide at that one instant.
func TestEnforceReadsRateClockOnce(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reads := 0
	l := &limiter{rate: limit.NewLocal(limit.LocalOptions{}), rateNow: func() time.Time {
		reads++
		return start.Add(time.Duration(reads) * time.Second)
	}}
	perMinute := apikey.RateLimit{Requests: 60, Window: time.Minute}
	for name, id := range map[string]*Identity{
		"own":           {KeyID: "k1", Limits: apikey.Limits{Rate: perMinute}},
		"owner's":       {KeyID: "k2", Owner: "o", OwnerLimits: apikey.Limits{Rate: perMinute}, ownerBudget: apikey.OwnerBalanceID("a", "o")},
		"own and owner": {KeyID: "k3", Limits: apikey.Limits{Rate: perMinute}, Owner: "o", OwnerLimits: apikey.Limits{Rate: perMinute}, ownerBudget: apikey.OwnerBalanceID("a", "p")},
	} {
		t.Run(name, func(t *testing.T) {
			reads = 0
			var vd verdict
			require.NoError(t, l.enforce(context.Background(), id, 1, start, &vd))
			assert.Equal(t, 1, reads)
		})
	}
}
