package apikey

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ErrInvalidLimits means a rate limit, quota or address allowlist is out of
// range; the wrapped error names the field and the bound.
var ErrInvalidLimits = errors.New("apikey: invalid limits")

// Bounds of Limits, checked by ValidateLimits.
const (
	// MaxRateRequests is the most requests a RateLimit may allow per window
	// (and the largest burst).
	MaxRateRequests = 1_000_000_000
	// MinRateWindow and MaxRateWindow bound RateLimit.Window.
	MinRateWindow = time.Second
	MaxRateWindow = 24 * time.Hour
	// MaxQuotaUses is the largest quota (and refill).
	MaxQuotaUses = 1_000_000_000_000
	// MaxAllowedIPs is the most address ranges a key's allowlist may hold.
	MaxAllowedIPs = 64
)

// RateLimit is a request rate: at most Requests per Window, with bursts of
// at most Burst requests (a generic cell rate: one request's worth of
// capacity returns every Window/Requests). The zero RateLimit means no
// limit.
type RateLimit struct {
	// Requests is how many requests a Window allows, 1 to MaxRateRequests.
	Requests int
	// Window is the period Requests is counted over, MinRateWindow to
	// MaxRateWindow, in whole seconds ("window_seconds" in JSON).
	Window time.Duration
	// Burst is how many requests may arrive at once, 1 to MaxRateRequests;
	// 0 means Requests. It is not bounded by Requests: a Burst above
	// Requests lets an idle client send Burst requests at once, after
	// which it gets Requests per Window again.
	Burst int
}

// IsZero reports whether r sets no limit.
func (r RateLimit) IsZero() bool { return r == RateLimit{} }

// rateJSON is the JSON form of a RateLimit: the window in whole seconds.
type rateJSON struct {
	Requests      int   `json:"requests"`
	WindowSeconds int64 `json:"window_seconds"`
	Burst         int   `json:"burst,omitempty"`
}

// MarshalJSON writes r as {"requests": N, "window_seconds": S, "burst": B},
// the window in whole seconds (rounded down) and burst omitted when 0.
func (r RateLimit) MarshalJSON() ([]byte, error) {
	return json.Marshal(rateJSON{Requests: r.Requests, WindowSeconds: int64(r.Window / time.Second), Burst: r.Burst})
}

// UnmarshalJSON reads the form MarshalJSON writes, ignoring fields it does
// not know (as in every stored record); null leaves r unchanged. It checks no bound (see
// ValidateLimits) but keeps every out-of-range window out of range: a
// number of seconds too large for a time.Duration becomes a window longer
// than MaxRateWindow, never a wrapped-around valid one.
func (r *RateLimit) UnmarshalJSON(data []byte) error {
	var v rateJSON
	if isNull(data) {
		return nil
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("rate: %w", err)
	}
	window := time.Duration(v.WindowSeconds) * time.Second
	switch maxSeconds := int64(MaxRateWindow / time.Second); {
	case v.WindowSeconds > maxSeconds:
		window = MaxRateWindow + time.Second
	case v.WindowSeconds < 0:
		window = -time.Second
	}
	*r = RateLimit{Requests: v.Requests, Window: window, Burst: v.Burst}
	return nil
}

// BurstSize returns Burst, or Requests when Burst is 0.
func (r RateLimit) BurstSize() int {
	if r.Burst == 0 {
		return r.Requests
	}
	return r.Burst
}

// QuotaPeriod is how often a quota refills, at UTC boundaries.
type QuotaPeriod string

// The quota periods.
const (
	// Daily refills at 00:00 UTC.
	Daily QuotaPeriod = "day"
	// Monthly refills at 00:00 UTC on the first day of each month.
	Monthly QuotaPeriod = "month"
)

// Start returns the start of the period that holds t (UTC).
func (p QuotaPeriod) Start(t time.Time) time.Time {
	t = t.UTC()
	switch p {
	case Monthly:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
}

// Next returns the start of the period after the one that holds t.
func (p QuotaPeriod) Next(t time.Time) time.Time {
	s := p.Start(t)
	if p == Monthly {
		return s.AddDate(0, 1, 0)
	}
	return s.AddDate(0, 0, 1)
}

// Index numbers the period that holds t (UTC), so that consecutive periods
// have consecutive numbers: days since 1970-01-01 for Daily, year*12 +
// month-1 for Monthly, and 0 for any other value (a quota that never
// refills has one period).
func (p QuotaPeriod) Index(t time.Time) int64 {
	t = t.UTC()
	switch p {
	case Daily:
		return p.Start(t).Unix() / 86400 // a midnight: an exact multiple
	case Monthly:
		return int64(t.Year())*12 + int64(t.Month()) - 1
	default:
		return 0
	}
}

// Quota is a number of uses that requests spend (a route may cost more
// than one), refilled at each period boundary. The zero Quota means no
// quota.
type Quota struct {
	// Limit is the most uses the quota holds, 1 to MaxQuotaUses; a new
	// quota starts full, and a changed one keeps what was spent (see
	// storage.QuotaLedger).
	Limit int64 `json:"limit"`
	// Refill is how many uses are added at each Period boundary, never
	// beyond Limit; 0 means the quota never refills.
	Refill int64 `json:"refill,omitempty"`
	// Period is when Refill is added; required when Refill is set.
	Period QuotaPeriod `json:"period,omitempty"`
}

// IsZero reports whether q sets no quota.
func (q Quota) IsZero() bool { return q == Quota{} }

// UnmarshalJSON reads a Quota's fields, ignoring fields it does not know;
// null leaves q unchanged. It checks no bound (see ValidateLimits).
func (q *Quota) UnmarshalJSON(data []byte) error {
	type plain Quota // without this method
	if isNull(data) {
		return nil
	}
	if err := json.Unmarshal(data, (*plain)(q)); err != nil {
		return fmt.Errorf("quota: %w", err)
	}
	return nil
}

// isNull reports whether data is the JSON null.
func isNull(data []byte) bool { return string(bytes.TrimSpace(data)) == "null" }

// Limits are the bounds on a key's use, enforced by the middleware after
// authentication. The zero Limits bounds nothing.
type Limits struct {
	// Rate limits the key's request rate.
	Rate RateLimit `json:"rate,omitzero"`
	// Quota bounds the key's uses.
	Quota Quota `json:"quota,omitzero"`
	// AllowedIPs lists the address ranges the key may be used from; empty
	// means any. Only server keys may have one (a publishable key is used
	// from browsers anywhere).
	AllowedIPs []netip.Prefix `json:"allowed_ips,omitempty"`
}

// IsZero reports whether l bounds nothing.
func (l Limits) IsZero() bool {
	return l.Rate.IsZero() && l.Quota.IsZero() && len(l.AllowedIPs) == 0
}

// Clone returns a copy of l that shares no memory with it.
func (l Limits) Clone() Limits {
	l.AllowedIPs = slices.Clone(l.AllowedIPs)
	return l
}

// Equal reports whether l and o set the same bounds (AllowedIPs in the
// same order).
func (l Limits) Equal(o Limits) bool {
	return l.Rate == o.Rate && l.Quota == o.Quota && slices.Equal(l.AllowedIPs, o.AllowedIPs)
}

// Within reports, with an error naming the first bound that l lifts,
// whether l bounds a key at least as tightly as o does: where o sets a
// rate, l sets one that allows no more requests per second and no larger
// burst; where o sets a quota, l sets one with no larger limit and, if it
// refills, no larger refill in the same period (none if o's never
// refills); where o has an address allowlist, every range of l's lies in
// one of o's. Bounds that o does not set are free.
func (l Limits) Within(o Limits) error {
	if r, or := l.Rate, o.Rate; !or.IsZero() {
		// Requests per second compared exactly: requests * window
		// seconds stays below 2^47.
		switch {
		case r.IsZero():
			return errors.New("rate: needs a rate limit")
		case int64(r.Requests)*int64(or.Window/time.Second) > int64(or.Requests)*int64(r.Window/time.Second):
			return fmt.Errorf("rate: at most %d requests per %ds", or.Requests, or.Window/time.Second)
		case r.BurstSize() > or.BurstSize():
			return fmt.Errorf("rate.burst: at most %d", or.BurstSize())
		}
	}
	if q, oq := l.Quota, o.Quota; !oq.IsZero() {
		switch {
		case q.IsZero():
			return errors.New("quota: needs a quota")
		case q.Limit > oq.Limit:
			return fmt.Errorf("quota.limit: at most %d", oq.Limit)
		case q.Refill > 0 && (q.Period != oq.Period || q.Refill > oq.Refill):
			if oq.Refill == 0 {
				return errors.New("quota.refill: none")
			}
			return fmt.Errorf("quota.refill: at most %d per %s", oq.Refill, oq.Period)
		}
	}
	if len(o.AllowedIPs) > 0 {
		if len(l.AllowedIPs) == 0 {
			return errors.New("allowed_ips: needs an allowlist")
		}
		for _, p := range l.AllowedIPs {
			if !slices.ContainsFunc(o.AllowedIPs, func(op netip.Prefix) bool {
				return op.Bits() <= p.Bits() && op.Contains(p.Addr())
			}) {
				return fmt.Errorf("allowed_ips: %s is outside the acting key's ranges", p)
			}
		}
	}
	return nil
}

// String summarises l for people and audit events, such as
// "rate 100/60s burst 20; quota 1000 +1000/month; 2 allowed IP ranges", or
// "no limits".
func (l Limits) String() string {
	var parts []string
	if r := l.Rate; !r.IsZero() {
		parts = append(parts, fmt.Sprintf("rate %d/%ds burst %d", r.Requests, r.Window/time.Second, r.BurstSize()))
	}
	if q := l.Quota; !q.IsZero() {
		if q.Refill > 0 {
			parts = append(parts, fmt.Sprintf("quota %d +%d/%s", q.Limit, q.Refill, q.Period))
		} else {
			parts = append(parts, fmt.Sprintf("quota %d", q.Limit))
		}
	}
	if n := len(l.AllowedIPs); n > 0 {
		parts = append(parts, fmt.Sprintf("%d allowed IP ranges", n))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, "; ")
}

// ValidateLimits checks l for a key of type t and returns it with every
// address range masked to its prefix length and duplicates removed. Errors
// wrap ErrInvalidLimits and name the field.
func ValidateLimits(t KeyType, l Limits) (Limits, error) {
	if r := l.Rate; !r.IsZero() {
		switch {
		case r.Requests < 1 || r.Requests > MaxRateRequests:
			return Limits{}, limitError("rate.requests", "must be 1 to %d", MaxRateRequests)
		case r.Window < MinRateWindow || r.Window > MaxRateWindow || r.Window%time.Second != 0:
			return Limits{}, limitError("rate.window_seconds", "must be %d to %d", MinRateWindow/time.Second, MaxRateWindow/time.Second)
		case r.Burst < 0 || r.Burst > MaxRateRequests:
			return Limits{}, limitError("rate.burst", "must be 1 to %d, or 0 for rate.requests", MaxRateRequests)
		}
	}
	if q := l.Quota; !q.IsZero() {
		switch {
		case q.Limit < 1 || q.Limit > MaxQuotaUses:
			return Limits{}, limitError("quota.limit", "must be 1 to %d", int64(MaxQuotaUses))
		case q.Refill < 0 || q.Refill > q.Limit:
			return Limits{}, limitError("quota.refill", "must be 0 to quota.limit (%d)", q.Limit)
		case q.Refill > 0 && q.Period != Daily && q.Period != Monthly:
			return Limits{}, limitError("quota.period", "must be %q or %q when quota.refill is set", Daily, Monthly)
		case q.Refill == 0 && q.Period != "":
			return Limits{}, limitError("quota.period", "needs quota.refill")
		}
	}
	if len(l.AllowedIPs) == 0 {
		l.AllowedIPs = nil
		return l, nil
	}
	if t != Server {
		return Limits{}, limitError("allowed_ips", "only server keys may have one")
	}
	if len(l.AllowedIPs) > MaxAllowedIPs {
		return Limits{}, limitError("allowed_ips", "holds at most %d ranges", MaxAllowedIPs)
	}
	out := make([]netip.Prefix, 0, len(l.AllowedIPs))
	for i, p := range l.AllowedIPs {
		if !p.IsValid() || p.Addr().Zone() != "" || (p.Addr().Is4In6() && p.Bits() < 96) {
			return Limits{}, limitError(fmt.Sprintf("allowed_ips[%d]", i), "is not an address range (CIDR)")
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p)).Masked()
		if !containsPrefix(out, p) {
			out = append(out, p)
		}
	}
	l.AllowedIPs = out
	return l, nil
}

// unmapBits is how many prefix bits an IPv4-mapped IPv6 range loses when
// written as IPv4.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// AllowsAddr reports whether addr is in one of l's AllowedIPs, or l has
// none.
func (l Limits) AllowsAddr(addr netip.Addr) bool {
	if len(l.AllowedIPs) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range l.AllowedIPs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func limitError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidLimits, field, fmt.Sprintf(format, args...))
}
