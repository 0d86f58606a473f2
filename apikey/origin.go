package apikey

//go:generate go run gen_suffixes.go

import (
	"fmt"
	"iter"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"
)

// AnyOrigin is the allowed-origin entry that admits every web origin. It is
// a development convenience: with it, any web page may use the
// environment's publishable keys. An empty list admits no browser origin.
const AnyOrigin = "*"

// Origin is a parsed allowed-origin entry. Four forms are accepted:
//   - an exact origin: "https://app.example.com", "http://localhost:3000"
//   - a subdomain wildcard: "https://*.example.com" matches
//     "https://a.example.com" and "https://a.b.example.com", but not
//     "https://example.com" itself. A wildcard admits only hosts whose
//     registrable domain (eTLD+1, from the Public Suffix List with its
//     private section) is the wildcard's own. Its base must be a
//     registrable domain or lie under one, with no public suffix under it:
//     never a public suffix ("https://*.co.uk", "https://*.github.io"),
//     never a domain under which the list names public suffixes
//     ("https://*.amazonaws.com", under which lies s3.amazonaws.com), nor
//     a host that ends in a number, which browsers read as an IP address
//     ("https://*.0.0.1")
//   - localhost, 127.0.0.1 or [::1] with an explicit port, over http or https
//   - AnyOrigin, "*": every http or https origin (see AnyOrigin)
//
// Entries are case-insensitive and normalised to lower case; a default port
// (":443" for https, ":80" for http) is dropped. Origin is comparable: two
// entries are equal when their normalised forms are.
type Origin struct {
	scheme string // "http" or "https"
	host   string // exact host, or the suffix after "*." for a wildcard
	port   string // "" for the scheme's default port
	wild   bool
	any    bool // AnyOrigin; the other fields are empty
}

// MaxOrigins is the most entries an allowed-origin list may hold
// (ValidateOrigins, ParseOriginSet and Manager.SetAllowedOrigins refuse
// longer lists with ErrTooManyOrigins). Wildcards cover families of
// subdomains.
const MaxOrigins = 256

// ErrTooManyOrigins means an allowed-origin list holds more than MaxOrigins
// entries. It wraps ErrInvalidOrigin.
var ErrTooManyOrigins = fmt.Errorf("%w: more than %d entries in the list", ErrInvalidOrigin, MaxOrigins)

// maxRequestOrigin bounds the Origin header values that are parsed: a
// scheme, a host name of at most 253 bytes and a port.
const maxRequestOrigin = 253 + 20

// ParseOrigin parses an allowed-origin entry. Errors wrap ErrInvalidOrigin;
// they never repeat the entry, which may hold anything a user typed: they
// name at most the domain of the Public Suffix List that refused a
// wildcard.
func ParseOrigin(entry string) (Origin, error) {
	if entry == AnyOrigin {
		return Origin{any: true}, nil
	}
	o, err := parseOrigin(entry, true)
	if err != nil {
		return Origin{}, fmt.Errorf("%w: %s", ErrInvalidOrigin, err.Error())
	}
	return o, nil
}

// ValidateOrigins checks an allowed-origin list, every entry and its length
// (at most MaxOrigins entries), and returns the entries normalised
// (AnyOrigin stays "*"). An error names the first invalid entry by its
// position, as in "entry 3: apikey: invalid origin: ...".
func ValidateOrigins(entries []string) ([]string, error) {
	if len(entries) > MaxOrigins {
		return nil, fmt.Errorf("%w (%d given)", ErrTooManyOrigins, len(entries))
	}
	out := make([]string, 0, len(entries))
	for i, e := range entries {
		o, err := ParseOrigin(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		out = append(out, o.String())
	}
	return out, nil
}

// Match reports whether the Origin header value origin is allowed by o.
// Malformed origins (including "null") never match, not even AnyOrigin. To
// check an origin against a list, use OriginSet, which parses it once.
func (o Origin) Match(origin string) bool {
	r, ok := ParseRequestOrigin(origin)
	return ok && o.admits(&r)
}

// admits reports whether o admits the request origin r.
func (o Origin) admits(r *RequestOrigin) bool {
	switch {
	case o.any:
		return true
	case r.origin.scheme != o.scheme || r.origin.port != o.port:
		return false
	case !o.wild:
		return r.origin.host == o.host
	}
	// A wildcard admits a subdomain of its base whose registrable domain
	// is the base's own: the base is r's registrable domain or lies under
	// it.
	host := r.origin.host
	if len(host) <= len(o.host)+1 || host[len(host)-len(o.host)-1] != '.' || !strings.HasSuffix(host, o.host) {
		return false
	}
	site := r.registrable()
	return site != "" && len(o.host) >= len(site)
}

// Admits reports whether o admits the request origin r (see Origin for the
// rules).
func (o Origin) Admits(r RequestOrigin) bool { return r.origin.scheme != "" && o.admits(&r) }

// Any reports whether o is AnyOrigin, which admits every origin.
func (o Origin) Any() bool { return o.any }

// String returns the normalised entry.
func (o Origin) String() string {
	if o.any {
		return AnyOrigin
	}
	host := o.host
	if o.wild {
		host = "*." + host
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if o.port != "" {
		host += ":" + o.port
	}
	return o.scheme + "://" + host
}

// RequestOrigin is the parsed value of a request's Origin header: a scheme,
// a host and a port, with the host's registrable domain. Its zero value is
// admitted by nothing.
type RequestOrigin struct {
	origin Origin // scheme, host and port; never wild or any
	// site is the registrable domain (eTLD+1, with the Public Suffix
	// List's private section) of origin.host, once siteKnown: "" for an IP
	// address, a host that ends in a number, or a public suffix.
	site      string
	siteKnown bool
}

// registrable returns r's registrable domain (see site), looked up once.
func (r *RequestOrigin) registrable() string {
	if !r.siteKnown {
		r.site, r.siteKnown = registrableDomain(r.origin.host), true
	}
	return r.site
}

// ParseRequestOrigin parses the value of a request's Origin header:
// "http" or "https", "://", a host name or an IP address (IPv6 in
// brackets), an optional port, and nothing else. It reports false for
// anything else, "null" included. It reads at most the first 273 bytes and
// allocates nothing for a lower-case origin.
func ParseRequestOrigin(origin string) (RequestOrigin, bool) {
	if len(origin) > maxRequestOrigin {
		return RequestOrigin{}, false
	}
	for i := range len(origin) {
		if origin[i] >= utf8.RuneSelf { // a serialised origin is ASCII (IDNs in punycode)
			return RequestOrigin{}, false
		}
	}
	s := strings.ToLower(origin) // s itself when it has no upper case
	var o Origin
	switch {
	case strings.HasPrefix(s, "https://"):
		o.scheme, s = "https", s[len("https://"):]
	case strings.HasPrefix(s, "http://"):
		o.scheme, s = "http", s[len("http://"):]
	default:
		return RequestOrigin{}, false
	}
	host, port, hasPort := s, "", false
	ip := strings.HasPrefix(s, "[")
	if ip {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return RequestOrigin{}, false
		}
		host, s = s[1:end], s[end+1:]
		if s != "" {
			if s[0] != ':' {
				return RequestOrigin{}, false
			}
			port, hasPort = s[1:], true
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return RequestOrigin{}, false
		}
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port, hasPort = s[:i], s[i+1:], true
		}
		if !validName(host) {
			return RequestOrigin{}, false
		}
	}
	if hasPort {
		n, ok := parsePort(port)
		if !ok {
			return RequestOrigin{}, false
		}
		if (o.scheme == "https" && n == 443) || (o.scheme == "http" && n == 80) {
			port = ""
		}
	}
	o.host, o.port = host, port
	return RequestOrigin{origin: o, siteKnown: ip}, true
}

// String returns the normalised origin, as in "https://app.example.com".
func (r RequestOrigin) String() string { return r.origin.String() }

// Candidates yields, each once, the entries that may admit r: AnyOrigin,
// r's own origin, and a wildcard for each parent domain of two labels or
// more of a host name ("https://*.b.example.com" and "https://*.example.com"
// for "https://a.b.example.com"). Every entry that admits r is among them;
// a wildcard among them admits r only if Admits says so (its base must be
// r's registrable domain or lie under it). It yields at most as many
// entries as the host has labels, plus one; nothing for the zero
// RequestOrigin. It does not allocate.
func (r RequestOrigin) Candidates() iter.Seq[Origin] {
	return func(yield func(Origin) bool) {
		if r.origin.scheme == "" || !yield(Origin{any: true}) || !yield(r.origin) || r.siteKnown && r.site == "" {
			return
		}
		host := r.origin.host
		for i := strings.IndexByte(host, '.'); i >= 0 && strings.Contains(host[i+1:], "."); i = strings.IndexByte(host, '.') {
			host = host[i+1:]
			if !yield(Origin{scheme: r.origin.scheme, host: host, port: r.origin.port, wild: true}) {
				return
			}
		}
	}
}

// registrableDomain returns the registrable domain (eTLD+1) of a valid host
// name, using the Public Suffix List with its private section, or "" when
// it has none: a public suffix, or a host that ends in a number (an IPv4
// address to a browser).
func registrableDomain(host string) string {
	if endsInNumber(host) {
		return ""
	}
	suffix, _ := publicsuffix.PublicSuffix(host)
	i := len(host) - len(suffix) - 1
	if i <= 0 || host[i] != '.' {
		return ""
	}
	return host[strings.LastIndexByte(host[:i], '.')+1:]
}

// parsePort parses a port of 1 to 65535 written without leading zeros.
func parsePort(port string) (int, bool) {
	if port == "" || len(port) > 5 || port[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(port); i++ {
		c := port[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= 65535
}

// OriginSet is a parsed allowed-origin list that checks a request's origin
// in time bounded by a constant and the origin's host label count, whatever
// the list's length: a small list is scanned, a larger one is looked up
// once per entry that could admit the origin (see
// RequestOrigin.Candidates). The zero value admits no origin. An OriginSet
// is immutable; it is safe for concurrent use.
type OriginSet struct {
	any   bool
	wild  bool                // some entry is a wildcard
	small []Origin            // the entries of a small set, AnyOrigin aside
	index map[Origin]struct{} // the entries of a larger set, AnyOrigin aside
}

// smallOriginSet is the most entries an OriginSet scans.
const smallOriginSet = 8

// NewOriginSet returns the set of the given parsed entries (duplicates
// count once). Any number of entries works; lists that users save are
// bounded by MaxOrigins (see ValidateOrigins).
func NewOriginSet(origins ...Origin) OriginSet {
	var s OriginSet
	for _, o := range origins {
		s.wild = s.wild || o.wild
		switch {
		case o.any:
			s.any = true
		case s.index != nil:
			s.index[o] = struct{}{}
		case slices.Contains(s.small, o):
		case len(s.small) < smallOriginSet:
			s.small = append(s.small, o)
		default:
			s.index = make(map[Origin]struct{}, len(origins))
			for _, x := range s.small {
				s.index[x] = struct{}{}
			}
			s.index[o], s.small = struct{}{}, nil
		}
	}
	return s
}

// ParseOriginSet parses an allowed-origin list as ValidateOrigins checks
// it. Errors wrap ErrInvalidOrigin (ErrTooManyOrigins for a list longer
// than MaxOrigins) and name the first invalid entry by its position.
func ParseOriginSet(entries []string) (OriginSet, error) {
	if len(entries) > MaxOrigins {
		return OriginSet{}, fmt.Errorf("%w (%d given)", ErrTooManyOrigins, len(entries))
	}
	origins := make([]Origin, 0, len(entries))
	for i, e := range entries {
		o, err := ParseOrigin(e)
		if err != nil {
			return OriginSet{}, fmt.Errorf("entry %d: %w", i+1, err)
		}
		origins = append(origins, o)
	}
	return NewOriginSet(origins...), nil
}

// Allows reports whether the Origin header value origin is admitted by an
// entry of s. It parses origin once; malformed origins ("null" included)
// are never admitted, not even by AnyOrigin.
func (s OriginSet) Allows(origin string) bool {
	r, ok := ParseRequestOrigin(origin)
	return ok && s.AllowsRequest(r)
}

// AllowsRequest reports whether the parsed request origin r is admitted by
// an entry of s.
func (s OriginSet) AllowsRequest(r RequestOrigin) bool {
	if r.origin.scheme == "" {
		return false
	}
	if s.any {
		return true
	}
	if !s.wild {
		r.siteKnown = true // no wildcard needs it
	}
	for _, o := range s.small {
		if o.admits(&r) {
			return true
		}
	}
	if s.index != nil {
		for o := range r.Candidates() {
			if _, ok := s.index[o]; ok && o.admits(&r) {
				return true
			}
		}
	}
	return false
}

// Len returns the number of distinct entries in s.
func (s OriginSet) Len() int {
	n := len(s.small) + len(s.index)
	if s.any {
		n++
	}
	return n
}

// All yields the distinct entries of s, in no particular order.
func (s OriginSet) All() iter.Seq[Origin] {
	return func(yield func(Origin) bool) {
		if s.any && !yield(Origin{any: true}) {
			return
		}
		for _, o := range s.small {
			if !yield(o) {
				return
			}
		}
		for o := range s.index {
			if !yield(o) {
				return
			}
		}
	}
}

// parseOrigin parses scheme://host[:port] with nothing else; pattern allows a
// leading "*." label.
func parseOrigin(s string, pattern bool) (Origin, error) {
	if s == "" || len(s) > 300 {
		return Origin{}, fmt.Errorf("want scheme://host[:port]")
	}
	u, err := url.Parse(strings.ToLower(s))
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery ||
		strings.HasSuffix(s, "/") || strings.Contains(s, "#") {
		return Origin{}, fmt.Errorf("want scheme://host[:port] with no path, query or user")
	}
	o := Origin{scheme: u.Scheme}
	if o.scheme != "http" && o.scheme != "https" {
		return Origin{}, fmt.Errorf("scheme must be http or https")
	}
	host, port := u.Hostname(), u.Port()
	if strings.HasSuffix(u.Host, ":") {
		return Origin{}, fmt.Errorf("empty port")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return Origin{}, fmt.Errorf("port must be 1..65535")
		}
		if (o.scheme == "https" && n == 443) || (o.scheme == "http" && n == 80) {
			port = ""
		}
	}
	o.port = port
	if pattern && strings.HasPrefix(host, "*.") {
		o.wild, host = true, host[2:]
		if strings.Count(host, ".") < 1 {
			return Origin{}, fmt.Errorf("a wildcard needs a domain of two labels or more, as in *.example.com")
		}
	}
	if !validHost(host) {
		return Origin{}, fmt.Errorf("invalid host")
	}
	if o.wild {
		if net.ParseIP(host) != nil || endsInNumber(host) {
			return Origin{}, fmt.Errorf("a wildcard cannot stand before an IP address or a host that ends in a number")
		}
		// The list's private section counts too: *.github.io would admit
		// every GitHub Pages site, *.amazonaws.com every bucket of
		// s3.amazonaws.com. The name in the second error comes from the list.
		if suffix, _ := publicsuffix.PublicSuffix(host); suffix == host {
			return Origin{}, fmt.Errorf("a wildcard cannot stand directly under a public suffix, as in *.co.uk or *.github.io")
		}
		if _, found := slices.BinarySearch(suffixParents[:], host); found {
			return Origin{}, fmt.Errorf("a wildcard cannot stand before %s: public suffixes lie under it, so it would admit other registrable domains", host)
		}
	}
	if pattern && !o.wild && isLoopback(host) && o.port == "" {
		return Origin{}, fmt.Errorf("localhost origins need an explicit port")
	}
	o.host = host
	return o, nil
}

// endsInNumber reports whether the last label of host is a number as the
// WHATWG URL standard reads one (decimal digits, or "0x" and hex digits):
// browsers parse such a host as an IPv4 address, so that "*.0.0.1" would
// stand for addresses such as 127.0.0.1.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	digits := "0123456789"
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		last, digits = hex, "0123456789abcdef"
		if last == "" {
			return true
		}
	}
	return last != "" && strings.Trim(last, digits) == ""
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// validHost accepts DNS names of letters, digits and hyphens, and IP
// addresses.
func validHost(host string) bool {
	return net.ParseIP(host) != nil || validName(host)
}

// validName accepts DNS names of letters, digits and hyphens (dotted IPv4
// addresses among them).
func validName(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
