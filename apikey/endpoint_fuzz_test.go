package apikey_test

import (
	"errors"
	"net/netip"
	"net/url"
	"testing"

	"github.com/keystile/keystile/apikey"
)

// FuzzValidateEndpointURL: a tenant's endpoint URL is untrusted input.
// ValidateEndpointURL never panics, refuses only with ErrInvalidEndpoint,
// and what it accepts without allowInternal is an https URL of bounded
// length with a host, no user information and no internal IP literal.
func FuzzValidateEndpointURL(f *testing.F) {
	for _, seed := range []string{
		"https://hooks.example.com/keystile", "http://hooks.example.com/", "https://user:pw@example.com/",
		"https://127.0.0.1/", "https://[::1]:8443/x", "https://[fe80::1%25eth0]/", "https://10.0.0.1/",
		"https://169.254.169.254/latest", "https://localhost./", "https://a.localhost/", "https:///path",
		"https://example.com/#frag", "mailto:x@example.com", "https://[::ffff:127.0.0.1]/", "",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, raw string, allowInternal bool) {
		err := apikey.ValidateEndpointURL(raw, allowInternal)
		if err != nil {
			if !errors.Is(err, apikey.ErrInvalidEndpoint) {
				t.Fatalf("error %v does not wrap ErrInvalidEndpoint", err)
			}
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil || len(raw) > apikey.MaxEndpointURL || u.User != nil || u.Hostname() == "" || u.Fragment != "" {
			t.Fatalf("accepted %q", raw)
		}
		if allowInternal {
			return
		}
		if u.Scheme != "https" {
			t.Fatalf("accepted scheme %q", u.Scheme)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
			ip = ip.Unmap()
			if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
				t.Fatalf("accepted an internal address: %q", raw)
			}
		}
	})
}
