// Package faulttest holds the middleware's test suites that must run over
// every storage backend: StorageFaults (errors, slow calls, cancelled
// requests, outages, a database that goes away and comes back, behind
// storage/faultstore) and SecretsNeverLeak. Package middleware runs them
// over storage/memory; the examples module runs them over SQLite and
// PostgreSQL (examples/integration), whose drivers this module does not
// require. It also holds the request helpers that the suites share with
// package middleware's tests.
//
// It is test support for this repository: it imports testify.
package faulttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// Owner is the actor the tests make changes as.
var Owner = apikey.Actor{ID: "alice", Role: apikey.Owner}

// Request builds a GET request carrying key in X-API-Key (if not empty)
// and the given extra headers, as name/value pairs.
func Request(key string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/things", nil)
	if key != "" {
		r.Header.Set("X-API-Key", key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// AnyType is the policy of a route that admits keys of both types; the zero
// Policy admits server keys only.
var AnyType = middleware.Policy{Types: []apikey.KeyType{apikey.Server, apikey.Client}}

// OKHandler answers 200 with the identity's prefix.
var OKHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := middleware.FromContext(r.Context())
	if !ok {
		http.Error(w, "no identity", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte(id.Prefix))
})

// Serve runs r through h and returns the recorded response.
func Serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Forge returns a well-formed key (valid checksum) with the given type and
// id and a made-up secret: a wrong secret for an existing key id.
func Forge(t apikey.KeyType, id string, secretChar byte) string {
	k, err := apikey.AssembleKey(t, id, strings.Repeat(string(secretChar), apikey.SecretLength))
	if err != nil {
		panic(err)
	}
	return k.Reveal()
}

// Flip returns a character of the key alphabet other than c, to break a
// key's checksum.
func Flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// ProblemCode returns the code of a problem response body, or
// "unparsable: <body>".
func ProblemCode(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Code == "" {
		return "unparsable: " + string(body)
	}
	return p.Code
}
