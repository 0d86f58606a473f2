package admin

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's contract: an OpenAPI 3.1 document of every route,
// request and response schema and problem code, written by hand beside the
// code it describes. The openapitest module checks the handler against it
// with an OpenAPI validator.
//
//go:embed openapi.json
var openAPI []byte

// serveOpenAPI answers GET /openapi.json. It calls no Authorize: the
// document is the same for every caller and names no account, key or
// environment.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openAPI)
}
