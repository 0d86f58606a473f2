package admin_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/storage/memory"
)

// document is the parts of the OpenAPI document that these tests read
// without an OpenAPI library; the openapitest module validates the whole
// document, and the handler's answers, with one.
type document struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"` // and "parameters"
	Components struct {
		Schemas map[string]struct {
			Enum       []string                   `json:"enum"`
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"schemas"`
		Responses map[string]struct {
			Content map[string]struct {
				Schema struct {
					AllOf []struct {
						Properties struct {
							Status struct {
								Const int `json:"const"`
							} `json:"status"`
							Code struct {
								Enum []string `json:"enum"`
							} `json:"code"`
						} `json:"properties"`
					} `json:"allOf"`
				} `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"components"`
}

// serveDocument gets GET /openapi.json from an API whose Authorize fails
// the test: the document needs no authorization.
func serveDocument(t *testing.T, method string) *httptest.ResponseRecorder {
	t.Helper()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	require.NoError(t, err)
	api, err := admin.New(admin.Options{Manager: m, Authorize: func(*http.Request) (admin.Caller, error) {
		t.Error("GET /openapi.json called Authorize")
		return admin.Caller{}, nil
	}})
	require.NoError(t, err)
	w := httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest(method, "/openapi.json", nil))
	return w
}

// TestOpenAPIServed: GET /openapi.json serves openapi.json, to anyone;
// other methods are no route.
func TestOpenAPIServed(t *testing.T) {
	w := serveDocument(t, "GET")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	file, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	assert.Equal(t, string(file), w.Body.String())
	var doc document
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &doc))
	assert.Equal(t, "3.1.0", doc.OpenAPI)

	w = serveDocument(t, "HEAD")
	assert.Equal(t, http.StatusOK, w.Code)
	w = serveDocument(t, "POST")
	assert.Equal(t, http.StatusNotFound, w.Code)
	assert.Contains(t, w.Body.String(), `"no_such_route"`)
}

func readDocument(t *testing.T) document {
	t.Helper()
	var doc document
	require.NoError(t, json.Unmarshal(serveDocument(t, "GET").Body.Bytes(), &doc))
	return doc
}

// TestOpenAPIProblemCodes: the document's AdminProblemCode enum is the codes
// of admin.Reasons, in order; its KeyProblemCode enum is the codes of
// package middleware's reasons; and each problem response lists codes of
// its own status only, every code of those two enums in one of them but
// no_such_route, which no operation of the document answers.
func TestOpenAPIProblemCodes(t *testing.T) {
	doc := readDocument(t)
	var codes []string
	status := map[string]int{}
	for _, r := range admin.Reasons() {
		codes = append(codes, r.Code())
		status[r.Code()] = r.Status()
	}
	assert.Equal(t, codes, doc.Components.Schemas["AdminProblemCode"].Enum)

	middlewareCodes := middlewareReasons(t)
	var keyCodes []string
	for _, r := range middlewareCodes {
		keyCodes = append(keyCodes, r.code)
		status[r.code] = r.status
	}
	assert.Equal(t, keyCodes, doc.Components.Schemas["KeyProblemCode"].Enum)

	listed := map[string]bool{}
	for name, resp := range doc.Components.Responses {
		problem, ok := resp.Content["application/problem+json"]
		if !ok {
			continue
		}
		require.Len(t, problem.Schema.AllOf, 2, name)
		props := problem.Schema.AllOf[1].Properties
		require.NotEmpty(t, props.Code.Enum, name)
		for _, code := range props.Code.Enum {
			assert.Equal(t, status[code], props.Status.Const, "%s: code %s has status %d", name, code, status[code])
			assert.False(t, listed[code], "code %s in one response", code)
			listed[code] = true
		}
	}
	for code := range status {
		assert.Equal(t, code != "no_such_route", listed[code], "code %s", code)
	}
}

type reason struct {
	code   string
	status int
}

// middlewareReasons reads the exported reasons of package middleware from
// its source: ErrX = problem.New("code", http.StatusX, "title") or
// ErrX = problem.Unauthorized("code", "title", challenge).
func middlewareReasons(t *testing.T) []reason {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "../errors.go", nil, 0)
	require.NoError(t, err)
	statuses := map[string]int{
		"StatusForbidden": 403, "StatusTooManyRequests": 429, "StatusServiceUnavailable": 503,
	}
	var out []reason
	ast.Inspect(file, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || !ast.IsExported(vs.Names[0].Name) {
			return true
		}
		call, ok := vs.Values[0].(*ast.CallExpr)
		if !ok {
			return true
		}
		fun, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || fun.X.(*ast.Ident).Name != "problem" {
			return true
		}
		code, err := strconv.Unquote(call.Args[0].(*ast.BasicLit).Value)
		require.NoError(t, err)
		switch fun.Sel.Name {
		case "Unauthorized":
			out = append(out, reason{code, 401})
		case "New":
			s, ok := statuses[call.Args[1].(*ast.SelectorExpr).Sel.Name]
			require.True(t, ok, "status of %s", code)
			out = append(out, reason{code, s})
		default:
			t.Fatalf("%s: unknown constructor problem.%s", code, fun.Sel.Name)
		}
		return true
	})
	require.Len(t, out, 18, "package middleware declares 18 reasons")
	return out
}

// operation is the part of an operation that the tests read.
type operation struct {
	RequestBody *struct {
		Content map[string]struct {
			Schema struct {
				Ref string `json:"$ref"`
			} `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
}

// operations returns the document's operations by route, "POST /keys/{id}/rotate".
func (doc document) operations(t *testing.T) map[string]operation {
	t.Helper()
	ops := map[string]operation{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op operation
			require.NoError(t, json.Unmarshal(raw, &op), "%s %s", method, path)
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

// TestOpenAPIRequestFields: the fields of each operation's request body in
// the document are those that TestFieldErrors sends, and the operations
// with a body are those it covers.
func TestOpenAPIRequestFields(t *testing.T) {
	doc := readDocument(t)
	withBody := map[string]bool{}
	for route, op := range doc.operations(t) {
		if op.RequestBody == nil {
			continue
		}
		withBody[route] = true
		ref := op.RequestBody.Content["application/json"].Schema.Ref
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		require.True(t, ok, "%s: %q", route, ref)
		fields := slices.Sorted(maps.Keys(doc.Components.Schemas[name].Properties))
		tested := slices.Sorted(maps.Keys(bodyFields[route]))
		assert.Equal(t, fields, tested, route)
	}
	for route := range bodyFields {
		assert.True(t, withBody[route], "%s has a request body in the document", route)
	}
}
