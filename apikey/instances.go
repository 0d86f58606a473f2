package apikey

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// InstanceHeartbeat is how often a running validator reports the revision
// it has applied to an InstanceLog while nothing changes (it also reports
// at once after each read of the change feed that moved its revision).
const InstanceHeartbeat = 2 * time.Second

// InstanceStaleAfter is how long an instance may go unheard, by the
// store's clock, before it stops counting as live: three heartbeats. An
// instance not heard from is unreachable, and blocks the confirmation of
// a change it has not applied, until its ServesUntil; after that it is
// stopped and blocks nothing. It counts again once it reports.
const InstanceStaleAfter = 3 * InstanceHeartbeat

// InstanceLeaseMargin is what a validator takes off the lease of each
// report it stores: it serves its cache at most Lease minus
// InstanceLeaseMargin after it sent the report, by its own monotonic
// clock, so that it stops before the ServesUntil the store holds for it
// even if the store's clock gains up to InstanceLeaseMargin during the
// lease.
const InstanceLeaseMargin = time.Second

// InstanceForgetAfter is how long an instance stays in an InstanceLog
// after it was last heard from and after its ServesUntil (validators that
// ended without Close), and how long a removed instance's id stays
// refused: validators delete older ones (InstanceLog.ForgetInstances). An
// instance that may still serve its cache is never forgotten, whatever
// its lease.
const InstanceForgetAfter = time.Hour

// MaxInstanceLabelLength bounds an Instance's Label, in bytes: longer ones
// are cut.
const MaxInstanceLabelLength = 100

// InstanceLog is an optional Store capability: each running validator
// (middleware.Validator) that follows the store's change feed reports,
// under an id of its own, the newest revision of the feed it has applied,
// so that a change (a revocation) can be confirmed once every live
// validator has applied it (Manager.Propagation, Manager.WaitPropagated).
// It holds one row per instance and nothing secret.
//
// Every time an InstanceLog holds or returns is its own clock's (the
// database server's, or the process's for an in-process store): it stamps
// each report with it, and Instances returns it as of the read, so that
// liveness and leases are judged on one clock whatever the clocks of the
// validators and of the Manager. A validator sends its lease as a
// duration and enforces it on its own monotonic clock, measured from
// before it sent the report, less InstanceLeaseMargin: it stops serving
// its cache before the ServesUntil the store computed for it.
type InstanceLog interface {
	// ReportInstance stores the report r under r.ID, as of the store's
	// clock t when it writes it: Label and Applied as given, ReportedAt t,
	// ServesUntil t plus r.Lease; AppliedAt is kept when the stored
	// Applied equals r.Applied, else set to t; StartedAt is kept once
	// stored, else set to t. A report never moves ReportedAt backwards
	// (one stamped before the stored ReportedAt is dropped), and one under
	// an id removed with RemoveInstance is dropped: neither is an error.
	// Times are kept with microsecond precision.
	ReportInstance(ctx context.Context, r InstanceReport) error
	// Instances returns every stored instance (not the removed ones), by
	// ID, and the store's clock, read before them, in UTC.
	Instances(ctx context.Context) ([]Instance, time.Time, error)
	// RemoveInstance deletes the instance id and refuses later reports
	// under it until ForgetInstances forgets the id; an unknown id is no
	// error (it is refused too).
	RemoveInstance(ctx context.Context, id string) error
	// ForgetInstances deletes the instances last reported more than age
	// ago by the store's clock whose ServesUntil is more than age ago too,
	// and the ids removed more than age ago, and returns how many
	// instances and ids it deleted.
	ForgetInstances(ctx context.Context, age time.Duration) (int, error)
}

// InstanceReport is what a validator sends to InstanceLog.ReportInstance.
type InstanceReport struct {
	// ID names the instance: random, one per validator.
	ID string
	// Label is for people: by default the host name and process id, at
	// most MaxInstanceLabelLength bytes. It never holds a secret.
	Label string
	// Applied is the newest change-feed revision the instance has applied.
	Applied int64
	// Lease is how long after the store receives the report the instance
	// may serve what it has cached without another report.
	Lease time.Duration
}

// Instance is one running validator as an InstanceLog holds it. Its times
// are the store's clock.
type Instance struct {
	// ID names the instance: random, one per validator.
	ID string `json:"id"`
	// Label is for people: by default the host name and process id.
	Label string `json:"label"`
	// Applied is the newest change-feed revision the instance has applied:
	// every change at or below it is applied to its cached keys.
	Applied int64 `json:"applied"`
	// AppliedAt is when the instance first reported Applied.
	AppliedAt time.Time `json:"applied_at"`
	// ReportedAt is when the store received the instance's last report.
	ReportedAt time.Time `json:"reported_at"`
	// StartedAt is when the store received the instance's first report.
	StartedAt time.Time `json:"started_at"`
	// ServesUntil bounds how long the instance may serve what it has
	// cached without another report: until then it may still admit a key
	// whose change above Applied it has not read. It is ReportedAt plus
	// the report's lease (a validator's: its CacheTTL plus
	// InstanceStaleAfter), which the validator never outlasts.
	ServesUntil time.Time `json:"serves_until"`
}

// Live reports whether the instance was heard from within
// InstanceStaleAfter before now, the store's clock.
func (in Instance) Live(now time.Time) bool {
	return now.Sub(in.ReportedAt) <= InstanceStaleAfter
}

// Serving reports whether the instance may still serve what it has
// cached at now, the store's clock: now is before its ServesUntil.
func (in Instance) Serving(now time.Time) bool {
	return now.Before(in.ServesUntil)
}

// PropagationReason says why a Propagation is not confirmed.
type PropagationReason string

// The reasons of a Propagation that is not confirmed, by precedence: the
// first that holds is given.
const (
	// PropagationNoInstances: no instance is live and none is unreachable,
	// so nothing is known to have applied the change (no validator
	// reports, or none has reported yet).
	PropagationNoInstances PropagationReason = "no_instances"
	// PropagationPending: some live instance has not applied the change.
	PropagationPending PropagationReason = "pending"
	// PropagationUnreachable: some instance not heard from had not applied
	// the change and may still serve its cache (until UnreachableUntil).
	PropagationUnreachable PropagationReason = "unreachable"
)

// Propagation is how far a key's last change has reached the running
// validators (Manager.Propagation). Its JSON form names no instance
// (PendingInstances is left out).
//
// It covers the key's record as the validators cache it (revocation,
// disabling, expiry, scopes, limits). An account's suspension and an
// environment's allowed origins are settings, which validators reload on
// their own schedule: they are neither confirmed here nor bounded by
// ServesUntil.
type Propagation struct {
	KeyID  string `json:"key_id"`
	Prefix string `json:"prefix"`
	Status Status `json:"status"`
	// Revision is the store's revision of the key's last change (its
	// record's Revision): what the instances must have applied.
	Revision int64 `json:"revision"`
	// Applied is how many live instances have applied Revision, of Live.
	// An instance that reports a revision beyond the store's current one
	// follows another history (the store was restored from a backup): it
	// has not applied Revision.
	Applied int `json:"applied"`
	Live    int `json:"live"`
	// Pending is how many live instances have not applied Revision.
	Pending int `json:"pending"`
	// PendingInstances are the live instances that have not applied
	// Revision, by ID, for operators only: Manager.Propagation fills it in
	// for an actor acting across accounts (AnyAccount), and leaves it nil
	// for others, since it names the service's hosts. It is never
	// serialised.
	PendingInstances []Instance `json:"-"`
	// Unreachable is how many instances were not heard from within
	// InstanceStaleAfter, have not applied Revision and may still serve
	// their cache (before their ServesUntil): each blocks Confirmed, since
	// it may still admit the key as it was before the change.
	Unreachable int `json:"unreachable"`
	// UnreachableUntil, when Unreachable is not 0, is the latest
	// ServesUntil of the unreachable instances: unless they report, the
	// change is confirmed then at the latest (as far as they go). Zero
	// otherwise.
	UnreachableUntil time.Time `json:"unreachable_until,omitzero"`
	// Stopped is how many instances were not heard from within
	// InstanceStaleAfter and cannot serve the key as it was before the
	// change: their ServesUntil has passed, or they had applied Revision.
	// They are not counted and do not block.
	Stopped int `json:"stopped"`
	// Confirmed reports that at least one instance is live, that every
	// live instance has applied Revision (Applied == Live) and that no
	// instance is Unreachable.
	Confirmed bool `json:"confirmed"`
	// Reason, when not Confirmed, says why; empty when Confirmed.
	Reason PropagationReason `json:"reason,omitempty"`
	// ConfirmedBy, when Confirmed, is a time by which every live instance
	// had applied the change: the latest of their AppliedAt (each applied
	// a revision at or beyond Revision by then), by the store's clock.
	// Zero otherwise.
	ConfirmedBy time.Time `json:"confirmed_by,omitzero"`
	// CheckedAt is the store's clock when the instances were read.
	CheckedAt time.Time `json:"checked_at"`
}

// revisioner is the part of a change feed that Propagation reads.
type revisioner interface {
	Revision(ctx context.Context) (int64, error)
}

// Propagation reports how far the last change of key keyID (a key id or a
// displayable prefix) has reached the validators that report to the
// store's InstanceLog. Anyone who may view the key may call it; only an
// actor acting across accounts (AnyAccount) gets PendingInstances. A
// store without an InstanceLog fails with errors.ErrUnsupported.
//
// Validators that do not follow a change feed (the store has none) do not
// report and are not counted; with none live, nothing is confirmed
// (PropagationNoInstances). A validator reports once before it serves
// anything from its cache. One that ends with Close removes itself at
// once; one that ends otherwise (a crash, a lost connection to the store)
// is unreachable until its ServesUntil and so delays the confirmation of
// the changes it had not applied by at most its CacheTTL plus
// InstanceStaleAfter after its last report.
//
// Suspensions and allowed origins are settings, not covered (see
// Propagation's type).
func (m *Manager) Propagation(ctx context.Context, actor Actor, keyID string) (Propagation, error) {
	if err := authorize(actor, ActionView); err != nil {
		return Propagation{}, err
	}
	name, err := parseKeyName(keyID)
	if err != nil {
		return Propagation{}, err
	}
	if _, ok := m.store.(InstanceLog); !ok {
		return Propagation{}, fmt.Errorf("apikey: propagation: the store keeps no instances: %w", errors.ErrUnsupported)
	}
	rec, err := m.key(ctx, actor, name)
	if err != nil {
		return Propagation{}, err
	}
	p := Propagation{KeyID: rec.ID, Prefix: rec.Prefix(), Status: rec.Status(m.Now()), Revision: rec.Revision}
	return p, m.checkPropagation(ctx, &p, actor.Account == AnyAccount)
}

// checkPropagation reads the instances, then the store's revision, and
// fills in the counts of p; list fills in PendingInstances.
func (m *Manager) checkPropagation(ctx context.Context, p *Propagation, list bool) error {
	instances, now, err := m.store.(InstanceLog).Instances(ctx)
	if err != nil {
		return err
	}
	current := int64(-1) // unknown: no instance is taken to be ahead
	if feed, ok := m.store.(revisioner); ok {
		if current, err = feed.Revision(ctx); err != nil {
			return err
		}
	}
	*p = Propagation{KeyID: p.KeyID, Prefix: p.Prefix, Status: p.Status, Revision: p.Revision, CheckedAt: now}
	p.count(instances, now, current, list)
	return nil
}

// count fills in the counts of p from instances at now, the store's clock,
// whose current revision is current (-1: unknown).
func (p *Propagation) count(instances []Instance, now time.Time, current int64, list bool) {
	for _, in := range instances {
		applied := in.Applied >= p.Revision && (current < 0 || in.Applied <= current)
		switch {
		case !in.Live(now) && !applied && in.Serving(now):
			p.Unreachable++
			if in.ServesUntil.After(p.UnreachableUntil) {
				p.UnreachableUntil = in.ServesUntil
			}
		case !in.Live(now):
			p.Stopped++
		case applied:
			p.Live++
			p.Applied++
			if in.AppliedAt.After(p.ConfirmedBy) {
				p.ConfirmedBy = in.AppliedAt
			}
		default:
			p.Live++
			p.Pending++
			if list {
				p.PendingInstances = append(p.PendingInstances, in)
			}
		}
	}
	slices.SortFunc(p.PendingInstances, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	switch {
	case p.Live == 0 && p.Unreachable == 0:
		p.Reason = PropagationNoInstances
	case p.Pending > 0:
		p.Reason = PropagationPending
	case p.Unreachable > 0:
		p.Reason = PropagationUnreachable
	}
	p.Confirmed = p.Reason == ""
	if !p.Confirmed {
		p.ConfirmedBy = time.Time{}
	}
}

// Wait intervals of WaitPropagated: the first, growing by half each time
// up to the last.
const (
	waitFirst = 10 * time.Millisecond
	waitLast  = 100 * time.Millisecond
)

// WaitPropagated waits until the last change of key keyID, as read when it
// is called, is Confirmed (at least one validator is live, every live
// validator has applied it, and no unreachable one may still serve its
// cache: it waits through their ServesUntil), reading the instances every
// 10 ms at first, growing to every 100 ms. It returns the confirmed
// Propagation, or the last one read with ctx's error when ctx ends first:
// with no validator reporting, that is when ctx ends. A later change of
// the key does not make it wait longer. It is authorized and fails as
// Propagation does.
func (m *Manager) WaitPropagated(ctx context.Context, actor Actor, keyID string) (Propagation, error) {
	p, err := m.Propagation(ctx, actor, keyID)
	if err != nil {
		return p, err
	}
	wait := waitFirst
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for !p.Confirmed {
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-timer.C:
		}
		next := p
		if err := m.checkPropagation(ctx, &next, actor.Account == AnyAccount); err != nil {
			return p, err
		}
		p = next
		wait = min(wait*3/2, waitLast)
		timer.Reset(wait)
	}
	return p, nil
}
