package admin

import (
	"errors"
	"net/http"
)

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
	return http.StatusOK, p, err
}
