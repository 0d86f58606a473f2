package integration_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestSQLiteStreamPlans: on SQLite, the stream is read from the events'
// primary key, and the keys due for a time-based event from the partial
// index keystile_keys_due, each checked against the marks' primary key:
// no scan of a table, no sort.
func TestSQLiteStreamPlans(t *testing.T) {
	dsn := sqliteBackend.fresh(t)
	sqliteBackend.store(t, dsn, sqlstore.Options{}) // migrated
	plain := sqliteBackend.open(t, dsn)
	defer plain.Close()
	var log statementLog
	recording := sql.OpenDB(recordingConnector{dsn: dsn, driver: plain.Driver(), log: &log})
	defer recording.Close()
	s, err := sqlstore.New(recording, sqlstore.Options{Dialect: sqlstore.SQLite})
	require.NoError(t, err)
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
			log.reset()
			require.NoError(t, tt.read())
			queries := log.take()
			require.Len(t, queries, 1, "one statement")
			args := make([]any, strings.Count(queries[0], "?"))
			for i := range args {
				args[i] = i
			}
			rows, err := plain.QueryContext(ctx, "EXPLAIN QUERY PLAN "+queries[0], args...)
			require.NoError(t, err)
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
				plan = append(plan, detail)
			}
			require.NoError(t, rows.Err())
			require.NotEmpty(t, plan)
			assert.Regexp(t, tt.first, plan[0])
			for _, step := range plan {
				assert.NotRegexp(t, `^SCAN|TEMP B-TREE`, step, "plan %q", plan)
			}
		})
	}
}
