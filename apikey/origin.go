package apikey

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

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
//     "https://example.com" itself. The wildcard must stand in front of a
//     registrable domain: never directly under a public suffix of the
//     Public Suffix List ("https://*.co.uk", "https://*.github.io"), nor in
//     front of a host that ends in a number, which browsers read as an IP
//     address ("https://*.0.0.1")
//   - localhost, 127.0.0.1 or [::1] with an explicit port, over http or https
//   - AnyOrigin, "*": every http or https origin (see AnyOrigin)
//
// Entries are case-insensitive and normalised to lower case; a default port
// (":443" for https, ":80" for http) is dropped.
type Origin struct {
	scheme string // "http" or "https"
	host   string // exact host, or the suffix after "*." for a wildcard
	port   string // "" for the scheme's default port
	wild   bool
	any    bool // AnyOrigin; the other fields are empty
}

// ParseOrigin parses an allowed-origin entry. Errors wrap ErrInvalidOrigin.
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

// ValidateOrigins checks every entry of an allowed-origin list and returns
// them normalised (AnyOrigin stays "*").
func ValidateOrigins(entries []string) ([]string, error) {
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
// Malformed origins (including "null") never match, not even AnyOrigin.
func (o Origin) Match(origin string) bool {
	if len(origin) > 253+20 {
		return false
	}
	req, err := parseOrigin(origin, false)
	if o.any || err != nil {
		return o.any && err == nil
	}
	if req.scheme != o.scheme || req.port != o.port {
		return false
	}
	if !o.wild {
		return req.host == o.host
	}
	return len(req.host) > len(o.host)+1 && strings.HasSuffix(req.host, "."+o.host)
}

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
		// every GitHub Pages site.
		if suffix, _ := publicsuffix.PublicSuffix(host); suffix == host {
			return Origin{}, fmt.Errorf("a wildcard cannot stand directly under a public suffix, as in *.co.uk or *.github.io")
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
	if net.ParseIP(host) != nil {
		return true
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
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
