package apikey

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// replayLog returns the store's ReplayLog, if the store is also a
// DeliveryLog (whose deliverers send the replays).
func (m *Manager) replayLog() (ReplayLog, error) {
	_, ok := m.store.(DeliveryLog)
	rl, ok2 := m.store.(ReplayLog)
	if !ok || !ok2 {
		return nil, fmt.Errorf("apikey: the store cannot replay deliveries (DeliveryLog, ReplayLog): %w", errors.ErrUnsupported)
	}
	return rl, nil
}

// EndpointDeadLetters returns a page of the dead letters of a webhook
// endpoint of the actor's account, oldest first, each with its State, and
// the cursor of the next page ("" after the last). The cursor is the
// number of the last letter's event in the account (Event.Seq), never the
// stream's cursor, which counts every account's events; a page is one
// read of the store's index from that number (ReplayLog.DeadLettersBySeq).
// Every role may read them.
func (m *Manager) EndpointDeadLetters(ctx context.Context, actor Actor, id string, p Page) ([]DeadLetter, string, error) {
	if err := authorize(actor, ActionView); err != nil {
		return nil, "", err
	}
	account, err := namedAccount(actor)
	if err != nil {
		return nil, "", err
	}
	limit, err := p.limit()
	if err != nil {
		return nil, "", err
	}
	var after int64
	if p.After != "" {
		if after, err = strconv.ParseInt(p.After, 10, 64); err != nil || after < 1 {
			return nil, "", fmt.Errorf("%w: not a dead letter cursor", ErrInvalidCursor)
		}
	}
	es, err := m.endpointStore()
	if err != nil {
		return nil, "", err
	}
	rl, err := m.replayLog()
	if err != nil {
		return nil, "", err
	}
	e, err := m.loadEndpoint(ctx, es, account, id)
	if err != nil {
		return nil, "", err
	}
	out, err := rl.DeadLettersBySeq(ctx, e.DeliveryName(), after, limit)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) == limit {
		next = strconv.FormatInt(EventIDSeq(out[len(out)-1].EventID), 10)
	}
	return out, next, nil
}

// Replay re-queues the dead letter of event eventID of a webhook endpoint
// of the actor's account, or every dead letter of the endpoint when
// eventID is empty: the deliverer (package apikey/events) sends each again,
// with its retries, before the endpoint's next events, under the same
// event id, and records it delivered or dead again (DeadLetter.State). It
// returns how many letters it re-queued; a letter already replaying is
// left as it is, and an eventID with no dead letter fails with
// ErrNotFound (the letter is looked up by its event id in the store's
// index, ReplayLog.DeadLetterByEventID). Owners only, as CreateEndpoint
// (a key with an expiry included); an ActionReplay event, written with
// the change. A store without a DeliveryLog and a ReplayLog fails with an
// error wrapping errors.ErrUnsupported.
func (m *Manager) Replay(ctx context.Context, actor Actor, id, eventID string) (int, error) {
	account, err := mayChangeEndpoints(actor, ActionReplay)
	if err != nil {
		return 0, err
	}
	es, err := m.endpointStore()
	if err != nil {
		return 0, err
	}
	rl, err := m.replayLog()
	if err != nil {
		return 0, err
	}
	e, err := m.loadEndpoint(ctx, es, account, id)
	if err != nil {
		return 0, err
	}
	detail := "every dead letter"
	if eventID != "" {
		detail = "dead letter of " + truncate(eventID, 80)
	}
	return m.replay(ctx, rl, e.DeliveryName(), eventID, endpointEvent(m.Now(), actor, ActionReplay, e, detail))
}

// ReplayService is Replay for an endpoint of the service's own
// (package apikey/events' Endpoint, by its Name): operators only (an Owner
// acting across accounts, Account AnyAccount). Its ActionReplay event has
// Account AnyAccount.
func (m *Manager) ReplayService(ctx context.Context, actor Actor, endpoint, eventID string) (int, error) {
	if actor.Account != AnyAccount || actor.Role != Owner {
		return 0, fmt.Errorf("%w: only an operator acting across accounts replays the service's deliveries", ErrForbidden)
	}
	if endpoint == "" || len(endpoint) > 64 || strings.HasPrefix(endpoint, EndpointDeliveryPrefix) {
		return 0, endpointError("endpoint", "is not a service endpoint name")
	}
	rl, err := m.replayLog()
	if err != nil {
		return 0, err
	}
	detail := "service endpoint " + endpoint + ": every dead letter"
	if eventID != "" {
		detail = "service endpoint " + endpoint + ": dead letter of " + truncate(eventID, 80)
	}
	ev := Event{Time: m.Now(), Actor: actor.audited(), Action: ActionReplay, Account: AnyAccount, Detail: detail}
	return m.replay(ctx, rl, endpoint, eventID, ev)
}

// replay marks endpoint's letter of eventID (all when empty) replaying,
// with ev, trying again a write that lost a race with another writer.
func (m *Manager) replay(ctx context.Context, rl ReplayLog, endpoint, eventID string, ev Event) (int, error) {
	var cursor int64
	if eventID != "" {
		l, err := rl.DeadLetterByEventID(ctx, endpoint, eventID)
		if errors.Is(err, ErrNotFound) {
			return 0, fmt.Errorf("%w: no dead letter of event %s", ErrNotFound, truncate(eventID, 80))
		}
		if err != nil {
			return 0, err
		}
		cursor = l.Cursor
	}
	var n int
	err := m.retry(ctx, func() (err error) { // a lost race (ErrConflict) is tried again
		n, err = rl.ReplayDeadLetters(ctx, endpoint, cursor, []Event{ev})
		return err
	})
	if err != nil {
		return 0, err
	}
	if n > 0 && m.onEvent != nil {
		m.onEvent(ev)
	}
	return n, nil
}
