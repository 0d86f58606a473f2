package middleware

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
)

// ProblemTypePrefix begins the "type" member of every problem response; the
// reason's code follows it, as in "urn:keystile:problem:invalid_key".
const ProblemTypePrefix = "urn:keystile:problem:"

// Problem is the RFC 9457 problem document that WriteProblem sends.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Code is the reason's stable machine-readable code (see Reason.Code).
	Code string `json:"code"`
}

// internalError is the reason reported for errors that are not refusals of
// this package, such as an invalid Policy given to Check.
var internalError = &Reason{"internal_error", http.StatusInternalServerError, "internal error"}

// ProblemFor returns the problem document describing err.
func ProblemFor(err error) Problem {
	r := ReasonOf(err)
	if r == nil {
		r = internalError
	}
	return Problem{
		Type:   ProblemTypePrefix + r.code,
		Title:  r.title,
		Status: r.status,
		Detail: Detail(err),
		Code:   r.code,
	}
}

// WriteProblem is the default ErrorHandler. It writes the problem document
// for err as application/problem+json with the reason's status, adds
// Retry-After (in whole seconds) when RetryAfter(err) is positive, and
// WWW-Authenticate on 401. The body never holds a secret.
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := ProblemFor(err)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `APIKey header="X-API-Key"`)
	}
	if d := RetryAfter(err); d > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	body, _ := json.Marshal(p) // a struct of strings and an int cannot fail
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}
