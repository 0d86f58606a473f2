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

// TestReviewOneBadUserAgentLosesTheBatch: a batch of callers in which one
// user agent holds a NUL byte (valid UTF-8, which the middleware keeps; a
// request built by a non-net/http adapter can carry it) is refused whole
// on PostgreSQL, so the callers of every other key in the batch are lost
// with it; the middleware restores the batch and retries it at every
// write, failing each time.
func TestReviewOneBadUserAgentLosesTheBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		seen := fixtureNow.Add(time.Minute)
		err := s.RecordCallers(ctx, []apikey.KeyCallers{
			{Account: "acme", KeyID: "aaaaaaaaaaaa", Callers: []apikey.Caller{{Address: "192.0.2.1", UserAgent: "bad\x00agent", Requests: 1, FirstSeen: seen, LastSeen: seen}}},
			{Account: "globex", KeyID: "bbbbbbbbbbbb", Callers: []apikey.Caller{{Address: "192.0.2.2", UserAgent: "curl/8.5", Requests: 1, FirstSeen: seen, LastSeen: seen}}},
		})
		assert.NoError(t, err, "a user agent the store cannot hold does not fail the batch")
		got, err := s.Callers(ctx, "bbbbbbbbbbbb")
		require.NoError(t, err)
		assert.Len(t, got.Callers, 1, "another account's key keeps its caller")
	})
}
