package apikey

import (
	"net/netip"
	"strings"
)

// internalRanges are the address ranges that ValidateEndpointURL refuses
// in an IP literal without allowInternal: package apikey/webhook's
// ForbiddenRanges, which the deliverer checks on every address it dials (a
// test checks that each of them is refused here), so that a tenant learns
// at registration that such an endpoint can never receive anything.
var internalRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/23"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("3fff::/20"),
	netip.MustParsePrefix("5f00::/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// embeddingRanges are the IPv6 ranges whose addresses carry an IPv4
// address (at byte offset), judged by that address, as package
// apikey/webhook judges them.
var embeddingRanges = []struct {
	prefix netip.Prefix
	offset int
}{
	{netip.MustParsePrefix("::ffff:0:0/96"), 12},   // IPv4-mapped
	{netip.MustParsePrefix("::ffff:0:0:0/96"), 12}, // IPv4-translated (SIIT)
	{netip.MustParsePrefix("64:ff9b::/96"), 12},    // NAT64 well-known prefix
	{netip.MustParsePrefix("2002::/16"), 2},        // 6to4
}

// internalAddr reports whether a is in internalRanges, or embeds an IPv4
// address that is.
func internalAddr(a netip.Addr) bool {
	a = a.WithZone("")
	if a.Is6() {
		for _, e := range embeddingRanges {
			if e.prefix.Contains(a) {
				b := a.As16()
				return internalAddr(netip.AddrFrom4([4]byte(b[e.offset : e.offset+4])))
			}
		}
	}
	for _, p := range internalRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// validHostname reports whether host is a DNS name as package
// apikey/webhook admits one: labels of ASCII letters, digits and hyphens
// (punycode for international names), none empty, longer than 63 bytes or
// starting or ending with '-', at most 253 bytes, an optional final dot;
// and a last label that is not a number (decimal, or hexadecimal with
// 0x), which resolvers read as an IPv4 address ("2130706433", "0x7f.1",
// "127.1").
func validHostname(host string) bool {
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
				return false
			}
		}
	}
	last := strings.ToLower(labels[len(labels)-1])
	hex, isHex := strings.CutPrefix(last, "0x")
	return strings.Trim(last, "0123456789") != "" && !(isHex && strings.Trim(hex, "0123456789abcdef") == "")
}
