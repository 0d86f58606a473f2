package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
)

// keyCallers answers GET /keys/{id}/callers: who still uses a key rotated
// out (apikey.Manager.Callers), to every caller that may get the key; a
// caller authenticated by a key, for its own key only.
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

type silenceRequest struct {
	SilentFor *duration `json:"silent_for"`
}

// endGraceIfSilent answers POST /keys/{id}/end-grace-if-silent: the key's
// grace ends now if it was not used for silent_for, which is required
// (apikey.Manager.EndGraceIfSilent).
func (a *API) endGraceIfSilent(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	var req silenceRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.SilentFor == nil {
		return 0, nil, problem.Refuse(ReasonSilenceRequired, `silent_for is required: a duration from 10m to 8760h, such as "2h"`)
	}
	view, err = a.opts.Manager.EndGraceIfSilent(r.Context(), c.actor(), view.ID, time.Duration(*req.SilentFor))
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoCallers
	}
	return http.StatusOK, view, err
}
