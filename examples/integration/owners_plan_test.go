package integration_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestSQLiteOwnerAndExpiryPlans: on SQLite, each query of keys by owner
// and of expiring keys is one search of its own partial index, with no
// scan of the table and no sort. SQLite's planner, left to itself,
// answers one environment's expiring keys from the account's index
// (keystile_keys_expiring) and filters on environment, reading every
// expiring key of the account's other environments in the window.
func TestSQLiteOwnerAndExpiryPlans(t *testing.T) {
	s, explain := planRecorder(t)
	ctx := context.Background()
	now := time.Now()
	window := apikey.ExpiryQuery{Account: "acme", After: apikey.ExpiryPosition{ExpiresAt: now}, Until: now.Add(time.Hour), Limit: 10}
	inStaging := window
	inStaging.Environment = apikey.Staging

	for _, tt := range []struct {
		name  string
		read  func() error
		index string
	}{
		{"owner keys", func() error {
			_, err := s.OwnerKeys(ctx, apikey.OwnerQuery{Account: "acme", Owner: "u", Limit: 10})
			return err
		}, "keystile_keys_owner"},
		{"owner keys not revoked", func() error {
			_, err := s.OwnerKeys(ctx, apikey.OwnerQuery{Account: "acme", Owner: "u", NotRevoked: true, Limit: 10})
			return err
		}, "keystile_keys_owner"},
		{"expiring keys of the account", func() error {
			_, err := s.ExpiringKeys(ctx, window)
			return err
		}, "keystile_keys_expiring"},
		{"expiring keys of one environment", func() error {
			_, err := s.ExpiringKeys(ctx, inStaging)
			return err
		}, "keystile_keys_environment_expiring"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := explain(t, tt.read)
			require.Len(t, plan, 1, "one step: %q", plan)
			assert.Regexp(t, `^SEARCH keystile_keys USING INDEX `+tt.index+` \(`, plan[0])
		})
	}
}

// planRecorder returns a migrated SQLite store whose statements are
// recorded, and explain, which runs read (one statement on the store) and
// returns SQLite's query plan of that statement, a step per element.
func planRecorder(t *testing.T) (*sqlstore.Store, func(t *testing.T, read func() error) []string) {
	dsn := sqliteBackend.fresh(t)
	sqliteBackend.store(t, dsn, sqlstore.Options{}) // migrated
	plain := sqliteBackend.open(t, dsn)
	t.Cleanup(func() { plain.Close() })
	log := &statementLog{}
	recording := sql.OpenDB(recordingConnector{dsn: dsn, driver: plain.Driver(), log: log})
	t.Cleanup(func() { recording.Close() })
	s, err := sqlstore.New(recording, sqlstore.Options{Dialect: sqlstore.SQLite})
	require.NoError(t, err)
	return s, func(t *testing.T, read func() error) []string {
		log.reset()
		require.NoError(t, read())
		queries := log.take()
		require.Len(t, queries, 1, "one statement")
		args := make([]any, strings.Count(queries[0], "?"))
		for i := range args {
			args[i] = i // the plan does not depend on the values
		}
		rows, err := plain.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+queries[0], args...)
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
		return plan
	}
}

// statementLog holds the text of the statements a recordingConnector's
// connections prepared.
type statementLog struct {
	mu      sync.Mutex
	queries []string
}

func (l *statementLog) add(q string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queries = append(l.queries, q)
}

func (l *statementLog) reset() { l.take() }

func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.queries
	l.queries = nil
	return out
}

// recordingConnector opens connections of driver on dsn that record each
// statement in log. They offer database/sql only the methods of
// driver.Conn, so that every query goes through Prepare.
type recordingConnector struct {
	dsn    string
	driver driver.Driver
	log    *statementLog
}

func (c recordingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.driver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return recordingConn{Conn: conn, log: c.log}, nil
}

func (c recordingConnector) Driver() driver.Driver { return c.driver }

type recordingConn struct {
	driver.Conn
	log *statementLog
}

func (c recordingConn) Prepare(query string) (driver.Stmt, error) {
	c.log.add(query)
	return c.Conn.Prepare(query)
}
