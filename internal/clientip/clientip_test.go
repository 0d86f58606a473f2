package clientip

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		require.NoError(t, err)
		ps = append(ps, p)
	}
	return ps
}

func request(remote, name string, lines ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	for _, l := range lines {
		r.Header.Add(name, l)
	}
	return r
}

// The proxies of most cases: a load balancer network and one IPv6 proxy.
var proxies = []string{"10.0.0.0/8", "2001:db8:ffff::/48"}

// none is how the zero Addr prints.
var none = netip.Addr{}.String()

func TestAddr(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string // nil: proxies
		header  Header
		remote  string
		lines   []string
		want    string
	}{
		// No trusted proxy: the peer, whatever the header says.
		{"no proxies, no header", []string{}, XForwardedFor, "203.0.113.7:4000", nil, "203.0.113.7"},
		{"no proxies, spoofed xff", []string{}, XForwardedFor, "203.0.113.7:4000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"no proxies, spoofed forwarded", []string{}, Forwarded, "203.0.113.7:4000", []string{"for=198.51.100.1"}, "203.0.113.7"},
		{"no proxies, ipv6 peer", []string{}, XForwardedFor, "[2001:db8::7]:4000", nil, "2001:db8::7"},

		// Untrusted peer: the header is never read.
		{"untrusted peer, spoofed xff", nil, XForwardedFor, "203.0.113.7:4000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer, spoofed trusted xff", nil, XForwardedFor, "203.0.113.7:4000", []string{"10.0.0.1"}, "203.0.113.7"},
		{"untrusted peer, spoofed forwarded", nil, Forwarded, "203.0.113.7:4000", []string{"for=198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer, malformed header", nil, XForwardedFor, "203.0.113.7:4000", []string{"junk"}, "203.0.113.7"},
		{"untrusted ipv6 peer", nil, XForwardedFor, "[2001:db8::7]:4000", []string{"198.51.100.1"}, "2001:db8::7"},
		{"untrusted mapped peer", nil, XForwardedFor, "[::ffff:203.0.113.7]:4000", []string{"198.51.100.1"}, "203.0.113.7"},

		// Trusted peer: X-Forwarded-For.
		{"xff one hop", nil, XForwardedFor, "10.0.0.1:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"xff client spoofs left of the real hop", nil, XForwardedFor, "10.0.0.1:4000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"xff client spoofs a trusted address", nil, XForwardedFor, "10.0.0.1:4000", []string{"10.9.9.9, 198.51.100.1"}, "198.51.100.1"},
		{"xff chain of trusted hops", nil, XForwardedFor, "10.0.0.1:4000", []string{"6.6.6.6, 198.51.100.1, 10.0.0.3, 10.0.0.2"}, "198.51.100.1"},
		{"xff every hop trusted", nil, XForwardedFor, "10.0.0.1:4000", []string{"10.0.0.4, 10.0.0.3, 10.0.0.2"}, "10.0.0.4"},
		{"xff no header", nil, XForwardedFor, "10.0.0.1:4000", nil, "10.0.0.1"},
		{"xff empty header fails closed", nil, XForwardedFor, "10.0.0.1:4000", []string{""}, none},
		{"xff no spaces", nil, XForwardedFor, "10.0.0.1:4000", []string{"6.6.6.6,198.51.100.1,10.0.0.2"}, "198.51.100.1"},
		{"xff tabs and spaces", nil, XForwardedFor, "10.0.0.1:4000", []string{" 198.51.100.1 \t,\t10.0.0.2 "}, "198.51.100.1"},
		{"xff ipv6", nil, XForwardedFor, "10.0.0.1:4000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"xff ipv6 through ipv6 proxy", nil, XForwardedFor, "[2001:db8:ffff::1]:4000", []string{"2001:db8::1, 2001:db8:ffff::2"}, "2001:db8::1"},
		{"xff bracketed ipv6", nil, XForwardedFor, "10.0.0.1:4000", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"xff bracketed ipv6 with port", nil, XForwardedFor, "10.0.0.1:4000", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"xff ipv4 with port", nil, XForwardedFor, "10.0.0.1:4000", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"xff mapped ipv6 unmapped", nil, XForwardedFor, "10.0.0.1:4000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"xff mapped trusted hop", nil, XForwardedFor, "10.0.0.1:4000", []string{"198.51.100.1, ::ffff:10.0.0.2"}, "198.51.100.1"},
		{"xff mapped trusted peer", nil, XForwardedFor, "[::ffff:10.0.0.1]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"xff zone refused", nil, XForwardedFor, "10.0.0.1:4000", []string{"fe80::1%eth0"}, none},
		{"xff bracketed ipv4 refused", nil, XForwardedFor, "10.0.0.1:4000", []string{"[198.51.100.1]"}, none},
		{"xff unknown", nil, XForwardedFor, "10.0.0.1:4000", []string{"unknown"}, none},
		{"xff unknown behind trusted hops", nil, XForwardedFor, "10.0.0.1:4000", []string{"unknown, 10.0.0.3, 10.0.0.2"}, none},
		{"xff whitespace line", nil, XForwardedFor, "10.0.0.1:4000", []string{" \t"}, none},
		{"xff hostname", nil, XForwardedFor, "10.0.0.1:4000", []string{"client.example.com"}, none},
		{"xff malformed behind a trusted hop fails closed", nil, XForwardedFor, "10.0.0.1:4000", []string{"198.51.100.1, junk, 10.0.0.2"}, none},
		{"xff empty element fails closed", nil, XForwardedFor, "10.0.0.1:4000", []string{"198.51.100.1,,10.0.0.2"}, none},
		{"xff trailing comma fails closed", nil, XForwardedFor, "10.0.0.1:4000", []string{"198.51.100.1,"}, none},
		{"xff malformed left of client ignored", nil, XForwardedFor, "10.0.0.1:4000", []string{"junk, 198.51.100.1"}, "198.51.100.1"},
		{"xff leading zeros refused", nil, XForwardedFor, "10.0.0.1:4000", []string{"198.051.100.1"}, none},
		{"xff multiple lines in order", nil, XForwardedFor, "10.0.0.1:4000", []string{"6.6.6.6, 198.51.100.1", "10.0.0.3", "10.0.0.2"}, "198.51.100.1"},
		{"xff multiple lines, client in last", nil, XForwardedFor, "10.0.0.1:4000", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1"},
		{"xff multiple lines, empty line fails closed", nil, XForwardedFor, "10.0.0.1:4000", []string{"198.51.100.1", "", "10.0.0.2"}, none},
		{"xff multiple lines all trusted", nil, XForwardedFor, "10.0.0.1:4000", []string{"10.0.0.3", "10.0.0.2"}, "10.0.0.3"},
		{"xff header of the other kind ignored", nil, XForwardedFor, "10.0.0.1:4000", nil, "10.0.0.1"},

		// Trusted peer: Forwarded.
		{"fwd one hop", nil, Forwarded, "10.0.0.1:4000", []string{"for=198.51.100.1"}, "198.51.100.1"},
		{"fwd with other parameters", nil, Forwarded, "10.0.0.1:4000", []string{"proto=https;for=198.51.100.1;by=10.0.0.1;host=example.com"}, "198.51.100.1"},
		{"fwd case-insensitive name", nil, Forwarded, "10.0.0.1:4000", []string{"For=198.51.100.1"}, "198.51.100.1"},
		{"fwd quoted ipv4", nil, Forwarded, "10.0.0.1:4000", []string{`for="198.51.100.1"`}, "198.51.100.1"},
		{"fwd quoted ipv4 with port", nil, Forwarded, "10.0.0.1:4000", []string{`for="198.51.100.1:4711"`}, "198.51.100.1"},
		{"fwd ipv6 bracketed with port", nil, Forwarded, "10.0.0.1:4000", []string{`for="[2001:db8::1]:4711"`}, "2001:db8::1"},
		{"fwd ipv6 bracketed", nil, Forwarded, "10.0.0.1:4000", []string{`for="[2001:db8::1]"`}, "2001:db8::1"},
		{"fwd ipv6 obfuscated port", nil, Forwarded, "10.0.0.1:4000", []string{`for="[2001:db8::1]:_p1"`}, "2001:db8::1"},
		{"fwd ipv6 unbracketed refused", nil, Forwarded, "10.0.0.1:4000", []string{`for="2001:db8::1"`}, none},
		{"fwd ipv4 bracketed refused", nil, Forwarded, "10.0.0.1:4000", []string{`for="[198.51.100.1]"`}, none},
		{"fwd mapped unmapped", nil, Forwarded, "10.0.0.1:4000", []string{`for="[::ffff:198.51.100.1]"`}, "198.51.100.1"},
		{"fwd zone refused", nil, Forwarded, "10.0.0.1:4000", []string{`for="[fe80::1%eth0]"`}, none},
		{"fwd unknown behind a trusted hop fails closed", nil, Forwarded, "10.0.0.1:4000", []string{"for=198.51.100.1, for=unknown, for=10.0.0.2"}, none},
		{"fwd obfuscated behind a trusted hop fails closed", nil, Forwarded, "10.0.0.1:4000", []string{`for=198.51.100.1, for=_hidden, for=10.0.0.2`}, none},
		{"fwd unknown", nil, Forwarded, "10.0.0.1:4000", []string{"for=unknown"}, none},
		{"fwd obfuscated", nil, Forwarded, "10.0.0.1:4000", []string{"for=_hidden"}, none},
		{"fwd empty element", nil, Forwarded, "10.0.0.1:4000", []string{"for=198.51.100.1,"}, none},
		{"fwd bad port", nil, Forwarded, "10.0.0.1:4000", []string{`for="198.51.100.1:port"`}, none},
		{"fwd port too long", nil, Forwarded, "10.0.0.1:4000", []string{`for="198.51.100.1:123456"`}, none},
		{"fwd empty port", nil, Forwarded, "10.0.0.1:4000", []string{`for="[2001:db8::1]:"`}, none},
		{"fwd junk after bracket", nil, Forwarded, "10.0.0.1:4000", []string{`for="[2001:db8::1]x"`}, none},
		{"fwd no for fails closed", nil, Forwarded, "10.0.0.1:4000", []string{"for=198.51.100.1, proto=https"}, none},
		{"fwd two for refused", nil, Forwarded, "10.0.0.1:4000", []string{"for=6.6.6.6;for=198.51.100.1"}, none},
		{"fwd unbalanced quote", nil, Forwarded, "10.0.0.1:4000", []string{`for="198.51.100.1`}, none},
		{"fwd escaped quote refused", nil, Forwarded, "10.0.0.1:4000", []string{`for="198.51.100.1\""`}, none},
		{"fwd pair without value", nil, Forwarded, "10.0.0.1:4000", []string{"for"}, none},
		{"fwd chain", nil, Forwarded, "10.0.0.1:4000", []string{`for=6.6.6.6, for=198.51.100.1;proto=https, for="[2001:db8:ffff::5]:80"`}, "198.51.100.1"},
		{"fwd all trusted", nil, Forwarded, "10.0.0.1:4000", []string{"for=10.0.0.4, for=10.0.0.3"}, "10.0.0.4"},
		{"fwd client's unbalanced quote cannot swallow the proxy's element", nil, Forwarded, "10.0.0.1:4000", []string{`for="6.6.6.6, for=198.51.100.1`}, "198.51.100.1"},
		{"fwd client's quoted comma", nil, Forwarded, "10.0.0.1:4000", []string{`for=1.1.1.1;ext="a, for=6.6.6.6", for=198.51.100.1`}, "198.51.100.1"},
		{"fwd multiple lines", nil, Forwarded, "10.0.0.1:4000", []string{"for=6.6.6.6", "for=198.51.100.1", "for=10.0.0.2"}, "198.51.100.1"},
		{"fwd xff ignored", nil, Forwarded, "10.0.0.1:4000", nil, "10.0.0.1"},

		// Peers that are not addresses.
		{"unix socket peer", nil, XForwardedFor, "@", []string{"198.51.100.1"}, "invalid IP"},
		{"empty peer", nil, XForwardedFor, "", []string{"198.51.100.1"}, "invalid IP"},
		{"peer without port", nil, XForwardedFor, "10.0.0.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"peer with zone", []string{"fe80::/10"}, XForwardedFor, "[fe80::1%eth0]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted mapped range", []string{"::ffff:10.0.0.0/104"}, XForwardedFor, "10.0.0.1:4000", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trusted := tt.trusted
			if trusted == nil {
				trusted = proxies
			}
			res, err := New(Options{TrustedProxies: prefixes(t, trusted...), Header: tt.header})
			require.NoError(t, err)
			r := request(tt.remote, tt.header.String(), tt.lines...)
			if strings.HasSuffix(tt.name, "of the other kind ignored") || strings.HasSuffix(tt.name, "xff ignored") {
				r.Header.Set("Forwarded", "for=6.6.6.6")
				r.Header.Set("X-Forwarded-For", "6.6.6.6")
				r.Header.Del(tt.header.String())
			}
			assert.Equal(t, tt.want, res.Addr(r).String())
		})
	}
}

func TestAddrBounds(t *testing.T) {
	res, err := New(Options{TrustedProxies: prefixes(t, proxies...), Header: XForwardedFor})
	require.NoError(t, err)

	hops := func(n int) string { return strings.TrimSuffix(strings.Repeat("10.0.0.9, ", n), ", ") }

	r := request("10.0.0.1:1", "X-Forwarded-For", "198.51.100.1, "+hops(MaxHops-1))
	assert.Equal(t, "198.51.100.1", res.Addr(r).String(), "MaxHops entries are read")

	r = request("10.0.0.1:1", "X-Forwarded-For", "198.51.100.1, "+hops(MaxHops))
	assert.Equal(t, none, res.Addr(r).String(), "no more than MaxHops entries are read: fails closed")
	r = request("10.0.0.1:1", "X-Forwarded-For", hops(MaxHops))
	assert.Equal(t, "10.0.0.9", res.Addr(r).String(), "MaxHops trusted entries: the leftmost")

	lines := make([]string, MaxHops)
	for i := range lines {
		lines[i] = "10.0.0.9"
	}
	r = request("10.0.0.1:1", "X-Forwarded-For", append([]string{"198.51.100.1"}, lines[1:]...)...)
	assert.Equal(t, "198.51.100.1", res.Addr(r).String(), "the bound counts entries across lines")
	r = request("10.0.0.1:1", "X-Forwarded-For", append([]string{"198.51.100.1"}, lines...)...)
	assert.Equal(t, none, res.Addr(r).String())

	// A long entry: the bytes bound cuts it, and a cut entry is never read.
	long := strings.Repeat(" ", MaxHeaderBytes-len("198.51.100.1")) + "198.51.100.1"
	r = request("10.0.0.1:1", "X-Forwarded-For", long)
	assert.Equal(t, "198.51.100.1", res.Addr(r).String(), "MaxHeaderBytes are read")
	r = request("10.0.0.1:1", "X-Forwarded-For", "2"+long)
	assert.Equal(t, none, res.Addr(r).String(), "an entry cut by MaxHeaderBytes is not read")
	r = request("10.0.0.1:1", "X-Forwarded-For", "198.51.100.1", long)
	assert.Equal(t, "198.51.100.1", res.Addr(r).String())
	r = request("10.0.0.1:1", "X-Forwarded-For", "198.51.100.2", " "+long)
	assert.Equal(t, none, res.Addr(r).String(), "no line beyond MaxHeaderBytes is read")
	r = request("10.0.0.1:1", "X-Forwarded-For", "198.51.100.2", "10.0.0.3,"+long[len("10.0.0.3,"):])
	assert.Equal(t, "198.51.100.1", res.Addr(r).String())
}

// An untrusted client can send anything: the result is its own address.
func TestAddrSpoofingChangesNothing(t *testing.T) {
	for _, h := range []Header{XForwardedFor, Forwarded} {
		res, err := New(Options{TrustedProxies: prefixes(t, proxies...), Header: h})
		require.NoError(t, err)
		for _, v := range []string{"10.0.0.2", "for=10.0.0.2", "127.0.0.1", "for=127.0.0.1", "198.51.100.1, 10.0.0.2", `for="[2001:db8:ffff::1]"`} {
			r := request("203.0.113.7:4000", "X-Forwarded-For", v)
			r.Header.Add("Forwarded", v)
			r.Header.Add("X-Real-Ip", "10.0.0.2")
			assert.Equal(t, "203.0.113.7", res.Addr(r).String(), "%s: %q", h, v)
		}
	}
}

// Over a real connection: a client's header counts only when its peer
// address is a trusted proxy.
func TestAddrOverConnection(t *testing.T) {
	for _, tt := range []struct {
		trusted []string
		want    string
	}{
		{nil, "127.0.0.1"},
		{[]string{"10.0.0.0/8"}, "127.0.0.1"},
		{[]string{"127.0.0.0/8"}, "198.51.100.1"},
	} {
		res, err := New(Options{TrustedProxies: prefixes(t, tt.trusted...), Header: XForwardedFor})
		require.NoError(t, err)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(res.Addr(r).String()))
		}))
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		req.Header.Add("X-Forwarded-For", "10.0.0.2")
		req.Header.Add("X-Forwarded-For", "198.51.100.1")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		_ = resp.Body.Close()
		srv.Close()
		assert.Equal(t, tt.want, string(body), "trusted %v", tt.trusted)
	}
}

func TestNew(t *testing.T) {
	_, err := New(Options{})
	assert.NoError(t, err, "the zero Options trusts no proxy")
	_, err = New(Options{Header: Header(9)})
	assert.NoError(t, err, "Header is ignored without TrustedProxies")

	for _, tt := range []struct {
		name string
		o    Options
		want string
	}{
		{"no header", Options{TrustedProxies: prefixes(t, "10.0.0.0/8")}, "Header"},
		{"unknown header", Options{TrustedProxies: prefixes(t, "10.0.0.0/8"), Header: Header(9)}, "Header"},
		{"invalid prefix", Options{TrustedProxies: []netip.Prefix{{}}, Header: Forwarded}, "TrustedProxies[0]"},
		{"short mapped prefix", Options{TrustedProxies: prefixes(t, "10.0.0.0/8", "::ffff:0:0/80"), Header: Forwarded}, "TrustedProxies[1]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			require.ErrorIs(t, err, ErrInvalidOptions)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.Equal(t, "X-Forwarded-For", XForwardedFor.String())
	assert.Equal(t, "Forwarded", Forwarded.String())
	assert.Equal(t, "clientip.Header(0)", Header(0).String())
}

// The result is the peer's address, the zero Addr, or an address written
// in the header; it is what a plain reading of the whole header (reference)
// gives; and reading never panics.
func FuzzResolver(f *testing.F) {
	for _, s := range []string{
		"198.51.100.1", "6.6.6.6, 198.51.100.1, 10.0.0.2", "for=198.51.100.1", `for="[2001:db8::1]:4711"`,
		"for=unknown", `for=_x;proto=https, for="198.51.100.1:80"`, "::ffff:10.0.0.2, 2001:db8:ffff::2", "fe80::1%eth0",
		`for="[::ffff:1.2.3.4]", for=10.1.1.1`, ",,", `"`, "[2001:db8::1]:80, 10.0.0.1:9",
		"unknown, 10.0.0.2", "for=10.0.0.2", "10.0.0.4, 10.0.0.5",
	} {
		f.Add("10.0.0.1:4000", s, "10.0.0.3", true)
		f.Add("10.0.0.1:4000", s, "10.0.0.3", false)
		f.Add("[2001:db8:ffff::1]:1", s, "", false)
	}
	xff, err := New(Options{TrustedProxies: prefixes(f, proxies...), Header: XForwardedFor})
	require.NoError(f, err)
	fwd, err := New(Options{TrustedProxies: prefixes(f, proxies...), Header: Forwarded})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, remote, line1, line2 string, forwarded bool) {
		if len(line1)+len(line2) > 512 {
			return
		}
		res, name := xff, "X-Forwarded-For"
		if forwarded {
			res, name = fwd, "Forwarded"
		}
		r := request(remote, name, line1, line2)
		got := res.Addr(r)
		if want := reference(res, remote, []string{line1, line2}); got != want {
			t.Fatalf("Addr = %v, want %v (peer %q, header %q %q)", got, want, remote, line1, line2)
		}
		if got == remoteAddr(remote) || got == (netip.Addr{}) {
			return
		}
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("Addr = %v", got)
		}
		if !inText(got, line1) && !inText(got, line2) {
			t.Fatalf("Addr = %v, neither the peer %q nor in the header %q %q", got, remote, line1, line2)
		}
	})
}

// reference is Addr for headers shorter than MaxHeaderBytes, written
// plainly: the entries of every line from the right, each trusted address
// passing the reading left; a malformed entry or the MaxHops bound before
// an untrusted address is the zero Addr.
func reference(res *Resolver, remote string, lines []string) netip.Addr {
	peer := remoteAddr(remote)
	if !res.isTrusted(peer) {
		return peer
	}
	parse := parseXFF
	if res.kind == Forwarded {
		parse = parseForwarded
	}
	var entries []string
	for _, l := range lines {
		entries = append(entries, strings.Split(l, ",")...)
	}
	last := peer
	for i := len(entries) - 1; i >= 0; i-- {
		if len(entries)-i > MaxHops {
			return netip.Addr{}
		}
		a, ok := parse(entries[i])
		if !ok {
			return netip.Addr{}
		}
		if !res.isTrusted(a) {
			return a
		}
		last = a
	}
	return last
}

// An allowlist holding the proxies' network admits no client whose header
// a trusted proxy could not read to the client.
func TestAddrFailsClosed(t *testing.T) {
	allow := prefixes(t, proxies...)
	for _, tt := range []struct {
		header Header
		lines  []string
	}{
		{XForwardedFor, []string{"unknown"}},
		{XForwardedFor, []string{"6.6.6.6, unknown"}},
		{XForwardedFor, []string{"6.6.6.6, unknown, 10.0.0.2"}},
		{XForwardedFor, []string{"6.6.6.6", ""}},
		{XForwardedFor, []string{"6.6.6.6,"}},
		{XForwardedFor, []string{"01.2.3.4"}},
		{XForwardedFor, []string{"fe80::1%eth0"}},
		{Forwarded, []string{"for=_hidden"}},
		{Forwarded, []string{"for=unknown"}},
		{Forwarded, []string{`for="6.6.6.6", for=unknown`}},
		{Forwarded, []string{"for=6.6.6.6;for=7.7.7.7"}},
		{Forwarded, []string{`for="2001:db8::1"`}},
		{Forwarded, []string{"proto=https"}},
		{Forwarded, []string{`for="6.6.6.6`}},
	} {
		res, err := New(Options{TrustedProxies: allow, Header: tt.header})
		require.NoError(t, err)
		for _, peer := range []string{"10.0.0.1:4000", "[2001:db8:ffff::1]:4000"} {
			got := res.Addr(request(peer, tt.header.String(), tt.lines...))
			assert.False(t, got.IsValid(), "%s %q from %s: %v", tt.header, tt.lines, peer, got)
			for _, p := range allow {
				assert.False(t, p.Contains(got), "%s %q from %s: %v is in %v", tt.header, tt.lines, peer, got, p)
			}
		}
	}
}

// inText reports whether a substring of s reads as a.
func inText(a netip.Addr, s string) bool {
	for i := range len(s) {
		for j := i + 1; j <= len(s) && j-i <= 64; j++ {
			if b, err := netip.ParseAddr(s[i:j]); err == nil && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

func BenchmarkAddr(b *testing.B) {
	// The baseline: what reading RemoteAddr costs without this package.
	b.Run("baseline ParseAddrPort", func(b *testing.B) {
		r := request("203.0.113.7:4000", "X-Forwarded-For", "198.51.100.1")
		b.ReportAllocs()
		for b.Loop() {
			_, _ = netip.ParseAddrPort(r.RemoteAddr)
		}
	})
	b.Run("untrusted peer", func(b *testing.B) {
		res, err := New(Options{TrustedProxies: prefixes(b, proxies...), Header: XForwardedFor})
		require.NoError(b, err)
		r := request("203.0.113.7:4000", "X-Forwarded-For", "198.51.100.1")
		b.ReportAllocs()
		for b.Loop() {
			_ = res.Addr(r)
		}
	})
	b.Run("one trusted hop xff", func(b *testing.B) {
		res, err := New(Options{TrustedProxies: prefixes(b, proxies...), Header: XForwardedFor})
		require.NoError(b, err)
		r := request("10.0.0.1:4000", "X-Forwarded-For", "198.51.100.1")
		b.ReportAllocs()
		for b.Loop() {
			_ = res.Addr(r)
		}
	})
	b.Run("one trusted hop forwarded", func(b *testing.B) {
		res, err := New(Options{TrustedProxies: prefixes(b, proxies...), Header: Forwarded})
		require.NoError(b, err)
		r := request("10.0.0.1:4000", "Forwarded", `for="198.51.100.1:4711";proto=https`)
		b.ReportAllocs()
		for b.Loop() {
			_ = res.Addr(r)
		}
	})
}
