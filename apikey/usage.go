package apikey

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// UsageRequest selects the usage that Manager.Usage reads: of the actor's
// account, or of one of its environments, or of one of its keys, over the
// hours of [From, To).
type UsageRequest struct {
	// Environment, if set, selects that environment's keys.
	Environment string
	// KeyID, if set, selects that key: its key id or its displayable
	// prefix (see ParseKeyID). An actor authenticated by a key must name
	// its own.
	KeyID string
	// From and To bound the hours, both required, From before To. From
	// is rounded down to its hour, To up to the next one: the hour that
	// holds From is included, the one that starts at To is not.
	From, To time.Time
}

// UsageList is a page of usage counts, ordered by hour, then key id, then
// outcome. Next is the cursor of the next page, empty on the last one.
type UsageList struct {
	Counts []UsageCount `json:"counts"`
	Next   string       `json:"next,omitempty"`
}

// Usage returns a page of the usage counts that req selects (see
// UsageRecorder), at most MaxPageSize per page. Every role may read its
// account's usage; an actor authenticated by a key (Actor.Scopes) reads
// only its own key's (Actor.KeyID), else ErrBeyondActor. An environment
// that was not bootstrapped is ErrUnknownEnvironment; a key of another
// account is ErrNotFound. A store that keeps no usage fails with an error
// wrapping errors.ErrUnsupported.
func (m *Manager) Usage(ctx context.Context, actor Actor, req UsageRequest, page Page) (UsageList, error) {
	if err := authorize(actor, ActionView); err != nil {
		return UsageList{}, err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return UsageList{}, err
	}
	limit, err := page.limit()
	if err != nil {
		return UsageList{}, err
	}
	after, err := parseUsageCursor(page.After)
	if err != nil {
		return UsageList{}, err
	}
	if req.From.IsZero() || req.To.IsZero() || !req.From.Before(req.To) {
		return UsageList{}, fmt.Errorf("%w: from and to are both required, from before to", ErrInvalidTimeRange)
	}
	q := UsageQuery{Account: account, Environment: req.Environment, After: after, Limit: limit + 1,
		From: req.From.UTC().Truncate(time.Hour), To: req.To.UTC().Add(time.Hour - 1).Truncate(time.Hour)}
	if actor.Scopes != nil && req.KeyID == "" {
		return UsageList{}, fmt.Errorf("%w: an acting key reads only its own key's usage", ErrBeyondActor)
	}
	if req.KeyID != "" {
		name, err := parseKeyName(req.KeyID)
		if err != nil {
			return UsageList{}, err
		}
		if actor.Scopes != nil && (actor.KeyID == "" || name.id != actor.KeyID) {
			return UsageList{}, fmt.Errorf("%w: an acting key reads only its own key's usage", ErrBeyondActor)
		}
		if _, err := m.key(ctx, actor, name); err != nil {
			return UsageList{}, err
		}
		q.KeyID = name.id
	}
	if req.Environment != "" {
		if _, err := m.environment(ctx, actor, req.Environment); err != nil {
			return UsageList{}, err
		}
	}
	rec, ok := m.store.(UsageRecorder)
	if !ok {
		return UsageList{}, fmt.Errorf("apikey: usage: the store keeps no usage: %w", errors.ErrUnsupported)
	}
	counts, err := rec.Usage(ctx, q)
	if err != nil {
		return UsageList{}, err
	}
	out := UsageList{Counts: counts}
	if len(counts) > limit {
		out.Counts = counts[:limit]
		out.Next = usageCursor(counts[limit-1])
	}
	return out, nil
}

// maxOutcomeLength bounds the outcome a usage cursor may carry.
const maxOutcomeLength = 64

func usageCursor(c UsageCount) string {
	return cursorEncoding.EncodeToString([]byte(strconv.FormatInt(c.Hour.UnixMicro(), 10) + "." + c.KeyID + "." + c.Outcome))
}

func parseUsageCursor(s string) (*UsageCount, error) {
	if s == "" {
		return nil, nil
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) > 32+IDLength+maxOutcomeLength {
		return nil, errBadCursor
	}
	micros, rest, ok := strings.Cut(string(b), ".")
	id, outcome, ok2 := strings.Cut(rest, ".")
	t, err := strconv.ParseInt(micros, 10, 64)
	if !ok || !ok2 || err != nil || len(id) != IDLength || len(outcome) > maxOutcomeLength {
		return nil, errBadCursor
	}
	hour := time.UnixMicro(t).UTC()
	if !hour.Equal(hour.Truncate(time.Hour)) {
		return nil, errBadCursor
	}
	return &UsageCount{Hour: hour, KeyID: id, Outcome: outcome}, nil
}
