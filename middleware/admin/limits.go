package admin

import (
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/keystile/keystile/apikey"
)

// limitsBody is the JSON form of apikey.Limits that the API reads: the
// body of PUT /keys/{id}/limits and the "limits" of a create. A member left
// out (or null) sets no bound of its kind; a member given must set one.
type limitsBody struct {
	Rate       *rateBody  `json:"rate"`
	Quota      *quotaBody `json:"quota"`
	AllowedIPs []string   `json:"allowed_ips"`
}

// rateBody is the JSON form of apikey.RateLimit.
type rateBody struct {
	Requests      number `json:"requests"`
	WindowSeconds number `json:"window_seconds"`
	Burst         number `json:"burst"`
}

// quotaBody is the JSON form of apikey.Quota.
type quotaBody struct {
	Limit  number             `json:"limit"`
	Refill number             `json:"refill"`
	Period apikey.QuotaPeriod `json:"period"`
}

// limits returns the apikey.Limits that b asks for, or an error wrapping
// apikey.ErrInvalidLimits that names the field: a number that is not an
// integer, an address range that is not CIDR, or a rate or quota given
// that would set no bound ({"quota":{"limit":0}} is refused, never read as
// "no quota"). The bounds themselves are apikey.ValidateLimits's, which
// the Manager checks.
func (b limitsBody) limits() (apikey.Limits, error) {
	var l apikey.Limits
	if b.Rate != nil {
		var err error
		if l.Rate, err = b.Rate.rate(); err != nil {
			return apikey.Limits{}, err
		}
	}
	if b.Quota != nil {
		var err error
		if l.Quota, err = b.Quota.quota(); err != nil {
			return apikey.Limits{}, err
		}
	}
	if len(b.AllowedIPs) > apikey.MaxAllowedIPs { // refused before parsing what would be refused anyway
		return apikey.Limits{}, fmt.Errorf("%w: allowed_ips holds at most %d ranges", apikey.ErrInvalidLimits, apikey.MaxAllowedIPs)
	}
	for i, s := range b.AllowedIPs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return apikey.Limits{}, fmt.Errorf("%w: allowed_ips[%d] is not an address range (CIDR, such as 10.0.0.0/8 or 2001:db8::/32)", apikey.ErrInvalidLimits, i)
		}
		l.AllowedIPs = append(l.AllowedIPs, p)
	}
	return l, nil
}

func (b rateBody) rate() (apikey.RateLimit, error) {
	requests, err := b.Requests.int("rate.requests")
	if err != nil {
		return apikey.RateLimit{}, err
	}
	seconds, err := b.WindowSeconds.int64("rate.window_seconds")
	if err != nil {
		return apikey.RateLimit{}, err
	}
	burst, err := b.Burst.int("rate.burst")
	if err != nil {
		return apikey.RateLimit{}, err
	}
	if requests == 0 {
		return apikey.RateLimit{}, fmt.Errorf("%w: rate.requests must be 1 to %d (leave rate out for no rate limit)", apikey.ErrInvalidLimits, apikey.MaxRateRequests)
	}
	// A window out of range stays out of range: never one that wrapped
	// around into a valid time.Duration.
	window := time.Duration(seconds) * time.Second
	switch maxSeconds := int64(apikey.MaxRateWindow / time.Second); {
	case seconds > maxSeconds:
		window = apikey.MaxRateWindow + time.Second
	case seconds < 0:
		window = -time.Second
	}
	return apikey.RateLimit{Requests: requests, Window: window, Burst: burst}, nil
}

func (b quotaBody) quota() (apikey.Quota, error) {
	limit, err := b.Limit.int64("quota.limit")
	if err != nil {
		return apikey.Quota{}, err
	}
	refill, err := b.Refill.int64("quota.refill")
	if err != nil {
		return apikey.Quota{}, err
	}
	if limit == 0 {
		return apikey.Quota{}, fmt.Errorf("%w: quota.limit must be 1 to %d (leave quota out for no quota)", apikey.ErrInvalidLimits, int64(apikey.MaxQuotaUses))
	}
	return apikey.Quota{Limit: limit, Refill: refill, Period: b.Period}, nil
}

func (a *API) setLimits(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	var body limitsBody
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	limits, err := body.limits()
	if err != nil {
		return 0, nil, err
	}
	view, err = a.opts.Manager.SetLimits(r.Context(), c.actor(), view.ID, limits)
	return http.StatusOK, view, err
}
