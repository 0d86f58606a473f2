// Package callers records, in memory, who still calls each key rotated out
// (in its grace period): its distinct callers, one per client address and
// user agent, with their requests and when they were first and last seen,
// for the middleware to write in batches (storage.CallerLog).
//
// Memory is bounded: at most maxKeys (New) keys per Tracker between two Takes
// (sightings of further keys are dropped, counted in Dropped), and per key
// at most apikey.MaxCallers callers plus as many waiting to be written
// after they were pushed out by newer ones (beyond, a caller pushed out
// counts among the key's others). A user agent is kept to
// seenLength bytes between two Takes, then taken as clean (New) and
// apikey.CleanUserAgent make it. A key that no request used between two
// Takes is let go, with its callers.
package callers

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/keystile/keystile/apikey"
)

// DefaultMaxKeys is the default bound of keys tracked at once.
const DefaultMaxKeys = 1000

// seenLength bounds a user agent as See keeps it: longer than
// apikey.MaxUserAgentLength by a whole key, so that a key that starts
// within the bytes taken is whole (or at least a key long) when clean
// redacts it, before apikey.CleanUserAgent cuts.
const seenLength = apikey.MaxUserAgentLength + apikey.KeyLength

// Tracker holds the callers of keys. Create it with New; it is safe for
// concurrent use.
type Tracker struct {
	maxKeys int
	clean   func(string) string

	mu      sync.Mutex          // guards keys and pending; taken before a Key's
	keys    map[*Key]struct{}   // the keys a Take reads
	pending []apikey.KeyCallers // restored after a failed write
	dropped atomic.Uint64
}

// New returns a Tracker of at most maxKeys keys (DefaultMaxKeys if <= 0).
// clean, if not nil, rewrites each user agent when it is taken, whole
// (seenLength bytes at most), as valid UTF-8 without control characters
// (the middleware redacts anything that looks like a key); then
// apikey.CleanUserAgent cuts it.
func New(maxKeys int, clean func(string) string) *Tracker {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Tracker{maxKeys: maxKeys, clean: clean, keys: map[*Key]struct{}{}}
}

// Key records the callers of one key. Get it with Tracker.Key and keep it
// (the middleware keeps it with its cached key): See then takes the key's
// lock and no other, with no allocation for a caller it holds.
type Key struct {
	tracker        *Tracker
	account, keyID string

	mu      sync.Mutex
	listed  bool // in tracker.keys; changes under both locks
	seen    bool // a request was seen since the last Take
	n       int  // callers in use
	callers [apikey.MaxCallers]caller
	spilled []apikey.Caller // pushed out with requests not yet taken; at most apikey.MaxCallers
	others  int64           // callers pushed out when spilled was full
	otherN  int64           // their requests
}

type caller struct {
	addr        netip.Addr
	agent       string
	requests    int64 // since the last Take
	first, last time.Time
}

// Key returns a new recorder for key keyID of account. It holds nothing
// until its first See.
func (t *Tracker) Key(account, keyID string) *Key {
	return &Key{tracker: t, account: account, keyID: keyID}
}

// See records one request of the caller at address addr (the zero Addr if
// unknown) with user agent agent, at now.
func (k *Key) See(addr netip.Addr, agent string, now time.Time) {
	agent = agent[:min(len(agent), seenLength)]
	k.mu.Lock()
	if k.listed {
		k.record(addr, agent, now)
		k.mu.Unlock()
		return
	}
	k.mu.Unlock()
	t := k.tracker
	t.mu.Lock()
	defer t.mu.Unlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.listed {
		if len(t.keys) >= t.maxKeys {
			t.dropped.Add(1)
			return
		}
		t.keys[k] = struct{}{}
		k.listed = true
	}
	k.record(addr, agent, now)
}

// record counts a request of (addr, agent) at now; k.mu is held.
func (k *Key) record(addr netip.Addr, agent string, now time.Time) {
	k.seen = true
	for i := range k.n {
		if c := &k.callers[i]; c.addr == addr && c.agent == agent {
			c.requests++
			if now.After(c.last) {
				c.last = now
			}
			return
		}
	}
	i := k.n
	if i == len(k.callers) {
		i = k.oldest()
		k.spill(k.callers[i])
	} else {
		k.n++
	}
	// A copy: agent is part of the request's header, which it must not keep.
	k.callers[i] = caller{addr: addr, agent: strings.Clone(agent), requests: 1, first: now, last: now}
}

// oldest returns the index of the least recently seen caller.
func (k *Key) oldest() int {
	at := 0
	for i := 1; i < k.n; i++ {
		if k.callers[i].last.Before(k.callers[at].last) {
			at = i
		}
	}
	return at
}

// spill keeps the requests of c, pushed out, until the next Take.
func (k *Key) spill(c caller) {
	switch {
	case c.requests == 0: // taken already
	case len(k.spilled) < apikey.MaxCallers:
		k.spilled = append(k.spilled, k.tracker.caller(c))
	default:
		k.others++
		k.otherN += c.requests
	}
}

func (t *Tracker) caller(c caller) apikey.Caller {
	// Control characters go before clean, so that none splits a key.
	agent := strings.Map(dropControl, strings.ToValidUTF8(c.agent, ""))
	if t.clean != nil {
		agent = t.clean(agent)
	}
	out := apikey.Caller{UserAgent: apikey.CleanUserAgent(agent), Requests: c.requests, FirstSeen: c.first, LastSeen: c.last}
	if c.addr.IsValid() {
		out.Address = c.addr.Unmap().WithZone("").String()
	}
	return out
}

// dropControl is a strings.Map function that drops control characters.
func dropControl(r rune) rune {
	if unicode.IsControl(r) {
		return -1
	}
	return r
}

// Take returns the callers seen since the last Take, and those restored
// since, per key, and forgets them; keys seen by no request since the
// last Take are let go.
func (t *Tracker) Take() []apikey.KeyCallers {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.pending
	t.pending = nil
	for k := range t.keys {
		if r, ok := k.take(); ok {
			out = append(out, r)
		} else {
			delete(t.keys, k)
		}
	}
	return out
}

// take returns k's callers seen since the last Take; if none, it lets k
// go (its callers, and its place in tracker.keys, which the caller, who
// holds tracker.mu, deletes) and returns false.
func (k *Key) take() (apikey.KeyCallers, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.seen {
		k.listed, k.n, k.callers = false, 0, [apikey.MaxCallers]caller{}
		return apikey.KeyCallers{}, false
	}
	r := apikey.KeyCallers{Account: k.account, KeyID: k.keyID, Callers: k.spilled, Others: k.others, OtherRequests: k.otherN}
	for i := range k.n {
		if c := &k.callers[i]; c.requests > 0 {
			r.Callers = append(r.Callers, k.tracker.caller(*c))
			c.requests = 0
		}
	}
	k.spilled, k.others, k.otherN, k.seen = nil, 0, 0, false
	return r, true
}

// Restore gives back reports that could not be written, for the next
// Take. Beyond maxKeys reports waiting, the others are dropped (their
// requests counted in Dropped).
func (t *Tracker) Restore(reports []apikey.KeyCallers) {
	t.mu.Lock()
	defer t.mu.Unlock()
	room := max(0, t.maxKeys-len(t.pending))
	t.pending = append(t.pending, reports[:min(room, len(reports))]...)
	for _, r := range reports[min(room, len(reports)):] {
		t.dropped.Add(uint64(r.Requests()))
	}
}

// Dropped returns how many requests were not recorded: of keys beyond the
// bound, or restored beyond it.
func (t *Tracker) Dropped() uint64 { return t.dropped.Load() }
