package problem

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"
)

// TypePrefix begins the "type" member of every problem document; the
// reason's code follows it, as in "urn:keystile:problem:invalid_key".
const TypePrefix = "urn:keystile:problem:"

// Reason is why a request was refused: a stable machine-readable code, the
// HTTP status of its problem response and a short title. A Reason is an
// error sentinel, compared by identity (errors.Is); it never changes after
// New.
type Reason struct {
	code      string
	status    int
	title     string
	challenge string
}

// New returns a Reason. code must be stable (clients branch on it) and
// unique among the reasons a handler answers with; status is the HTTP
// status of its responses (4xx or 5xx); title is a short, human-readable
// summary without a secret. A 401 Reason should name its challenge: see
// Unauthorized.
func New(code string, status int, title string) *Reason {
	return &Reason{code: code, status: status, title: title}
}

// Unauthorized returns a Reason of status 401 whose responses carry
// challenge as their WWW-Authenticate header, as RFC 9110 asks of a 401,
// for example `APIKey header="X-API-Key"`.
func Unauthorized(code, title, challenge string) *Reason {
	return &Reason{code: code, status: http.StatusUnauthorized, title: title, challenge: challenge}
}

// Error returns the reason's title, prefixed with "problem: ".
func (r *Reason) Error() string { return "problem: " + r.title }

// Code returns the stable machine-readable code, such as "invalid_key".
func (r *Reason) Code() string { return r.code }

// Status returns the HTTP status of the reason's responses.
func (r *Reason) Status() int { return r.status }

// Title returns the short human-readable summary.
func (r *Reason) Title() string { return r.title }

// Challenge returns the WWW-Authenticate header of the reason's responses,
// or "" for a Reason made by New.
func (r *Reason) Challenge() string { return r.challenge }

// Refusal is a refusal of one request: its Reason and the parts that
// belong to the request. Make one with Refuse, or as a literal to set
// RetryAfter or Cause. errors.Is(refusal, refusal.Reason) and
// errors.Is(refusal, refusal.Cause) hold.
type Refusal struct {
	// Reason is why. Nil is reported as a 500 internal_error.
	Reason *Reason
	// Detail is the request-specific explanation, such as the scope a
	// route requires, sent in the problem document. It must hold no
	// secret. Empty means none.
	Detail string
	// RetryAfter, if positive, is how long the client should wait before
	// retrying: Write sends it as Retry-After in whole seconds, rounded up.
	// Zero means one second for a 503 reason and none otherwise.
	RetryAfter time.Duration
	// Cause is the underlying error (a storage failure, a context error),
	// for errors.Is, errors.As and logs; nil means none. Its text is part
	// of Error but never of the problem document.
	Cause error
}

// Refuse returns a Refusal of reason r with a request-specific detail that
// holds no secret ("" for none).
func Refuse(r *Reason, detail string) error { return &Refusal{Reason: r, Detail: detail} }

// Error returns the reason's text, then the detail and the cause's text,
// each after ": " when present.
func (e *Refusal) Error() string {
	s := reasonOrInternal(e.Reason).Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the reason and the cause, those that are set.
func (e *Refusal) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Reason != nil {
		errs = append(errs, e.Reason)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// Of returns the Reason behind err: that of the first Refusal err wraps,
// or else the first Reason it wraps; nil if it wraps neither (a
// programming error, which For reports as 500 internal_error).
func Of(err error) *Reason {
	var rf *Refusal
	if errors.As(err, &rf) && rf.Reason != nil {
		return rf.Reason
	}
	var r *Reason
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// Detail returns the detail of the first Refusal err wraps, or "".
func Detail(err error) string {
	var rf *Refusal
	if errors.As(err, &rf) {
		return rf.Detail
	}
	return ""
}

// RetryAfter returns how long a client should wait before retrying a
// request refused with err: the RetryAfter of the first Refusal err wraps
// if positive, else one second for a 503 reason, else zero.
func RetryAfter(err error) time.Duration {
	var rf *Refusal
	if errors.As(err, &rf) && rf.RetryAfter > 0 {
		return rf.RetryAfter
	}
	if r := Of(err); r != nil && r.status == http.StatusServiceUnavailable {
		return time.Second
	}
	return 0
}

// Problem is the RFC 9457 problem document that Write sends.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Code is the reason's stable machine-readable code (Reason.Code).
	Code string `json:"code"`
}

// internalError is the reason reported for an error that wraps no Reason.
var internalError = New("internal_error", http.StatusInternalServerError, "internal error")

func reasonOrInternal(r *Reason) *Reason {
	if r == nil {
		return internalError
	}
	return r
}

// For returns the problem document describing err. An error that wraps no
// Reason is described as 500 "internal_error", without detail.
func For(err error) Problem {
	r := reasonOrInternal(Of(err))
	return Problem{
		Type:   TypePrefix + r.code,
		Title:  r.title,
		Status: r.status,
		Detail: Detail(err),
		Code:   r.code,
	}
}

// Write answers a request refused with err: the problem document For(err)
// as application/problem+json with the reason's status, Cache-Control:
// no-store and X-Content-Type-Options: nosniff, plus WWW-Authenticate when
// the reason has a challenge and Retry-After (whole seconds, rounded up)
// when RetryAfter(err) is positive. It has the signature of an error
// handler and ignores r.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	p := For(err)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if reason := Of(err); reason != nil && reason.challenge != "" {
		h.Set("WWW-Authenticate", reason.challenge)
	}
	if d := RetryAfter(err); d > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	body, _ := json.Marshal(p) // a struct of strings and an int cannot fail
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}
