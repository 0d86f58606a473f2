package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
)

// propagation is the answer of GET /keys/{id}/propagation: an
// apikey.Propagation, counts only: no instance is listed, for any caller
// (operators included), so that no one learns the service's host names or
// process ids, and without the store's revision, which counts every
// account's writes.
type propagation struct {
	KeyID            string        `json:"key_id"`
	Prefix           string        `json:"prefix"`
	Status           apikey.Status `json:"status"`
	Applied          int           `json:"applied"`
	Live             int           `json:"live"`
	Pending          int           `json:"pending"`
	Unreachable      int           `json:"unreachable"`
	UnreachableUntil time.Time     `json:"unreachable_until,omitzero"`
	Stopped          int           `json:"stopped"`
	Confirmed        bool          `json:"confirmed"`
	// Reason says why it is not confirmed (apikey.PropagationReason);
	// absent when confirmed.
	Reason      apikey.PropagationReason `json:"reason,omitempty"`
	ConfirmedBy time.Time                `json:"confirmed_by,omitzero"`
	CheckedAt   time.Time                `json:"checked_at"`
}

// keyPropagation answers GET /keys/{id}/propagation: how far the key's
// last change (a revocation) has reached the running validators
// (apikey.Manager.Propagation), for anyone who may view the key.
func (a *API) keyPropagation(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	p, err := a.opts.Manager.Propagation(r.Context(), c.actor(), view.ID)
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoInstances
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, propagation{KeyID: p.KeyID, Prefix: p.Prefix, Status: p.Status,
		Applied: p.Applied, Live: p.Live, Pending: p.Pending, Reason: p.Reason,
		Unreachable: p.Unreachable, UnreachableUntil: p.UnreachableUntil, Stopped: p.Stopped,
		Confirmed: p.Confirmed, ConfirmedBy: p.ConfirmedBy, CheckedAt: p.CheckedAt}, nil
}
