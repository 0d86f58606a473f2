package otelkeystile_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/otelkeystile"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// fixture is a store with the production environment bootstrapped and a
// Validator over it whose spans go to spans.
type fixture struct {
	store *faultstore.Store
	m     *apikey.Manager
	v     *middleware.Validator
	tp    *sdktrace.TracerProvider
	spans *tracetest.SpanRecorder
	keys  map[apikey.KeyType]apikey.Key
}

func newFixture(t *testing.T, configure func(*middleware.Options)) *fixture {
	t.Helper()
	f := &fixture{store: faultstore.New(memory.New()), spans: tracetest.NewSpanRecorder(), keys: map[apikey.KeyType]apikey.Key{}}
	f.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	t.Cleanup(func() { _ = f.tp.Shutdown(context.Background()) })
	var err error
	f.m, err = apikey.NewManager(apikey.ManagerOptions{Store: f.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	issued, err := f.m.Bootstrap(context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}, apikey.Production)
	require.NoError(t, err)
	for _, is := range issued {
		f.keys[is.Key.Type()] = is.Key
	}
	opts := middleware.Options{
		Store: f.store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		OnVerification: otelkeystile.Tracing(f.tp), FeedInterval: time.Hour,
	}
	if configure != nil {
		configure(&opts)
	}
	f.v, err = middleware.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.v.Close() })
	return f
}

// serve sends a request with key (none if "") and extra headers through a
// route for server keys, in the context of a parent span, and returns the
// status and the parent's span context.
func (f *fixture) serve(key string, headers ...string) (int, sdktrace.ReadOnlySpan) {
	ctx, parent := f.tp.Tracer("test").Start(context.Background(), "request")
	defer parent.End()
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/things", nil)
	if key != "" {
		r.Header.Set(middleware.HeaderAPIKey, key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	f.v.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, r)
	return w.Code, parent.(sdktrace.ReadOnlySpan)
}

// verifySpans returns the keystile spans ended so far.
func (f *fixture) verifySpans() []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range f.spans.Ended() {
		if s.Name() == otelkeystile.SpanName {
			out = append(out, s)
		}
	}
	return out
}

// attrs returns a span's attributes as a map of their values' strings.
func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// TestSpans: a span per verification, a child of the request's span,
// whose attributes say what the check did and how it ended.
func TestSpans(t *testing.T) {
	f := newFixture(t, nil)
	server, client := f.keys[apikey.Server], f.keys[apikey.Client]
	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	extra, err := f.m.Create(context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner},
		apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	require.NoError(t, err)

	verified := map[string]string{
		"keystile.account": apikey.DefaultAccount, "keystile.environment": apikey.Production,
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		key    string
		setup  func()
		status int
		attrs  map[string]string
		err    bool // the span's status is Error
	}{
		{"miss: store read and argon2", server.Reveal(), nil, http.StatusOK, with(verified,
			"keystile.key.prefix", server.Prefix(), "keystile.cache", "miss", "keystile.store_read", "true",
			"keystile.argon2", "true", "keystile.outcome", "admitted"), false},
		{"hit", server.Reveal(), nil, http.StatusOK, with(verified,
			"keystile.key.prefix", server.Prefix(), "keystile.cache", "hit", "keystile.store_read", "false",
			"keystile.argon2", "false", "keystile.outcome", "admitted"), false},
		{"verified, then refused: publishable key", client.Reveal(), nil, http.StatusForbidden, with(verified,
			"keystile.key.prefix", client.Prefix(), "keystile.cache", "miss", "keystile.store_read", "true",
			"keystile.argon2", "true", "keystile.outcome", "refused", "keystile.refusal", middleware.ErrKeyType.Code()), false},
		{"unknown key", unknown.Reveal(), nil, http.StatusUnauthorized, with(nil,
			"keystile.key.prefix", unknown.Prefix(), "keystile.cache", "miss", "keystile.store_read", "true",
			"keystile.argon2", "false", "keystile.outcome", "refused", "keystile.refusal", middleware.ErrInvalidKey.Code()), false},
		{"malformed key", "server-nope", nil, http.StatusUnauthorized, with(nil,
			"keystile.store_read", "false", "keystile.argon2", "false",
			"keystile.outcome", "refused", "keystile.refusal", middleware.ErrMalformedKey.Code()), false},
		{"missing key", "", nil, http.StatusUnauthorized, with(nil,
			"keystile.store_read", "false", "keystile.argon2", "false",
			"keystile.outcome", "refused", "keystile.refusal", middleware.ErrMissingKey.Code()), false},
		{"store failure", extra.Key.Reveal(), func() { f.store.Down(faultstore.OpKey) }, http.StatusServiceUnavailable, with(nil,
			"keystile.key.prefix", extra.Key.Prefix(), "keystile.cache", "miss", "keystile.store_read", "true",
			"keystile.argon2", "false", "keystile.outcome", "refused", "keystile.refusal", middleware.ErrUnavailable.Code()), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			before := len(f.verifySpans())
			status, parent := f.serve(tc.key)
			assert.Equal(t, tc.status, status)
			spans := f.verifySpans()
			require.Len(t, spans, before+1)
			s := spans[before]
			assert.Equal(t, tc.attrs, attrs(s))
			assert.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID())
			assert.Equal(t, parent.SpanContext().TraceID(), s.SpanContext().TraceID())
			assert.False(t, s.EndTime().Before(s.StartTime()))
			assert.False(t, s.StartTime().Before(parent.StartTime()))
			assert.Equal(t, otelkeystile.ScopeName, s.InstrumentationScope().Name)
			if tc.err {
				assert.Equal(t, codes.Error, s.Status().Code)
				assert.Equal(t, middleware.ErrUnavailable.Code(), s.Status().Description)
			} else {
				assert.Equal(t, codes.Unset, s.Status().Code)
			}
		})
	}
}

// TestSpansHoldNoSecret: whatever a request sends (a valid key, a wrong
// secret, a key in the path, the origin or a second header, a bearer
// token), no span holds any part of a key's secret.
func TestSpansHoldNoSecret(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.Keys.AllowBearer = true })
	server, client := f.keys[apikey.Server], f.keys[apikey.Client]
	wrong := []byte(server.Reveal())
	wrong[len(wrong)-10] ^= 1 // a broken checksum
	sent := []struct {
		key     string
		headers []string
	}{
		{server.Reveal(), nil},
		{server.Reveal(), nil},
		{client.Reveal(), []string{"Origin", "https://" + client.Reveal() + ".example"}},
		{string(wrong), nil},
		{"", []string{"Authorization", "Bearer " + server.Reveal()}},
		{server.Reveal(), []string{middleware.HeaderAPIKey, client.Reveal()}},
	}
	for _, s := range sent {
		f.serve(s.key, s.headers...)
	}
	spans := f.spans.Ended()
	require.Len(t, f.verifySpans(), len(sent))
	for _, key := range []apikey.Key{server, client} {
		secret := strings.TrimPrefix(key.Reveal(), key.Prefix())
		require.Greater(t, len(secret), 40)
		for _, s := range spans {
			texts := []string{s.Name(), s.Status().Description}
			for _, kv := range s.Attributes() {
				texts = append(texts, string(kv.Key), kv.Value.Emit())
			}
			for _, e := range s.Events() {
				texts = append(texts, e.Name)
				for _, kv := range e.Attributes {
					texts = append(texts, kv.Value.Emit())
				}
			}
			for _, text := range texts {
				for i := 0; i+8 <= len(secret); i += 8 {
					require.NotContains(t, text, secret[i:i+8], "span %s holds part of a secret", s.Name())
				}
			}
		}
	}
	// The spans did record the keys, by their prefixes.
	var prefixes []string
	for _, s := range f.verifySpans() {
		prefixes = append(prefixes, attrs(s)["keystile.key.prefix"])
	}
	assert.Contains(t, prefixes, server.Prefix())
	assert.Contains(t, prefixes, client.Prefix())
}

// TestSharedVerification: concurrent first requests for one key share a
// verification, and their spans say so.
func TestSharedVerification(t *testing.T) {
	f := newFixture(t, nil)
	key := f.keys[apikey.Server].Reveal()
	done := make(chan struct{})
	start := make(chan struct{})
	const n = 8
	for range n {
		go func() {
			<-start
			f.serve(key)
			done <- struct{}{}
		}()
	}
	close(start)
	for range n {
		<-done
	}
	spans := f.verifySpans()
	require.Len(t, spans, n)
	hashed := 0
	for _, s := range spans {
		a := attrs(s)
		if a["keystile.argon2"] == "true" {
			hashed++
			if hashed > 1 {
				assert.Equal(t, "true", a["keystile.shared"], "two spans report argon2: they shared it")
			}
		}
	}
	assert.Positive(t, hashed)
}
