package problem_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/keystile/keystile/middleware/problem"
)

// ErrQuotaExceeded is a refusal of a service's own, declared once.
var ErrQuotaExceeded = problem.New("quota_exceeded", http.StatusTooManyRequests, "monthly quota exceeded")

func Example() {
	refuse := func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, &problem.Refusal{
			Reason:     ErrQuotaExceeded,
			Detail:     "10000 requests a month on the free plan",
			RetryAfter: 90 * time.Second,
		})
	}
	w := httptest.NewRecorder()
	refuse(w, httptest.NewRequest(http.MethodGet, "/v1/things", nil))
	fmt.Println(w.Code, w.Header().Get("Content-Type"), w.Header().Get("Retry-After"))
	fmt.Print(w.Body.String())
	// Output:
	// 429 application/problem+json 90
	// {"type":"urn:keystile:problem:quota_exceeded","title":"monthly quota exceeded","status":429,"detail":"10000 requests a month on the free plan","code":"quota_exceeded"}
}

// An error handler finds the reason, the detail and the wait behind any
// error that wraps a refusal.
func ExampleOf() {
	err := fmt.Errorf("GET /v1/things: %w", problem.Refuse(ErrQuotaExceeded, "free plan"))
	fmt.Println(errors.Is(err, ErrQuotaExceeded), problem.Of(err).Code(), problem.Detail(err), problem.RetryAfter(err))
	fmt.Println(err)
	// Output:
	// true quota_exceeded free plan 0s
	// GET /v1/things: problem: monthly quota exceeded: free plan
}

// A 401 names its challenge, which Write sends as WWW-Authenticate.
func ExampleUnauthorized() {
	errNoToken := problem.Unauthorized("missing_token", "missing token", `Bearer realm="api"`)
	w := httptest.NewRecorder()
	problem.Write(w, httptest.NewRequest(http.MethodGet, "/", nil), errNoToken)
	fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"))
	fmt.Print(w.Body.String())
	// Output:
	// 401 Bearer realm="api"
	// {"type":"urn:keystile:problem:missing_token","title":"missing token","status":401,"code":"missing_token"}
}
