package admin

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenAPIRoutes: the OpenAPI document describes exactly the routes the
// handler serves, and GET /openapi.json.
func TestOpenAPIRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	var described []string
	for path, item := range doc.Paths {
		for method := range item {
			if m := strings.ToUpper(method); slices.Contains([]string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch}, m) {
				described = append(described, m+" "+path)
			}
		}
	}
	served := append(slices.Collect(maps.Keys((&API{}).routes())), "GET /openapi.json")
	assert.ElementsMatch(t, served, described)
}
