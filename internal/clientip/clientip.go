// Package clientip finds the address of the client that sent a request: the
// connection's peer, or, when that peer is one of the service's trusted
// proxies, the address those proxies recorded in X-Forwarded-For or
// Forwarded (RFC 7239).
//
// # Threat model
//
// Anyone can send a forwarding header, so a header value is believed only
// as far as a trusted proxy vouches for it. The header is read from the
// right (the hop nearest the service) and each trusted hop passes the
// reading one step left; the first address that is not a trusted proxy is
// the client. A header sent by an untrusted peer is never read at all, and
// a value left of the first untrusted address is never read either, so a
// client can only spoof hops that no trusted proxy vouched for.
//
// A malformed entry (an unparsable address, "unknown", an obfuscated
// identifier, an address with a zone, an empty list element or header
// line, a Forwarded element without for=) stops the reading, and so do the
// bounds: at most MaxHops entries and the rightmost MaxHeaderBytes of the
// header lines are read, whatever the request holds. A reading that stops
// before it finds the client fails closed: the result is the zero Addr,
// which no address range contains, never the address of a trusted proxy
// (an allowlist holding the proxies' network would otherwise admit every
// client behind them), and nothing left of where it stopped is believed.
//
// A trusted proxy's address is the result only when the reading finds no
// client in a header it reads whole: the leftmost entry when every entry
// is a trusted address, or the peer when the request has no such header
// (a request the proxy sent itself).
package clientip

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Bounds of the header reading.
const (
	// MaxHops is the most header entries Addr reads.
	MaxHops = 64
	// MaxHeaderBytes is how many bytes of the header lines, counted from
	// the right, Addr reads.
	MaxHeaderBytes = 8 << 10
)

// Header names the forwarding header that the trusted proxies write.
type Header int

// The forwarding headers.
const (
	// XForwardedFor is X-Forwarded-For: a comma-separated list of
	// addresses, one per hop, the nearest on the right.
	XForwardedFor Header = iota + 1
	// Forwarded is the Forwarded header of RFC 7239: comma-separated
	// elements whose for= parameter names each hop's client, the nearest
	// on the right.
	Forwarded
)

// String returns the header's name.
func (h Header) String() string {
	switch h {
	case XForwardedFor:
		return "X-Forwarded-For"
	case Forwarded:
		return "Forwarded"
	default:
		return fmt.Sprintf("clientip.Header(%d)", int(h))
	}
}

// ErrInvalidOptions means Options holds a value New cannot use; the wrapped
// error names the field.
var ErrInvalidOptions = errors.New("clientip: invalid options")

// Options configure a Resolver.
type Options struct {
	// TrustedProxies are the address ranges of the proxies in front of the
	// service, whose forwarding header is believed. IPv4-mapped IPv6 ranges
	// are read as IPv4. Empty (the zero
	// value) trusts no proxy: the client is always the connection's peer
	// and no header is read.
	TrustedProxies []netip.Prefix
	// Header is the header the trusted proxies write, XForwardedFor or
	// Forwarded; required when TrustedProxies is set, ignored otherwise.
	Header Header
}

// Resolver finds the client address of requests. Create it with New; it is
// safe for concurrent use and does not change after New.
type Resolver struct {
	trusted []netip.Prefix
	header  string // canonical header key
	kind    Header
}

// New returns a Resolver for o. Errors wrap ErrInvalidOptions and name the
// field.
func New(o Options) (*Resolver, error) {
	r := &Resolver{}
	for i, p := range o.TrustedProxies {
		if !p.IsValid() || (p.Addr().Is4In6() && p.Bits() < 96) {
			return nil, fmt.Errorf("%w: TrustedProxies[%d] is not an address range (CIDR)", ErrInvalidOptions, i)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	if len(r.trusted) == 0 {
		return r, nil
	}
	switch o.Header {
	case XForwardedFor, Forwarded:
		r.kind = o.Header
		r.header = o.Header.String()
	default:
		return nil, fmt.Errorf("%w: Header must be XForwardedFor or Forwarded when TrustedProxies is set", ErrInvalidOptions)
	}
	return r, nil
}

// Addr returns the address of the client that sent req: the connection's
// peer (req.RemoteAddr) unless that is a trusted proxy; then the rightmost
// address of the forwarding header that is not a trusted proxy; the
// leftmost entry when the header is read whole and every entry is a
// trusted address; the peer when the request has no forwarding header.
// Several header lines are read as one list, in order. IPv4-mapped IPv6
// addresses are returned as IPv4, and the peer's zone is dropped.
//
// Addr returns the zero Addr, which no address range contains, when the
// reading stops at a malformed entry or a bound before it finds the client
// (see the package doc), and when RemoteAddr is not an IP address (for
// example a Unix socket).
func (r *Resolver) Addr(req *http.Request) netip.Addr {
	peer := remoteAddr(req.RemoteAddr)
	if len(r.trusted) == 0 || !r.isTrusted(peer) {
		return peer
	}
	return r.fromHeader(req.Header[r.header], peer)
}

// remoteAddr parses RemoteAddr: host:port, [host]:port or a bare address.
// The port, written by the server, is not read.
func remoteAddr(s string) netip.Addr {
	host := s
	if strings.HasPrefix(s, "[") {
		if end := strings.IndexByte(s, ']'); end > 0 {
			host = s[1:end]
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		host = s[:i]
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// fromHeader reads the header lines from the right, starting from the
// trusted peer: the first untrusted address, the leftmost entry when every
// entry is trusted, or the zero Addr when the reading stops first.
func (r *Resolver) fromHeader(lines []string, last netip.Addr) netip.Addr {
	budget, hops := MaxHeaderBytes, 0
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		truncated := false
		if len(line) > budget {
			line, truncated = line[len(line)-budget:], true
		}
		budget -= len(line)
		for {
			j := strings.LastIndexByte(line, ',')
			entry := line[j+1:]
			if j < 0 && truncated {
				return netip.Addr{} // the leftmost entry read may be cut
			}
			if hops++; hops > MaxHops {
				return netip.Addr{}
			}
			var a netip.Addr
			var ok bool
			if r.kind == Forwarded {
				a, ok = parseForwarded(entry)
			} else {
				a, ok = parseXFF(entry)
			}
			if !ok {
				return netip.Addr{}
			}
			if !r.isTrusted(a) {
				return a
			}
			last = a
			if j < 0 {
				break
			}
			line = line[:j]
		}
		if budget == 0 && i > 0 {
			return netip.Addr{} // lines left unread
		}
	}
	return last
}

// trimOWS removes optional white space (RFC 9110) around s.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseXFF reads one X-Forwarded-For entry: an address, also accepted as
// host:port or [IPv6] as some proxies write it.
func parseXFF(s string) (netip.Addr, bool) {
	s = trimOWS(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
			a, err = netip.ParseAddr(s[1 : len(s)-1])
			if err == nil && !a.Is6() {
				return netip.Addr{}, false
			}
		} else {
			var ap netip.AddrPort
			ap, err = netip.ParseAddrPort(s)
			a = ap.Addr()
		}
		if err != nil {
			return netip.Addr{}, false
		}
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parseForwarded reads the for= parameter of one Forwarded element
// (RFC 7239 section 4): exactly one for= whose node is an IPv4 address or
// a bracketed IPv6 address, with an optional port; quoting is optional.
// Quoted strings with escapes, commas or semicolons are malformed (no node
// needs them).
func parseForwarded(elem string) (netip.Addr, bool) {
	var node string
	found := false
	for elem != "" {
		var pair string
		if j := strings.IndexByte(elem, ';'); j >= 0 {
			pair, elem = elem[:j], elem[j+1:]
		} else {
			pair, elem = elem, ""
		}
		pair = trimOWS(pair)
		eq := strings.IndexByte(pair, '=')
		if eq <= 0 {
			return netip.Addr{}, false
		}
		name, value := pair[:eq], pair[eq+1:]
		if strings.IndexByte(value, '"') >= 0 {
			if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' ||
				strings.ContainsAny(value[1:len(value)-1], "\"\\") {
				return netip.Addr{}, false
			}
			value = value[1 : len(value)-1]
		}
		if !strings.EqualFold(name, "for") {
			continue
		}
		if found {
			return netip.Addr{}, false // a parameter occurs at most once
		}
		node, found = value, true
	}
	if !found {
		return netip.Addr{}, false
	}
	return parseNode(node)
}

// parseNode reads a Forwarded node: IPv4[:port] or "[" IPv6 "]"[:port].
// "unknown" and obfuscated identifiers are not addresses.
func parseNode(s string) (netip.Addr, bool) {
	var host, port string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host, port = s[1:end], s[end+1:]
		if port != "" && port[0] != ':' {
			return netip.Addr{}, false
		}
	} else if j := strings.IndexByte(s, ':'); j >= 0 {
		host, port = s[:j], s[j:]
	} else {
		host = s
	}
	if port != "" && !validPort(port[1:]) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" || a.Is6() != (s[0] == '[') {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// validPort reports whether s is a node-port: 1 to 5 digits, or an
// obfuscated port ("_" then ALPHA / DIGIT / "." / "_" / "-").
func validPort(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '_' {
		for i := 1; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return len(s) > 1
	}
	if len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
