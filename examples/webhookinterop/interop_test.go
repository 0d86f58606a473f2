package webhookinterop_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey/webhook"
)

// TestReferenceReceiverVerifiesSender: messages that a Sender delivers
// verify with the reference library, with one secret and while a secret
// is rotated (signed with both, the receiver knowing either).
func TestReferenceReceiverVerifiesSender(t *testing.T) {
	old, current := webhook.GenerateSecret(), webhook.GenerateSecret()
	for _, tc := range []struct {
		name     string
		signWith []webhook.Secret
		receiver webhook.Secret
	}{
		{"one secret", []webhook.Secret{current}, current},
		{"rotation, receiver has the old", []webhook.Secret{old, current}, old},
		{"rotation, receiver has the new", []webhook.Secret{old, current}, current},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wh, err := standardwebhooks.NewWebhook(tc.receiver.Reveal())
			require.NoError(t, err)
			var verified, refused atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if err := wh.Verify(body, r.Header); err != nil {
					refused.Add(1)
					http.Error(w, err.Error(), http.StatusUnauthorized)
					return
				}
				verified.Add(1)
			}))
			defer srv.Close()
			s, err := webhook.NewSender(webhook.Options{Policy: webhook.Policy{
				AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			}})
			require.NoError(t, err)
			const n = 50
			for i := range n {
				body := fmt.Appendf(nil, `{"type":"key.rotated","n":%d,"s":%q}`, i, randomText(i))
				a, err := s.Send(context.Background(), webhook.Endpoint{URL: srv.URL, Secrets: tc.signWith},
					webhook.Message{ID: "evt_" + strconv.Itoa(i), Body: body})
				require.NoError(t, err)
				require.Equal(t, webhook.Delivered, a.Outcome, "status %d: %s", a.Status, a.Body)
			}
			assert.EqualValues(t, n, verified.Load())
			assert.Zero(t, refused.Load())
		})
	}
}

// TestVerifierAcceptsReference: what the reference library signs, a
// Verifier accepts, and a tampered body it refuses; both sign the same
// bytes for the same input.
func TestVerifierAcceptsReference(t *testing.T) {
	secret := webhook.GenerateSecret()
	wh, err := standardwebhooks.NewWebhook(secret.Reveal())
	require.NoError(t, err)
	v := &webhook.Verifier{Secrets: []webhook.Secret{secret}}
	for i := range 200 {
		id, body, ts := "msg_"+strconv.Itoa(i), []byte(randomText(i)), time.Now().Add(time.Duration(i-100)*time.Second)
		sig, err := wh.Sign(id, ts, body)
		require.NoError(t, err)
		assert.Equal(t, sig, secret.Sign(id, ts, body))

		h := http.Header{}
		h.Set(standardwebhooks.HeaderWebhookID, id)
		h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(standardwebhooks.HeaderWebhookSignature, sig)
		m, err := v.Verify(h, body)
		require.NoError(t, err)
		assert.Equal(t, id, m.ID)
		_, err = v.Verify(h, append(body, 'x'))
		require.ErrorIs(t, err, webhook.ErrNoMatchingSignature)
		require.Error(t, wh.Verify(append(body, 'x'), h))
	}
}

// randomText is a deterministic body with bytes JSON would escape.
func randomText(seed int) string {
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	b := make([]byte, r.IntN(300))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}
