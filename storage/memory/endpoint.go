package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.EndpointStore = (*Store)(nil)

// endpointLog holds the tenants' webhook endpoints: by id, every id in
// order, and each account's ids in order.
type endpointLog struct {
	byID      map[string]apikey.WebhookEndpoint
	ids       []string
	byAccount map[string][]string
	revision  int64
}

// Endpoint implements storage.EndpointStore.
func (s *Store) Endpoint(ctx context.Context, id string) (apikey.WebhookEndpoint, error) {
	if err := ctx.Err(); err != nil {
		return apikey.WebhookEndpoint{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.endpoints.byID[id]
	if !ok {
		return apikey.WebhookEndpoint{}, apikey.ErrNotFound
	}
	return e.Clone(), nil
}

// Endpoints implements storage.EndpointStore, by binary search in the
// sorted ids of every account or of q.Account.
func (s *Store) Endpoints(ctx context.Context, q apikey.EndpointQuery) ([]apikey.WebhookEndpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := s.endpoints.ids
	if q.Account != "" {
		ids = s.endpoints.byAccount[q.Account]
	}
	i, found := slices.BinarySearch(ids, q.After)
	if found {
		i++
	}
	out := []apikey.WebhookEndpoint{}
	for ; i < len(ids) && len(out) < q.Limit; i++ {
		out = append(out, s.endpoints.byID[ids[i]].Clone())
	}
	return out, nil
}

// ApplyEndpoint implements storage.EndpointStore.
func (s *Store) ApplyEndpoint(ctx context.Context, c apikey.EndpointChange) (apikey.WebhookEndpoint, error) {
	if err := ctx.Err(); err != nil {
		return apikey.WebhookEndpoint{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.endpoints
	if c.OpenAccount != "" {
		if err := s.refusing(c.OpenAccount); err != nil {
			return apikey.WebhookEndpoint{}, err
		}
	}
	var out apikey.WebhookEndpoint
	switch {
	case c.Put != nil && c.Put.Revision == 0:
		e := c.Put.Clone()
		if _, ok := l.byID[e.ID]; ok {
			return out, fmt.Errorf("%w: endpoint %s exists", apikey.ErrConflict, e.ID)
		}
		if len(l.byAccount[e.Account]) >= c.Max {
			return out, fmt.Errorf("%w: account %s has %d", apikey.ErrTooManyEndpoints, e.Account, c.Max)
		}
		l.revision++
		e.Revision = l.revision
		e.Start = int64(len(s.events) + len(c.Events))
		l.byID[e.ID] = e
		l.ids = insertSorted(l.ids, e.ID, strings.Compare)
		l.byAccount[e.Account] = insertSorted(l.byAccount[e.Account], e.ID, strings.Compare)
		out = e.Clone()
	case c.Put != nil:
		if err := l.check(*c.Put); err != nil {
			return out, err
		}
		e := c.Put.Clone()
		l.revision++
		e.Revision = l.revision
		l.byID[e.ID] = e
		out = e.Clone()
	case c.Delete != nil:
		if err := l.check(*c.Delete); err != nil {
			return out, err
		}
		e := l.byID[c.Delete.ID]
		delete(l.byID, e.ID)
		l.ids = removeSorted(l.ids, e.ID, strings.Compare)
		if rest := removeSorted(l.byAccount[e.Account], e.ID, strings.Compare); len(rest) > 0 {
			l.byAccount[e.Account] = rest
		} else {
			delete(l.byAccount, e.Account)
		}
		delete(s.deliveries, e.DeliveryName())
	}
	for _, e := range c.Events {
		s.appendEvent(e)
	}
	return out, nil
}

// check refuses a write of e unless the stored endpoint has its revision.
func (l *endpointLog) check(e apikey.WebhookEndpoint) error {
	stored, ok := l.byID[e.ID]
	switch {
	case !ok:
		return fmt.Errorf("%w: endpoint %s", apikey.ErrNotFound, e.ID)
	case stored.Revision != e.Revision:
		return fmt.Errorf("%w: endpoint %s changed since it was read", apikey.ErrConflict, e.ID)
	}
	return nil
}

// AccountEventsAfter implements storage.EndpointStore: a binary search in
// the account's own events for the first one after cursor.
func (s *Store) AccountEventsAfter(ctx context.Context, account string, cursor int64, limit int) ([]apikey.StreamEvent, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, cursor, err
	}
	if limit <= 0 {
		limit = apikey.DefaultStreamLimit
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	mine := s.accountEvents[account] // indexes into s.events; an event's cursor is its index + 1
	i, _ := slices.BinarySearch(mine, int(max(cursor, 0)))
	out := []apikey.StreamEvent{}
	for ; i < len(mine) && len(out) < limit; i++ {
		out = append(out, apikey.StreamEvent{Cursor: int64(mine[i]) + 1, Event: s.events[mine[i]]})
	}
	if len(out) == 0 {
		return out, cursor, nil
	}
	return out, out[len(out)-1].Cursor, nil
}
