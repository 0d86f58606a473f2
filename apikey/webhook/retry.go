package webhook

import (
	"math/rand/v2"
	"time"
)

// DefaultSchedule is the ceiling of the wait before each retry when
// RetryPolicy.Schedule is nil, after the Standard Webhooks and Svix
// practice: an attempt at once, then retries after up to 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h and 10 h: 8 attempts over at most 27 h 35 min 5 s
// (about half that on average, with full jitter).
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Exponential returns a schedule of n retries whose ceilings double from
// base and stop growing at max: base, 2·base, 4·base, ..., max, max.
func Exponential(base, max time.Duration, n int) []time.Duration {
	s := make([]time.Duration, 0, n)
	for d := base; len(s) < n; d *= 2 {
		if d > max || d <= 0 { // d <= 0: overflow
			d = max
		}
		s = append(s, d)
	}
	return s
}

// Action is what the delivery loop does after an attempt.
type Action uint8

// Actions of a Decision.
const (
	// Done: the event is delivered; nothing more to do.
	Done Action = iota + 1
	// RetryLater: attempt again after Decision.Wait.
	RetryLater
	// DeadLetter: the last attempt failed; keep the event as dead, visible
	// and replayable, and attempt no more.
	DeadLetter
	// Disable: the endpoint answered 410 Gone: disable it, and dead-letter
	// the event.
	Disable
)

// String returns "done", "retry later", "dead letter", "disable" or "none".
func (a Action) String() string {
	switch a {
	case Done:
		return "done"
	case RetryLater:
		return "retry later"
	case DeadLetter:
		return "dead letter"
	case Disable:
		return "disable"
	}
	return "none"
}

// Decision is what RetryPolicy decides after an attempt.
type Decision struct {
	Action Action
	// Wait is how long to wait before the next attempt (RetryLater only).
	Wait time.Duration
}

// RetryPolicy decides, after each attempt, whether and when to retry. The
// zero value is the default: DefaultSchedule, and Failed attempts retried
// like transient ones (a receiver that refuses while it is being deployed
// recovers). RetryPolicy is a value, safe for concurrent use.
type RetryPolicy struct {
	// Schedule holds the ceiling of the wait before each retry: at most
	// len(Schedule)+1 attempts in all, the first at once. nil means
	// DefaultSchedule; an empty, non-nil Schedule means a single attempt.
	// Negative ceilings count as zero.
	Schedule []time.Duration
	// FailFast dead-letters an event on its first Failed attempt (3xx, 4xx,
	// refused address) instead of retrying it.
	FailFast bool
}

// MaxAttempts is the number of attempts after which an event is
// dead-lettered.
func (p RetryPolicy) MaxAttempts() int { return len(p.schedule()) + 1 }

func (p RetryPolicy) schedule() []time.Duration {
	if p.Schedule == nil {
		return DefaultSchedule
	}
	return p.Schedule
}

// Decide returns what to do after the attempts-th attempt (1 for the
// first) ended with outcome o. random, in [0, 1), draws the wait with full
// jitter: uniformly between zero and the schedule's ceiling for that
// retry, so that the retries of many events that failed together spread
// out instead of arriving together. Decide is a pure function: the same
// arguments give the same Decision. An Outcome of none counts as Retry.
func (p RetryPolicy) Decide(o Outcome, attempts int, random float64) Decision {
	switch {
	case o == Delivered:
		return Decision{Action: Done}
	case o == Gone:
		return Decision{Action: Disable}
	case o == Failed && p.FailFast:
		return Decision{Action: DeadLetter}
	}
	s := p.schedule()
	if attempts < 1 {
		attempts = 1
	}
	if attempts > len(s) {
		return Decision{Action: DeadLetter}
	}
	ceiling := max(s[attempts-1], 0)
	random = min(max(random, 0), 1)
	return Decision{Action: RetryLater, Wait: time.Duration(random * float64(ceiling))}
}

// Next is Decide with a random draw from math/rand/v2.
func (p RetryPolicy) Next(o Outcome, attempts int) Decision {
	return p.Decide(o, attempts, rand.Float64())
}
