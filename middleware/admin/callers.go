package admin

import (
	"errors"
	"net/http"

	"github.com/keystile/keystile/apikey"
)

// keyCallers answers GET /keys/{id}/callers: who still uses a key rotated
// out (apikey.Manager.Callers), to every caller that may get the key.
func (a *API) keyCallers(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	report, err := a.opts.Manager.Callers(r.Context(), c.actor(), view.ID)
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoCallers
	}
	if report.Callers == nil {
		report.Callers = []apikey.Caller{}
	}
	return http.StatusOK, report, err
}
