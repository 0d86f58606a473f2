package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestSQLiteStreamPlans: on SQLite, the stream is read from the events'
// primary key, and the keys due for a time-based event from the partial
// index keystile_keys_due, each checked against the marks' primary key:
// no scan of a table, no sort.
func TestSQLiteStreamPlans(t *testing.T) {
	s, explain := planRecorder(t)
	ctx := context.Background()
	now := time.Now()

	for _, tt := range []struct {
		name  string
		read  func() error
		first string
	}{
		{"events after a cursor", func() error {
			_, _, err := s.EventsAfter(ctx, 10, 100)
			return err
		}, `^SEARCH keystile_events USING INTEGER PRIMARY KEY \(rowid>\?\)`},
		{"due keys", func() error {
			_, err := s.DueKeys(ctx, apikey.DueQuery{Kind: apikey.TimedEnded, After: apikey.ExpiryPosition{ExpiresAt: now},
				Until: now.Add(time.Hour), Limit: 10})
			return err
		}, `^SEARCH k USING INDEX keystile_keys_due \(`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := explain(t, tt.read)
			require.NotEmpty(t, plan)
			assert.Regexp(t, tt.first, plan[0])
			for _, step := range plan {
				assert.NotRegexp(t, `^SCAN|TEMP B-TREE`, step, "plan %q", plan)
			}
		})
	}
}
