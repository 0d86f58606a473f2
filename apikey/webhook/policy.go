package webhook

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/keystile/keystile/internal/netrange"
)

// MaxURLLength bounds an endpoint URL, in bytes.
const MaxURLLength = 2048

// Policy says which endpoints outbound webhooks may reach. Its zero value
// is the strict default: https only, any port, and no address in
// ForbiddenRanges. A Policy is a value: safe for concurrent use while no
// one changes its slices.
type Policy struct {
	// AllowHTTP admits http:// endpoints as well as https://. For
	// development and for receivers inside a trusted network; the zero value
	// refuses them.
	AllowHTTP bool
	// Allow lists address ranges that endpoints may reach although they are
	// in ForbiddenRanges (an internal receiver, the service's own proxy).
	// An IPv4-mapped IPv6 address is matched in its IPv4 form.
	Allow []netip.Prefix
	// AllowInternal admits every address, ForbiddenRanges included: for
	// development only, never for endpoints that tenants register.
	AllowInternal bool
	// Ports, if not empty, are the only ports endpoints may use (explicit
	// or implied by the scheme: 443, 80). Empty admits any port.
	Ports []uint16
}

// Range is an address range that outbound requests may not reach, and why.
type Range struct {
	Prefix netip.Prefix
	Reason string
}

// ForbiddenRanges are the ranges that a Policy refuses unless it allows
// them: every range of the IANA special-purpose registries that is not
// globally reachable, and the IPv6 forms that embed an IPv4 address, whose
// embedded address is checked instead (see CheckAddr).
var ForbiddenRanges = forbiddenRanges()

// forbiddenRanges returns a copy of netrange.Forbidden, the list that
// package apikey checks at registration too.
func forbiddenRanges() []Range {
	rs := make([]Range, len(netrange.Forbidden))
	for i, f := range netrange.Forbidden {
		rs[i] = Range(f)
	}
	return rs
}

// CheckAddr reports whether p admits an address: nil, or an error wrapping
// ErrForbiddenAddress that names the range. An address is admitted when p
// allows it (AllowInternal, or in Allow), or when it is in no
// ForbiddenRanges; an IPv6 address that embeds an IPv4 address (mapped,
// translated, NAT64, 6to4) is judged by the IPv4 address it embeds. Zones
// are ignored.
func (p *Policy) CheckAddr(addr netip.Addr) error {
	if why := p.forbidden(addr); why != "" {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, why)
	}
	return nil
}

// forbidden returns why p refuses addr, or "" if it admits it.
func (p *Policy) forbidden(addr netip.Addr) string {
	if !addr.IsValid() {
		return "no address"
	}
	if p.AllowInternal {
		return ""
	}
	addr = addr.WithZone("")
	for _, a := range p.Allow {
		if a.Contains(addr) || a.Contains(addr.Unmap()) {
			return ""
		}
	}
	if v4, ok := netrange.Embedded(addr); ok {
		if why := p.forbidden(v4); why != "" {
			return why + ", inside " + addr.String()
		}
		return ""
	}
	for _, f := range ForbiddenRanges {
		if f.Prefix.Contains(addr) {
			return fmt.Sprintf("%s is %s (%s)", addr, f.Reason, f.Prefix)
		}
	}
	return ""
}

// multiError is an error with a message of its own that wraps several
// sentinels.
type multiError struct {
	msg  string
	errs []error
}

func (e *multiError) Error() string   { return e.msg }
func (e *multiError) Unwrap() []error { return e.errs }

// forbiddenHost is ParseEndpoint's and CheckEndpoint's error for a host
// that is or resolves to a forbidden address.
func forbiddenHost(detail string) error {
	return &multiError{msg: ErrInvalidEndpoint.Error() + ": url.host " + detail, errs: []error{ErrInvalidEndpoint, ErrForbiddenAddress}}
}

// checkPort reports whether p admits port.
func (p *Policy) checkPort(port uint16) error {
	if len(p.Ports) == 0 || slices.Contains(p.Ports, port) {
		return nil
	}
	return fmt.Errorf("%w: port %d is not allowed", ErrForbiddenAddress, port)
}

// ParseEndpoint validates an endpoint URL that a tenant registers, and
// returns it parsed. It must be an absolute URL of at most MaxURLLength
// bytes of printable ASCII, with scheme https (or http if AllowHTTP), a
// host that is a DNS name or an IP literal, a port that p admits, and no
// userinfo or fragment. A host that is an IP address is checked with
// CheckAddr, and the names "localhost" and "*.localhost" are refused; a
// DNS name is checked when it is dialed (every time, so that a name that
// later resolves to a forbidden address is still refused). Errors wrap
// ErrInvalidEndpoint (and ErrForbiddenAddress for a forbidden address)
// and name the part refused:
// url, url.scheme, url.userinfo, url.host, url.port, url.fragment.
func (p *Policy) ParseEndpoint(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, endpointError("url", "is empty")
	}
	if len(raw) > MaxURLLength {
		return nil, endpointError("url", "is longer than %d bytes", MaxURLLength)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return nil, endpointError("url", "holds a space, control or non-ASCII byte at %d (encode it)", i)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, endpointError("url", "is not a URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return nil, endpointError("url.scheme", "must be https")
	default:
		return nil, endpointError("url.scheme", "must be https%s", map[bool]string{true: " or http"}[p.AllowHTTP])
	}
	if u.Opaque != "" {
		return nil, endpointError("url", "must be scheme://host/path")
	}
	if u.User != nil {
		return nil, endpointError("url.userinfo", "is not allowed (put credentials in the path or have the endpoint check the signature)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, endpointError("url.fragment", "is not allowed")
	}
	host := u.Hostname()
	if host == "" {
		return nil, endpointError("url.host", "is empty")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	} else if strings.HasPrefix(port, "0") {
		return nil, endpointError("url.port", "must be 1 to 65535")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return nil, endpointError("url.port", "must be 1 to 65535")
	}
	if err := p.checkPort(uint16(n)); err != nil {
		return nil, fmt.Errorf("%w: url.port %d is not allowed", ErrInvalidEndpoint, n)
	}
	if strings.Contains(u.Host, "[") { // an IPv6 literal, maybe with a zone
		addr, err := netip.ParseAddr(host)
		if err != nil || addr.Zone() != "" || !addr.Is6() {
			return nil, endpointError("url.host", "is not an IPv6 address")
		}
		if why := p.forbidden(addr); why != "" {
			return nil, forbiddenHost(why)
		}
		return u, nil
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if why := p.forbidden(addr); why != "" {
			return nil, forbiddenHost(why)
		}
		return u, nil
	}
	if why := netrange.HostnameProblem(host); why != "" {
		return nil, endpointError("url.host", "%s", why)
	}
	if name := strings.ToLower(strings.TrimSuffix(host, ".")); !p.AllowInternal && (name == "localhost" || strings.HasSuffix(name, ".localhost")) {
		return nil, endpointError("url.host", "is localhost")
	}
	return u, nil
}

func endpointError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidEndpoint, field, fmt.Sprintf(format, args...))
}
