package integration_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/memory"
	"github.com/keystile/keystile/storage/sqlstore"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the middleware and the store rather than a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkColdValidation serves a request with a valid key through
// middleware.Validator.Handler with the validation cache disabled
// (CacheSize -1) and apikey.DefaultParams: every request loads the key from
// the store and verifies its argon2id hash. The memory store is the
// baseline; the difference is the SQL backend's cost per cold validation.
//
//	go test -run '^$' -bench ColdValidation -count 3 ./examples/integration
func BenchmarkColdValidation(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		benchmarkColdValidation(b, memory.New())
	})
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			benchmarkColdValidation(b, be.store(b, be.fresh(b), sqlstore.Options{}))
		})
	}
}

func benchmarkColdValidation(b *testing.B, store apikey.Store) {
	hasher := apikey.Argon2id{Params: apikey.DefaultParams}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: hasher})
	require.NoError(b, err)
	issued, err := m.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(b, err)
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher, CacheSize: -1})
	require.NoError(b, err)
	b.Cleanup(func() { _ = v.Close() })

	h := v.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	r.Header.Set("X-API-Key", issued[0].Key.Reveal())
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code = http.StatusOK
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			b.Fatalf("status %d, want 200", w.code)
		}
	}
}
