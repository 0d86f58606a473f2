package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Details of the refusals of a field of the wrong type or form, one per
// kind of field.
const (
	wantString   = "want a string"
	wantType     = `want "server" or "client"`
	wantStrings  = "want an array of strings"
	wantMetadata = "want an object whose values are strings"
	wantDuration = `want a duration such as "24h" or "90m"`
	wantTime     = `want a time such as "2030-01-01T00:00:00Z" (RFC 3339)`
	wantObject   = "want an object"
)

// bodyFields are the request fields of every route that reads a body, with
// what each refuses; {key} in a value stands for a full key, which a
// refusal must never repeat. TestDocumentFields checks that these are the
// fields of the OpenAPI document's request bodies.
var bodyFields = map[string]map[string]struct {
	want   string
	values []string
}{
	"POST /environments/{env}/keys": {
		"type":       {wantType, []string{`["{key}"]`, `true`, `{"t":"{key}"}`}},
		"name":       {wantString, []string{`["{key}"]`, `12`, `{"n":"{key}"}`}},
		"owner":      {wantString, []string{`["{key}"]`, `42`}},
		"metadata":   {wantMetadata, []string{`"{key}"`, `["{key}"]`, `{"plan":["{key}"]}`, `{"plan":1}`, `{"plan":{"k":"{key}"}}`}},
		"scopes":     {wantStrings, []string{`"{key}"`, `[1]`, `[["{key}"]]`, `{"s":"{key}"}`}},
		"expires_in": {wantDuration, []string{`"{key}"`, `"1d"`, `""`, `24`, `["{key}"]`}},
		"expires_at": {wantTime, []string{`"{key}"`, `"tomorrow"`, `"2030-13-01"`, `1893456000`}},
		"limits":     {wantObject, []string{`"{key}"`, `["{key}"]`, `true`, `100`}},
	},
	"POST /keys/import": {
		"account":     {wantString, []string{`["{key}"]`, `1`, `{"a":"{key}"}`}},
		"environment": {wantString, []string{`["{key}"]`, `1`, `{"e":"{key}"}`}},
		"type":        {wantType, []string{`["{key}"]`, `true`}},
		"digest":      {wantString, []string{`["{key}"]`, `32`, `{"d":"{key}"}`}},
		"key":         {wantString, []string{`["{key}"]`, `true`, `{"k":"{key}"}`}},
		"name":        {wantString, []string{`["{key}"]`, `12`}},
		"owner":       {wantString, []string{`["{key}"]`, `42`}},
		"metadata":    {wantMetadata, []string{`"{key}"`, `{"plan":1}`}},
		"scopes":      {wantStrings, []string{`"{key}"`, `[1]`}},
		"expires_in":  {wantDuration, []string{`"{key}"`, `"1d"`}},
		"expires_at":  {wantTime, []string{`"{key}"`, `"tomorrow"`}},
		"limits":      {wantObject, []string{`"{key}"`, `true`}},
	},
	"POST /environments/{env}/keys/{type}/rotate": {
		"grace": {wantDuration, []string{`"{key}"`, `"1d"`, `"24"`, `86400`, `true`}},
	},
	"POST /keys/{id}/rotate": {
		"grace": {wantDuration, []string{`"{key}"`, `"1d"`, `""`, `3600`, `{"g":"{key}"}`}},
	},
	"PUT /keys/{id}/grace": {
		"grace": {wantDuration, []string{`"{key}"`, `"1d"`, `"soon"`, `3600`, `["1h"]`}},
	},
	"POST /keys/{id}/end-grace-if-silent": {
		"silent_for": {wantDuration, []string{`"{key}"`, `"1d"`, `"quiet"`, `3600`, `["1h"]`}},
	},
	"PUT /keys/{id}/scopes": {
		"scopes": {wantStrings, []string{`"{key}"`, `"*"`, `[true]`, `{"s":"{key}"}`}},
	},
	"PUT /keys/{id}/owner": {
		"owner": {wantString, []string{`["{key}"]`, `1`, `{"o":"{key}"}`}},
	},
	"PUT /keys/{id}/metadata": {
		"metadata": {wantMetadata, []string{`"{key}"`, `[]`, `{"plan":["{key}"]}`, `{"plan":null,"k":2}`}},
	},
	"PUT /keys/{id}/limits": {
		"rate":        {wantObject, []string{`"{key}"`, `["{key}"]`, `100`}},
		"quota":       {wantObject, []string{`"{key}"`, `[10000]`, `false`}},
		"allowed_ips": {wantStrings, []string{`"{key}"`, `"10.0.0.0/8"`, `[10]`, `{"a":"{key}"}`}},
	},
	"PUT /owners/{owner}/limits": {
		"rate":        {wantObject, []string{`"{key}"`, `["{key}"]`, `100`}},
		"quota":       {wantObject, []string{`"{key}"`, `[10000]`, `false`}},
		"allowed_ips": {wantStrings, []string{`"{key}"`, `"10.0.0.0/8"`, `[10]`, `{"a":"{key}"}`}},
	},
	"PUT /environments/{env}/origins": {
		"allowed_origins": {wantStrings, []string{`"{key}"`, `"https://app.example.com"`, `[1]`, `{"o":"{key}"}`}},
	},
	"PUT /environments/{env}/lifetime": {
		"default_expiry_seconds": {"want a number", []string{`"{key}"`, `"2592000"`, `[1]`, `true`}},
		"max_lifetime_seconds":   {"want a number", []string{`"{key}"`, `"720h"`, `{"s":"{key}"}`}},
	},
	"PUT /keys/{id}/name": {
		"name": {wantString, []string{`["{key}"]`, `1`, `{"n":"{key}"}`}},
	},
	"POST /environments": {
		"environment": {wantString, []string{`["{key}"]`, `1`, `{"e":"{key}"}`}},
	},
	"POST /account/close": {
		"confirm": {wantString, []string{`["{key}"]`, `true`, `{"c":"{key}"}`}},
	},
	"POST /webhooks": {
		"url":         {wantString, []string{`["{key}"]`, `1`, `{"u":"{key}"}`}},
		"actions":     {wantStrings, []string{`"{key}"`, `"revoke"`, `[1]`, `{"a":"{key}"}`}},
		"environment": {wantString, []string{`["{key}"]`, `1`}},
		"enabled":     {"want true or false", []string{`"{key}"`, `"yes"`, `1`}},
	},
	"PUT /webhooks/{id}": {
		"url":         {wantString, []string{`["{key}"]`, `1`, `{"u":"{key}"}`}},
		"actions":     {wantStrings, []string{`"{key}"`, `"revoke"`, `[1]`, `{"a":"{key}"}`}},
		"environment": {wantString, []string{`["{key}"]`, `1`}},
		"enabled":     {"want true or false", []string{`"{key}"`, `"yes"`, `1`}},
	},
	"POST /webhooks/{id}/rotate-secret": {
		"overlap": {wantDuration, []string{`"{key}"`, `"1d"`, `3600`, `["1h"]`}},
	},
	"POST /webhooks/{id}/replay": {
		"event_id": {wantString, []string{`["{key}"]`, `1`, `{"e":"{key}"}`}},
	},
	"POST /accounts/{account}/close": {
		"confirm": {wantString, []string{`["{key}"]`, `1`, `{"c":"{key}"}`}},
	},
}

// TestFieldErrors sends every request field of every route with a value of
// the wrong type or form: each is refused with 400 invalid_request, and the
// detail names the field and what it takes, never the value.
func TestFieldErrors(t *testing.T) {
	f := newFixture(t)
	f.caller.Operator = true
	key := f.server.Key.Reveal()
	paths := map[string]string{
		"{env}": "production", "{type}": "client", "{id}": f.client.Key.Prefix(), "{account}": "default", "{owner}": "user_42",
	}
	for route, fields := range bodyFields {
		method, path, _ := strings.Cut(route, " ")
		for from, to := range paths {
			path = strings.ReplaceAll(path, from, to)
		}
		send := func(t *testing.T, body string) (int, map[string]any) {
			t.Helper()
			status, problem, _ := f.do(t, method, path, body)
			require.Equal(t, http.StatusBadRequest, status, "%s %s", route, body)
			assert.Equal(t, "invalid_request", problem["code"])
			return status, problem
		}
		for field, tt := range fields {
			for _, value := range tt.values {
				body := `{"` + field + `":` + strings.ReplaceAll(value, "{key}", key) + `}`
				t.Run(route+"/"+field+"="+value, func(t *testing.T) {
					_, problem := send(t, body)
					assert.Equal(t, field+": "+tt.want, problem["detail"])
					assert.NotContains(t, problem["detail"], key[len("server-"):])
					if value[0] == '"' && len(value) > 4 && !strings.Contains(value, "{key}") {
						assert.NotContains(t, problem["detail"], value[1:len(value)-1], "the value is not echoed")
					}
				})
			}
		}
		t.Run(route+"/unknown field", func(t *testing.T) {
			_, problem := send(t, `{"`+key+`":1}`)
			detail := problem["detail"].(string)
			assert.True(t, strings.HasPrefix(detail, "unknown field: want "), detail)
			assert.NotContains(t, detail, key[len("server-"):], "the member's name is not echoed")
			for field := range fields {
				assert.Contains(t, detail, `"`+field+`"`, "the detail lists the fields")
			}
		})
		for field := range fields {
			t.Run(route+"/"+field+" in capitals", func(t *testing.T) {
				_, problem := send(t, `{"`+strings.ToUpper(field)+`":null}`)
				assert.Contains(t, problem["detail"], "unknown field", "names are matched exactly")
			})
		}
		for _, body := range []string{`null`, `[]`, `"` + key + `"`, `{"a":`, `{}{}`, `{} ]`} {
			t.Run(route+"/body "+body[:min(len(body), 4)], func(t *testing.T) {
				_, problem := send(t, body)
				assert.NotContains(t, problem["detail"], key[len("server-"):])
			})
		}
	}
	_, problem, _ := f.do(t, "PUT", "/keys/"+f.client.Key.Prefix()+"/grace", `null`)
	assert.Equal(t, "want a JSON object, not null", problem["detail"])
	_, problem, _ = f.do(t, "PUT", "/keys/"+f.client.Key.Prefix()+"/grace", `{"grace":"1h"} {}`)
	assert.Equal(t, "malformed JSON: one object only", problem["detail"])
	_, problem, _ = f.do(t, "POST", "/environments/production/keys", `{"type":`)
	assert.Equal(t, "malformed JSON: unexpected end", problem["detail"])
	_, problem, _ = f.do(t, "POST", "/account/close", `{"now":true}`)
	assert.Equal(t, `unknown field: want "confirm"`, problem["detail"])
}
