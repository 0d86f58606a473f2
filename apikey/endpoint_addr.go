package apikey

import "strings"

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
