package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// limitFlags are the flags of the limits command.
type limitFlags struct {
	rate, refill string
	burst        int
	quota        int64
	allowIPs     listFlag
	clear        bool
}

// listFlag is a flag that may be given more than once, each value kept.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func limits(fs *flag.FlagSet) action {
	var f limitFlags
	f.register(fs)
	fs.Var(&f.allowIPs, "allow-ip", "an address range, `CIDR`, the key may be used from, or one address (repeatable; server keys only)")
	fs.BoolVar(&f.clear, "clear", false, "remove every limit")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if fs.NFlag() == countGlobals(fs) { // no flag of its own: show
			m, err := c.open(ctx, exampledb.ReadOnly)
			if err != nil {
				return result{}, err
			}
			view, err := m.Get(ctx, c.actor(), args[0])
			if err != nil {
				return result{}, err
			}
			return limitsResult(view), nil
		}
		l, err := f.limits(fs)
		if err != nil {
			return result{}, err
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		view, err := m.SetLimits(ctx, c.actor(), args[0], l)
		if err != nil {
			return result{}, limitsFlagError(err)
		}
		return limitsResult(view), nil
	}
}

// register defines the flags of a rate limit and a quota on fs.
func (f *limitFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.rate, "rate", "", "at most `N/WINDOW` requests, such as 100/1m or 10/s (the window in whole seconds, 1s to 24h)")
	fs.IntVar(&f.burst, "burst", 0, "let `N` requests arrive at once (with --rate; default: the rate's N)")
	fs.Int64Var(&f.quota, "quota", 0, "a quota of `N` uses, spent by requests (full at first)")
	fs.StringVar(&f.refill, "refill", "", "add `N/PERIOD` uses to the quota at each UTC day or month, such as 10000/month (with --quota)")
}

// countGlobals is how many of the global flags were given on fs.
func countGlobals(fs *flag.FlagSet) int {
	g := defaultGlobals()
	globals := newFlagSet("")
	g.register(globals)
	n := 0
	fs.Visit(func(f *flag.Flag) {
		if globals.Lookup(f.Name) != nil {
			n++
		}
	})
	return n
}

// limits returns the Limits the flags ask for. A malformed value is a
// usage error that names its flag and never repeats the value; bounds are
// the Manager's to check (apikey.ValidateLimits).
func (f limitFlags) limits(fs *flag.FlagSet) (apikey.Limits, error) {
	var l apikey.Limits
	switch {
	case f.clear && fs.NFlag()-countGlobals(fs) > 1:
		return l, usagef("limits: --clear removes every limit: give it alone")
	case f.clear:
		return l, nil
	case isSet(fs, "burst") && f.rate == "":
		return l, usagef("limits: --burst needs --rate")
	case f.refill != "" && !isSet(fs, "quota"):
		return l, usagef("limits: --refill needs --quota")
	}
	if f.rate != "" {
		rate, err := parseRate(f.rate)
		if err != nil {
			return l, err
		}
		rate.Burst = f.burst
		l.Rate = rate
	}
	if isSet(fs, "quota") {
		l.Quota.Limit = f.quota
		if l.Quota.Limit == 0 {
			return l, usagef("limits: --quota: want 1 use or more (--clear removes the quota with every other limit)")
		}
	}
	if f.refill != "" {
		uses, period, ok := strings.Cut(f.refill, "/")
		n, err := strconv.ParseInt(uses, 10, 64)
		if !ok || err != nil || (period != string(apikey.Daily) && period != string(apikey.Monthly)) {
			return l, usagef("limits: --refill: want N/day or N/month, such as 10000/month")
		}
		l.Quota.Refill, l.Quota.Period = n, apikey.QuotaPeriod(period)
	}
	for _, s := range f.allowIPs {
		p, err := parseRange(s)
		if err != nil {
			return l, err
		}
		l.AllowedIPs = append(l.AllowedIPs, p)
	}
	return l, nil
}

// parseRate reads N/WINDOW: a number of requests and a Go duration
// of whole seconds, its leading 1 optional (10/s, 100/1m, 5000/1h).
func parseRate(s string) (apikey.RateLimit, error) {
	bad := usagef("limits: --rate: want N/WINDOW, such as 100/1m or 10/s")
	requests, window, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(requests)
	if !ok || err != nil {
		return apikey.RateLimit{}, bad
	}
	if window != "" && (window[0] < '0' || window[0] > '9') && window[0] != '.' {
		window = "1" + window
	}
	d, err := time.ParseDuration(window)
	if err != nil {
		return apikey.RateLimit{}, bad
	}
	if d%time.Second != 0 {
		return apikey.RateLimit{}, usagef("limits: --rate: the window must be whole seconds, such as 1s, 90s or 1m")
	}
	return apikey.RateLimit{Requests: n, Window: d}, nil
}

// parseRange reads an address range in CIDR notation, or one address (a
// range of one).
func parseRange(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, usagef("limits: --allow-ip: want an address range such as 10.0.0.0/8 or 2001:db8::/32, or one address")
}

// limitFields are the flags that set each field that apikey.ValidateLimits
// names.
var limitFields = []struct{ field, flag string }{
	{"rate.burst", "--burst"},
	{"rate.", "--rate"},
	{"quota.limit", "--quota"},
	{"quota.", "--refill"},
	{"allowed_ips", "--allow-ip"},
}

// limitsFlagError names the flag of the field that an error of
// apikey.ValidateLimits names (the error itself is kept for errors.Is).
func limitsFlagError(err error) error {
	if !errors.Is(err, apikey.ErrInvalidLimits) {
		return err
	}
	_, rest, _ := strings.Cut(err.Error(), apikey.ErrInvalidLimits.Error()+": ")
	for _, lf := range limitFields {
		if strings.HasPrefix(rest, lf.field) {
			return fmt.Errorf("%s: %w", lf.flag, err)
		}
	}
	return err
}

// limitsResult is the result of the limits command: the key's view, or
// its limits for people.
func limitsResult(v apikey.View) result {
	return result{doc: v, text: func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		_ = printRow(tw, "\t", "prefix", v.Prefix)
		for _, row := range limitRows(v.Limits) {
			_ = printRow(tw, "\t", row[0], row[1])
		}
		return tw.Flush()
	}}
}

// limitRows are the rows of a key's limits that get and limits print.
func limitRows(l apikey.Limits) [][2]string {
	rate, quota, ips := "none", "none", "any"
	if r := l.Rate; !r.IsZero() {
		rate = fmt.Sprintf("%d/%s burst %d", r.Requests, window(r.Window), r.BurstSize())
	}
	if q := l.Quota; !q.IsZero() {
		quota = strconv.FormatInt(q.Limit, 10)
		if q.Refill > 0 {
			quota += fmt.Sprintf(" refilled %d/%s", q.Refill, q.Period)
		} else {
			quota += " never refilled"
		}
	}
	if len(l.AllowedIPs) > 0 {
		var s []string
		for _, p := range l.AllowedIPs {
			s = append(s, p.String())
		}
		ips = strings.Join(s, " ")
	}
	return [][2]string{{"rate", rate}, {"quota", quota}, {"allowed ips", ips}}
}

// limitsSummary is a key's limits in a few words, for a list: "-" for
// none.
func limitsSummary(l apikey.Limits) string {
	var parts []string
	if r := l.Rate; !r.IsZero() {
		parts = append(parts, fmt.Sprintf("%d/%s", r.Requests, window(r.Window)))
	}
	if q := l.Quota; !q.IsZero() {
		s := "quota " + strconv.FormatInt(q.Limit, 10)
		if q.Refill > 0 {
			s += fmt.Sprintf(" +%d/%s", q.Refill, q.Period)
		}
		parts = append(parts, s)
	}
	if n := len(l.AllowedIPs); n > 0 {
		parts = append(parts, fmt.Sprintf("%d ip ranges", n))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// window writes a rate window in its largest whole unit: 1h, 90m, 45s.
func window(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
