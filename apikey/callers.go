package apikey

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxCallers is the most callers a CallerLog keeps per key (the most
// recently seen), and the most a validator tracks per key between two
// writes.
const MaxCallers = 16

// MaxUserAgentLength bounds a Caller's UserAgent, in bytes: longer ones
// are cut (see CleanUserAgent).
const MaxUserAgentLength = 200

// CleanUserAgent returns s as a Caller's UserAgent: valid UTF-8, without
// control characters (invalid bytes and control characters are dropped),
// and at most MaxUserAgentLength bytes. A longer s is cut on a character
// boundary, and then also loses a trailing run of letters and digits that
// follows an underscore, with the underscore: what may be the start of a
// key's secret. A CallerLog applies it to every caller it records; a
// writer that redacts keys does so before, on the whole user agent.
func CleanUserAgent(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) <= MaxUserAgentLength {
		return s
	}
	cut := MaxUserAgentLength
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	s = s[:cut]
	run := strings.TrimRightFunc(s, func(r rune) bool { return r < utf8.RuneSelf && isAlnum(byte(r)) })
	if strings.HasSuffix(run, "_") {
		s = run[:len(run)-1]
	}
	return s
}

// CallerLog is an optional Store capability: for each key in its grace
// period (rotated out), the distinct callers still using it, written in
// batches with the last-used times (never one write per request). A caller
// is one client address and user agent. The log keeps at most MaxCallers
// callers per key, so it is bounded per key; a store that can delete keys
// (KeyPurger) deletes their callers with them.
type CallerLog interface {
	// RecordCallers adds each report to its key's stored callers, in one
	// atomic write, each user agent as CleanUserAgent returns it (so that
	// no caller fails the write): a caller already stored (same address
	// and user agent) adds the reported Requests, keeps the earlier FirstSeen and
	// the later LastSeen; Others and OtherRequests are added. Then the key
	// keeps its MaxCallers most recently seen callers (ties: more
	// requests first, then by address and user agent); each caller it
	// drops adds 1 to Others and its requests to OtherRequests. Reports
	// of one key within one call are merged the same way.
	RecordCallers(ctx context.Context, reports []KeyCallers) error
	// Callers returns the stored callers of key keyID, most recently seen
	// first (ties as RecordCallers keeps them), with its Others and
	// OtherRequests; for a key with none it returns KeyCallers{KeyID:
	// keyID} and no error.
	Callers(ctx context.Context, keyID string) (KeyCallers, error)
}

// Caller is one client of a key: an address and a user agent, and its
// requests between FirstSeen and LastSeen. It never holds the key.
type Caller struct {
	// Address is the client's address, without a port: the connection's
	// peer or what the service's trusted proxies recorded; "" if unknown.
	Address string `json:"address"`
	// UserAgent is the request's User-Agent, any key in it redacted, as
	// CleanUserAgent returns it; "" if none.
	UserAgent string    `json:"user_agent"`
	Requests  int64     `json:"requests"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// KeyCallers are the callers of one key: as a batch that a validator
// reports (CallerLog.RecordCallers), or as stored (CallerLog.Callers).
type KeyCallers struct {
	Account string   `json:"account"`
	KeyID   string   `json:"key_id"`
	Callers []Caller `json:"callers"`
	// Others is how many callers were seen and are not in Callers: a
	// caller dropped from the list counts once each time it is dropped.
	Others int64 `json:"others"`
	// OtherRequests are the requests of the Others.
	OtherRequests int64 `json:"other_requests"`
}

// Requests returns every request that k counts: its callers' and its
// others'.
func (k KeyCallers) Requests() int64 {
	n := k.OtherRequests
	for _, c := range k.Callers {
		n += c.Requests
	}
	return n
}

// LastSeen returns the latest LastSeen of k's callers; zero if none.
func (k KeyCallers) LastSeen() time.Time {
	var last time.Time
	for _, c := range k.Callers {
		if c.LastSeen.After(last) {
			last = c.LastSeen
		}
	}
	return last
}

// CompareCallers orders callers as a CallerLog keeps them: most recently
// seen first, then more requests first, then by address and user agent.
func CompareCallers(a, b Caller) int {
	return cmp.Or(b.LastSeen.Compare(a.LastSeen), cmp.Compare(b.Requests, a.Requests),
		strings.Compare(a.Address, b.Address), strings.Compare(a.UserAgent, b.UserAgent))
}

// MergeCallers adds the callers of report to stored (both of one key) as
// CallerLog.RecordCallers does, and returns the result, ordered by
// CompareCallers and trimmed to MaxCallers. Times are returned in UTC, to
// the microsecond; user agents as CleanUserAgent returns them.
// It is the reference a store may follow.
func MergeCallers(stored, report KeyCallers) KeyCallers {
	out := KeyCallers{Account: cmp.Or(stored.Account, report.Account), KeyID: cmp.Or(stored.KeyID, report.KeyID),
		Others: stored.Others + report.Others, OtherRequests: stored.OtherRequests + report.OtherRequests}
	out.Callers = slices.Clone(stored.Callers)
	for _, c := range report.Callers {
		c.FirstSeen, c.LastSeen = c.FirstSeen.UTC().Truncate(time.Microsecond), c.LastSeen.UTC().Truncate(time.Microsecond)
		c.UserAgent = CleanUserAgent(c.UserAgent)
		i := slices.IndexFunc(out.Callers, func(s Caller) bool { return s.Address == c.Address && s.UserAgent == c.UserAgent })
		if i < 0 {
			out.Callers = append(out.Callers, c)
			continue
		}
		s := &out.Callers[i]
		s.Requests += c.Requests
		if c.FirstSeen.Before(s.FirstSeen) {
			s.FirstSeen = c.FirstSeen
		}
		if c.LastSeen.After(s.LastSeen) {
			s.LastSeen = c.LastSeen
		}
	}
	slices.SortFunc(out.Callers, CompareCallers)
	for _, c := range out.Callers[min(len(out.Callers), MaxCallers):] {
		out.Others++
		out.OtherRequests += c.Requests
	}
	out.Callers = out.Callers[:min(len(out.Callers), MaxCallers)]
	return out
}

// CallerReport is who still uses a key rotated out (Manager.Callers):
// what validators recorded of the requests it authenticated since its
// rotation.
type CallerReport struct {
	KeyID     string    `json:"key_id"`
	Prefix    string    `json:"prefix"`
	Status    Status    `json:"status"`
	RotatedAt time.Time `json:"rotated_at,omitzero"` // zero: the key was not rotated out, and has no callers
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Requests is every request recorded since the rotation.
	Requests int64 `json:"requests"`
	// LastUsedAt is when the key was last used since the rotation: the
	// latest of its callers' LastSeen and of the key's Record.LastUsedAt
	// when that is after RotatedAt; zero if neither.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// Callers are the callers seen since the rotation, most recently seen
	// first, at most MaxCallers.
	Callers []Caller `json:"callers"`
	// Others is how many more callers were seen than Callers holds.
	Others int64 `json:"others"`
}

// Callers returns who still uses key keyID since it was rotated out: the
// requests recorded, when it was last seen, and its callers (see
// CallerLog). Every role may read it, as Get; an actor authenticated by a
// key reads only its own key's callers (Actor.KeyID), else ErrBeyondActor,
// as Usage. A key that was not rotated out has an empty report (RotatedAt
// zero). keyID is a key id or a displayable prefix (see ParseKeyID). A
// store that keeps no callers fails with an error wrapping
// errors.ErrUnsupported.
func (m *Manager) Callers(ctx context.Context, actor Actor, keyID string) (CallerReport, error) {
	if err := authorize(actor, ActionView); err != nil {
		return CallerReport{}, err
	}
	name, err := parseKeyName(keyID)
	if err != nil {
		return CallerReport{}, err
	}
	if actor.Scopes != nil && (actor.KeyID == "" || name.id != actor.KeyID) {
		return CallerReport{}, fmt.Errorf("%w: an acting key reads only its own key's callers", ErrBeyondActor)
	}
	return m.callers(ctx, actor, name)
}

// callers is Callers once the actor may read the callers of the key name.
func (m *Manager) callers(ctx context.Context, actor Actor, name keyName) (CallerReport, error) {
	log, ok := m.store.(CallerLog)
	if !ok {
		return CallerReport{}, fmt.Errorf("apikey: callers: the store keeps no callers: %w", errors.ErrUnsupported)
	}
	rec, err := m.key(ctx, actor, name)
	if err != nil {
		return CallerReport{}, err
	}
	out := CallerReport{KeyID: rec.ID, Prefix: rec.Prefix(), Status: rec.Status(m.Now()),
		RotatedAt: rec.RotatedAt, ExpiresAt: rec.ExpiresAt, Callers: []Caller{}}
	if rec.RotatedAt.IsZero() {
		return out, nil
	}
	got, err := log.Callers(ctx, rec.ID)
	if err != nil {
		return CallerReport{}, err
	}
	if got.Callers != nil {
		out.Callers = got.Callers
	}
	out.Requests, out.LastUsedAt, out.Others = got.Requests(), got.LastSeen(), got.Others
	if rec.LastUsedAt.After(rec.RotatedAt) && rec.LastUsedAt.After(out.LastUsedAt) {
		out.LastUsedAt = rec.LastUsedAt
	}
	return out, nil
}

// MinSilence is the shortest silence that Manager.EndGraceIfSilent
// accepts. It is at least twice the longest delay before a validator
// writes what it saw of a request: the middleware refuses a
// LastUsedInterval, and without a change feed a CacheTTL, above
// MinSilence/2 (docs/limits.md, Who still uses a key rotated out).
const MinSilence = 10 * time.Minute

// EndGraceIfSilent ends the grace of key keyID, rotated out, at once (as
// ChangeGrace to a grace that ends now, audited as ActionChangeGrace) if
// the key was not used for silentFor: the latest of
//
//   - its callers' LastSeen (CallerLog: every request that verified the
//     key, also one refused after, such as by a rate limit),
//   - its Record.LastUsedAt, if after the rotation (every request
//     admitted, written by every validator that records last-used times,
//     whatever its callers bound or version), and
//   - its rotation time
//
// is at least silentFor ago. silentFor is MinSilence to a year
// (ErrSilenceOutOfRange otherwise). A key used more recently is left as
// it is, with ErrNotSilent naming when it was last used (only to an
// actor that may read its callers, see Callers). What is trusted is what
// validators have written: an admitted request counts once its last-used
// time is written; a request refused after its key verified counts once
// its caller is written, which a validator skips past its bound of keys
// (middleware Stats.CallersDropped). Call it from a ticker, as the
// owner's choice for each key. Roles are those of ChangeGrace; a key that
// was not rotated out is ErrNotRotated. A store that keeps no callers
// fails with an error wrapping errors.ErrUnsupported.
func (m *Manager) EndGraceIfSilent(ctx context.Context, actor Actor, keyID string, silentFor time.Duration) (View, error) {
	if err := authorize(actor, ActionChangeGrace); err != nil {
		return View{}, err
	}
	if silentFor < MinSilence || silentFor > APIPolicy.Max {
		return View{}, fmt.Errorf("%w: a silence of %s to %s, got %s", ErrSilenceOutOfRange, MinSilence, APIPolicy.Max, silentFor)
	}
	name, err := parseKeyName(keyID)
	if err != nil {
		return View{}, err
	}
	report, err := m.callers(ctx, actor, name)
	if err != nil {
		return View{}, err
	}
	if report.RotatedAt.IsZero() {
		return View{}, fmt.Errorf("%w: %s", ErrNotRotated, report.Prefix)
	}
	last := report.LastUsedAt
	if last.IsZero() {
		last = report.RotatedAt
	}
	if now := m.Now(); now.Sub(last) < silentFor {
		if actor.Scopes != nil && actor.KeyID != report.KeyID { // it may not read the key's callers
			return View{}, fmt.Errorf("%w: %s was used less than %s ago", ErrNotSilent, report.Prefix, silentFor)
		}
		return View{}, fmt.Errorf("%w: %s was last seen at %s, less than %s ago", ErrNotSilent, report.Prefix,
			last.UTC().Format(time.RFC3339), silentFor)
	}
	return m.ChangeGrace(ctx, actor, report.KeyID, 0, APIPolicy)
}
