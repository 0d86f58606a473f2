package apikey

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// EventStream is an optional Store capability: every account's audit
// events in one stream, in the order their writes committed, read from a
// cursor by any process sharing the store. It is the service's view of
// its keys' lifecycle (the cursor counts every account's events, so it is
// never shown to a tenant; tenants page their own log by Event.Seq).
//
// Package apikey/events reads it, and writes time-based events into it
// (TimedEventLog).
type EventStream interface {
	// EventsAfter returns up to limit events whose Cursor is greater than
	// cursor, in ascending Cursor order, each with Event.Seq set, and the
	// cursor to pass next time: the Cursor of the last event returned, or
	// cursor itself when there is none. Cursor 0 is before the first event.
	// limit <= 0 means a backend default (DefaultStreamLimit).
	//
	// Cursors follow commit order: an event becomes readable only after
	// every event with a smaller Cursor is, so that a reader that has read
	// up to c never misses an event with a Cursor at most c that commits
	// later. Cursors increase but need not be dense. Events are never
	// removed from the stream (the audit log keeps them).
	EventsAfter(ctx context.Context, cursor int64, limit int) ([]StreamEvent, int64, error)
}

// DefaultStreamLimit is the page size of EventStream.EventsAfter when its
// limit is zero or less.
const DefaultStreamLimit = 1000

// StreamEvent is an event of an EventStream and its place in it.
type StreamEvent struct {
	// Cursor is the event's place in the stream of every account's events.
	Cursor int64 `json:"-"`
	Event  Event `json:"event"`
}

// ID returns a stable identifier of the event, the same in every process
// and on every read: "evt_<account>_<seq>" (the account's own number of
// the event, see Event.Seq), which tells the receiver nothing of other
// accounts. It is what a webhook sends as webhook-id.
func (e Event) ID() string {
	return "evt_" + idSafe(e.Account) + "_" + strconv.FormatInt(e.Seq, 10)
}

// EventIDSeq returns the account's number of the event that id names
// (Event.Seq of an Event.ID(): "evt_acme_17" is 17): the digits after the
// last '_' of id, 1 to 18 of them. It returns 0 for a string that does
// not end that way. Stores index dead letters by it
// (ReplayLog.DeadLettersBySeq).
func EventIDSeq(id string) int64 {
	digits := id[strings.LastIndexByte(id, '_')+1:]
	if len(digits) == len(id) || len(digits) == 0 || len(digits) > 18 {
		return 0
	}
	var n int64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// idSafe maps an account id (see ValidateAccount) to [0-9A-Za-z_:-],
// the characters of a webhook id: '.' and '@' become "-2e" and "-40", and
// '-' becomes "--", so that distinct accounts map to distinct strings (an
// account holds no '_', which separates the parts of the id).
func idSafe(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '.':
			out = append(out, "-2e"...)
		case '@':
			out = append(out, "-40"...)
		case '-':
			out = append(out, "--"...)
		case '*': // AnyAccount: the service's own events (ReplayService)
			out = append(out, "-2a"...)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// The time-based actions: facts about a key's expiry that no call makes,
// written by a scanner (package apikey/events) as time passes, once per
// key and expiry whatever the number of scanners. Their actor is
// SystemActor.
const (
	// ActionExpiring: the key expires within the window the service set
	// (a rotated-out key: its grace ends). Detail names the expiry.
	ActionExpiring Action = "key_expiring"
	// ActionGraceEnded: the grace period of a rotated-out key ended; the
	// key no longer works.
	ActionGraceEnded Action = "grace_ended"
	// ActionExpired: a key that was not rotated out reached its expiry.
	ActionExpired Action = "key_expired"
)

// SystemActor is the actor of time-based events: keystile itself.
var SystemActor = Actor{ID: "keystile", Role: Owner, Account: AnyAccount}

// TimedKind names the phase of a key's expiry that a time-based event
// reports. A store records each (key, kind, expiry) once.
type TimedKind string

// The phases of an expiry.
const (
	// TimedExpiring is the expiry coming within the service's window
	// (ActionExpiring).
	TimedExpiring TimedKind = "expiring"
	// TimedEnded is the expiry passing (ActionGraceEnded or
	// ActionExpired).
	TimedEnded TimedKind = "ended"
)

// TimedEvent is a time-based event and the fact it reports: the phase of
// its key's (Event.KeyID) expiry ExpiresAt.
type TimedEvent struct {
	Kind      TimedKind
	ExpiresAt time.Time
	Event     Event
}

// DueQuery selects a page of keys for TimedEventLog.DueKeys.
type DueQuery struct {
	// Kind leaves out the keys whose current expiry already has an event
	// of this kind.
	Kind TimedKind
	// After is the last key of the previous page, or the start of the
	// window with an empty ID (every key expiring at that time comes after
	// it).
	After ExpiryPosition
	// Until is the end of the window, included.
	Until time.Time
	// Limit is the most keys to return, at least 1.
	Limit int
}

// TimedEventLog is an optional Store capability: it finds, by index, the
// keys of every account whose expiry falls in a window, and appends
// time-based events so that each (key, kind, expiry) is written once,
// whatever the number of processes writing. Package apikey/events'
// Scanner needs it, and EventStream.
type TimedEventLog interface {
	// DueKeys returns a page of the keys of every account that are not
	// revoked, whose ExpiresAt is set, is at most q.Until and comes, with
	// their id, strictly after q.After, and that have no event of kind
	// q.Kind recorded at their current ExpiresAt: ordered by ExpiresAt,
	// then id (as bytes), q.Limit of them while that many remain. Answered
	// by an index on (expires_at, id) of keys not revoked; the time does
	// not grow with keys outside the window.
	DueKeys(ctx context.Context, q DueQuery) ([]Record, error)
	// AppendTimed appends, in one atomic write, each event whose key
	// exists, is not revoked and has ExpiresAt as its expiry, and whose
	// (Event.KeyID, Kind, ExpiresAt) has no event yet; it records that it
	// has. The others are skipped. It returns how many it appended. The
	// check is part of the write: of scanners racing with the same events,
	// exactly one appends each. Appended events are numbered in their
	// account's log and streamed as Apply's are.
	AppendTimed(ctx context.Context, events []TimedEvent) (int, error)
}

// ErrLeaseLost means a delivery lease (DeliveryLog) is held by another
// holder, or expired: the caller must stop delivering that endpoint's
// events.
var ErrLeaseLost = errors.New("apikey: delivery lease lost")

// DeliveryLog is an optional Store capability: the progress of delivering
// the event stream to each of the service's endpoints, named by the
// service, and the events that could not be delivered. One holder at a
// time delivers an endpoint's events: it holds the endpoint's lease, which
// it renews, and only the holder moves the endpoint's cursor. Package
// apikey/events' Deliverer needs it.
//
// Lease times are the caller's clock: holders whose clocks disagree by
// more than a lease's length could both hold it.
type DeliveryLog interface {
	// LeaseDelivery gives holder endpoint's lease until until, if the
	// lease is free, already holder's, or expired at now, in one atomic
	// conditional write; it returns the endpoint's cursor (0 for an
	// endpoint never delivered) and ok. When another holder holds it, ok
	// is false and nothing changes.
	LeaseDelivery(ctx context.Context, endpoint, holder string, now, until time.Time) (cursor int64, ok bool, err error)
	// AdvanceDelivery moves endpoint's cursor forward to cursor (never
	// back) and records dead, if not nil, in one atomic write, if holder
	// holds the lease at now; else it fails with ErrLeaseLost and changes
	// nothing. A dead letter recorded twice (same endpoint and cursor) is
	// kept once.
	AdvanceDelivery(ctx context.Context, endpoint, holder string, now time.Time, cursor int64, dead *DeadLetter) error
	// DeadLetters returns up to limit of endpoint's dead letters whose
	// Cursor is greater than after, in ascending order.
	DeadLetters(ctx context.Context, endpoint string, after int64, limit int) ([]DeadLetter, error)
}

// DeadLetter is an event that was not delivered to an endpoint after the
// last attempt its retry policy allows, or that the endpoint refused for
// good. It stays visible (DeliveryLog.DeadLetters) and can be replayed
// from its Cursor.
type DeadLetter struct {
	Endpoint string `json:"endpoint"`
	Cursor   int64  `json:"-"`
	EventID  string `json:"event_id"`
	// Type is the event's Action, which the deliverer records with the
	// letter. It is empty when the store does not know it: a letter of a
	// schema without types whose event the store does not hold.
	Type     Action    `json:"type"`
	Attempts int       `json:"attempts"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
	// State is where a replay (ReplayLog) has taken the letter: dead
	// (also the empty State, from stores without ReplayLog), replaying or
	// delivered.
	State DeadLetterState `json:"state"`
}

// DeadLetterState is where a dead letter stands.
type DeadLetterState string

// The states of a dead letter.
const (
	// DeadLetterDead: not delivered; it can be replayed.
	DeadLetterDead DeadLetterState = "dead"
	// DeadLetterReplaying: re-queued; the endpoint's deliverer sends it
	// again before the endpoint's next events.
	DeadLetterReplaying DeadLetterState = "replaying"
	// DeadLetterDelivered: delivered by a replay.
	DeadLetterDelivered DeadLetterState = "delivered"
)

// ReplayLog is an optional Store capability: dead letters re-queued for
// delivery (Manager.Replay, Manager.ReplayService), which the deliverers
// of package apikey/events send again, each once more with its retries,
// before the endpoint's next events. A replayed letter keeps its place
// (Cursor) and event id: the receiver sees the id it missed.
type ReplayLog interface {
	// ReplayDeadLetters marks endpoint's dead letters that are dead (or
	// delivered) as replaying: the one at cursor, or every one when
	// cursor is 0; it appends events, in the same atomic write, when it
	// marks at least one (as Apply appends Change.Events), and returns how
	// many it marked.
	ReplayDeadLetters(ctx context.Context, endpoint string, cursor int64, events []Event) (int, error)
	// DeadLettersBySeq returns up to limit of endpoint's dead letters
	// whose event's number in its account (EventIDSeq of the letter's
	// EventID) is greater than after, in ascending order of that number,
	// then of Cursor. It is answered by an index on (endpoint, number):
	// its time grows with limit, never with the letters at or before
	// after. The letters of a tenant's endpoint are all of its account,
	// so that this is the account's order (Manager.EndpointDeadLetters).
	DeadLettersBySeq(ctx context.Context, endpoint string, after int64, limit int) ([]DeadLetter, error)
	// DeadLetterByEventID returns endpoint's dead letter whose EventID is
	// eventID (the one of lowest Cursor if several are), or ErrNotFound.
	// It is answered by an index on (endpoint, event id).
	DeadLetterByEventID(ctx context.Context, endpoint, eventID string) (DeadLetter, error)
	// Replaying returns up to limit of endpoint's letters that are
	// replaying, in ascending Cursor order. It is answered by an index of
	// the replaying letters: its time grows with limit and the replaying
	// letters before them, never with the endpoint's other letters.
	Replaying(ctx context.Context, endpoint string, limit int) ([]DeadLetter, error)
	// ResolveReplay records the outcome of a replay, if holder holds
	// endpoint's lease (DeliveryLog) at now: the letter at cursor is
	// delivered when dead is nil, else dead again with dead's Attempts,
	// Reason and At (it keeps its Type). It fails with ErrLeaseLost,
	// changing nothing, when holder does not hold the lease; a letter that
	// is not replaying is left as it is.
	ResolveReplay(ctx context.Context, endpoint, holder string, now time.Time, cursor int64, dead *DeadLetter) error
}
