package apikey

import (
	"context"
	"time"
)

// UsageRecorder is an optional Store capability: it adds up the requests of
// each key per hour and outcome, written in batches (never one write per
// request), and deletes the counts older than a retention (PruneUsage).
type UsageRecorder interface {
	// RecordUsage adds every count to the stored count of its key, hour and
	// outcome (creating it at 0), in one atomic write. Counts of the same
	// key, hour and outcome within one call are added together.
	RecordUsage(ctx context.Context, counts []UsageCount) error
	// Usage returns the counts that q selects, ordered by hour, then key id,
	// then outcome.
	Usage(ctx context.Context, q UsageQuery) ([]UsageCount, error)
	// PruneUsage deletes the counts of hours that start before before, and
	// reports how many it deleted.
	PruneUsage(ctx context.Context, before time.Time) (int64, error)
}

// UsageCount is the number of requests of one key in one hour with one
// outcome.
type UsageCount struct {
	Account     string    `json:"account"`
	Environment string    `json:"environment"`
	KeyID       string    `json:"key_id"`
	Hour        time.Time `json:"hour"` // UTC, on the hour
	// Outcome is "admitted" or the code of the refusal, such as
	// "rate_limited" or "insufficient_scope".
	Outcome string `json:"outcome"`
	Count   int64  `json:"count"`
}

// UsageQuery selects the counts of one account, and of one of its
// environments or keys, over [From, To).
type UsageQuery struct {
	Account string
	// Environment, if set, selects that environment's keys.
	Environment string
	// KeyID, if set, selects that key.
	KeyID    string
	From, To time.Time
	// After, if set, continues a page after that count (its Hour, KeyID
	// and Outcome).
	After *UsageCount
	// Limit is the most counts to return; <= 0 means a backend default
	// of 1,000.
	Limit int
}
