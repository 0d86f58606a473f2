package netrange

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestHostnameProblem: every rule of a DNS name, at its bounds, with the
// phrase each refusal reports.
func TestHostnameProblem(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(label63+".", 3) + strings.Repeat("b", 61) // 4*64-3 = 253 bytes
	for _, tc := range []struct {
		name string
		host string
		want string // a phrase of the problem, or "" for a DNS name
	}{
		{"plain", "hooks.example.com", ""},
		{"one label", "intranet", ""},
		{"final dot", "hooks.example.com.", ""},
		{"upper case", "Hooks.Example.COM", ""},
		{"hyphen inside", "my-hooks.example.com", ""},
		{"punycode", "xn--bcher-kva.example", ""},
		{"digits, not last", "123.example.com", ""},
		{"last label mixed", "a.1b", ""},
		{"last label not hex", "a.0xg1", ""},
		{"63-byte label", label63 + ".example", ""},
		{"253 bytes", name253, ""},
		{"253 bytes and a dot", name253 + ".", ""},
		{"254 bytes", name253 + "b", "is longer than 253 bytes"},
		{"empty", "", "has an empty label or one longer than 63 bytes"},
		{"only a dot", ".", "has an empty label or one longer than 63 bytes"},
		{"empty label", "a..example", "has an empty label or one longer than 63 bytes"},
		{"leading dot", ".example.com", "has an empty label or one longer than 63 bytes"},
		{"two final dots", "example.com..", "has an empty label or one longer than 63 bytes"},
		{"64-byte label", label63 + "a.example", "has an empty label or one longer than 63 bytes"},
		{"leading hyphen", "-hooks.example.com", "has a label that starts or ends with '-'"},
		{"trailing hyphen", "hooks-.example.com", "has a label that starts or ends with '-'"},
		{"underscore", "a_b.example.com", `holds '_': a DNS name is letters, digits and '-'`},
		{"space", "a b.example", `holds ' ': a DNS name is letters, digits and '-'`},
		{"percent", "a%25b.example", `holds '%': a DNS name is letters, digits and '-'`},
		{"non-ASCII", "bücher.example", `holds 'Ã': a DNS name is letters, digits and '-'`},
		{"decimal IPv4", "2130706433", "is a number but not an IP address"},
		{"short IPv4", "127.1", "is a number but not an IP address"},
		{"dotted IPv4 and a dot", "10.0.0.1.", "is a number but not an IP address"},
		{"octal IPv4", "0177.0.0.1", "is a number but not an IP address"},
		{"hex IPv4", "0x7f000001", "is a number but not an IP address"},
		{"hex, upper case", "0X7F.1", "is a number but not an IP address"},
		{"hex last label", "a.0xbeef", "is a number but not an IP address"},
		{"bare 0x, read as 0", "a.0x", "is a number but not an IP address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, HostnameProblem(tc.host))
		})
	}
}
