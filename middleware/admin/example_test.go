package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/memory"
)

// A service that answers every error as {"error": {"code", "message"}}
// keeps that format for the management API with Options.ErrorHandler. The
// detail of a malformed field names the field, never its value.
func ExampleOptions_errorHandler() {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	if err != nil {
		panic(err)
	}
	api, err := admin.New(admin.Options{
		Manager: m,
		Authorize: func(*http.Request) (admin.Caller, error) {
			return admin.Caller{Actor: apikey.Actor{ID: "alice", Role: apikey.Owner}}, nil
		},
		SingleAccount: true, // callers name no account: they act in apikey.DefaultAccount
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			reason := problem.Of(err) // never nil here
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(reason.Status())
			_ = json.NewEncoder(w).Encode(map[string]any{
				"error": map[string]string{"code": reason.Code(), "message": problem.Detail(err)},
			})
		},
	})
	if err != nil {
		panic(err)
	}

	w := httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest("POST", "/environments/production/keys",
		strings.NewReader(`{"type":"client","expires_in":"1d"}`)))
	fmt.Print(w.Code, " ", w.Body)
	// Output: 400 {"error":{"code":"invalid_request","message":"expires_in: want a duration such as \"24h\" or \"90m\""}}
}
