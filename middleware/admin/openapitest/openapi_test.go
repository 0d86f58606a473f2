package openapitest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/admintest"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/storage/memory"
)

// contract is the OpenAPI document as an API serves it, and validators of
// requests and responses against it.
type contract struct {
	model *v3.Document
	// keyed checks the X-API-Key security scheme; unkeyed leaves it out,
	// for callers that Authorize admits by other means (the route table,
	// like a console's signed-in users).
	keyed, unkeyed validator.Validator
}

// load gets GET /openapi.json from api and builds the validators.
func load(t *testing.T, api http.Handler) *contract {
	t.Helper()
	w := httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest("GET", "/openapi.json", nil))
	require.Equal(t, http.StatusOK, w.Code)
	build := func(opts ...config.Option) (validator.Validator, *v3.Document) {
		doc, err := libopenapi.NewDocument(w.Body.Bytes())
		require.NoError(t, err)
		model, err := doc.BuildV3Model()
		require.NoError(t, err, "every reference resolves")
		v, errs := validator.NewValidator(doc, append(opts, config.WithFormatAssertions())...)
		require.Empty(t, errs)
		return v, &model.Model
	}
	c := &contract{}
	c.keyed, c.model = build()
	c.unkeyed, _ = build(config.WithoutSecurityValidation())
	return c
}

// describe lists validation errors for a failure message.
func describe(errs []*valerrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  " + e.Message + ": " + e.Reason)
		for _, s := range e.SchemaValidationErrors {
			b.WriteString("\n    " + s.FieldPath + " (" + s.KeywordLocation + "): " + s.Reason)
		}
	}
	return b.String()
}

// TestDocumentIsValid validates the document against the OpenAPI 3.1
// specification's schema, and checks its version.
func TestDocumentIsValid(t *testing.T) {
	c := load(t, admintest.NewFixture(t).API)
	ok, errs := c.keyed.ValidateDocument()
	assert.True(t, ok, "the document is valid OpenAPI 3.1:%s", describe(errs))
	assert.Equal(t, "3.1.0", c.model.Version)
}

// route returns the operation of the document that r names,
// "POST /keys/{id}/rotate", or "" if there is none.
func (c *contract) route(r *http.Request) string {
	item, errs, path := paths.FindPath(r, c.model, nil)
	if item == nil || len(errs) > 0 {
		return ""
	}
	return r.Method + " " + path
}

// operations lists every operation of the document.
func (c *contract) operations() []string {
	var ops []string
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			ops = append(ops, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(ops)
	return ops
}

// check validates a request and its response against the document. A
// request of the document (not malformed) must validate; a malformed one
// must not, as the API refuses it. A response must validate in every case:
// status, headers and body. The response to a request on no route of the
// document is validated against the Problem schema.
func (c *contract) check(t *testing.T, v validator.Validator, malformed bool, r *http.Request, res *http.Response) {
	t.Helper()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	res.Body = io.NopCloser(strings.NewReader(string(body)))

	ok, errs := v.ValidateHttpRequest(r)
	if malformed {
		assert.False(t, ok, "the document admits a request the API refuses")
	} else {
		assert.True(t, ok, "the request is valid:%s", describe(errs))
	}
	if c.route(r) == "" {
		problem := c.model.Components.Schemas.GetOrZero("Problem").Schema()
		sv := schema_validation.NewSchemaValidatorWithLogger(slog.New(slog.DiscardHandler), config.WithFormatAssertions())
		ok, errs := sv.ValidateSchemaBytes(problem, body)
		assert.True(t, ok, "the problem is valid:%s\n%s", describe(errs), body)
		return
	}
	ok, errs = v.ValidateHttpResponse(r, res)
	assert.True(t, ok, "the response is valid:%s\n%s", describe(errs), body)
}

// TestRouteTable runs the route table of package admin's TestRoutes and
// checks every request and response against the document, then that the
// table exercised every operation of it.
func TestRouteTable(t *testing.T) {
	f := admintest.NewFixture(t)
	c := load(t, f.API)
	exercised := map[string]bool{}
	admintest.Run(t, f, func(t *testing.T, tc admintest.Case, r *http.Request, res *http.Response) {
		c.check(t, c.unkeyed, tc.Malformed, r, res)
		if route := c.route(r); route != "" && !tc.Malformed {
			exercised[route] = true
		}
	})
	assert.Equal(t, c.operations(), slices.Sorted(maps.Keys(exercised)),
		"the table exercises every operation of the document with a request of it")
}

// brokenStore fails every read, like a database that went away.
type brokenStore struct{ *memory.Store }

func (brokenStore) Key(context.Context, string) (apikey.Record, error) {
	return apikey.Record{}, errStorage
}
func (brokenStore) Keys(context.Context, apikey.KeyQuery) ([]apikey.Record, error) {
	return nil, errStorage
}
func (brokenStore) Settings(context.Context, string, string) (apikey.Settings, error) {
	return apikey.Settings{}, errStorage
}

var errStorage = errors.New("database went away")

// noUsageStore is a store that keeps no usage: it has the methods of
// apikey.Store alone.
type noUsageStore struct{ apikey.Store }

// TestOtherSetups checks the answers that the route table's API cannot
// give against the document: a storage failure, no audit log, and the key
// middleware in front of the API with admin.KeyScopes, as the package
// documentation mounts it.
func TestOtherSetups(t *testing.T) {
	ctx := context.Background()
	f := admintest.NewFixture(t)
	c := load(t, f.API)
	owner := func(*http.Request) (admin.Caller, error) { return admintest.Owner, nil }

	t.Run("storage failure", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: brokenStore{f.Store}})
		require.NoError(t, err)
		api, err := admin.New(admin.Options{Manager: m, Authorize: owner, Audit: f.Store, SingleAccount: true})
		require.NoError(t, err)
		for _, path := range []string{"/environments/production/keys", "/keys/" + f.Client.View.ID, "/environments/production/origins"} {
			r := httptest.NewRequest("GET", path, nil)
			w := httptest.NewRecorder()
			api.ServeHTTP(w, r)
			require.Equal(t, http.StatusServiceUnavailable, w.Code, path)
			c.check(t, c.unkeyed, false, httptest.NewRequest("GET", path, nil), w.Result())
		}
	})

	t.Run("no audit log", func(t *testing.T) {
		api, err := admin.New(admin.Options{Manager: f.Manager, Authorize: owner, SingleAccount: true})
		require.NoError(t, err)
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest("GET", "/audit", nil))
		require.Equal(t, http.StatusNotImplemented, w.Code)
		c.check(t, c.unkeyed, false, httptest.NewRequest("GET", "/audit", nil), w.Result())
	})

	t.Run("no usage", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: noUsageStore{f.Store}})
		require.NoError(t, err)
		api, err := admin.New(admin.Options{Manager: m, Authorize: owner, SingleAccount: true})
		require.NoError(t, err)
		path := "/environments/production/usage?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z"
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		require.Equal(t, http.StatusNotImplemented, w.Code, w.Body.String())
		assert.Contains(t, w.Body.String(), `"usage_unavailable"`)
		c.check(t, c.unkeyed, false, httptest.NewRequest("GET", path, nil), w.Result())
	})

	t.Run("no instances", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: noUsageStore{f.Store}})
		require.NoError(t, err)
		api, err := admin.New(admin.Options{Manager: m, Authorize: owner, SingleAccount: true})
		require.NoError(t, err)
		path := "/keys/" + f.Server.View.ID + "/propagation"
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		require.Equal(t, http.StatusNotImplemented, w.Code, w.Body.String())
		assert.Contains(t, w.Body.String(), `"instances_unavailable"`)
		c.check(t, c.unkeyed, false, httptest.NewRequest("GET", path, nil), w.Result())
	})

	t.Run("keys", func(t *testing.T) {
		v, err := middleware.New(middleware.Options{Store: f.Store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, ThrottleFailures: 2})
		require.NoError(t, err)
		t.Cleanup(func() { _ = v.Close() })
		api, err := admin.New(admin.Options{Manager: f.Manager, Audit: f.Store, Authorize: admin.KeyScopes})
		require.NoError(t, err)
		h := v.Handler(api)
		create := func(scopes ...string) apikey.Key {
			k, err := f.Manager.Create(ctx, admintest.Owner.Actor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: scopes})
			require.NoError(t, err)
			return k.Key
		}
		writer, other, rotated := create(admin.ScopeWrite), create("customers:read"), create(admin.ScopeWrite)
		_, err = f.Manager.Rotate(ctx, admintest.Owner.Actor, apikey.RotateRequest{KeyID: rotated.ID(), Grace: time.Hour})
		require.NoError(t, err)
		revoked := create(admin.ScopeRead)
		_, err = f.Manager.Revoke(ctx, admintest.Owner.Actor, revoked.ID())
		require.NoError(t, err)
		// forged returns a wrong secret for a key id that exists.
		forged := func(c string) string {
			k, err := apikey.AssembleKey(apikey.Server, f.Server.View.ID, strings.Repeat(c, apikey.SecretLength))
			require.NoError(t, err)
			return k.Reveal()
		}
		day := "/usage?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z"
		for _, tt := range []struct {
			name, key, method, path, body string
			status                        int
			malformed                     bool
		}{
			{"own usage", writer.Reveal(), "GET", "/keys/" + writer.Prefix() + day, "", 200, false},
			{"another key's usage", writer.Reveal(), "GET", "/keys/" + f.Client.Key.Prefix() + day, "", 403, false},
			{"an environment's usage", writer.Reveal(), "GET", "/environments/production" + day, "", 403, false},
			{"own limits", writer.Reveal(), "PUT", "/keys/" + writer.Prefix() + "/limits", `{"quota":{"limit":5}}`, 403, false},
			{"list", writer.Reveal(), "GET", "/environments/production/keys", "", 200, false},
			{"create", writer.Reveal(), "POST", "/environments/production/keys", `{"type":"server","name":"web","scopes":["api_keys:read"]}`, 201, false},
			{"a publishable key, which reads everything", writer.Reveal(), "POST", "/environments/production/keys", `{"type":"client","name":"web"}`, 403, false},
			{"a scope it does not hold", writer.Reveal(), "POST", "/environments/production/keys", `{"type":"server","scopes":["*"]}`, 403, false},
			{"rotated out", rotated.Reveal(), "PUT", "/keys/" + rotated.Prefix() + "/grace", `{"grace":"8760h"}`, 403, false},
			{"another environment", writer.Reveal(), "GET", "/environments/staging/keys", "", 404, false},
			{"no scope to manage keys", other.Reveal(), "GET", "/environments/production/keys", "", 403, false},
			{"a publishable key", f.Client.Key.Reveal(), "GET", "/environments/production/keys", "", 403, false},
			{"a revoked key", revoked.Reveal(), "GET", "/environments/production/keys", "", 401, false},
			{"a malformed key", "server-nonsense", "GET", "/environments/production/keys", "", 401, false},
			{"a wrong secret", forged("A"), "GET", "/keys/" + f.Client.View.ID, "", 401, false},
			{"another wrong secret", forged("B"), "GET", "/keys/" + f.Client.View.ID, "", 401, false},
			{"throttled", forged("C"), "GET", "/keys/" + f.Client.View.ID, "", 429, false},
			{"no key", "", "GET", "/environments/production/keys", "", 401, true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				request := func() *http.Request {
					r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
					if tt.key != "" {
						r.Header.Set("X-API-Key", tt.key)
					}
					if tt.body != "" {
						r.Header.Set("Content-Type", "application/json")
					}
					return r
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, request())
				require.Equal(t, tt.status, w.Code, w.Body.String())
				c.check(t, c.keyed, tt.malformed, request(), w.Result())
			})
		}
	})
}
