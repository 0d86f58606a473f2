package apikey

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/publicsuffix"
)

func TestParseOrigin(t *testing.T) {
	valid := map[string]string{
		"https://app.example.com":       "https://app.example.com",
		"HTTPS://App.Example.COM":       "https://app.example.com",
		"https://app.example.com:443":   "https://app.example.com",
		"https://app.example.com:8443":  "https://app.example.com:8443",
		"http://example.com:80":         "http://example.com",
		"https://*.example.com":         "https://*.example.com",
		"http://localhost:3000":         "http://localhost:3000",
		"https://localhost:8443":        "https://localhost:8443",
		"http://127.0.0.1:5173":         "http://127.0.0.1:5173",
		"http://[::1]:8080":             "http://[::1]:8080",
		"https://192.0.2.10":            "https://192.0.2.10",
		"https://xn--bcher-kva.example": "https://xn--bcher-kva.example",
		"*":                             "*",
	}
	for entry, want := range valid {
		o, err := ParseOrigin(entry)
		if assert.NoError(t, err, entry) {
			assert.Equal(t, want, o.String(), entry)
		}
	}
	invalid := []string{
		"", "example.com", "**", " *", "*.*", "https://*", "https://*.com", "https://a.*.example.com",
		"ftp://example.com", "https://example.com/", "https://example.com/path",
		"https://example.com?q=1", "https://example.com#x", "https://user@example.com",
		"https://exa mple.com", "https://example.com:0", "https://example.com:65536",
		"https://example.com:", "http://localhost", "null", "https://-bad.example.com",
		"https://*.192.0.2.1", "javascript:alert(1)", "https://example.com:08080",
	}
	for _, entry := range invalid {
		_, err := ParseOrigin(entry)
		assert.ErrorIs(t, err, ErrInvalidOrigin, entry)
	}
}

// TestWildcardOrigins checks that a wildcard stands only in front of a
// registrable domain: never directly under a public suffix (from the Public
// Suffix List, its private section included), nor in front of a host that
// ends like an IP address, which browsers would read as one.
func TestWildcardOrigins(t *testing.T) {
	tests := []struct {
		entry string
		ok    bool
	}{
		{"https://*.example.com", true},
		{"https://*.example.co.uk", true},
		{"https://*.foo.github.io", true},
		{"https://*.app.example.com:8443", true},
		{"http://*.example.org", true},
		{"https://*.example.internal", true}, // not a listed suffix
		{"https://*.www.ck", true},           // an exception to the rule *.ck
		{"https://*.example.123x", true},
		{"https://*.0.0.1", false},
		{"https://*.0.1", false},
		{"https://*.1.2.3.4", false},
		{"https://*.2.3.4:8443", false},
		{"https://*.example.123", false},
		{"https://*.example.0x7f", false},
		{"https://*.example.0x", false},
		{"https://*.com", false},
		{"https://*.co.uk", false},
		{"http://*.co.uk", false},
		{"https://*.co.uk:8443", false},
		{"https://*.github.io", false},
		{"https://*.blogspot.com", false},
		{"https://*.s3.amazonaws.com", false},
		{"https://*.foo.ck", false}, // under the rule *.ck
		{"https://*.app.example.co.uk", true},
		{"https://*.bucket.s3.amazonaws.com", true}, // a registrable domain
		{"https://*.x.app.example.co.uk:8443", true},
		// Public suffixes lie under these, from the list's private section:
		// s3.amazonaws.com, blob.core.windows.net, *.digitaloceanspaces.com.
		{"https://*.amazonaws.com", false},
		{"https://*.windows.net", false},
		{"https://*.core.windows.net", false},
		{"https://*.digitaloceanspaces.com", false},
		{"https://*.compute.amazonaws.com", false},
		{"https://*.eu-west-1.compute.amazonaws.com", false}, // itself a suffix by *.compute
		{"http://*.amazonaws.com:8080", false},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			o, err := ParseOrigin(tt.entry)
			if !tt.ok {
				require.ErrorIs(t, err, ErrInvalidOrigin)
				_, err = ValidateOrigins([]string{tt.entry})
				require.ErrorIs(t, err, ErrInvalidOrigin)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.entry, o.String())
		})
	}
}

// TestAnyOrigin checks the entry "*": it admits every well-formed http or
// https origin, and nothing else.
func TestAnyOrigin(t *testing.T) {
	o, err := ParseOrigin(AnyOrigin)
	require.NoError(t, err)
	assert.True(t, o.Any())
	assert.Equal(t, "*", o.String())
	normalised, err := ValidateOrigins([]string{"*", "https://app.example.com"})
	require.NoError(t, err)
	assert.Equal(t, []string{"*", "https://app.example.com"}, normalised)
	exact, err := ParseOrigin("https://app.example.com")
	require.NoError(t, err)
	assert.False(t, exact.Any())

	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"http://localhost:3000", true},
		{"https://127.0.0.1:8443", true},
		{"http://[::1]:8080", true},
		{"https://evil.example", true},
		{"null", false},
		{"", false},
		{"*", false},
		{"file://", false},
		{"ftp://example.com", false},
		{"chrome-extension://abcdef", false},
		{"https://app.example.com/", false},
		{"https://app.example.com/path", false},
		{"https://user@app.example.com", false},
		{"https://exa mple.com", false},
		{"https://*.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			assert.Equal(t, tt.want, o.Match(tt.origin))
		})
	}
}

func TestOriginMatch(t *testing.T) {
	tests := []struct {
		pattern string
		origin  string
		want    bool
	}{
		{"https://app.example.com", "https://app.example.com", true},
		{"https://app.example.com", "https://APP.example.com", true},
		{"https://app.example.com", "https://app.example.com:443", true},
		{"https://app.example.com", "http://app.example.com", false},
		{"https://app.example.com", "https://app.example.com:8443", false},
		{"https://app.example.com", "https://evil-app.example.com", false},
		{"https://app.example.com", "https://app.example.com.evil.com", false},
		{"https://*.example.com", "https://a.example.com", true},
		{"https://*.example.com", "https://a.b.example.com", true},
		{"https://*.example.com", "https://example.com", false},
		{"https://*.example.com", "https://evilexample.com", false},
		{"https://*.example.com", "https://a.example.com.evil.com", false},
		{"https://*.example.com", "http://a.example.com", false},
		{"http://localhost:3000", "http://localhost:3000", true},
		{"http://localhost:3000", "http://localhost:3001", false},
		{"http://localhost:3000", "http://localhost", false},
		{"http://localhost:3000", "null", false},
		{"http://localhost:3000", "", false},
		{"http://localhost:3000", "http://localhost:3000/", false},
	}
	for _, tt := range tests {
		o, err := ParseOrigin(tt.pattern)
		require.NoError(t, err)
		assert.Equal(t, tt.want, o.Match(tt.origin), "%s ~ %s", tt.pattern, tt.origin)
	}
}

func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"https://app.example.com", "https://*.example.com", "http://localhost:3000", "http://[::1]:1", "null", "https://a.b:65535", "*", "https://*.co.uk", "https://*.0.0.1"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		o, err := ParseOrigin(pattern)
		if err != nil {
			return
		}
		again, err := ParseOrigin(o.String())
		if err != nil || again != o {
			t.Fatalf("%q normalises to %q, which does not parse back the same", pattern, o.String())
		}
		if suffix, _ := publicsuffix.PublicSuffix(o.host); o.wild && (endsInNumber(o.host) || suffix == o.host) {
			t.Fatalf("%q: a wildcard in front of a number or a public suffix", pattern)
		}
		if o.Match(origin) && !o.wild && !o.any {
			req, err := parseOrigin(origin, false)
			if err != nil || req != o {
				t.Fatalf("%q matched %q", pattern, origin)
			}
		}
	})
}

// TestWildcardRefusalNamesTheEntry checks that a refused wildcard is named
// by its position, and by the domain of the Public Suffix List that
// refuses it.
func TestWildcardRefusalNamesTheEntry(t *testing.T) {
	_, err := ValidateOrigins([]string{"https://app.example.com", "https://*.amazonaws.com"})
	require.ErrorIs(t, err, ErrInvalidOrigin)
	assert.Contains(t, err.Error(), "entry 2")
	assert.Contains(t, err.Error(), "amazonaws.com")
}

// TestWildcardAdmitsOnlyItsRegistrableDomain checks the rule at match time:
// a wildcard admits a host only when the host's registrable domain (eTLD+1,
// private section included) is the wildcard's own, so that an entry saved
// before the save-time rule, or a suffix added to the list later, never
// admits another registrable domain.
func TestWildcardAdmitsOnlyItsRegistrableDomain(t *testing.T) {
	stored := func(base string) Origin { // as loaded, without ParseOrigin's checks
		return Origin{scheme: "https", host: base, wild: true}
	}
	parsed := func(entry string) Origin {
		o, err := ParseOrigin(entry)
		require.NoError(t, err)
		return o
	}
	tests := []struct {
		name   string
		entry  Origin
		origin string
		want   bool
	}{
		{"bucket under *.amazonaws.com", stored("amazonaws.com"), "https://attacker-bucket.s3.amazonaws.com", false},
		{"bucket under *.s3.amazonaws.com", stored("s3.amazonaws.com"), "https://attacker-bucket.s3.amazonaws.com", false},
		{"blob under *.windows.net", stored("windows.net"), "https://attacker.blob.core.windows.net", false},
		{"blob under *.core.windows.net", stored("core.windows.net"), "https://attacker.blob.core.windows.net", false},
		{"space under *.digitaloceanspaces.com", stored("digitaloceanspaces.com"), "https://attacker.nyc3.digitaloceanspaces.com", false},
		{"site under *.github.io", stored("github.io"), "https://attacker.github.io", false},
		{"domain under *.co.uk", stored("co.uk"), "https://attacker.co.uk", false},
		{"deep under *.co.uk", stored("co.uk"), "https://www.attacker.co.uk", false},
		{"AWS's own host", stored("amazonaws.com"), "https://console.amazonaws.com", true},
		{"subdomain", parsed("https://*.example.com"), "https://a.example.com", true},
		{"deep subdomain", parsed("https://*.example.com"), "https://a.b.example.com", true},
		{"under co.uk", parsed("https://*.app.example.co.uk"), "https://x.app.example.co.uk", true},
		{"deep under co.uk", parsed("https://*.app.example.co.uk"), "https://y.x.app.example.co.uk", true},
		{"the base itself", parsed("https://*.app.example.co.uk"), "https://app.example.co.uk", false},
		{"a sibling", parsed("https://*.app.example.co.uk"), "https://app2.example.co.uk", false},
		{"bucket subdomain", parsed("https://*.bucket.s3.amazonaws.com"), "https://a.bucket.s3.amazonaws.com", true},
		{"other bucket", parsed("https://*.bucket.s3.amazonaws.com"), "https://other.s3.amazonaws.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.entry.Match(tt.origin))
			small := NewOriginSet(tt.entry)
			assert.Equal(t, tt.want, small.Allows(tt.origin), "small set")
			large := NewOriginSet(append(filler(t, 20), tt.entry)...)
			require.Nil(t, large.small)
			assert.Equal(t, tt.want, large.Allows(tt.origin), "large set")
		})
	}
}

// filler returns n distinct exact entries that admit none of the test
// origins.
func filler(t testing.TB, n int) []Origin {
	origins := make([]Origin, n)
	for i := range origins {
		o, err := ParseOrigin(fmt.Sprintf("https://filler-%d.example.net", i))
		require.NoError(t, err)
		origins[i] = o
	}
	return origins
}

// TestOriginListBound checks that a list holds at most MaxOrigins entries.
func TestOriginListBound(t *testing.T) {
	entries := func(n int) []string {
		list := make([]string, n)
		for i := range list {
			list[i] = fmt.Sprintf("https://app-%d.example.com", i)
		}
		return list
	}
	valid, err := ValidateOrigins(entries(MaxOrigins))
	require.NoError(t, err)
	assert.Len(t, valid, MaxOrigins)
	set, err := ParseOriginSet(entries(MaxOrigins))
	require.NoError(t, err)
	assert.Equal(t, MaxOrigins, set.Len())

	_, err = ValidateOrigins(entries(MaxOrigins + 1))
	require.ErrorIs(t, err, ErrTooManyOrigins)
	require.ErrorIs(t, err, ErrInvalidOrigin)
	assert.Contains(t, err.Error(), fmt.Sprint(MaxOrigins))
	_, err = ParseOriginSet(entries(MaxOrigins + 1))
	require.ErrorIs(t, err, ErrTooManyOrigins)
}

// TestOriginSet checks a set's lookups, small (scanned) and large (looked
// up), against the entries' own Match.
func TestOriginSet(t *testing.T) {
	entries := []string{"https://app.example.com", "https://*.example.org", "http://localhost:3000", "https://app.example.com:8443", "http://[::1]:8080"}
	origins := []string{
		"https://app.example.com", "https://APP.example.com:443", "https://app.example.com:8443", "http://app.example.com",
		"https://a.example.org", "https://a.b.example.org", "https://example.org", "http://a.example.org",
		"http://localhost:3000", "http://localhost:3001", "http://[::1]:8080", "http://[::1]:8081",
		"null", "", "https://app.example.com/", "https://evil.com",
	}
	small, err := ParseOriginSet(entries)
	require.NoError(t, err)
	require.NotNil(t, small.small)
	parsed := make([]Origin, len(entries))
	for i, e := range entries {
		parsed[i], err = ParseOrigin(e)
		require.NoError(t, err)
	}
	large := NewOriginSet(append(append(filler(t, 20), parsed...), parsed...)...)
	require.NotNil(t, large.index)
	assert.Equal(t, 20+len(entries), large.Len())
	for _, origin := range origins {
		t.Run(origin, func(t *testing.T) {
			want := slices.ContainsFunc(parsed, func(o Origin) bool { return o.Match(origin) })
			assert.Equal(t, want, small.Allows(origin), "small")
			assert.Equal(t, want, large.Allows(origin), "large")
		})
	}
	assert.True(t, small.Allows("https://a.example.org"))
	assert.False(t, small.Allows("https://example.org"))

	var empty OriginSet
	assert.False(t, empty.Allows("https://app.example.com"))
	assert.Equal(t, 0, empty.Len())
	anySet, err := ParseOriginSet([]string{"*", "https://app.example.com", "*"})
	require.NoError(t, err)
	assert.Equal(t, 2, anySet.Len())
	assert.True(t, anySet.Allows("https://evil.example"))
	assert.False(t, anySet.Allows("null"))
	assert.ElementsMatch(t, []string{"*", "https://app.example.com"}, slices.Collect(func(yield func(string) bool) {
		for o := range anySet.All() {
			if !yield(o.String()) {
				return
			}
		}
	}))
	_, err = ParseOriginSet([]string{"https://ok.example.com", "https://*.amazonaws.com"})
	require.ErrorIs(t, err, ErrInvalidOrigin)
	assert.Contains(t, err.Error(), "entry 2")
}

// TestParseRequestOrigin checks the parser of Origin header values.
func TestParseRequestOrigin(t *testing.T) {
	tests := []struct {
		origin, want, site string
	}{
		{"https://app.example.com", "https://app.example.com", "example.com"},
		{"HTTPS://App.Example.COM:443", "https://app.example.com", "example.com"},
		{"http://app.example.com:80", "http://app.example.com", "example.com"},
		{"https://app.example.com:8443", "https://app.example.com:8443", "example.com"},
		{"https://a.b.example.co.uk", "https://a.b.example.co.uk", "example.co.uk"},
		{"https://attacker-bucket.s3.amazonaws.com", "https://attacker-bucket.s3.amazonaws.com", "attacker-bucket.s3.amazonaws.com"},
		{"https://co.uk", "https://co.uk", ""},
		{"http://localhost:3000", "http://localhost:3000", ""},
		{"http://127.0.0.1:5173", "http://127.0.0.1:5173", ""},
		{"http://[::1]:8080", "http://[::1]:8080", ""},
		{"https://[2001:DB8::1]", "https://[2001:db8::1]", ""},
		{"null", "", ""},
		{"https://\u212Aeys.example.com", "", ""}, // the Kelvin sign lowers to k: not ASCII, refused
		{"https://bücher.example", "", ""},
		{"", "", ""},
		{"*", "", ""},
		{"https://*.example.com", "", ""},
		{"ftp://example.com", "", ""},
		{"https://example.com/", "", ""},
		{"https://example.com?x", "", ""},
		{"https://example.com#x", "", ""},
		{"https://user@example.com", "", ""},
		{"https://example.com:", "", ""},
		{"https://example.com:0", "", ""},
		{"https://example.com:080", "", ""},
		{"https://example.com:65536", "", ""},
		{"https://example.com.", "", ""},
		{"https://exa mple.com", "", ""},
		{"https://[::1", "", ""},
		{"https://[::1]x", "", ""},
		{"https://[fe80::1%25en0]", "", ""},
		{"https://[1.2.3.4]", "", ""},
		{"https://" + strings.Repeat("a.", 140) + "com", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			r, ok := ParseRequestOrigin(tt.origin)
			assert.Equal(t, tt.want != "", ok)
			if ok {
				assert.Equal(t, tt.want, r.String())
				assert.Equal(t, tt.site, r.registrable())
			}
		})
	}
	var zero RequestOrigin
	assert.Empty(t, slices.Collect(zero.Candidates()))
	r, ok := ParseRequestOrigin("https://a.b.example.co.uk:8443")
	require.True(t, ok)
	var got, admit []string
	for o := range r.Candidates() {
		got = append(got, o.String())
		if o.Admits(r) {
			admit = append(admit, o.String())
		}
	}
	assert.Equal(t, []string{"*", "https://a.b.example.co.uk:8443", "https://*.b.example.co.uk:8443", "https://*.example.co.uk:8443", "https://*.co.uk:8443"}, got)
	assert.Equal(t, got[:4], admit)
	ip, ok := ParseRequestOrigin("http://[::1]:8080")
	require.True(t, ok)
	assert.Len(t, slices.Collect(ip.Candidates()), 2)
}

// TestSuffixParentsUpToDate checks that origin_suffixes.go is what
// gen_suffixes.go writes from the golang.org/x/net module in use: run "go
// generate ./apikey" when it fails after an upgrade of golang.org/x/net.
func TestSuffixParentsUpToDate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "suffixes.go")
	cmd := exec.Command("go", "run", "gen_suffixes.go", "-o", out)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, string(msg))
	want, err := os.ReadFile(out)
	require.NoError(t, err)
	got, err := os.ReadFile("origin_suffixes.go")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "origin_suffixes.go is stale: run go generate ./apikey")
	assert.True(t, slices.IsSorted(suffixParents[:]))
	for _, d := range []string{"amazonaws.com", "windows.net", "core.windows.net", "digitaloceanspaces.com"} {
		_, found := slices.BinarySearch(suffixParents[:], d)
		assert.True(t, found, d)
	}
}

// FuzzParseRequestOrigin checks the parser of Origin header values against
// the parser of allowed-origin entries (net/url based): whatever it
// accepts, the entry parser accepts the same; what the entry parser accepts
// it accepts too, except bracketed hosts that are no IPv6 address.
func FuzzParseRequestOrigin(f *testing.F) {
	for _, s := range []string{"https://app.example.com", "HTTP://A.B:8080", "http://[::1]:1", "null", "https://a.b:65535", "https://x.s3.amazonaws.com", "https://[v1.fe]", "http://1.2.3.4:80", "https://a.co.uk"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		r, ok := ParseRequestOrigin(origin)
		old, err := parseOrigin(strings.ToLower(origin), false)
		if len(origin) > maxRequestOrigin {
			err = errors.New("too long")
		}
		if ok != (err == nil) && !(err == nil && strings.Contains(origin, "[")) {
			t.Fatalf("%q: request parser %v, entry parser %v", origin, ok, err)
		}
		if !ok {
			return
		}
		if r.origin != old {
			t.Fatalf("%q: %+v against %+v", origin, r.origin, old)
		}
		if site := r.registrable(); site != "" && !strings.HasSuffix("."+r.origin.host, "."+site) {
			t.Fatalf("%q: site %q", origin, site)
		}
		if !NewOriginSet(Origin{any: true}).AllowsRequest(r) || !NewOriginSet(r.origin).AllowsRequest(r) {
			t.Fatalf("%q: not admitted by itself or by *", origin)
		}
		var candidates []Origin
		for o := range r.Candidates() {
			if o.Admits(r) {
				candidates = append(candidates, o)
			}
		}
		for _, o := range []Origin{{any: true}, r.origin, {scheme: r.origin.scheme, host: r.registrable(), port: r.origin.port, wild: true}} {
			if o.Admits(r) && !slices.Contains(candidates, o) {
				t.Fatalf("%q: %s admits it and is no candidate", origin, o)
			}
		}
	})
}

// BenchmarkOriginSetAllows checks a refused origin against a set of n
// entries: the cost must not grow with n.
func BenchmarkOriginSetAllows(b *testing.B) {
	for _, n := range []int{1, MaxOrigins, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			origins := filler(b, n)
			origins[0] = Origin{scheme: "https", host: "example.com", wild: true}
			set := NewOriginSet(origins...)
			b.ReportAllocs()
			for b.Loop() {
				if set.Allows("https://app.b.c.evil.example.org") {
					b.Fatal("allowed")
				}
			}
		})
	}
}

// TestOriginSetAllowsDoesNotAllocate checks that a set parses a request's
// origin once and looks it up without allocating, whatever its length (a
// scan of the entries, each parsing the origin, allocated per entry).
func TestOriginSetAllowsDoesNotAllocate(t *testing.T) {
	for _, n := range []int{1, smallOriginSet, MaxOrigins, 2000} {
		origins := filler(t, n)
		origins[0] = Origin{scheme: "https", host: "example.com", wild: true}
		set := NewOriginSet(origins...)
		for _, origin := range []string{"https://app.b.c.evil.example.org", "https://filler-1.example.net:8443", "null"} {
			assert.Zero(t, testing.AllocsPerRun(50, func() { set.Allows(origin) }), "%d entries, %s", n, origin)
		}
		assert.True(t, set.Allows("https://a.example.com"))
	}
}
