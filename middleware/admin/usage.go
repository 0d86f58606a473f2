package admin

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
)

// MaxUsageRange is the longest time range, to minus from, of one usage
// request: 31 days, a calendar month. Longer spans are read range by
// range.
const MaxUsageRange = 31 * 24 * time.Hour

func (a *API) keyUsage(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	return a.usage(r, c, apikey.UsageRequest{KeyID: view.ID})
}

func (a *API) environmentUsage(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	return a.usage(r, c, apikey.UsageRequest{Environment: env})
}

// usage answers a page of the usage that req selects over the range of
// ?from= and ?to=.
func (a *API) usage(r *http.Request, c Caller, req apikey.UsageRequest) (int, any, error) {
	var err error
	if req.From, req.To, err = timeRange(r); err != nil {
		return 0, nil, err
	}
	page, err := pageOf(r)
	if err != nil {
		return 0, nil, err
	}
	list, err := a.opts.Manager.Usage(r.Context(), c.actor(), req, page)
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoUsage
	}
	if list.Counts == nil {
		list.Counts = []apikey.UsageCount{}
	}
	return http.StatusOK, list, err
}

// timeRange reads ?from= and ?to=: RFC 3339 times, both required, from
// before to and at most MaxUsageRange apart. A time that is not RFC 3339
// is 400 invalid_request; a missing, inverted or too long range is 422
// invalid_time_range (apikey.ErrInvalidTimeRange).
func timeRange(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		s := q.Get(p.name)
		if s == "" {
			return from, to, fmt.Errorf(`%w: %s is required: a time such as "2030-01-01T00:00:00Z" (RFC 3339)`, apikey.ErrInvalidTimeRange, p.name)
		}
		if *p.t, err = time.Parse(time.RFC3339, s); err != nil {
			return from, to, invalid(p.name + `: want a time such as "2030-01-01T00:00:00Z" (RFC 3339)`)
		}
	}
	switch {
	case !from.Before(to):
		return from, to, fmt.Errorf("%w: from must be before to", apikey.ErrInvalidTimeRange)
	case to.Sub(from) > MaxUsageRange:
		return from, to, fmt.Errorf("%w: from and to may be at most %d days apart", apikey.ErrInvalidTimeRange, MaxUsageRange/(24*time.Hour))
	}
	return from, to, nil
}
