package admin_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRoutes sends arbitrary methods, paths, queries and bodies to the
// management API: path segments ({env}, {id}, {type}) and query parameters
// are untrusted input too. The API answers with a status below 500, never a
// panic, and every response carries Cache-Control: no-store. "$KEY" in any
// input stands for a full server key, as a client may paste one anywhere:
// no refusal repeats its secret part.
func FuzzRoutes(f *testing.F) {
	fx := newFixture(f)
	id := fx.client.View.ID
	for _, s := range []struct{ method, path, query, body string }{
		{"GET", "/environments", "", ""},
		{"GET", "/environments/production/keys", "", ""},
		{"POST", "/environments/production/keys", "", `{"type":"server","scopes":["orders:read"]}`},
		{"POST", "/environments/staging/keys/server/rotate", "", `{"grace":"1h"}`},
		{"GET", "/keys/" + id, "", ""},
		{"GET", "/keys/client-" + id, "", ""},
		{"PUT", "/keys/" + id + "/grace", "", `{"grace":"-1h"}`},
		{"POST", "/keys/" + id + "/revoke", "", ""},
		{"PUT", "/keys/" + id + "/scopes", "", `{"scopes":["*"]}`},
		{"POST", "/keys/" + id + "/reveal", "", ""},
		{"PUT", "/environments/Prod!/origins", "", `{"allowed_origins":["http://localhost"]}`},
		{"GET", "/audit", "environment=production&limit=0", ""},
		{"GET", "/audit", "limit=99999999999999999999", ""},
		{"DELETE", "/keys/%00", "", ""},
		{"PATCH", "/environments/../keys", "", "{"},
		{"GET", "/keys/$KEY", "", ""},
		{"POST", "/keys/$KEY/rotate", "", `{"grace":"$KEY"}`},
		{"POST", "/environments/production/keys", "", `{"type":"server","scopes":["$KEY"],"owner":"$KEY"}`},
		{"PUT", "/keys/" + id + "/metadata", "", `{"metadata":{"k":"$KEY"},"$KEY":1}`},
		{"GET", "/audit", "before=$KEY&environment=$KEY", ""},
		{"PUT", "/environments/production/lifetime", "", `{"default_expiry_seconds":1e400,"max_lifetime_seconds":-0}`},
		{"PUT", "/keys/" + id + "/name", "", `{"name":"$KEY"}`},
		{"POST", "/environments", "", `{"environment":"$KEY"}`},
		{"PUT", "/keys/" + id + "/limits", "", limitsJSON},
		{"PUT", "/keys/server-" + id + "/limits", "", `{"rate":{"requests":1e999,"window_seconds":-0.5},"allowed_ips":["$KEY"]}`},
		{"POST", "/environments/production/keys", "", `{"type":"client","limits":{"quota":{"limit":"$KEY","$KEY":1}}}`},
		{"GET", "/keys/" + id + "/usage", "from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z&limit=1", ""},
		{"GET", "/keys/" + id + "/callers", "", ""},
		{"GET", "/environments/production/usage", "from=2030-01-01T00:00:00%2B01:00&to=9999-12-31T23:59:59Z&after=$KEY", ""},
		{"GET", "/owners/user%2F42/keys", "limit=1&after=$KEY", ""},
		{"POST", "/owners/$KEY/revoke", "", ""},
		{"GET", "/keys/expiring", "within=9223372036854775807ns&environment=$KEY", ""},
		{"GET", "/keys/expiring", "within=-1h&after=$KEY", ""},
	} {
		f.Add(s.method, s.path, s.query, s.body)
	}
	full := fx.server.Key.Reveal()
	secret := full[len(fx.server.Key.Prefix()):]
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if !validMethod(method) {
			return
		}
		path = strings.ReplaceAll(path, "$KEY", full)
		query = strings.ReplaceAll(query, "$KEY", url.QueryEscape(full))
		body = strings.ReplaceAll(body, "$KEY", full)
		r := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
		r.Method = method
		r.URL = &url.URL{Path: "/" + strings.TrimPrefix(path, "/"), RawQuery: query}
		r.RequestURI = r.URL.RequestURI()
		w := httptest.NewRecorder()
		fx.api.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s with %q: status %d: %s", method, path, query, body, w.Code, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%s %s: no Cache-Control: no-store", method, path)
		}
		if w.Code >= 400 && strings.Contains(w.Body.String(), secret) {
			t.Fatalf("%s %s?%s with %q: the refusal repeats a key's secret: %s", method, path, query, body, w.Body)
		}
	})
}

// validMethod reports whether m is a token, as net/http's server requires
// of a request method.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
