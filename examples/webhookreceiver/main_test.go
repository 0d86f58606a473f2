package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
)

// signed returns a POST of body signed with secret as a Sender signs it.
func signed(secret webhook.Secret, id string, at time.Time, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("webhook-signature", secret.Sign(id, at, body))
	return req
}

// tampered returns req with a body that differs from the one signed.
func tampered(req *http.Request) *http.Request {
	req.Body = io.NopCloser(strings.NewReader(`{"type":"revoke"}`))
	return req
}

func TestHandler(t *testing.T) {
	secret, other := webhook.GenerateSecret(), webhook.GenerateSecret()
	var log bytes.Buffer
	h, err := NewHandler(secret.Reveal(), slog.New(slog.NewTextHandler(&log, nil)))
	require.NoError(t, err)
	e := apikey.Event{Seq: 7, Time: time.Now(), Actor: apikey.SystemActor, Action: apikey.ActionRotate,
		Account: "acme", Environment: apikey.Production}
	body, err := json.Marshal(events.Payload{Type: e.Action, Timestamp: e.Time, Data: e})
	require.NoError(t, err)
	now := time.Now()
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		log    string
	}{
		{"verified", signed(secret, e.ID(), now, body), http.StatusNoContent, "type=rotate id=" + e.ID() + " duplicate=false"},
		{"the same id again", signed(secret, e.ID(), now, body), http.StatusNoContent, "duplicate=true"},
		{"another secret", signed(other, e.ID(), now, body), http.StatusUnauthorized, "does not verify"},
		{"an old timestamp", signed(secret, e.ID(), now.Add(-time.Hour), body), http.StatusUnauthorized, "does not verify"},
		{"a changed body", tampered(signed(secret, e.ID(), now, body)), http.StatusUnauthorized, "does not verify"},
		{"not an event", signed(secret, "msg_1", now, []byte(`[1]`)), http.StatusBadRequest, "not an event"},
		{"too large", signed(secret, "msg_2", now, bytes.Repeat([]byte(" "), MaxBody+1)), http.StatusRequestEntityTooLarge, ""},
		{"GET", httptest.NewRequest(http.MethodGet, "/hooks", nil), http.StatusMethodNotAllowed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log.Reset()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req)
			assert.Equal(t, tc.status, rec.Code)
			assert.Contains(t, log.String(), tc.log)
			assert.NotContains(t, log.String(), secret.Reveal())
		})
	}
}

func TestSecret(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-new-secret"}, &out, &errOut))
	s, err := webhook.ParseSecret(strings.TrimSpace(out.String()))
	require.NoError(t, err, "prints one secret")
	assert.False(t, s.IsZero())

	for _, bad := range []string{"", "hunter2", "whsec_short"} {
		_, err := NewHandler(bad, slog.Default())
		require.ErrorIs(t, err, webhook.ErrInvalidSecret, "%q", bad)
		if bad != "" {
			assert.NotContains(t, err.Error(), bad)
		}
	}
}
