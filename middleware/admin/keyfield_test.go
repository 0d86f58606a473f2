package admin_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyFieldRoutes pins what the routes that replace one field of a key
// (name, owner, metadata) share: a key the caller cannot see is 404 before
// the body is read, a missing or null member is 400 with the route's own
// detail, and a given member is set and answered with the key's view.
func TestKeyFieldRoutes(t *testing.T) {
	for _, tt := range []struct {
		route, member, missing, set string
		want                        any
	}{
		{"name", "name", `"name" is required ("" removes it)`, `{"name":"billing"}`, "billing"},
		{"owner", "owner", `"owner" is required ("" names nobody)`, `{"owner":"user_42"}`, "user_42"},
		{"metadata", "metadata", `"metadata" is required ({} removes it)`, `{"metadata":{"plan":"pro"}}`, map[string]any{"plan": "pro"}},
	} {
		t.Run(tt.route, func(t *testing.T) {
			f := newFixture(t)
			path := "/keys/" + f.client.View.ID + "/" + tt.route

			status, body, _ := f.do(t, "PUT", "/keys/nosuchkey000/"+tt.route, "")
			assert.Equal(t, http.StatusNotFound, status, "%v", body)
			assert.Equal(t, "not_found", body["code"])

			for _, missing := range []string{`{}`, `{"` + tt.member + `":null}`} {
				status, body, _ = f.do(t, "PUT", path, missing)
				assert.Equal(t, http.StatusBadRequest, status, "%s: %v", missing, body)
				assert.Equal(t, "invalid_request", body["code"], missing)
				assert.Equal(t, tt.missing, body["detail"], missing)
			}

			status, body, _ = f.do(t, "PUT", path, tt.set)
			require.Equal(t, http.StatusOK, status, "%v", body)
			assert.Equal(t, f.client.View.ID, body["id"])
			assert.Equal(t, tt.want, body[tt.member])
		})
	}
}
