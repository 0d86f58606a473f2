package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey/webhook"
)

// fakeDNS is a Resolver that answers from a table, so that no test touches
// real DNS: each lookup of a name returns its next answer, and the last
// one from then on. An unknown name does not resolve.
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][]string // name -> answers, each a comma-separated list
	lookups map[string]int
}

func newDNS(answers map[string][]string) *fakeDNS {
	return &fakeDNS{answers: answers, lookups: map[string]int{}}
}

func (d *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list, ok := d.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	answer := list[min(d.lookups[host], len(list)-1)]
	d.lookups[host]++
	var addrs []netip.Addr
	for _, a := range strings.Split(answer, ",") {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	return addrs, nil
}

func (d *fakeDNS) count(host string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lookups[host]
}

// receiver is an httptest server that counts its requests.
type receiver struct {
	*httptest.Server
	hits atomic.Int64
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) port() string { return strings.TrimPrefix(rc.URL, "http://127.0.0.1:") }

// at returns the receiver's URL with host in place of its address.
func (rc *receiver) at(host string) string {
	return "http://" + net.JoinHostPort(host, rc.port()) + "/hook"
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "thanks") }

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func newSender(t *testing.T, o webhook.Options) *webhook.Sender {
	t.Helper()
	if o.Resolver == nil {
		o.Resolver = newDNS(nil)
	}
	s, err := webhook.NewSender(o)
	require.NoError(t, err)
	return s
}

func message(id string) webhook.Message {
	return webhook.Message{ID: id, Body: []byte(`{"type":"key.rotated","data":{"key":"server-abc"}}`)}
}

// TestSendDelivers sends over TLS to a receiver that verifies the
// signature, reached by name through the resolver.
func TestSendDelivers(t *testing.T) {
	secret := webhook.GenerateSecret()
	now := time.Now().Truncate(time.Second)
	var got http.Header
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v := webhook.Verifier{Secrets: []webhook.Secret{secret}}
		if _, err := v.Verify(r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got = r.Header.Clone()
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "queued")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dns := newDNS(map[string][]string{"example.com": {"127.0.0.1"}}) // the name in httptest's certificate
	s := newSender(t, webhook.Options{
		Policy:    webhook.Policy{Allow: loopback},
		Resolver:  dns,
		TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig,
		Now:       func() time.Time { return now },
	})
	a, err := s.Send(context.Background(), webhook.Endpoint{URL: "https://example.com:" + port + "/hook", Secrets: []webhook.Secret{secret}}, message("evt_1"))
	require.NoError(t, err)
	require.NoError(t, a.Err)
	assert.Equal(t, webhook.Delivered, a.Outcome)
	assert.Equal(t, http.StatusAccepted, a.Status)
	assert.Equal(t, "queued", string(a.Body))
	assert.False(t, a.Truncated)
	assert.Positive(t, a.Duration)
	assert.Equal(t, "evt_1", got.Get(webhook.HeaderID))
	assert.Equal(t, strconv.FormatInt(now.Unix(), 10), got.Get(webhook.HeaderTimestamp))
	assert.Equal(t, "application/json", got.Get("Content-Type"))
	assert.Equal(t, "keystile-webhook", got.Get("User-Agent"))
	assert.Equal(t, 1, dns.count("example.com"))
}

// TestSendRefusesForbiddenTargets is the SSRF table: names that resolve
// to forbidden addresses are refused when dialed, and the receiver
// listening there never sees a request.
func TestSendRefusesForbiddenTargets(t *testing.T) {
	rc := newReceiver(t, ok)
	dns := newDNS(map[string][]string{
		"loopback.test":  {"127.0.0.1"},
		"private.test":   {"10.0.0.1"},
		"metadata.test":  {"169.254.169.254"},
		"ipv6.test":      {"::1"},
		"ec2v6.test":     {"fd00:ec2::254"},
		"mapped.test":    {"::ffff:127.0.0.1"},
		"nat64.test":     {"64:ff9b::7f00:1"},
		"cgnat.test":     {"100.64.0.1"},
		"all-bad.test":   {"10.0.0.1,127.0.0.1,::1"},
		"unspecified.tt": {"0.0.0.0"},
	})
	s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true}, Resolver: dns, Timeout: 5 * time.Second})
	for host := range dns.answers {
		t.Run(host, func(t *testing.T) {
			a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.at(host), Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
			require.NoError(t, err, "the URL is a name: refused when dialed, not when parsed")
			require.ErrorIs(t, a.Err, webhook.ErrForbiddenAddress)
			assert.Equal(t, webhook.Failed, a.Outcome)
			assert.Zero(t, a.Status)

			_, err = s.CheckEndpoint(context.Background(), rc.at(host))
			require.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
			require.ErrorIs(t, err, webhook.ErrForbiddenAddress)
			assert.Contains(t, err.Error(), "url.host "+host+" resolves to ")
		})
	}
	for _, host := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "[fd00:ec2::254]", "[::ffff:127.0.0.1]"} {
		t.Run(host, func(t *testing.T) {
			_, err := s.Send(context.Background(), webhook.Endpoint{URL: "http://" + host + ":" + rc.port(), Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
			require.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
			require.ErrorIs(t, err, webhook.ErrForbiddenAddress)
		})
	}
	assert.Zero(t, rc.hits.Load(), "a forbidden target received a request")
}

// TestSendDNSRebinding: a name that resolves to a public address when the
// endpoint is registered and to loopback when the message is sent is
// refused, because the check is on the address dialed.
func TestSendDNSRebinding(t *testing.T) {
	rc := newReceiver(t, ok)
	dns := newDNS(map[string][]string{"rebind.test": {"93.184.215.14", "127.0.0.1"}})
	s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true}, Resolver: dns})
	_, err := s.CheckEndpoint(context.Background(), rc.at("rebind.test"))
	require.NoError(t, err, "registered while it resolves to a public address")

	a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.at("rebind.test"), Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
	require.NoError(t, err)
	require.ErrorIs(t, a.Err, webhook.ErrForbiddenAddress)
	assert.Contains(t, a.Err.Error(), "127.0.0.1 is loopback")
	assert.Equal(t, webhook.Failed, a.Outcome)
	assert.Equal(t, 2, dns.count("rebind.test"))
	assert.Zero(t, rc.hits.Load())
}

// TestSendTriesEachAddress: every resolved address is checked when it is
// dialed; a forbidden one is skipped and an admitted one after it used.
func TestSendTriesEachAddress(t *testing.T) {
	rc := newReceiver(t, ok)
	dns := newDNS(map[string][]string{"mixed.test": {"10.0.0.1,169.254.169.254,127.0.0.1"}})
	s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, Resolver: dns})
	a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.at("mixed.test"), Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
	require.NoError(t, err)
	require.NoError(t, a.Err)
	assert.Equal(t, webhook.Delivered, a.Outcome)
	assert.EqualValues(t, 1, rc.hits.Load())
}

// TestSendLoopbackNeedsOption: the receivers of these tests are reached
// only because the Policy says so.
func TestSendLoopbackNeedsOption(t *testing.T) {
	rc := newReceiver(t, ok)
	for _, tc := range []struct {
		name   string
		policy webhook.Policy
		want   webhook.Outcome
	}{
		{"strict", webhook.Policy{AllowHTTP: true}, webhook.Failed},
		{"other range allowed", webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, webhook.Failed},
		{"loopback allowed", webhook.Policy{AllowHTTP: true, Allow: loopback}, webhook.Delivered},
		{"internal allowed", webhook.Policy{AllowHTTP: true, AllowInternal: true}, webhook.Delivered},
		{"port not allowed", webhook.Policy{AllowHTTP: true, AllowInternal: true, Ports: []uint16{443}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := rc.hits.Load()
			s := newSender(t, webhook.Options{Policy: tc.policy, Resolver: newDNS(map[string][]string{"hooks.test": {"127.0.0.1"}})})
			a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.at("hooks.test"), Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
			if tc.want == 0 {
				require.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
				assert.Contains(t, err.Error(), "url.port")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, a.Outcome, "%v", a.Err)
			assert.Equal(t, tc.want == webhook.Delivered, rc.hits.Load() > before)
		})
	}
}

// TestSendHTTPSOnly: http endpoints need the explicit option.
func TestSendHTTPSOnly(t *testing.T) {
	rc := newReceiver(t, ok)
	s := newSender(t, webhook.Options{Policy: webhook.Policy{Allow: loopback}})
	_, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.URL, Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
	require.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
	assert.Contains(t, err.Error(), "url.scheme must be https")
	assert.Zero(t, rc.hits.Load())
}

func TestSendNoRedirect(t *testing.T) {
	target := newReceiver(t, ok)
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/elsewhere", status)
			})
			s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: loopback}})
			a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.URL, Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
			require.NoError(t, err)
			assert.Equal(t, status, a.Status)
			assert.Equal(t, webhook.Failed, a.Outcome)
		})
	}
	assert.Zero(t, target.hits.Load(), "a redirect was followed")
}

// TestSendHangingEndpoint: an endpoint that never answers, or stops in the
// middle of its body, costs one Timeout and is retried.
func TestSendHangingEndpoint(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name      string
		writeHead bool
		status    int
		want      webhook.Outcome
	}{
		{"no headers", false, 0, webhook.Retry},
		{"slow body", true, http.StatusOK, webhook.Delivered}, // the status is the answer
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if tc.writeHead {
					w.Header().Set("Content-Length", "100")
					io.WriteString(w, "partial")
					w.(http.Flusher).Flush()
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			t.Cleanup(func() { close(release) }) // before the receiver closes: cleanups run last first
			s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: loopback}, Timeout: timeout})
			a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.URL, Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
			require.NoError(t, err)
			require.Error(t, a.Err)
			var ne net.Error
			assert.True(t, errors.As(a.Err, &ne) && ne.Timeout() || errors.Is(a.Err, context.DeadlineExceeded), "%v", a.Err)
			assert.Equal(t, tc.want, a.Outcome)
			assert.Equal(t, tc.status, a.Status)
			// A correctness bound, far above the timeout: the attempt does
			// not wait for the endpoint.
			assert.Less(t, a.Duration, 20*timeout)
		})
	}
}

func TestSendCutsBody(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name      string
		limit     int
		body      string
		want      int
		truncated bool
	}{
		{"default limit", 0, big, webhook.DefaultMaxResponseBody, true},
		{"small limit", 10, big, 10, true},
		{"at the limit", 10, big[:10], 10, false},
		{"under the limit", 0, "fine", 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, tc.body) })
			s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: loopback}, MaxResponseBody: tc.limit})
			a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.URL, Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
			require.NoError(t, err)
			assert.Equal(t, webhook.Delivered, a.Outcome, "%v", a.Err)
			assert.Len(t, a.Body, tc.want)
			assert.Equal(t, tc.truncated, a.Truncated)
		})
	}
}

func TestSendOutcomes(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.WriteHeader(status)
	})
	s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: loopback}})
	for _, tc := range []struct {
		status int
		want   webhook.Outcome
	}{
		{200, webhook.Delivered}, {201, webhook.Delivered}, {204, webhook.Delivered}, {299, webhook.Delivered},
		{300, webhook.Failed}, {304, webhook.Failed},
		{400, webhook.Failed}, {401, webhook.Failed}, {403, webhook.Failed}, {404, webhook.Failed}, {413, webhook.Failed},
		{408, webhook.Retry}, {429, webhook.Retry},
		{410, webhook.Gone},
		{500, webhook.Retry}, {502, webhook.Retry}, {503, webhook.Retry}, {504, webhook.Retry},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.URL + "/?status=" + strconv.Itoa(tc.status), Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
			require.NoError(t, err)
			assert.Equal(t, tc.status, a.Status)
			assert.Equal(t, tc.want, a.Outcome)
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		a, err := s.Send(context.Background(), webhook.Endpoint{URL: closed.URL, Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
		require.NoError(t, err)
		require.Error(t, a.Err)
		assert.Equal(t, webhook.Retry, a.Outcome)
	})
	t.Run("name does not resolve", func(t *testing.T) {
		a, err := s.Send(context.Background(), webhook.Endpoint{URL: "http://nowhere.test/", Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
		require.NoError(t, err)
		var dnsErr *net.DNSError
		require.ErrorAs(t, a.Err, &dnsErr)
		assert.Equal(t, webhook.Retry, a.Outcome)
	})
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status int
		err    error
		want   webhook.Outcome
	}{
		{0, fmt.Errorf("dial: %w", webhook.ErrForbiddenAddress), webhook.Failed},
		{0, io.ErrUnexpectedEOF, webhook.Retry},
		{0, context.DeadlineExceeded, webhook.Retry},
		{200, nil, webhook.Delivered},
		{302, nil, webhook.Failed},
		{410, nil, webhook.Gone},
		{418, nil, webhook.Failed},
		{599, nil, webhook.Retry},
	} {
		assert.Equal(t, tc.want, webhook.Classify(tc.status, tc.err), "%d %v", tc.status, tc.err)
	}
	assert.Equal(t, "delivered retry failed gone none", fmt.Sprint(webhook.Delivered, webhook.Retry, webhook.Failed, webhook.Gone, webhook.Outcome(0)))
}

// TestSendIgnoresEnvironmentProxy: HTTPS_PROXY and HTTP_PROXY do not
// apply; a proxy the service passes does, and its address is checked
// like any other.
func TestSendProxy(t *testing.T) {
	proxy := newReceiver(t, ok) // answers as a forward proxy would
	rc := newReceiver(t, ok)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	send := func(o webhook.Options, url string) webhook.Attempt {
		a, err := newSender(t, o).Send(context.Background(), webhook.Endpoint{URL: url, Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
		require.NoError(t, err)
		return a
	}
	a := send(webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: loopback}}, rc.URL)
	assert.Equal(t, webhook.Delivered, a.Outcome, "%v", a.Err)
	assert.EqualValues(t, 1, rc.hits.Load())
	assert.Zero(t, proxy.hits.Load(), "the environment's proxy was used")

	proxyURL, err := url.Parse(proxy.URL)
	require.NoError(t, err)
	dns := newDNS(map[string][]string{"public.test": {"93.184.215.14"}})
	o := webhook.Options{Policy: webhook.Policy{AllowHTTP: true}, Resolver: dns, Proxy: http.ProxyURL(proxyURL)}
	a = send(o, "http://public.test/hook")
	require.ErrorIs(t, a.Err, webhook.ErrForbiddenAddress, "the proxy's loopback address was dialed")
	assert.Zero(t, proxy.hits.Load())

	o.Policy.Allow = loopback
	a = send(o, "http://public.test/hook")
	assert.Equal(t, webhook.Delivered, a.Outcome, "%v", a.Err)
	assert.EqualValues(t, 1, proxy.hits.Load())
	assert.Zero(t, dns.count("public.test"), "the endpoint's name is the proxy's to resolve")
}

func TestSendRefusesInvalidInput(t *testing.T) {
	rc := newReceiver(t, ok)
	s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: loopback}})
	secrets := []webhook.Secret{webhook.GenerateSecret()}
	for _, tc := range []struct {
		name string
		e    webhook.Endpoint
		m    webhook.Message
		want error
	}{
		{"bad id", webhook.Endpoint{URL: rc.URL, Secrets: secrets}, message("evt.1"), webhook.ErrInvalidMessage},
		{"no secret", webhook.Endpoint{URL: rc.URL}, message("evt_1"), webhook.ErrInvalidMessage},
		{"userinfo", webhook.Endpoint{URL: strings.Replace(rc.URL, "//", "//u:p@", 1), Secrets: secrets}, message("evt_1"), webhook.ErrInvalidEndpoint},
		{"empty URL", webhook.Endpoint{Secrets: secrets}, message("evt_1"), webhook.ErrInvalidEndpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := s.Send(context.Background(), tc.e, tc.m)
			require.ErrorIs(t, err, tc.want)
			assert.Zero(t, a)
		})
	}
	assert.Zero(t, rc.hits.Load())
}

func TestNewSenderOptions(t *testing.T) {
	for _, tc := range []struct {
		o    webhook.Options
		want string
	}{
		{webhook.Options{Timeout: -1}, "Timeout"},
		{webhook.Options{Timeout: time.Hour}, "Timeout"},
		{webhook.Options{MaxResponseBody: -1}, "MaxResponseBody"},
		{webhook.Options{MaxResponseBody: 2 << 20}, "MaxResponseBody"},
		{webhook.Options{Policy: webhook.Policy{Allow: []netip.Prefix{{}}}}, "Policy.Allow[0]"},
		{webhook.Options{Policy: webhook.Policy{Ports: []uint16{443, 0}}}, "Policy.Ports[1]"},
	} {
		_, err := webhook.NewSender(tc.o)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
		_, err = webhook.NewClient(tc.o)
		assert.ErrorContains(t, err, tc.want)
	}
	_, err := webhook.NewClient(webhook.Options{})
	require.NoError(t, err)
}

// TestSendHangingEndpointDelaysNoOther: while an attempt waits on an
// endpoint that never answers, attempts to another endpoint through the
// same Sender complete.
func TestSendHangingEndpointDelaysNoOther(t *testing.T) {
	release := make(chan struct{})
	hanging := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	fast := newReceiver(t, ok)
	s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: loopback}, Timeout: time.Minute})
	secrets := []webhook.Secret{webhook.GenerateSecret()}

	ctx, cancel := context.WithCancel(context.Background())
	hung := make(chan webhook.Attempt, 4)
	for range cap(hung) {
		go func() {
			a, _ := s.Send(ctx, webhook.Endpoint{URL: hanging.URL, Secrets: secrets}, message("evt_slow"))
			hung <- a
		}()
	}
	require.Eventually(t, func() bool { return hanging.hits.Load() == int64(cap(hung)) }, 10*time.Second, time.Millisecond,
		"the attempts to the hanging endpoint reached it")
	for i := range 50 {
		a, err := s.Send(context.Background(), webhook.Endpoint{URL: fast.URL, Secrets: secrets}, message("evt_"+strconv.Itoa(i)))
		require.NoError(t, err)
		require.Equal(t, webhook.Delivered, a.Outcome, "%v", a.Err)
	}
	assert.Empty(t, hung, "an attempt to the hanging endpoint ended before the others")
	cancel()
	for range cap(hung) {
		a := <-hung
		assert.Equal(t, webhook.Retry, a.Outcome)
		assert.ErrorIs(t, a.Err, context.Canceled)
	}
}
