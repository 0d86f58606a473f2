package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey/webhook"
)

// A service signs a message for an endpoint; the receiver verifies it with
// the same secret.
func ExampleSign() {
	secret, _ := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	m := webhook.Message{ID: "msg_p5jXN8AQM9LWM0D4loKWxJek", Timestamp: time.Unix(1614265330, 0), Body: []byte(`{"test": 2432232314}`)}
	h := http.Header{}
	if err := webhook.Sign(h, m, secret); err != nil {
		panic(err)
	}
	fmt.Println(h.Get("webhook-signature"))
	fmt.Println(secret) // a Secret never prints
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// whsec_[redacted]
}

// A receiver checks every webhook before it trusts the body.
func ExampleVerifier() {
	secret := webhook.GenerateSecret() // shown to the tenant once: secret.Reveal()
	v := &webhook.Verifier{Secrets: []webhook.Secret{secret}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		m, err := v.Verify(r.Header, body)
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		fmt.Printf("received %s: %s\n", m.ID, m.Body) // drop m.ID if already seen: delivery is at least once
	})

	r := httptest.NewRequest(http.MethodPost, "/hooks/keystile", nil)
	body := []byte(`{"type":"key.revoked"}`)
	webhook.Sign(r.Header, webhook.Message{ID: "evt_1", Timestamp: time.Now(), Body: body}, secret)
	r.Body = io.NopCloser(bytesReader(body))
	handler.ServeHTTP(httptest.NewRecorder(), r)
	// Output: received evt_1: {"type":"key.revoked"}
}

// A tenant registers an endpoint: the URL is checked before it is stored.
func ExamplePolicy_ParseEndpoint() {
	var p webhook.Policy // the strict default: https, public addresses
	for _, raw := range []string{
		"https://hooks.example.com/keystile",
		"http://hooks.example.com/keystile",
		"https://169.254.169.254/latest/meta-data/",
		"https://admin:hunter2@hooks.example.com/",
	} {
		_, err := p.ParseEndpoint(raw)
		fmt.Println(err)
	}
	// Output:
	// <nil>
	// webhook: invalid endpoint: url.scheme must be https
	// webhook: invalid endpoint: url.host 169.254.169.254 is link-local (cloud metadata) (169.254.0.0/16)
	// webhook: invalid endpoint: url.userinfo is not allowed (put credentials in the path or have the endpoint check the signature)
}

// One attempt to a receiver on loopback, which the Policy must allow.
func ExampleSender_Send() {
	secret := webhook.GenerateSecret()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := (&webhook.Verifier{Secrets: []webhook.Secret{secret}}).Verify(r.Header, body); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer receiver.Close()

	s, err := webhook.NewSender(webhook.Options{Policy: webhook.Policy{
		AllowHTTP: true,                                                 // development only
		Allow:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, // the receiver is on loopback
	}})
	if err != nil {
		panic(err)
	}
	a, err := s.Send(context.Background(),
		webhook.Endpoint{URL: receiver.URL + "/hook", Secrets: []webhook.Secret{secret}},
		webhook.Message{ID: "evt_1", Body: []byte(`{"type":"key.created"}`)})
	if err != nil {
		panic(err) // a URL or message no retry can fix
	}
	fmt.Println(a.Status, a.Outcome)
	// Output: 200 delivered
}

// The delivery loop asks the policy what to do after each attempt.
func ExampleRetryPolicy_Decide() {
	var p webhook.RetryPolicy // DefaultSchedule: 8 attempts
	fmt.Println(p.Decide(webhook.Retry, 1, 0.5))
	fmt.Println(p.Decide(webhook.Failed, 2, 0.5))
	fmt.Println(p.Decide(webhook.Retry, p.MaxAttempts(), 0.5).Action)
	fmt.Println(p.Decide(webhook.Gone, 1, 0.5).Action)
	// Output:
	// {retry later 2.5s}
	// {retry later 2m30s}
	// dead letter
	// disable
}

// A secret is made once per endpoint and shown to its tenant once.
func ExampleGenerateSecret() {
	secret := webhook.GenerateSecret()
	shown := secret.Reveal() // store it sealed; show it once
	fmt.Println(strings.HasPrefix(shown, "whsec_"), len(shown))
	fmt.Printf("%v %+v\n", secret, struct{ S webhook.Secret }{secret})
	// Output:
	// true 50
	// whsec_[redacted] {S:whsec_[redacted]}
}

// The guarded client serves any other request to a URL a tenant chose: the
// address dialed is checked, here the cloud metadata service's.
func ExampleNewClient() {
	client, err := webhook.NewClient(webhook.Options{Policy: webhook.Policy{AllowHTTP: true}})
	if err != nil {
		panic(err)
	}
	_, err = client.Get("http://169.254.169.254/latest/meta-data/")
	fmt.Println(errors.Is(err, webhook.ErrForbiddenAddress))
	// Output: true
}

// A doubling schedule in place of DefaultSchedule.
func ExampleExponential() {
	p := webhook.RetryPolicy{Schedule: webhook.Exponential(time.Second, time.Minute, 8)}
	fmt.Println(p.Schedule, p.MaxAttempts())
	// Output: [1s 2s 4s 8s 16s 32s 1m0s 1m0s] 9
}
