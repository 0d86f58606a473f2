package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/memory"
)

// setup returns a store with the production environment and its default
// keys. Examples use apikey.TestParams to stay fast; real services use the
// default parameters.
func setup() (*memory.Store, []apikey.Issued) {
	store := memory.New()
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	issued, _ := m.Bootstrap(context.Background(), apikey.Actor{ID: "ops", Role: apikey.Owner}, apikey.Production)
	return store, issued
}

func Example() {
	store, issued := setup()
	v, err := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	if err != nil {
		panic(err)
	}
	defer v.Close()

	mux := http.NewServeMux()
	mux.Handle("/hello", v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s key of %s", id.Type, id.Environment)
	})))

	r := httptest.NewRequest(http.MethodGet, "/hello", nil)
	r.Header.Set("X-API-Key", issued[0].Key.Reveal())
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Body.String())

	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/hello", nil))
	fmt.Println(w.Code, w.Header().Get("Content-Type"))
	// Output:
	// 200 hello server key of production
	// 401 application/problem+json
}

func ExampleValidator_Require() {
	store, issued := setup()
	v, _ := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	defer v.Close()

	// Writing customers takes a server key of production with the scope.
	write := v.Require(middleware.Policy{
		Types:        []apikey.KeyType{apikey.Server},
		Scope:        "customers:write",
		Environments: []string{apikey.Production},
	})
	h := write(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))

	for _, is := range issued { // the default server key, then the publishable key
		r := httptest.NewRequest(http.MethodPost, "/customers", nil)
		r.Header.Set("X-API-Key", is.Key.Reveal())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(is.Key.Type(), w.Code)
	}
	// Output:
	// server 200
	// client 403
}

// A group authenticates once; each route authorizes its own key types.
// The CORS layer wraps the whole router.
func ExampleValidator_Authenticate() {
	store, issued := setup()
	v, _ := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	defer v.Close()

	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	api := http.NewServeMux()
	api.Handle("GET /products", v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Server, apikey.Client}})(ok))
	api.Handle("POST /products", v.Require(middleware.Policy{Scope: "products:write"})(ok))
	h := v.CORS(v.Authenticate(api))

	for _, is := range issued { // the default server key, then the publishable key
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			r := httptest.NewRequest(method, "/products", nil)
			r.Header.Set("X-API-Key", is.Key.Reveal())
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			fmt.Println(is.Key.Type(), method, w.Code)
		}
	}
	// Output:
	// server GET 200
	// server POST 200
	// client GET 200
	// client POST 403
}

func ExampleValidator_Check() {
	store, issued := setup()
	v, _ := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	defer v.Close()

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-API-Key", issued[1].Key.Reveal())
	id, err := v.Check(r, middleware.Policy{Types: []apikey.KeyType{apikey.Server}})
	fmt.Println(id.KeyID == "", errors.Is(err, middleware.ErrKeyType), problem.Of(err).Code())
	// Output: true true key_type_not_allowed
}

func ExampleValidator_Invalidate() {
	store := memory.New()
	v, _ := middleware.New(middleware.Options{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	defer v.Close()

	// Changes made through this Manager take effect in v at once.
	m, _ := apikey.NewManager(apikey.ManagerOptions{
		Store:   store,
		Hasher:  apikey.Argon2id{Params: apikey.TestParams},
		OnEvent: v.Invalidate,
	})
	owner := apikey.Actor{ID: "ops", Role: apikey.Owner}
	_, _ = m.Bootstrap(context.Background(), owner, apikey.Staging)
	temp, _ := m.Create(context.Background(), owner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"orders:read"}, ExpiresAt: m.Now().Add(3600e9)})

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-API-Key", temp.Key.Reveal())
	_, err := v.Check(r, middleware.Policy{})
	fmt.Println(err)
	_, _ = m.Revoke(context.Background(), owner, temp.View.ID)
	_, err = v.Check(r, middleware.Policy{})
	fmt.Println(err)
	// Output:
	// <nil>
	// problem: revoked API key
}

func ExampleFromContext() {
	id, ok := middleware.FromContext(context.Background())
	fmt.Println(id.KeyID == "", ok)
	// Output: true false
}

// A handler that reads the Identity can be unit-tested without a key: put
// one in the request's context with NewContext.
func ExampleNewContext() {
	whoami := func(w http.ResponseWriter, r *http.Request) {
		id, ok := middleware.FromContext(r.Context())
		if !ok {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s of %s", id.Prefix, id.Environment)
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/whoami", nil)
	r = r.WithContext(middleware.NewContext(r.Context(), middleware.Identity{
		KeyID: "0123456789ab", Prefix: "server-0123456789ab", Type: apikey.Server,
		Environment: apikey.Staging, Scopes: []string{"orders:read"},
	}))
	w := httptest.NewRecorder()
	whoami(w, r)
	fmt.Println(w.Body.String())
	// Output: server-0123456789ab of staging
}
