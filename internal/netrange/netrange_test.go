package netrange

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cases holds one address inside every range of Forbidden, the IPv6 forms
// that embed an IPv4 address, and addresses that are public.
var cases = []struct {
	addr string
	want string // the reason of the range that holds it, or "" if public
}{
	{"0.0.0.0", "unspecified (this network)"},
	{"10.0.0.1", "private"},
	{"100.64.0.1", "shared (CGNAT)"},
	{"100.127.255.255", "shared (CGNAT)"},
	{"127.0.0.1", "loopback"},
	{"169.254.169.254", "link-local (cloud metadata)"},
	{"172.16.0.1", "private"},
	{"172.31.255.255", "private"},
	{"192.0.0.170", "IETF protocol assignments"},
	{"192.0.2.1", "documentation"},
	{"192.88.99.1", "6to4 relay"},
	{"192.168.1.1", "private"},
	{"198.19.255.255", "benchmarking"},
	{"198.51.100.7", "documentation"},
	{"203.0.113.7", "documentation"},
	{"224.0.0.1", "multicast"},
	{"255.255.255.255", "reserved (broadcast)"},
	{"::", "unspecified"},
	{"::1", "loopback"},
	{"::127.0.0.1", "IPv4-compatible (deprecated)"},
	{"::8.8.8.8", "IPv4-compatible (deprecated)"},
	{"64:ff9b:1::1", "local-use IPv4/IPv6 translation"},
	{"100::1", "discard-only"},
	{"2001::1", "IETF protocol assignments (Teredo)"},
	{"2001:db8::1", "documentation"},
	{"3fff::1", "documentation"},
	{"5f00::1", "segment routing"},
	{"fd00:ec2::254", "unique local (private, cloud metadata)"},
	{"fc00::1", "unique local (private, cloud metadata)"},
	{"fe80::1", "link-local"},
	{"fe80::1%eth0", "link-local"},
	{"fec0::1", "site-local (deprecated)"},
	{"ff02::1", "multicast"},
	// IPv6 forms judged by the IPv4 address they embed.
	{"::ffff:127.0.0.1", "loopback"},
	{"::ffff:169.254.169.254", "link-local (cloud metadata)"},
	{"::ffff:0:10.0.0.1", "private"},                            // IPv4-translated
	{"64:ff9b::10.0.0.1", "private"},                            // NAT64
	{"64:ff9b::169.254.169.254", "link-local (cloud metadata)"}, // NAT64
	{"2002:7f00:1::1", "loopback"},                              // 6to4 of 127.0.0.1
	{"2002:a9fe:a9fe::", "link-local (cloud metadata)"},         // 6to4 of 169.254.169.254
	{"2002:a9fe:a9fe::%eth0", "link-local (cloud metadata)"},
	// Public addresses, in every form.
	{"93.184.215.14", ""},
	{"8.8.8.8", ""},
	{"172.32.0.1", ""},
	{"100.128.0.1", ""},
	{"198.20.0.1", ""},
	{"223.255.255.255", ""},
	{"2606:4700:4700::1111", ""},
	{"::ffff:8.8.8.8", ""},
	{"::ffff:0:8.8.8.8", ""},
	{"64:ff9b::8.8.8.8", ""},
	{"2002:808:808::1", ""},
	{"2001:200::1", ""},
}

// reason returns the reason of the range that holds addr as Internal
// judges it (inside the IPv4 address it embeds, if any), or "".
func reason(addr netip.Addr) string {
	if v4, ok := Embedded(addr); ok {
		addr = v4
	}
	for _, f := range Forbidden {
		if f.Prefix.Contains(addr.WithZone("")) {
			return f.Reason
		}
	}
	return ""
}

func TestInternal(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			addr := netip.MustParseAddr(tc.addr)
			assert.Equal(t, tc.want != "", Internal(addr))
			assert.Equal(t, tc.want, reason(addr))
		})
	}
	assert.False(t, Internal(netip.Addr{}), "the zero Addr")
}

// TestCasesCoverEveryRange: cases hold an address directly inside every
// range of Forbidden, so that TestInternal tests each of them.
func TestCasesCoverEveryRange(t *testing.T) {
	for _, f := range Forbidden {
		covered := false
		for _, tc := range cases {
			if tc.want != "" && f.Prefix.Contains(netip.MustParseAddr(tc.addr).WithZone("")) {
				covered = true
			}
		}
		assert.True(t, covered, "no case in %s (%s)", f.Prefix, f.Reason)
	}
}

// last returns the last address of p.
func last(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// TestEveryRangeWhole: each range of Forbidden is a canonical prefix with
// a reason, its first and last addresses are internal, and so are those of
// an IPv4 range in every IPv6 form that embeds it.
func TestEveryRangeWhole(t *testing.T) {
	for _, f := range Forbidden {
		t.Run(f.Prefix.String(), func(t *testing.T) {
			require.True(t, f.Prefix.IsValid())
			assert.Equal(t, f.Prefix.Masked(), f.Prefix, "canonical")
			assert.NotEmpty(t, f.Reason)
			for _, a := range []netip.Addr{f.Prefix.Addr(), last(f.Prefix)} {
				require.True(t, f.Prefix.Contains(a), "%s", a)
				assert.True(t, Internal(a), "%s", a)
				if !a.Is4() {
					continue
				}
				for _, e := range Embedding {
					b := e.Prefix.Addr().As16()
					copy(b[e.Offset:], a.AsSlice())
					assert.True(t, Internal(netip.AddrFrom16(b)), "%s in %s", a, e.Prefix)
				}
			}
		})
	}
}

func TestEmbedded(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want string // the embedded IPv4 address, or "" for none
	}{
		{"::ffff:10.1.2.3", "10.1.2.3"},   // IPv4-mapped
		{"::ffff:0:10.1.2.3", "10.1.2.3"}, // IPv4-translated
		{"64:ff9b::10.1.2.3", "10.1.2.3"}, // NAT64
		{"2002:a01:203::1", "10.1.2.3"},   // 6to4
		{"2002:a01:203:ffff::1%eth0", "10.1.2.3"},
		{"10.1.2.3", ""},
		{"::10.1.2.3", ""}, // IPv4-compatible: a range of its own
		{"64:ff9b:1::a01:203", ""},
		{"2003:a01:203::1", ""},
		{"2001:db8::1", ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			v4, ok := Embedded(netip.MustParseAddr(tc.addr))
			if tc.want == "" {
				assert.False(t, ok)
				assert.Equal(t, netip.Addr{}, v4)
				return
			}
			require.True(t, ok)
			assert.Equal(t, netip.MustParseAddr(tc.want), v4)
		})
	}
	_, ok := Embedded(netip.Addr{})
	assert.False(t, ok, "the zero Addr")
}
