package admin_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/memory"
)

// TestErrorHandler: Options.ErrorHandler writes every refusal in the
// service's own format. It gets the Reason through problem.Of,
// the detail, the apikey error behind a rule's refusal, and a storage
// failure without its text; successes are untouched.
func TestErrorHandler(t *testing.T) {
	type seen struct {
		reason *problem.Reason
		detail string
		err    error
	}
	var got []seen
	handler := func(w http.ResponseWriter, r *http.Request, err error) {
		reason := problem.Of(err)
		require.NotNil(t, reason, "every error is a refusal: %v", err)
		got = append(got, seen{reason, problem.Detail(err), err})
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(reason.Status())
		fmt.Fprintf(w, "error %s: %s\n", reason.Code(), problem.Detail(err))
	}
	f := newFixture(t)
	caller := func(*http.Request) (admin.Caller, error) { return f.caller, nil }
	var err error
	f.api, err = admin.New(admin.Options{Manager: f.m, Audit: f.store, SingleAccount: true, Authorize: func(r *http.Request) (admin.Caller, error) {
		return caller(r)
	}, ErrorHandler: handler})
	require.NoError(t, err)

	send := func(api http.Handler, method, path, body string) *httptest.ResponseRecorder {
		t.Helper()
		got = nil
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
		return w
	}
	for _, tt := range []struct {
		name, method, path, body string
		reason                   *problem.Reason
		cause                    error // an apikey error the refusal wraps, if any
	}{
		{"a rule", "POST", "/environments/production/keys", `{"type":"server","scopes":["all"]}`, admin.ReasonInvalidScope, apikey.ErrInvalidScope},
		{"not found", "GET", "/keys/nosuchkey000", ``, admin.ReasonNotFound, nil},
		{"a state", "POST", "/keys/" + f.server.View.ID + "/revoke", ``, admin.ReasonRotateFirst, apikey.ErrDefaultKeyNotRevocable},
		{"a malformed body", "PUT", "/keys/" + f.server.View.ID + "/grace", `{"grace":1}`, admin.ReasonInvalidRequest, nil},
		{"no route", "DELETE", "/keys", ``, admin.ReasonNoRoute, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := send(f.api, tt.method, tt.path, tt.body)
			require.Len(t, got, 1)
			assert.Equal(t, tt.reason, got[0].reason)
			assert.Equal(t, tt.reason.Status(), w.Code)
			assert.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"), "the service's format, not problem+json")
			assert.Equal(t, "error "+tt.reason.Code()+": "+got[0].detail+"\n", w.Body.String())
			assert.True(t, errors.Is(got[0].err, tt.reason))
			if tt.cause != nil {
				assert.ErrorIs(t, got[0].err, tt.cause)
				assert.NotEmpty(t, got[0].detail)
			}
		})
	}

	t.Run("success", func(t *testing.T) {
		w := send(f.api, "GET", "/environments/production/keys", ``)
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Empty(t, got, "the handler sees refusals only")
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	})

	t.Run("Authorize", func(t *testing.T) {
		caller = func(*http.Request) (admin.Caller, error) { return admin.Caller{}, errors.New("session store down") }
		t.Cleanup(func() { caller = func(*http.Request) (admin.Caller, error) { return f.caller, nil } })
		w := send(f.api, "GET", "/environments", ``)
		require.Len(t, got, 1)
		assert.Equal(t, admin.ReasonForbidden, got[0].reason, "any error of Authorize is 403")
		assert.NotContains(t, w.Body.String(), "session store down")

		caller = func(*http.Request) (admin.Caller, error) {
			return admin.Caller{}, problem.Refuse(middleware.ErrMissingKey, "sign in")
		}
		w = send(f.api, "GET", "/environments", ``)
		require.Len(t, got, 1)
		assert.Equal(t, middleware.ErrMissingKey, got[0].reason, "a refusal of Authorize keeps its reason")
		assert.Equal(t, http.StatusUnauthorized, w.Code)
	})

	t.Run("storage failure", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: brokenStore{memory.New()}})
		require.NoError(t, err)
		api, err := admin.New(admin.Options{Manager: m, ErrorHandler: handler, SingleAccount: true,
			Authorize: func(*http.Request) (admin.Caller, error) { return owner, nil }})
		require.NoError(t, err)
		w := send(api, "GET", "/environments/production/keys", ``)
		require.Len(t, got, 1)
		assert.Equal(t, admin.ReasonUnavailable, got[0].reason)
		assert.Positive(t, problem.RetryAfter(got[0].err))
		assert.ErrorIs(t, got[0].err, assert.AnError, "the storage error, for the service's logs")
		assert.NotContains(t, got[0].err.Error(), assert.AnError.Error(), "but not in the text")
		assert.NotContains(t, w.Body.String(), assert.AnError.Error())
	})
}
