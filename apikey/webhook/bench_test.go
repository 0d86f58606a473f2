package webhook_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey/webhook"
)

// BenchmarkSign signs a 1 KiB body.
func BenchmarkSign(b *testing.B) {
	s := webhook.GenerateSecret()
	m := webhook.Message{ID: "evt_2KWPBgLlAfxdpx2AI54pPJ85f4W", Timestamp: time.Now(), Body: []byte(strings.Repeat("x", 1024))}
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		if err := webhook.Sign(h, m, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify verifies a 1 KiB body.
func BenchmarkVerify(b *testing.B) {
	s := webhook.GenerateSecret()
	m := webhook.Message{ID: "evt_2KWPBgLlAfxdpx2AI54pPJ85f4W", Timestamp: time.Now(), Body: []byte(strings.Repeat("x", 1024))}
	h := http.Header{}
	if err := webhook.Sign(h, m, s); err != nil {
		b.Fatal(err)
	}
	v := &webhook.Verifier{Secrets: []webhook.Secret{s}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(h, m.Body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseEndpoint validates a typical endpoint URL.
func BenchmarkParseEndpoint(b *testing.B) {
	var p webhook.Policy
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseEndpoint("https://hooks.example.com/keystile/events?tenant=acme"); err != nil {
			b.Fatal(err)
		}
	}
}
