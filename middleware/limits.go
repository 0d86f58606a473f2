package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/clientip"
	"github.com/keystile/keystile/internal/quota"
	"github.com/keystile/keystile/internal/usage"
	"github.com/keystile/keystile/middleware/limit"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage"
)

// MaxCost is the largest Policy.Cost.
const MaxCost = 1_000_000

// DefaultUsageRetention is the default of LimitOptions.UsageRetention.
const DefaultUsageRetention = 90 * 24 * time.Hour

// LimitOptions configure the enforcement of keys' limits (apikey.Limits)
// and the counting of their use (docs/limits.md).
type LimitOptions struct {
	// Limiter enforces rate limits. Nil means limit.NewLocal with its
	// defaults: per process, no I/O. A limit.ErrorReporter receives
	// OnBackgroundError.
	Limiter limit.Limiter
	// TrustedProxies are the address ranges of the proxies in front of
	// the service. A request whose peer is one of them has its client
	// address read from ForwardedHeader, from the right, through trusted
	// hops only; other requests' client address is their peer's. The
	// client address is what AllowedIPs are checked against. Empty trusts
	// no proxy.
	TrustedProxies []netip.Prefix
	// ForwardedHeader is the header the trusted proxies write:
	// "X-Forwarded-For" or "Forwarded" (RFC 7239). Required with
	// TrustedProxies, ignored without.
	ForwardedHeader string
	// UsageRetention is how long a storage.UsageRecorder keeps usage
	// counts: older hours are deleted, at most once an hour per process.
	// Zero means DefaultUsageRetention; negative keeps them forever.
	UsageRetention time.Duration
}

// usageMaxKeys bounds the keys whose usage is counted between two writes;
// the requests of further keys are dropped from the counts.
const usageMaxKeys = 100_000

// quotaLeaseTime is how long a quota lease may go unused before its uses
// go back to the store, and the span of spending a lease is sized to
// (docs/limits.md): long enough that a key used every few seconds costs
// one store write a minute, not one per request.
const quotaLeaseTime = time.Minute

// limiter enforces keys' limits after authentication and counts every
// authenticated request by key, hour and outcome. Its parts own their
// state and locks.
type limiter struct {
	rate  limit.Limiter
	local *limit.Local // rate, if it is a Local; else nil
	// rateNow is the clock of rate limits: Options.Now, by default the
	// system clock read at each request, not the request clock's tick,
	// which would count every request of a tick as simultaneous.
	rateNow  func() time.Time
	clientIP *clientip.Resolver
	quota    *quota.Spender // nil without a storage.QuotaLedger
	usage    *usage.Tally   // nil without a storage.UsageRecorder
	report   func(error)    // Options.OnBackgroundError
	// noLedger reports, once per Validator, the first key with a quota
	// that the store cannot keep.
	noLedger sync.Once
}

// newLimiter returns the limiter of the options o (with defaults applied)
// over store, with now the clock of rate limits and of the quota leases
// given back at Close (Options.Now, which the leases were taken on).
func newLimiter(o LimitOptions, store *safeStore, now func() time.Time, report func(error)) (*limiter, error) {
	header := clientip.XForwardedFor
	switch name := http.CanonicalHeaderKey(o.ForwardedHeader); {
	case len(o.TrustedProxies) == 0, name == "X-Forwarded-For":
	case name == "Forwarded":
		header = clientip.Forwarded
	case name == "":
		return nil, errors.New("middleware: Options.Limits.ForwardedHeader is required with TrustedProxies")
	default:
		return nil, fmt.Errorf("middleware: Options.Limits.ForwardedHeader must be X-Forwarded-For or Forwarded, not %q", o.ForwardedHeader)
	}
	resolver, err := clientip.New(clientip.Options{TrustedProxies: o.TrustedProxies, Header: header})
	if err != nil {
		return nil, fmt.Errorf("middleware: Options.Limits: %w", err)
	}
	l := &limiter{rate: o.Limiter, rateNow: now, clientIP: resolver, report: report}
	if l.rate == nil {
		l.rate = limit.NewLocal(limit.LocalOptions{})
	}
	l.local, _ = l.rate.(*limit.Local)
	if r, ok := l.rate.(limit.ErrorReporter); ok {
		r.ReportErrors(report)
	}
	if store.ledger != nil {
		if l.quota, err = quota.New(quota.Options{Ledger: store.ledger, OnError: report, LeaseTime: quotaLeaseTime, LeaseAhead: true, Now: now}); err != nil {
			return nil, fmt.Errorf("middleware: %w", err)
		}
	}
	if store.usage != nil {
		l.usage = usage.New(outcomes, usageMaxKeys)
	}
	return l, nil
}

// enforce spends a request of the key id (authenticated, authorized) at
// a route cost: from its rate limit, then from its owner's (storing in vd
// the decision of the tighter, or of the one that refused), then from its
// quota and its owner's. It returns nil when the request may proceed.
func (l *limiter) enforce(ctx context.Context, id *Identity, cost int, now time.Time, vd *verdict) error {
	var at time.Time // the clock of rate limits, read once for both
	if rate := id.Limits.Rate; !rate.IsZero() {
		at = l.rateNow()
		if id.rateBucket != nil {
			vd.rate = id.rateBucket.Allow(rate, 1, at)
		} else {
			vd.rate = l.rate.Allow(id.KeyID, rate, 1, at)
		}
		vd.limited = true
		if !vd.rate.Allowed {
			return &problem.Refusal{Reason: ErrRateLimited, RetryAfter: max(vd.rate.RetryAfter, time.Second),
				Detail: "rate limit of " + strconv.Itoa(rate.Requests) + " requests per " + rate.Window.String()}
		}
	}
	if id.ownerBudget != "" {
		if err := l.enforceOwnerRate(id, at, vd); err != nil {
			return err
		}
	}
	return l.spend(ctx, id, cost, cost, now)
}

// enforceOwnerRate spends a request of the rate limit that the keys of
// id's owner share, if they have one, on the owner's bucket at at (the
// key's own limit's instant; zero reads the clock). A request the key's
// own limit admitted keeps that admission spent when the owner's refuses
// it.
func (l *limiter) enforceOwnerRate(id *Identity, at time.Time, vd *verdict) error {
	rate := id.OwnerLimits.Rate
	if rate.IsZero() {
		return nil
	}
	if at.IsZero() {
		at = l.rateNow()
	}
	d := l.rate.Allow(id.ownerBudget, rate, 1, at)
	if !d.Allowed || !vd.limited || d.Remaining < vd.rate.Remaining {
		vd.rate, vd.ownerRate = d, true
	}
	vd.limited = true
	if !d.Allowed {
		return &problem.Refusal{Reason: ErrRateLimited, RetryAfter: max(d.RetryAfter, time.Second),
			Detail: "rate limit of " + strconv.Itoa(rate.Requests) + " requests per " + rate.Window.String() +
				" shared by the keys of owner " + id.Owner}
	}
	return nil
}

// spend takes cost uses from the quota of the key id, if it has one, and
// from its owner's, for a route that costs route uses in all (cost, or
// more when a group spent some of them): a quota below route refuses it
// for good. When the owner's quota refuses, the uses taken from the key's
// are given back.
func (l *limiter) spend(ctx context.Context, id *Identity, cost, route int, now time.Time) error {
	if cost <= 0 {
		return nil
	}
	q := id.Limits.Quota
	if !q.IsZero() {
		if err := l.spendFrom(ctx, id.KeyID, q, cost, route, now, ""); err != nil {
			return err
		}
	}
	if id.ownerBudget == "" || id.OwnerLimits.Quota.IsZero() {
		return nil
	}
	err := l.spendFrom(ctx, id.ownerBudget, id.OwnerLimits.Quota, cost, route, now, id.Owner)
	if err != nil && !q.IsZero() {
		l.quota.Refund(id.KeyID, q, int64(cost), now)
	}
	return err
}

// spendFrom takes cost uses from the balance (a key's id, or the budget of
// owner, "" for a key's) of quota q, for a route of route uses in all.
func (l *limiter) spendFrom(ctx context.Context, balance string, q apikey.Quota, cost, route int, now time.Time, owner string) error {
	whose := func() string { // for refusals only: no allocation on the way through
		if owner == "" {
			return "the key's quota"
		}
		return "the quota shared by the keys of owner " + owner
	}
	if l.quota == nil {
		l.noLedger.Do(func() {
			l.report(fmt.Errorf("middleware: a key with a quota (%s) is refused with ErrUnavailable: the store keeps no quota balances (storage.QuotaLedger)", balance))
		})
		return problem.Refuse(ErrUnavailable, "the store keeps no quota balances")
	}
	if int64(route) > q.Limit {
		return problem.Refuse(ErrQuotaExhausted, "the route costs "+uses(int64(route))+", more than "+whose()+" of "+strconv.FormatInt(q.Limit, 10))
	}
	d, err := l.quota.Spend(ctx, balance, q, int64(cost), now)
	switch {
	case err != nil && ctx.Err() != nil:
		return &problem.Refusal{Reason: ErrBusy, RetryAfter: time.Second, Cause: err}
	case err != nil:
		return &problem.Refusal{Reason: ErrUnavailable, RetryAfter: time.Second, Cause: err}
	case d.Allowed || d.Unlimited:
		return nil
	case d.NextRefill.IsZero():
		return problem.Refuse(ErrQuotaExhausted, whose()+" of "+uses(q.Limit)+" is spent and does not refill")
	}
	return &problem.Refusal{Reason: ErrQuotaExhausted, RetryAfter: max(d.NextRefill.Sub(now), time.Second),
		Detail: whose() + " is spent until " + d.NextRefill.UTC().Format(time.RFC3339)}
}

// record records the outcome err (nil: admitted) of a request that check
// decided: a refusal under a guard that authenticated the request further
// out is left to that guard (noteRefusal), which counts the request once;
// otherwise a verified key's request is counted here.
func (l *limiter) record(r *http.Request, outer *Identity, vd *verdict, err error) {
	switch {
	case outer != nil && err != nil:
		noteRefusal(r, err)
	case outer == nil && vd.id != nil:
		l.count(vd.id, outcomeOf(err), vd.now)
	}
}

// count adds one request of the key id with outcome o (an index in
// outcomes; see outcomeOf) to the usage counts.
func (l *limiter) count(id *Identity, o int, now time.Time) {
	if id.usage != nil {
		id.usage.Add(o, now)
	}
}

// flushUsage writes the usage counted since the last flush; counts that
// could not be written are kept for the next.
func (l *limiter) flushUsage(ctx context.Context, rec storage.UsageRecorder) error {
	if l.usage == nil {
		return nil
	}
	counts := l.usage.Take()
	if len(counts) == 0 {
		return nil
	}
	if err := rec.RecordUsage(ctx, counts); err != nil {
		l.usage.Restore(counts)
		return fmt.Errorf("middleware: recording usage: %w", err)
	}
	return nil
}

// returnIdleLoop returns the task that gives the quota leases unused for
// quotaLeaseTime back to the store, every quotaLeaseTime/4, each round
// within startupTimeout: on a goroutine of its own, so that a slow store
// never delays the change feed.
func (l *limiter) returnIdleLoop(now func() time.Time, report func(error)) func(context.Context) {
	return func(ctx context.Context) {
		tick := time.NewTicker(quotaLeaseTime / 4)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				round, cancel := context.WithTimeout(ctx, startupTimeout)
				if err := l.quota.ReturnIdle(round, now()); err != nil && ctx.Err() == nil {
					report(fmt.Errorf("middleware: returning idle quota leases: %w", err))
				}
				cancel()
			}
		}
	}
}

// close returns every unspent quota lease to the store.
func (l *limiter) close(ctx context.Context) error {
	if l.quota == nil {
		return nil
	}
	return l.quota.Close(ctx)
}

// outcomes are the usage outcomes: "admitted", each refusal's code, and
// "other" (see outcomeOf).
var outcomes = func() []string {
	out := []string{"admitted"}
	for _, r := range reasons {
		out = append(out, r.Code())
	}
	return append(out, "other")
}()

// outcomeOf returns the index in outcomes of the refusal err (nil:
// admitted).
func outcomeOf(err error) int {
	if err == nil {
		return 0
	}
	return 1 + reasonIndex(err)
}

// uses returns n followed by "use" or "uses" as n calls for: "1 use",
// "0 uses", "2 uses".
func uses(n int64) string {
	if n == 1 {
		return strconv.FormatInt(n, 10) + " use"
	}
	return strconv.FormatInt(n, 10) + " uses"
}
