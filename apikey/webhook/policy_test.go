package webhook_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey/webhook"
)

func TestCheckAddr(t *testing.T) {
	strict := &webhook.Policy{}
	allow := &webhook.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd12::/16")}}
	internal := &webhook.Policy{AllowInternal: true}
	for _, tc := range []struct {
		addr   string
		policy *webhook.Policy
		want   string // "" admits; otherwise in the error
	}{
		{"127.0.0.1", strict, "loopback"},
		{"127.255.255.254", strict, "loopback"},
		{"10.0.0.1", strict, "private"},
		{"172.16.0.1", strict, "private"},
		{"172.31.255.255", strict, "private"},
		{"192.168.1.1", strict, "private"},
		{"169.254.169.254", strict, "link-local"},
		{"100.64.0.1", strict, "CGNAT"},
		{"100.127.255.255", strict, "CGNAT"},
		{"0.0.0.0", strict, "unspecified"},
		{"255.255.255.255", strict, "broadcast"},
		{"224.0.0.1", strict, "multicast"},
		{"192.0.0.170", strict, "IETF"},
		{"198.18.0.1", strict, "benchmarking"},
		{"::1", strict, "loopback"},
		{"::", strict, "unspecified"},
		{"fd00:ec2::254", strict, "unique local"},
		{"fc00::1", strict, "unique local"},
		{"fe80::1", strict, "link-local"},
		{"fe80::1%eth0", strict, "link-local"},
		{"ff02::1", strict, "multicast"},
		{"::ffff:127.0.0.1", strict, "loopback"},
		{"::ffff:169.254.169.254", strict, "link-local"},
		{"::ffff:10.0.0.1", strict, "private"},
		{"::ffff:0:10.0.0.1", strict, "private"},     // IPv4-translated
		{"64:ff9b::10.0.0.1", strict, "private"},     // NAT64
		{"64:ff9b::169.254.169.254", strict, "link"}, // NAT64
		{"64:ff9b:1::1", strict, "translation"},
		{"2002:7f00:1::1", strict, "loopback"}, // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::", strict, "link-local"},
		{"::127.0.0.1", strict, "IPv4-compatible"},
		{"2001::1", strict, "Teredo"},
		{"2001:db8::1", strict, "documentation"},
		// Public addresses.
		{"93.184.215.14", strict, ""},
		{"8.8.8.8", strict, ""},
		{"172.32.0.1", strict, ""},
		{"100.128.0.1", strict, ""},
		{"2606:4700:4700::1111", strict, ""},
		{"::ffff:8.8.8.8", strict, ""},
		{"64:ff9b::8.8.8.8", strict, ""},
		{"2002:808:808::1", strict, ""},
		// Allowed ranges, in every form.
		{"10.1.2.3", allow, ""},
		{"::ffff:10.1.2.3", allow, ""},
		{"64:ff9b::10.1.2.3", allow, ""},
		{"10.2.0.1", allow, "private"},
		{"fd12::1", allow, ""},
		{"fd13::1", allow, "unique local"},
		{"127.0.0.1", allow, "loopback"},
		{"127.0.0.1", internal, ""},
		{"169.254.169.254", internal, ""},
		{"::1", internal, ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := tc.policy.CheckAddr(netip.MustParseAddr(tc.addr))
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, webhook.ErrForbiddenAddress)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	assert.ErrorIs(t, strict.CheckAddr(netip.Addr{}), webhook.ErrForbiddenAddress)
}

func TestParseEndpoint(t *testing.T) {
	strict := &webhook.Policy{}
	dev := &webhook.Policy{AllowHTTP: true, AllowInternal: true}
	ports := &webhook.Policy{Ports: []uint16{443, 8443}}
	for _, tc := range []struct {
		name   string
		policy *webhook.Policy
		in     string
		want   string // "" accepts; otherwise the field in the error
	}{
		{"https", strict, "https://hooks.example.com/keystile?tenant=42", ""},
		{"port", strict, "https://hooks.example.com:8443/k", ""},
		{"trailing dot", strict, "https://hooks.example.com./k", ""},
		{"public IPv4", strict, "https://93.184.215.14/k", ""},
		{"public IPv6", strict, "https://[2606:4700:4700::1111]/k", ""},
		{"punycode", strict, "https://xn--bcher-kva.example/k", ""},
		{"empty", strict, "", "url is empty"},
		{"too long", strict, "https://example.com/" + strings.Repeat("a", webhook.MaxURLLength), "url is longer"},
		{"space", strict, "https://example.com/a b", "url holds a space"},
		{"non-ASCII", strict, "https://bücher.example/k", "url holds"},
		{"relative", strict, "/hooks", "url.scheme"},
		{"http", strict, "http://hooks.example.com/", "url.scheme must be https"},
		{"ftp", strict, "ftp://hooks.example.com/", "url.scheme"},
		{"javascript", strict, "javascript:alert(1)", "url.scheme"},
		{"opaque", strict, "https:hooks.example.com", "url must be"},
		{"userinfo", strict, "https://user:pass@hooks.example.com/", "url.userinfo"},
		{"user only", strict, "https://user@hooks.example.com/", "url.userinfo"},
		{"fragment", strict, "https://hooks.example.com/#x", "url.fragment"},
		{"no host", strict, "https:///path", "url.host is empty"},
		{"port 0", strict, "https://hooks.example.com:0/", "url.port"},
		{"port too big", strict, "https://hooks.example.com:65536/", "url.port"},
		{"port leading zero", strict, "https://hooks.example.com:0443/", "url.port"},
		{"port not allowed", ports, "https://hooks.example.com:22/", "url.port 22"},
		{"port allowed", ports, "https://hooks.example.com:8443/", ""},
		{"implied port allowed", ports, "https://hooks.example.com/", ""},
		{"loopback IPv4", strict, "https://127.0.0.1/", "loopback"},
		{"metadata", strict, "https://169.254.169.254/latest/meta-data/", "link-local"},
		{"private", strict, "https://10.0.0.1/", "private"},
		{"loopback IPv6", strict, "https://[::1]/", "loopback"},
		{"mapped IPv6", strict, "https://[::ffff:127.0.0.1]/", "loopback"},
		{"metadata IPv6", strict, "https://[fd00:ec2::254]/", "unique local"},
		{"IPv6 zone", strict, "https://[fe80::1%25eth0]/", "url.host is not an IPv6"},
		{"IPv4 in brackets", strict, "https://[8.8.8.8]/", "url is not a URL"},
		{"hex-looking label", strict, "https://a.0xide/", ""},
		{"hex label", strict, "https://a.0xbeef/", "url.host is a number"},
		{"short IPv4", strict, "https://127.1/", "url.host is a number"},
		{"decimal IPv4", strict, "https://2130706433/", "url.host is a number"},
		{"hex IPv4", strict, "https://0x7f000001/", "url.host is a number"},
		{"octal IPv4", strict, "https://0177.0.0.1/", "url.host is a number"},
		{"localhost", strict, "https://localhost/", "url.host is localhost"},
		{"localhost.", strict, "https://LocalHost./", "url.host is localhost"},
		{"sub.localhost", strict, "https://a.localhost/", "url.host is localhost"},
		{"underscore", strict, "https://a_b.example.com/", "url.host holds"},
		{"empty label", strict, "https://a..example.com/", "url.host has an empty label"},
		{"hyphen label", strict, "https://-a.example.com/", "url.host has a label"},
		{"dev http loopback", dev, "http://127.0.0.1:8080/hook", ""},
		{"dev localhost", dev, "http://localhost:8080/hook", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.policy.ParseEndpoint(tc.in)
			if tc.want == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.in, u.String())
				return
			}
			require.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, u)
		})
	}
}

// FuzzParseEndpoint checks that ParseEndpoint never panics, and that what
// it accepts keeps its promises: a short https URL with a host, no
// userinfo or fragment, and an IP host only if the Policy admits it.
func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.com/k?x=1", "https://127.0.0.1/", "https://[::ffff:10.0.0.1]:8443/",
		"http://localhost/", "https://user@host/", "https://0x7f.1/", "https://[fe80::1%25eth0]/",
		"https://h.example.com:443#f", "https:opaque", "https://%31%32%37.0.0.1/",
	} {
		f.Add(s)
	}
	p := &webhook.Policy{}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := p.ParseEndpoint(raw)
		if err != nil {
			require.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
			require.Nil(t, u)
			return
		}
		require.LessOrEqual(t, len(raw), webhook.MaxURLLength)
		require.Equal(t, "https", u.Scheme)
		require.Nil(t, u.User)
		require.Empty(t, u.Fragment)
		host := u.Hostname()
		require.NotEmpty(t, host)
		if a, err := netip.ParseAddr(host); err == nil {
			require.NoError(t, p.CheckAddr(a), "accepted %q", raw)
		} else {
			name := strings.ToLower(strings.TrimSuffix(host, "."))
			require.NotEqual(t, "localhost", name)
			require.False(t, strings.HasSuffix(name, ".localhost"))
			require.NotContains(t, host, "%")
		}
	})
}
