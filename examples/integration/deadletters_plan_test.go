package integration_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestSQLiteDeadLetterPlans: on SQLite, a page of an endpoint's dead
// letters by their events' numbers is one search of the index
// keystile_dead_letters_seq from the page's number, and the letter of one
// event one search of keystile_dead_letters_event, and the replaying
// letters one search of the partial index keystile_dead_letters_replaying:
// no scan of the endpoint's letters, no sort.
func TestSQLiteDeadLetterPlans(t *testing.T) {
	s, explain := planRecorder(t)
	ctx := context.Background()

	for _, tt := range []struct {
		name  string
		read  func() error
		index string
	}{
		{"a page by number", func() error {
			_, err := s.DeadLettersBySeq(ctx, "tenant/ep_0", 10, 20)
			return err
		}, `keystile_dead_letters_seq \(endpoint=\? AND event_seq>\?\)`},
		{"the letter of an event", func() error {
			_, err := s.DeadLetterByEventID(ctx, "tenant/ep_0", "evt_acme_3")
			if errors.Is(err, apikey.ErrNotFound) {
				return nil // the plan is the same for a letter found
			}
			return err
		}, `keystile_dead_letters_event \(endpoint=\? AND event_id=\?\)`},
		{"the replaying letters", func() error {
			_, err := s.Replaying(ctx, "tenant/ep_0", 20)
			return err
		}, `keystile_dead_letters_replaying \(endpoint=\?\)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := explain(t, tt.read)
			require.Len(t, plan, 1, "one step: %q", plan)
			assert.Regexp(t, `^SEARCH keystile_dead_letters USING (COVERING )?INDEX `+tt.index, plan[0])
		})
	}
}
