package problem_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/middleware/problem"
)

var (
	errUnknown   = problem.Unauthorized("unknown_thing", "unknown thing", `APIKey header="X-API-Key"`)
	errForbidden = problem.New("not_yours", http.StatusForbidden, "not yours")
	errSlow      = problem.New("slow_down", http.StatusTooManyRequests, "slow down")
	errDown      = problem.New("down", http.StatusServiceUnavailable, "down")
	errStorage   = errors.New("dial tcp 10.0.0.7:5432: connection refused")
)

func TestReason(t *testing.T) {
	assert.Equal(t, "not_yours", errForbidden.Code())
	assert.Equal(t, http.StatusForbidden, errForbidden.Status())
	assert.Equal(t, "not yours", errForbidden.Title())
	assert.Empty(t, errForbidden.Challenge())
	assert.Equal(t, "problem: not yours", errForbidden.Error())
	assert.Equal(t, http.StatusUnauthorized, errUnknown.Status())
	assert.Equal(t, `APIKey header="X-API-Key"`, errUnknown.Challenge())
}

func TestRefusal(t *testing.T) {
	err := &problem.Refusal{Reason: errDown, Detail: "loading the key failed", Cause: errStorage}
	assert.ErrorIs(t, err, errDown)
	assert.ErrorIs(t, err, errStorage)
	assert.NotErrorIs(t, err, errForbidden)
	assert.Equal(t, "problem: down: loading the key failed: "+errStorage.Error(), err.Error())

	wrapped := errors.Join(errors.New("serving /v1/things"), err)
	assert.Same(t, errDown, problem.Of(wrapped))
	assert.Equal(t, "loading the key failed", problem.Detail(wrapped))
	assert.Equal(t, time.Second, problem.RetryAfter(wrapped))

	assert.Equal(t, "problem: internal error", (&problem.Refusal{}).Error(), "a Refusal without a Reason")
	assert.Nil(t, problem.Of(&problem.Refusal{Cause: errStorage}))
	assert.Same(t, errForbidden, problem.Of(errForbidden), "a bare Reason")
	assert.Nil(t, problem.Of(errStorage))
	assert.Nil(t, problem.Of(nil))
	assert.Empty(t, problem.Detail(errForbidden))
	assert.Zero(t, problem.RetryAfter(nil))
}

// TestWrite is the table of what Write sends for each kind of refusal.
func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		detail     string
		challenge  string
		retryAfter string
	}{
		{"401 names its challenge", problem.Refuse(errUnknown, "send the key"), 401, "unknown_thing", "send the key", `APIKey header="X-API-Key"`, ""},
		{"a bare reason", errUnknown, 401, "unknown_thing", "", `APIKey header="X-API-Key"`, ""},
		{"403 without detail", problem.Refuse(errForbidden, ""), 403, "not_yours", "", "", ""},
		{"429 with Retry-After rounded up", &problem.Refusal{Reason: errSlow, RetryAfter: 1500 * time.Millisecond}, 429, "slow_down", "", "", "2"},
		{"429 without Retry-After", problem.Refuse(errSlow, "later"), 429, "slow_down", "later", "", ""},
		{"503 waits one second by default", &problem.Refusal{Reason: errDown, Cause: errStorage}, 503, "down", "", "", "1"},
		{"503 with its own wait", &problem.Refusal{Reason: errDown, RetryAfter: time.Minute}, 503, "down", "", "", "60"},
		{"a wrapped refusal", errors.Join(errStorage, problem.Refuse(errForbidden, "not here")), 403, "not_yours", "not here", "", ""},
		{"an error without a reason", errStorage, 500, "internal_error", "", "", ""},
		{"a refusal without a reason", &problem.Refusal{Detail: "lost", Cause: errStorage}, 500, "internal_error", "lost", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			problem.Write(w, httptest.NewRequest(http.MethodGet, "/", nil), tt.err)

			require.Equal(t, tt.status, w.Code)
			h := w.Header()
			assert.Equal(t, "application/problem+json", h.Get("Content-Type"))
			assert.Equal(t, "no-store", h.Get("Cache-Control"))
			assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
			assert.Equal(t, tt.challenge, h.Get("WWW-Authenticate"))
			assert.Equal(t, tt.retryAfter, h.Get("Retry-After"))

			var p problem.Problem
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
			assert.Equal(t, problem.For(tt.err), p)
			assert.Equal(t, problem.TypePrefix+tt.code, p.Type)
			assert.Equal(t, tt.code, p.Code)
			assert.Equal(t, tt.status, p.Status)
			assert.Equal(t, tt.detail, p.Detail)
			assert.NotEmpty(t, p.Title)
			assert.NotContains(t, w.Body.String(), "10.0.0.7", "a cause never reaches the client")
		})
	}
}

// FuzzWrite: whatever the detail, the cause and the wait, the body is the
// refusal's problem document and nothing else: its members are the
// reason's, the detail is the refusal's, and no text of the cause reaches
// it. Retry-After is sent exactly when the wait is positive.
func FuzzWrite(f *testing.F) {
	f.Add("scope orders:write required", "secret-0123456789abcdef", int64(0))
	f.Add("", "\x00\xff\"}", int64(-1))
	f.Add("<script>", "server-abc:def", int64(1<<62))
	f.Fuzz(func(t *testing.T, detail, cause string, wait int64) {
		err := &problem.Refusal{Reason: errSlow, Detail: detail, RetryAfter: time.Duration(wait), Cause: errors.New(cause)}
		w := httptest.NewRecorder()
		problem.Write(w, httptest.NewRequest(http.MethodGet, "/", nil), err)

		var members map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &members))
		want := map[string]any{"type": problem.TypePrefix + "slow_down", "title": "slow down", "status": 429.0, "code": "slow_down"}
		if detail != "" {
			var d string
			require.NoError(t, json.Unmarshal(must(json.Marshal(detail)), &d)) // as JSON carries it
			want["detail"] = d
		}
		require.Equal(t, want, members)
		if wait > 0 {
			assert.NotEmpty(t, w.Header().Get("Retry-After"))
		} else {
			assert.Empty(t, w.Header().Get("Retry-After"))
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
