// Package netrange holds what keystile's outbound requests (webhook
// deliveries) may reach: the address ranges they may not reach, which are
// every range of the IANA special-purpose address registries that is not
// globally reachable, and the IPv6 ranges whose addresses embed an IPv4
// address, which are judged by the address they embed; and the form of a
// host name they may be addressed to (HostnameProblem). Package
// apikey/webhook checks every endpoint it parses and every address it
// dials against them (through its ForbiddenRanges and Policy), and package
// apikey refuses a host name or IP literal they refuse when an endpoint is
// registered, so both read this one list and this one rule.
package netrange

import "net/netip"

// Range is an address range that outbound requests may not reach, and why.
type Range struct {
	Prefix netip.Prefix
	Reason string
}

func r(prefix, reason string) Range { return Range{netip.MustParsePrefix(prefix), reason} }

// Forbidden are the ranges that outbound requests may not reach: every
// range of the IANA special-purpose registries that is not globally
// reachable. An IPv6 address in one of Embedding's ranges is judged by the
// IPv4 address it embeds instead (see Internal).
var Forbidden = []Range{
	r("0.0.0.0/8", "unspecified (this network)"),
	r("10.0.0.0/8", "private"),
	r("100.64.0.0/10", "shared (CGNAT)"),
	r("127.0.0.0/8", "loopback"),
	r("169.254.0.0/16", "link-local (cloud metadata)"),
	r("172.16.0.0/12", "private"),
	r("192.0.0.0/24", "IETF protocol assignments"),
	r("192.0.2.0/24", "documentation"),
	r("192.88.99.0/24", "6to4 relay"),
	r("192.168.0.0/16", "private"),
	r("198.18.0.0/15", "benchmarking"),
	r("198.51.100.0/24", "documentation"),
	r("203.0.113.0/24", "documentation"),
	r("224.0.0.0/4", "multicast"),
	r("240.0.0.0/4", "reserved (broadcast)"),
	r("::/128", "unspecified"),
	r("::1/128", "loopback"),
	r("::/96", "IPv4-compatible (deprecated)"),
	r("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
	r("100::/64", "discard-only"),
	r("2001::/23", "IETF protocol assignments (Teredo)"),
	r("2001:db8::/32", "documentation"),
	r("3fff::/20", "documentation"),
	r("5f00::/16", "segment routing"),
	r("fc00::/7", "unique local (private, cloud metadata)"),
	r("fe80::/10", "link-local"),
	r("fec0::/10", "site-local (deprecated)"),
	r("ff00::/8", "multicast"),
}

// Embedding are the IPv6 ranges whose addresses carry an IPv4 address, at
// byte Offset of the 16, which is judged in their place: a range allowed
// or forbidden in IPv4 is so in every form.
var Embedding = []struct {
	Prefix netip.Prefix
	Offset int
}{
	{netip.MustParsePrefix("::ffff:0:0/96"), 12},   // IPv4-mapped
	{netip.MustParsePrefix("::ffff:0:0:0/96"), 12}, // IPv4-translated (SIIT)
	{netip.MustParsePrefix("64:ff9b::/96"), 12},    // NAT64 well-known prefix
	{netip.MustParsePrefix("2002::/16"), 2},        // 6to4
}

// Embedded returns the IPv4 address that addr embeds and true, if addr is
// an IPv6 address in one of Embedding's ranges; otherwise the zero Addr
// and false. Zones are ignored.
func Embedded(addr netip.Addr) (netip.Addr, bool) {
	if !addr.Is6() {
		return netip.Addr{}, false
	}
	addr = addr.WithZone("")
	for _, e := range Embedding {
		if e.Prefix.Contains(addr) {
			b := addr.As16()
			return netip.AddrFrom4([4]byte(b[e.Offset : e.Offset+4])), true
		}
	}
	return netip.Addr{}, false
}

// Internal reports whether outbound requests may not reach addr: it embeds
// an IPv4 address (see Embedded) that is internal, or, embedding none, it
// is in one of Forbidden's ranges. Zones are ignored; the zero Addr is in
// no range.
func Internal(addr netip.Addr) bool {
	if v4, ok := Embedded(addr); ok {
		return Internal(v4)
	}
	addr = addr.WithZone("")
	for _, f := range Forbidden {
		if f.Prefix.Contains(addr) {
			return true
		}
	}
	return false
}
