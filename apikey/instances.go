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

// InstanceStaleAfter is how long an instance may go unheard before it
// stops counting as live: three heartbeats. An instance not heard from
// is unreachable, and blocks the confirmation of a change it has not
// applied, until its ServesUntil; after that it is stopped and blocks
// nothing. It counts again once it reports.
const InstanceStaleAfter = 3 * InstanceHeartbeat

// InstanceForgetAfter is how long an instance stays in an InstanceLog
// after it was last heard from and after its ServesUntil (validators that
// ended without Close): validators delete older ones
// (InstanceLog.ForgetInstances). An instance that may still serve its
// cache is never forgotten, whatever its CacheTTL.
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
type InstanceLog interface {
	// ReportInstance stores in under in.ID, replacing what was stored:
	// Label, Applied, ReportedAt and ServesUntil as given; AppliedAt is kept when the
	// stored Applied equals in.Applied, else it is set to in.ReportedAt.
	// StartedAt is kept once stored, else set to in.ReportedAt (in's own
	// AppliedAt and StartedAt are not read). Times are stored in UTC with
	// microsecond precision.
	ReportInstance(ctx context.Context, in Instance) error
	// Instances returns every stored instance, by ID.
	Instances(ctx context.Context) ([]Instance, error)
	// RemoveInstance deletes the instance id; an unknown id is no error.
	RemoveInstance(ctx context.Context, id string) error
	// ForgetInstances deletes the instances last reported before t whose
	// ServesUntil is before t too, and returns how many it deleted.
	ForgetInstances(ctx context.Context, t time.Time) (int, error)
}

// Instance is one running validator as an InstanceLog holds it.
type Instance struct {
	// ID names the instance: random, one per validator.
	ID string `json:"id"`
	// Label is for people: by default the host name and process id, at
	// most MaxInstanceLabelLength bytes. It never holds a secret.
	Label string `json:"label"`
	// Applied is the newest change-feed revision the instance has applied:
	// every change at or below it is applied to its cached keys.
	Applied int64 `json:"applied"`
	// AppliedAt is when the instance first reported Applied.
	AppliedAt time.Time `json:"applied_at"`
	// ReportedAt is the instance's last report, by its clock.
	ReportedAt time.Time `json:"reported_at"`
	// StartedAt is the instance's first report.
	StartedAt time.Time `json:"started_at"`
	// ServesUntil bounds, by the instance's clock, how long it may serve
	// what it has cached without another report: until then it may still
	// admit a key whose change above Applied it has not read. A validator
	// never lets its cache outlive the ServesUntil it last stored
	// (middleware.Validator: its last report's time plus its CacheTTL plus
	// InstanceStaleAfter).
	ServesUntil time.Time `json:"serves_until"`
}

// Live reports whether the instance was heard from within
// InstanceStaleAfter before now.
func (in Instance) Live(now time.Time) bool {
	return now.Sub(in.ReportedAt) <= InstanceStaleAfter
}

// Serving reports whether the instance may still serve what it has
// cached at now: now is before its ServesUntil.
func (in Instance) Serving(now time.Time) bool {
	return now.Before(in.ServesUntil)
}

// Propagation is how far a key's last change has reached the running
// validators (Manager.Propagation).
type Propagation struct {
	KeyID  string `json:"key_id"`
	Prefix string `json:"prefix"`
	Status Status `json:"status"`
	// Revision is the store's revision of the key's last change (its
	// record's Revision): what the instances must have applied.
	Revision int64 `json:"revision"`
	// Applied is how many live instances have applied Revision, of Live.
	Applied int `json:"applied"`
	Live    int `json:"live"`
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
	// Pending are the live instances that have not applied Revision, by
	// ID; empty, never nil, when Confirmed. Unreachable instances are
	// counted, not listed.
	Pending []Instance `json:"pending"`
	// Confirmed reports that every live instance has applied Revision
	// (Applied == Live), also when none is live (0 of 0), and that no
	// instance is Unreachable.
	Confirmed bool `json:"confirmed"`
	// ConfirmedBy, when Confirmed and some instance is live, is a time by
	// which every live instance had applied the change: the latest of
	// their AppliedAt (each applied a revision at or beyond Revision by
	// then). Zero otherwise.
	ConfirmedBy time.Time `json:"confirmed_by,omitzero"`
	// CheckedAt is the Manager's clock when the instances were read.
	CheckedAt time.Time `json:"checked_at"`
}

// Propagation reports how far the last change of key keyID (a key id or a
// displayable prefix) has reached the validators that report to the
// store's InstanceLog. Anyone who may view the key may call it. A store
// without an InstanceLog fails with errors.ErrUnsupported.
//
// Validators that do not follow a change feed (the store has none) do not
// report and are not counted. A validator that ends with Close removes
// itself at once; one that ends otherwise (a crash, a lost connection to
// the store) is unreachable until its ServesUntil and so delays the
// confirmation of the changes it had not applied by at most its CacheTTL
// plus InstanceStaleAfter after its last report.
func (m *Manager) Propagation(ctx context.Context, actor Actor, keyID string) (Propagation, error) {
	if err := authorize(actor, ActionView); err != nil {
		return Propagation{}, err
	}
	name, err := parseKeyName(keyID)
	if err != nil {
		return Propagation{}, err
	}
	log, ok := m.store.(InstanceLog)
	if !ok {
		return Propagation{}, fmt.Errorf("apikey: propagation: the store keeps no instances: %w", errors.ErrUnsupported)
	}
	rec, err := m.key(ctx, actor, name)
	if err != nil {
		return Propagation{}, err
	}
	instances, err := log.Instances(ctx)
	if err != nil {
		return Propagation{}, err
	}
	now := m.Now()
	p := Propagation{KeyID: rec.ID, Prefix: rec.Prefix(), Status: rec.Status(now), Revision: rec.Revision, CheckedAt: now}
	p.count(instances, now)
	return p, nil
}

// count fills in the counts of p from instances at now.
func (p *Propagation) count(instances []Instance, now time.Time) {
	p.Pending = []Instance{}
	for _, in := range instances {
		switch {
		case !in.Live(now) && in.Applied < p.Revision && in.Serving(now):
			p.Unreachable++
			if in.ServesUntil.After(p.UnreachableUntil) {
				p.UnreachableUntil = in.ServesUntil
			}
		case !in.Live(now):
			p.Stopped++
		case in.Applied >= p.Revision:
			p.Live++
			p.Applied++
			if in.AppliedAt.After(p.ConfirmedBy) {
				p.ConfirmedBy = in.AppliedAt
			}
		default:
			p.Live++
			p.Pending = append(p.Pending, in)
		}
	}
	slices.SortFunc(p.Pending, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	p.Confirmed = p.Applied == p.Live && p.Unreachable == 0
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
// is called, is Confirmed (every live validator has applied it, and no
// unreachable one may still serve its cache: it waits through their
// ServesUntil), reading
// the instances every 10 ms at first, growing to every 100 ms. It returns
// the confirmed Propagation, or the last one read with ctx's error when
// ctx ends first. A later change of the key does not make it wait longer.
// It is authorized and fails as Propagation does.
func (m *Manager) WaitPropagated(ctx context.Context, actor Actor, keyID string) (Propagation, error) {
	p, err := m.Propagation(ctx, actor, keyID)
	if err != nil {
		return p, err
	}
	log := m.store.(InstanceLog) // Propagation checked it
	wait := waitFirst
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for !p.Confirmed {
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-timer.C:
		}
		instances, err := log.Instances(ctx)
		if err != nil {
			return p, err
		}
		now := m.Now()
		p = Propagation{KeyID: p.KeyID, Prefix: p.Prefix, Status: p.Status, Revision: p.Revision, CheckedAt: now}
		p.count(instances, now)
		wait = min(wait*3/2, waitLast)
		timer.Reset(wait)
	}
	return p, nil
}
