package admin_test

import (
	"bytes"
	"context"
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

// An owner sets a key's limits with PUT /keys/{id}/limits and reads them
// back in the key's view; a limit out of range is refused with
// invalid_limits and a detail that names the field.
func ExampleAPI_limits() {
	ctx := context.Background()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	if err != nil {
		panic(err)
	}
	owner := apikey.Actor{ID: "alice", Role: apikey.Owner}
	keys, err := m.Bootstrap(ctx, owner, apikey.Production)
	if err != nil {
		panic(err)
	}
	api, err := admin.New(admin.Options{
		Manager:       m,
		Authorize:     func(*http.Request) (admin.Caller, error) { return admin.Caller{Actor: owner}, nil },
		SingleAccount: true,
	})
	if err != nil {
		panic(err)
	}
	put := func(body string) string {
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest("PUT", "/keys/"+keys[0].View.ID+"/limits", strings.NewReader(body)))
		var out struct {
			Limits json.RawMessage `json:"limits"`
			Code   string          `json:"code"`
			Detail string          `json:"detail"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		if out.Code != "" {
			return fmt.Sprint(w.Code, " ", out.Code, ": ", out.Detail)
		}
		if out.Limits == nil {
			return fmt.Sprint(w.Code, " no limits")
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, out.Limits)
		return fmt.Sprint(w.Code, " ", compact.String())
	}

	fmt.Println(put(`{"rate":{"requests":100,"window_seconds":60,"burst":20},"quota":{"limit":10000,"refill":10000,"period":"month"}}`))
	fmt.Println(put(`{"rate":{"requests":100,"window_seconds":1.5}}`))
	fmt.Println(put(`{}`))
	// Output:
	// 200 {"rate":{"requests":100,"window_seconds":60,"burst":20},"quota":{"limit":10000,"refill":10000,"period":"month"}}
	// 422 invalid_limits: apikey: invalid limits: rate.window_seconds must be an integer (no fraction or exponent)
	// 200 no limits
}
