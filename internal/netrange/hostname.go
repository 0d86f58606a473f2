package netrange

import (
	"fmt"
	"strings"
)

// HostnameProblem returns why host is not a DNS name that outbound
// requests may be addressed to, as a phrase to follow the field's name
// ("is longer than 253 bytes"), or "" if it is one. A DNS name is labels
// of ASCII letters, digits and hyphens (punycode for international names),
// none empty, longer than 63 bytes or starting or ending with '-', at most
// 253 bytes in all, with an optional final dot. Its last label is not a
// number (decimal, or hexadecimal with 0x): resolvers read such a name as
// an IPv4 address in another notation ("2130706433", "0x7f.1", "127.1").
// HostnameProblem judges the name's form only; whether it is localhost or
// resolves to an address in Forbidden is the caller's to check.
func HostnameProblem(host string) string {
	name := strings.TrimSuffix(host, ".")
	if len(name) > 253 {
		return "is longer than 253 bytes"
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "has an empty label or one longer than 63 bytes"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "has a label that starts or ends with '-'"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
				return fmt.Sprintf("holds %q: a DNS name is letters, digits and '-'", c)
			}
		}
	}
	last := strings.ToLower(labels[len(labels)-1])
	hex, isHex := strings.CutPrefix(last, "0x")
	if strings.Trim(last, "0123456789") == "" || isHex && strings.Trim(hex, "0123456789abcdef") == "" {
		return "is a number but not an IP address"
	}
	return ""
}
