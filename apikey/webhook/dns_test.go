package webhook_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/keystile/keystile/apikey/webhook"
)

// dnsServer is a tiny DNS server on loopback UDP that answers A queries
// from a table (each query of a name gets its next answer, then the last
// one) and AAAA queries with no record, so that a real *net.Resolver can be
// tested without real DNS.
type dnsServer struct {
	conn    net.PacketConn
	mu      sync.Mutex
	answers map[string][]string // "name." -> IPv4 addresses, one per query
	queries map[string]int
}

func newDNSServer(t *testing.T, answers map[string][]string) *dnsServer {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	s := &dnsServer{conn: conn, answers: map[string][]string{}, queries: map[string]int{}}
	for name, list := range answers {
		s.answers[name+"."] = list
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := s.answer(buf[:n]); resp != nil {
				conn.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

func (s *dnsServer) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	s.mu.Lock()
	list, known := s.answers[strings.ToLower(q.Name.String())]
	var addr string
	if known && q.Type == dnsmessage.TypeA {
		addr = list[min(s.queries[q.Name.String()], len(list)-1)]
		s.queries[q.Name.String()]++
	}
	s.mu.Unlock()
	if !known {
		b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError})
	}
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if addr != "" {
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}, dnsmessage.AResource{A: netip.MustParseAddr(addr).As4()})
	}
	resp, err := b.Finish()
	if err != nil {
		return nil
	}
	return resp
}

func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp4", s.conn.LocalAddr().String())
	}}
}

// TestSendDNSRebindingRealResolver repeats the rebinding case with Go's own
// resolver, asking a DNS server on loopback: the name resolves to a public
// address when the endpoint is registered, to loopback when it is dialed.
func TestSendDNSRebindingRealResolver(t *testing.T) {
	rc := newReceiver(t, ok)
	dns := newDNSServer(t, map[string][]string{
		"rebind.keystile.test": {"93.184.215.14", "127.0.0.1"},
		"hooks.keystile.test":  {"127.0.0.1"},
	})
	s := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true}, Resolver: dns.resolver()})
	_, err := s.CheckEndpoint(context.Background(), rc.at("rebind.keystile.test"))
	require.NoError(t, err)
	a, err := s.Send(context.Background(), webhook.Endpoint{URL: rc.at("rebind.keystile.test"), Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_1"))
	require.NoError(t, err)
	require.ErrorIs(t, a.Err, webhook.ErrForbiddenAddress)
	assert.Equal(t, webhook.Failed, a.Outcome)
	assert.Zero(t, rc.hits.Load())

	_, err = s.CheckEndpoint(context.Background(), rc.at("hooks.keystile.test"))
	require.ErrorIs(t, err, webhook.ErrForbiddenAddress)

	allowed := newSender(t, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, Allow: loopback}, Resolver: dns.resolver()})
	a, err = allowed.Send(context.Background(), webhook.Endpoint{URL: rc.at("hooks.keystile.test"), Secrets: []webhook.Secret{webhook.GenerateSecret()}}, message("evt_2"))
	require.NoError(t, err)
	assert.Equal(t, webhook.Delivered, a.Outcome, "%v", a.Err)
	assert.Equal(t, http.StatusOK, a.Status)
	assert.EqualValues(t, 1, rc.hits.Load())
}
