package callers_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/callers"
)

var t0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

type sighting struct {
	addr  string // "" for the zero Addr
	agent string
	at    int // seconds after t0
}

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func TestTake(t *testing.T) {
	long := strings.Repeat("a", apikey.MaxUserAgentLength+50)
	tests := map[string]struct {
		seen []sighting
		want []apikey.Caller
	}{
		"one caller, many requests": {
			seen: []sighting{{"192.0.2.1", "curl/8.5", 3}, {"192.0.2.1", "curl/8.5", 1}, {"192.0.2.1", "curl/8.5", 7}},
			want: []apikey.Caller{{Address: "192.0.2.1", UserAgent: "curl/8.5", Requests: 3, FirstSeen: at(3), LastSeen: at(7)}},
		},
		"address and agent each tell callers apart": {
			seen: []sighting{{"192.0.2.1", "a", 1}, {"192.0.2.2", "a", 2}, {"192.0.2.1", "b", 3}},
			want: []apikey.Caller{
				{Address: "192.0.2.1", UserAgent: "a", Requests: 1, FirstSeen: at(1), LastSeen: at(1)},
				{Address: "192.0.2.2", UserAgent: "a", Requests: 1, FirstSeen: at(2), LastSeen: at(2)},
				{Address: "192.0.2.1", UserAgent: "b", Requests: 1, FirstSeen: at(3), LastSeen: at(3)},
			},
		},
		"a long agent is cut, an unknown address is empty": {
			seen: []sighting{{"", long, 1}, {"", long, 2}},
			want: []apikey.Caller{{UserAgent: long[:apikey.MaxUserAgentLength], Requests: 2, FirstSeen: at(1), LastSeen: at(2)}},
		},
		"an IPv4-mapped address is shown as IPv4": {
			seen: []sighting{{"::ffff:192.0.2.9", "", 1}},
			want: []apikey.Caller{{Address: "192.0.2.9", Requests: 1, FirstSeen: at(1), LastSeen: at(1)}},
		},
		"an agent cut inside a character stays valid UTF-8": {
			seen: []sighting{{"192.0.2.1", strings.Repeat("a", apikey.MaxUserAgentLength-1) + "é", 1}},
			want: []apikey.Caller{{Address: "192.0.2.1", UserAgent: strings.Repeat("a", apikey.MaxUserAgentLength-1), Requests: 1, FirstSeen: at(1), LastSeen: at(1)}},
		},
		"control characters are dropped, also before cleaning": {
			seen: []sighting{{"192.0.2.1", "bad\x00agent\r\n\x7f\u0085 tool server_SEC\x00RET", 1}},
			want: []apikey.Caller{{Address: "192.0.2.1", UserAgent: "badagent tool server_[redacted]", Requests: 1, FirstSeen: at(1), LastSeen: at(1)}},
		},
		"cleaned before the cut": {
			// Cut first, "_SEC" would be left, which clean does not match.
			seen: []sighting{{"192.0.2.1", strings.Repeat("a", apikey.MaxUserAgentLength-11) + " server_SECRET", 1}},
			want: []apikey.Caller{{Address: "192.0.2.1", UserAgent: strings.Repeat("a", apikey.MaxUserAgentLength-11) + " server_[re", Requests: 1, FirstSeen: at(1), LastSeen: at(1)}},
		},
		"a cut through what may be a secret drops it": {
			seen: []sighting{{"192.0.2.1", strings.Repeat("a", apikey.MaxUserAgentLength-5) + " k_abcdefgh", 1}},
			want: []apikey.Caller{{Address: "192.0.2.1", UserAgent: strings.Repeat("a", apikey.MaxUserAgentLength-5) + " k", Requests: 1, FirstSeen: at(1), LastSeen: at(1)}},
		},
		"the key's secret-looking parts are cleaned": {
			seen: []sighting{{"192.0.2.1", "tool server_SECRET", 1}},
			want: []apikey.Caller{{Address: "192.0.2.1", UserAgent: "tool server_[redacted]", Requests: 1, FirstSeen: at(1), LastSeen: at(1)}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tr := callers.New(0, func(s string) string { return strings.ReplaceAll(s, "_SECRET", "_[redacted]") })
			k := tr.Key("acme", "K1")
			for _, s := range tt.seen {
				k.See(addr(s.addr), s.agent, at(s.at))
			}
			got := tr.Take()
			require.Len(t, got, 1)
			assert.Equal(t, apikey.KeyCallers{Account: "acme", KeyID: "K1", Callers: tt.want}, got[0])
			assert.Empty(t, tr.Take(), "taken once")
		})
	}
}

// TestOverflow: beyond apikey.MaxCallers callers between two Takes, the
// least recently seen is pushed out and still reported, up to as many
// again; further ones count among the others with their requests. No
// request is lost.
func TestOverflow(t *testing.T) {
	tests := map[string]struct {
		distinct   int
		wantListed int
		wantOthers int64
	}{
		"within the bound":      {distinct: apikey.MaxCallers, wantListed: apikey.MaxCallers},
		"pushed out, reported":  {distinct: apikey.MaxCallers + 5, wantListed: apikey.MaxCallers + 5},
		"beyond twice the list": {distinct: 3*apikey.MaxCallers + 1, wantListed: 2 * apikey.MaxCallers, wantOthers: apikey.MaxCallers + 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tr := callers.New(0, nil)
			k := tr.Key("acme", "K1")
			for i := range tt.distinct {
				k.See(addr(fmt.Sprintf("198.51.100.%d", i)), "agent", at(i))
				k.See(addr(fmt.Sprintf("198.51.100.%d", i)), "agent", at(i))
			}
			got := tr.Take()
			require.Len(t, got, 1)
			assert.Len(t, got[0].Callers, tt.wantListed)
			assert.Equal(t, tt.wantOthers, got[0].Others)
			assert.Equal(t, int64(2*tt.distinct), got[0].Requests(), "every request reported")
		})
	}
}

// TestCallerTakenThenPushedOut: a caller whose requests were taken is
// pushed out without being counted again.
func TestCallerTakenThenPushedOut(t *testing.T) {
	tr := callers.New(0, nil)
	k := tr.Key("acme", "K1")
	for i := range apikey.MaxCallers {
		k.See(addr(fmt.Sprintf("198.51.100.%d", i)), "", at(i))
	}
	require.Len(t, tr.Take(), 1)
	k.See(addr("203.0.113.1"), "", at(100))
	got := tr.Take()
	require.Len(t, got, 1)
	assert.Equal(t, []apikey.Caller{{Address: "203.0.113.1", Requests: 1, FirstSeen: at(100), LastSeen: at(100)}}, got[0].Callers)
	assert.Zero(t, got[0].Others)
}

// TestKeyBound: at most maxKeys keys are tracked; the sightings of others
// are dropped and counted; a key idle between two Takes is let go, which
// makes room.
func TestKeyBound(t *testing.T) {
	tr := callers.New(2, nil)
	a, b, c := tr.Key("acme", "A"), tr.Key("acme", "B"), tr.Key("acme", "C")
	a.See(addr("192.0.2.1"), "", at(1))
	b.See(addr("192.0.2.1"), "", at(1))
	c.See(addr("192.0.2.1"), "", at(1))
	assert.Equal(t, uint64(1), tr.Dropped(), "the third key is not tracked")
	assert.Len(t, tr.Take(), 2)

	a.See(addr("192.0.2.1"), "", at(2))
	assert.Len(t, tr.Take(), 1, "b was idle")
	assert.Empty(t, tr.Take(), "a was idle: let go")
	c.See(addr("192.0.2.1"), "", at(3))
	b.See(addr("192.0.2.1"), "", at(3))
	got := tr.Take()
	assert.Len(t, got, 2, "room for keys let go")
	assert.Equal(t, uint64(1), tr.Dropped())
}

// TestRestore: reports given back come out of the next Take, within the
// bound; the others are dropped and counted.
func TestRestore(t *testing.T) {
	tr := callers.New(2, nil)
	r := func(id string) apikey.KeyCallers {
		return apikey.KeyCallers{Account: "acme", KeyID: id, Callers: []apikey.Caller{{Address: "192.0.2.1", Requests: 3}}}
	}
	tr.Restore([]apikey.KeyCallers{r("A"), r("B"), r("C")})
	assert.Equal(t, uint64(3), tr.Dropped(), "C's requests")
	assert.Equal(t, []apikey.KeyCallers{r("A"), r("B")}, tr.Take())
	assert.Empty(t, tr.Take())
}

// TestSeeKnownCallerAllocatesNothing: the steady state.
func TestSeeKnownCallerAllocatesNothing(t *testing.T) {
	tr := callers.New(0, nil)
	k := tr.Key("acme", "K1")
	a, agent := addr("192.0.2.1"), "Go-http-client/1.1"
	k.See(a, agent, at(0))
	allocs := testing.AllocsPerRun(1000, func() { k.See(a, agent, at(1)) })
	assert.Zero(t, allocs)
}

// TestConcurrent: requests seen on many goroutines while Takes run are
// each reported once.
func TestConcurrent(t *testing.T) {
	tr := callers.New(4, nil)
	keys := []*callers.Key{tr.Key("acme", "A"), tr.Key("acme", "B")}
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	done := make(chan struct{})
	taker := make(chan struct{})
	go func() {
		defer close(taker)
		for {
			select {
			case <-done:
				return
			default:
			}
			n := int64(0)
			for _, r := range tr.Take() {
				n += r.Requests()
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}
	}()
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				keys[i%2].See(addr(fmt.Sprintf("198.51.100.%d", (g*each+i)%40)), "agent", at(i))
			}
		})
	}
	wg.Wait()
	close(done)
	<-taker
	for _, r := range tr.Take() {
		total += r.Requests()
	}
	assert.Equal(t, int64(goroutines*each), total)
	assert.Zero(t, tr.Dropped())
}
