package admin_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/middleware/admin"
)

// TestReasons: Reasons lists every exported Reason of errors.go once, each
// with a doc comment that starts with its name and states its status and
// code, and the codes are unique.
func TestReasons(t *testing.T) {
	listed := map[string]int{}
	for _, r := range admin.Reasons() {
		_, dup := listed[r.Code()]
		assert.False(t, dup, "code %s twice", r.Code())
		listed[r.Code()] = r.Status()
		assert.GreaterOrEqual(t, r.Status(), 400, r.Code())
		assert.NotEmpty(t, http.StatusText(r.Status()), r.Code())
	}
	list := admin.Reasons()
	list[0] = nil
	assert.NotNil(t, admin.Reasons()[0], "Reasons returns a copy")

	file, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, parser.ParseComments)
	require.NoError(t, err)
	declared := map[string]int{}
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.VAR {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			name := vs.Names[0].Name
			if !ast.IsExported(name) || !strings.HasPrefix(name, "Reason") {
				continue
			}
			call, ok := vs.Values[0].(*ast.CallExpr)
			require.True(t, ok, name)
			code, err := strconv.Unquote(call.Args[0].(*ast.BasicLit).Value)
			require.NoError(t, err, name)
			declared[code] = listed[code]
			require.NotNil(t, vs.Doc, "%s has a doc comment", name)
			doc := vs.Doc.Text()
			assert.True(t, strings.HasPrefix(doc, name+" ("+strconv.Itoa(listed[code])+`, "`+code+`")`), "%s: the doc starts with its name, status and code: %q", name, doc)
		}
	}
	assert.Equal(t, listed, declared, "Reasons lists every exported Reason")
}
