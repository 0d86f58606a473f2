package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"syscall"
	"time"
)

// Bounds and defaults of Options.
const (
	// DefaultTimeout bounds one attempt, from dialing to the last byte of
	// the response read, when Options.Timeout is zero.
	DefaultTimeout = 15 * time.Second
	// MaxTimeout is the largest Options.Timeout.
	MaxTimeout = 5 * time.Minute
	// DefaultMaxResponseBody is how much of a response body an attempt
	// keeps when Options.MaxResponseBody is zero; the rest is discarded.
	DefaultMaxResponseBody = 64 << 10
	// MaxResponseBodyLimit is the largest Options.MaxResponseBody.
	MaxResponseBodyLimit = 1 << 20
	// maxResponseHeader bounds the response header, in bytes.
	maxResponseHeader = 64 << 10
	// maxAddrs bounds how many resolved addresses one dial tries.
	maxAddrs = 8
)

// Resolver looks up the addresses of a host name; *net.Resolver implements
// it. Tests inject one so that no test touches real DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure NewClient and NewSender. The zero value is the strict
// default: https only, no internal address, 15 s per attempt, 64 KiB of
// response kept, the system resolver and roots, no proxy.
type Options struct {
	// Policy says which endpoints may be reached; it is checked when the
	// URL is parsed and again, on the address actually dialed, for every
	// connection.
	Policy Policy
	// Timeout bounds one attempt in all: dial, TLS, request, response
	// headers and body. Zero means DefaultTimeout; at most MaxTimeout.
	Timeout time.Duration
	// MaxResponseBody bounds how much of a response body a Sender reads
	// and keeps (Attempt.Body); the rest is discarded unread. Zero means
	// DefaultMaxResponseBody; at most MaxResponseBodyLimit.
	MaxResponseBody int
	// Resolver looks up endpoint host names; nil means net.DefaultResolver.
	Resolver Resolver
	// Proxy, if not nil, chooses a proxy per request, as
	// http.Transport.Proxy; nil means no proxy, whatever the environment
	// (HTTPS_PROXY) says. The dialer then connects to the proxy, so the
	// proxy's address must be one the Policy admits (list it in
	// Policy.Allow), and the proxy must apply the same rules to the
	// endpoints: this process no longer sees their addresses.
	Proxy func(*http.Request) (*url.URL, error)
	// TLSConfig, if not nil, is cloned for the transport (custom roots,
	// client certificates); nil means the system roots.
	TLSConfig *tls.Config
	// UserAgent is sent with every request; empty means "keystile-webhook".
	UserAgent string
	// Now is the clock that stamps messages without a Timestamp; nil means
	// time.Now.
	Now func() time.Time
}

// withDefaults validates o and fills its zero values.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Timeout < 0 || o.Timeout > MaxTimeout:
		return o, fmt.Errorf("webhook: options: Timeout must be 0 to %s", MaxTimeout)
	case o.MaxResponseBody < 0 || o.MaxResponseBody > MaxResponseBodyLimit:
		return o, fmt.Errorf("webhook: options: MaxResponseBody must be 0 to %d", MaxResponseBodyLimit)
	}
	for i, p := range o.Policy.Allow {
		if !p.IsValid() {
			return o, fmt.Errorf("webhook: options: Policy.Allow[%d] is not an address range", i)
		}
	}
	for i, p := range o.Policy.Ports {
		if p == 0 {
			return o, fmt.Errorf("webhook: options: Policy.Ports[%d] is 0", i)
		}
	}
	// Copies: later changes to the caller's slices do not apply.
	o.Policy.Allow, o.Policy.Ports = slices.Clone(o.Policy.Allow), slices.Clone(o.Policy.Ports)
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxResponseBody == 0 {
		o.MaxResponseBody = DefaultMaxResponseBody
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.UserAgent == "" {
		o.UserAgent = "keystile-webhook"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// NewClient returns an http.Client for requests to hostile URLs: every
// connection's address is checked with o.Policy when it is dialed
// (net.Dialer.ControlContext sees the address the socket connects to,
// after name resolution), redirects are not followed (the 3xx response is
// returned), each request is bounded by o.Timeout, and no proxy is used
// unless o.Proxy is set. The client does not check the URL: use
// Policy.ParseEndpoint first (Sender does). It returns an error only for
// invalid Options.
func NewClient(o Options) (*http.Client, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return newClient(o), nil
}

func newClient(o Options) *http.Client {
	policy := o.Policy
	g := &guard{resolver: o.Resolver, dialer: &net.Dialer{
		Timeout:        o.Timeout,
		KeepAlive:      30 * time.Second,
		ControlContext: policy.control,
	}}
	var tlsConfig *tls.Config
	if o.TLSConfig != nil {
		tlsConfig = o.TLSConfig.Clone()
	}
	transport := &http.Transport{
		Proxy:                  o.Proxy,
		DialContext:            g.dialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxResponseHeaderBytes: maxResponseHeader,
		ForceAttemptHTTP2:      true,
		DisableCompression:     true, // MaxResponseBody counts bytes as received
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// guard resolves names with its resolver and dials with its dialer, whose
// ControlContext admits only the addresses of its policy.
type guard struct {
	resolver Resolver
	dialer   *net.Dialer
}

// dialContext resolves the host with the guard's resolver and dials its
// addresses in turn. It checks nothing itself: the dialer's ControlContext
// (Policy.control) checks each address just before the socket connects, so
// no resolution, cache or later code path can bypass it.
func (g *guard) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = g.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
		if len(addrs) > maxAddrs {
			addrs = addrs[:maxAddrs]
		}
	}
	var errs []error
	for _, a := range addrs {
		conn, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(a.WithZone("").String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// control is a net.Dialer.ControlContext: it runs after the socket is
// made and before it connects, with the address it connects to, and
// refuses what the policy does not admit (and any network but TCP).
func (p *Policy) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" && network != "tcp" {
		return fmt.Errorf("%w: network %s", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q is not an address", ErrForbiddenAddress, address)
	}
	if err := p.CheckAddr(ap.Addr()); err != nil {
		return err
	}
	return p.checkPort(ap.Port())
}
