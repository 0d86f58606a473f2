package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/faultstore"
)

// sink collects every text a secret must never reach: log output, hook
// payloads, problem bodies and headers, management API responses, audit
// records, error strings and panic messages.
type sink struct {
	mu    sync.Mutex
	texts []string
	where []string
}

func (s *sink) Write(p []byte) (int, error) { // the slog and log output
	s.add("log", string(p))
	return len(p), nil
}

func (s *sink) add(where, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.texts = append(s.texts, text)
	s.where = append(s.where, where)
}

// addValue records v printed with %v, %+v, %#v, as JSON and through slog.
func (s *sink) addValue(where string, v any) {
	s.add(where, fmt.Sprintf("%v | %+v | %#v", v, v, v))
	if b, err := json.Marshal(v); err == nil {
		s.add(where+" (JSON)", string(b))
	}
	if err, ok := v.(error); ok {
		s.add(where+" (Error)", err.Error())
	}
	slog.Info(where, "value", v)
}

func (s *sink) addResponse(where string, w *httptest.ResponseRecorder) {
	s.add(where+" body", w.Body.String())
	s.add(where+" headers", fmt.Sprint(w.Header()))
}

// secretOf returns the secret part of a key string: the 43 characters after
// the "_".
func secretOf(key string) string {
	return key[len("server-")+apikey.IDLength+1:][:apikey.SecretLength]
}

// leakWindow is the length of the pieces of a secret searched for: a text
// holding any 16 consecutive characters of a secret (95 bits) leaks it.
const leakWindow = 16

// LeakAt returns where in key's secret the first piece of leakWindow
// characters starts that text holds, or -1 if text holds none.
func LeakAt(text, key string) int {
	secret := secretOf(key)
	for j := 0; j+leakWindow <= len(secret); j++ {
		if strings.Contains(text, secret[j:j+leakWindow]) {
			return j
		}
	}
	return -1
}

// SecretsNeverLeak drives every refusal reason and every hook of the
// middleware, the management API and the Manager's errors with known
// secrets, over every backend (a subtest each), and checks that no secret,
// nor any 16 characters of one, reaches a log line, a problem body or
// header, a hook payload, an audit record, an error string or a panic
// message.
func SecretsNeverLeak(t *testing.T, backends ...Backend) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { testSecretsNeverLeak(t, b) })
	}
}

func testSecretsNeverLeak(t *testing.T, b Backend) {
	out := &sink{}
	prevLogger, prevFlags := slog.Default(), log.Flags()
	slog.SetDefault(slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true})))
	t.Cleanup(func() {
		slog.SetDefault(prevLogger)
		log.SetFlags(prevFlags)
	})
	counts := map[string]int{}
	hook := func(name string, args ...any) {
		out.mu.Lock()
		counts[name]++
		out.mu.Unlock()
		for _, a := range args {
			out.addValue("hook "+name, a)
		}
	}
	e := newFaultEnv(t, b, func(o *middleware.Options) {
		o.ThrottleFailures = 3
		// The feed would evict the keys this test creates at some moment
		// during the request sequence, and an eviction during a failed
		// verification keeps that failure from being cached (the next
		// attempt verifies again and spends more of the throttle budget).
		// The Manager's OnEvent already evicts this process's changes.
		o.FeedInterval = time.Hour
		o.OnAuthenticated = func(_ context.Context, a middleware.Attempt, id middleware.Identity) { hook("OnAuthenticated", a, id) }
		o.OnRejected = func(_ context.Context, a middleware.Attempt, err error) { hook("OnRejected", a, err) }
		o.OnBackgroundError = func(err error) { hook("OnBackgroundError", err) }
	})
	ctx := context.Background()
	var secrets []string // every key string whose secret must not leak
	issue := func(req apikey.CreateRequest) apikey.Key {
		t.Helper()
		req.Environment = apikey.Production
		is, err := e.m.Create(ctx, Owner, req)
		require.NoError(t, err)
		secrets = append(secrets, is.Key.Reveal())
		slog.Info("issued", "issued", is, "key", is.Key)
		return is.Key
	}
	secrets = append(secrets, e.server.Reveal(), e.client.Reveal())
	_, err := e.m.SetAllowedOrigins(ctx, Owner, apikey.Production, []string{"https://app.example.com"})
	require.NoError(t, err)
	temp := issue(apikey.CreateRequest{Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: e.clock.Now().Add(time.Hour)})
	scoped := issue(apikey.CreateRequest{Type: apikey.Server, Scopes: []string{"orders:read"}, Name: "worker"})
	expired := issue(apikey.CreateRequest{Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: e.clock.Now().Add(time.Second)})
	revoked := issue(apikey.CreateRequest{Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: e.clock.Now().Add(time.Hour)})
	_, err = e.m.Revoke(ctx, Owner, revoked.ID())
	require.NoError(t, err)
	stalled := issue(apikey.CreateRequest{Type: apikey.Client})
	graced := issue(apikey.CreateRequest{Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	rotated, err := e.m.Rotate(ctx, Owner, apikey.RotateRequest{KeyID: graced.ID(), Grace: time.Hour})
	require.NoError(t, err)
	secrets = append(secrets, rotated.Key.Reveal())
	unknown, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	secrets = append(secrets, unknown.Reveal())
	var wrong []string
	for _, c := range []byte("abcd") {
		wrong = append(wrong, Forge(apikey.Server, temp.ID(), c))
	}
	secrets = append(secrets, wrong...)
	e.clock.Advance(time.Second) // expired is past its expiry

	// Every refusal reason, and the accepted requests that run the hooks.
	server, client := e.server.Reveal(), e.client.Reveal()
	browser := []string{"Origin", "https://app.example.com"}
	serverOnly := e.v.Require(middleware.Policy{Types: []apikey.KeyType{apikey.Server}})(OKHandler)
	requests := []struct {
		reason  *problem.Reason // nil: accepted
		h       http.Handler
		key     string
		headers []string
	}{
		{nil, e.h, server, nil},
		{nil, e.h, graced.Reveal(), nil}, // OnAuthenticated, Identity.Expiring
		{middleware.ErrMissingKey, e.h, "", []string{"Authorization", "Bearer " + server}},
		{middleware.ErrMalformedKey, e.h, server[:len(server)-1] + Flip(server[len(server)-1]), nil},
		{middleware.ErrMalformedKey, e.h, server + "x", nil},
		{middleware.ErrMalformedKey, e.h, server, []string{"X-API-Key", client}},
		{middleware.ErrInvalidKey, e.h, unknown.Reveal(), nil},
		{middleware.ErrInvalidKey, e.h, Forge(apikey.Client, e.server.ID(), 'q'), nil},
		{middleware.ErrExpiredKey, e.h, expired.Reveal(), nil},
		{middleware.ErrRevokedKey, e.h, revoked.Reveal(), nil},
		{middleware.ErrKeyType, serverOnly, client, nil},
		{middleware.ErrScope, e.v.Require(middleware.Policy{Scope: "orders:write"})(OKHandler), scoped.Reveal(), nil},
		{middleware.ErrEnvironment, e.v.Require(middleware.Policy{Environments: []string{apikey.Staging}})(OKHandler), server, nil},
		{middleware.ErrOrigin, e.h, client, []string{"Origin", "https://evil.example"}},
		{middleware.ErrServerKeyFromBrowser, e.h, server, browser}, // OnRejected
		{middleware.ErrInvalidKey, e.h, wrong[0], nil},
		{middleware.ErrInvalidKey, e.h, wrong[1], nil},
		{middleware.ErrInvalidKey, e.h, wrong[2], nil},
		{middleware.ErrThrottled, e.h, wrong[3], nil},
	}
	for i, r := range requests {
		w := Serve(r.h, Request(r.key, r.headers...))
		out.addResponse(fmt.Sprintf("response %d", i), w)
		if r.reason == nil {
			require.Equal(t, http.StatusOK, w.Code, "request %d: %s", i, w.Body)
		} else {
			require.Equal(t, r.reason.Code(), ProblemCode(w.Body.Bytes()), "request %d", i)
		}
		_, err := e.v.Check(Request(r.key, r.headers...), middleware.Policy{})
		if err != nil {
			out.addValue("Check error", err)
			out.add("problem", fmt.Sprintf("%+v", problem.For(err)))
		}
	}
	preflight := httptest.NewRequest(http.MethodOptions, "/things", nil)
	preflight.Header.Set("Origin", "https://app.example.com")
	preflight.Header.Set("Access-Control-Request-Method", "GET")
	preflight.Header.Set("Access-Control-Request-Headers", "X-API-Key")
	out.addResponse("preflight", Serve(e.v.CORS(e.h), preflight))

	// Busy, unavailable and background errors: the store stalls, then goes
	// down; a second Validator logs its background errors with slog.Default
	// and upgrades outdated hashes that it cannot store.
	stronger := apikey.TestParams
	stronger.Iterations = 2
	fs2 := faultstore.New(e.inner)
	v2 := e.validator(fs2, func(o *middleware.Options) {
		o.Hasher = apikey.Argon2id{Params: stronger}
		o.OnBackgroundError = nil // slog.Default
		o.LastUsedInterval = 5 * time.Millisecond
	})
	fs2.Fail(errInjected, faultstore.OpApply, faultstore.OpRecordLastUsed)
	out.addResponse("upgrade", Serve(v2.Handler(OKHandler), Request(temp.Reveal())))

	e.fs.Delay(time.Hour, faultstore.OpKey)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	w := Serve(e.h, Request(stalled.Reveal()).WithContext(short))
	cancel()
	require.Equal(t, "busy", ProblemCode(w.Body.Bytes()))
	out.addResponse("busy", w)
	e.fs.Up()
	e.fs.Down()
	fs2.Down()
	w = Serve(e.h, Request(rotated.Key.Reveal()))
	require.Equal(t, "unavailable", ProblemCode(w.Body.Bytes()))
	out.addResponse("unavailable", w)
	w = Serve(v2.Handler(OKHandler), Request(rotated.Key.Reveal()))
	out.addResponse("unavailable (2)", w)
	// A settings reload that fails reports to OnBackgroundError (this
	// Validator's feed is off, see above; v2's feed and last-used writes
	// fail meanwhile and log through slog).
	e.v.Invalidate(apikey.Event{Action: apikey.ActionSetOrigins, Environment: apikey.Production})
	time.Sleep(50 * time.Millisecond)
	e.fs.Up()
	fs2.Up()

	// The management API, except the responses that hand out a full key
	// (create, rotate, reveal), which are the point of those routes.
	api, err := admin.New(admin.Options{
		Manager: e.m, Audit: e.fs, SingleAccount: true,
		Authorize: func(*http.Request) (admin.Caller, error) { return admin.Caller{Actor: Owner}, nil },
	})
	require.NoError(t, err)
	call := func(method, path, body string) int {
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		out.addResponse(method+" "+path, w)
		return w.Code
	}
	zero := `{"grace":"0s"}` // an explicit grace, so that the rotation reaches the key
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/environments", ""},
		{"GET", "/environments/production/keys", ""},
		{"GET", "/keys/" + temp.ID(), ""},
		{"GET", "/keys/" + temp.Prefix(), ""},
		{"GET", "/keys/" + graced.ID(), ""},
		{"PUT", "/keys/" + graced.ID() + "/grace", `{"grace":"30m"}`},
		{"PUT", "/keys/" + scoped.ID() + "/scopes", `{"scopes":["orders:write"]}`},
		{"POST", "/keys/" + temp.ID() + "/revoke", ""},
		{"POST", "/keys/" + temp.ID() + "/revoke", ""},      // already revoked
		{"POST", "/keys/" + e.server.ID() + "/revoke", ""},  // rotate first
		{"POST", "/keys/" + e.server.ID() + "/reveal", ""},  // not revealable
		{"POST", "/keys/" + revoked.ID() + "/rotate", zero}, // revoked
		{"POST", "/keys/" + unknown.ID() + "/rotate", ""},   // unknown
		{"PUT", "/keys/" + e.server.ID() + "/scopes", `{}`}, // default key
		{"PUT", "/keys/" + e.client.ID() + "/grace", `{"grace":"1h"}`},
		{"GET", "/environments/production/origins", ""},
		{"PUT", "/environments/production/origins", `{"allowed_origins":["https://*.example.com"]}`},
		{"GET", "/audit", ""},
		{"GET", "/audit?environment=production&limit=1000", ""},
		{"DELETE", "/keys/" + temp.ID(), ""},
	} {
		call(c.method, c.path, c.body)
	}
	e.fs.Down()
	for _, path := range []string{"/environments", "/environments/production/keys", "/keys/" + scoped.ID(), "/audit"} {
		assert.Equal(t, http.StatusServiceUnavailable, call("GET", path, ""), path)
	}
	e.fs.Up()

	// Errors of the Manager and of the store.
	for _, err := range []error{
		func() error { _, err := e.m.Revoke(ctx, Owner, e.server.ID()); return err }(),
		func() error { _, err := e.m.Revoke(ctx, Owner, revoked.ID()); return err }(),
		func() error { _, err := e.m.Reveal(ctx, Owner, e.server.ID()); return err }(),
		func() error {
			_, err := e.m.Rotate(ctx, Owner, apikey.RotateRequest{KeyID: graced.ID(), ExpireNow: true})
			return err
		}(),
		func() error { _, err := e.m.Get(ctx, Owner, unknown.ID()); return err }(),
		func() error {
			_, err := e.m.Create(ctx, apikey.Actor{ID: "bob", Role: apikey.Member}, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server})
			return err
		}(),
		func() error {
			rec, err := e.inner.Key(ctx, scoped.ID())
			require.NoError(t, err)
			return e.inner.Apply(ctx, apikey.Change{Insert: []apikey.Record{rec}}) // a duplicate id
		}(),
		func() error {
			rec, err := e.inner.Key(ctx, scoped.ID())
			require.NoError(t, err)
			rec.Revision--
			return e.inner.Apply(ctx, apikey.Change{Update: []apikey.Record{rec}}) // a stale revision
		}(),
		func() error {
			e.fs.Fail(errInjected, faultstore.OpApply)
			defer e.fs.Up()
			_, err := e.m.Rotate(ctx, Owner, apikey.RotateRequest{KeyID: scoped.ID(), ExpireNow: true})
			return err
		}(),
	} {
		require.Error(t, err)
		out.addValue("error", err)
	}

	// The stored records and the audit log.
	keys, err := e.inner.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: apikey.MaxPageSize})
	require.NoError(t, err)
	for _, rec := range keys {
		out.addValue("record", rec)
		out.addValue("view", rec.View(e.clock.Now()))
	}
	events, err := e.inner.(storage.AuditLog).Events(ctx, storage.EventQuery{})
	require.NoError(t, err)
	require.NotEmpty(t, events)
	for _, ev := range events {
		out.addValue("audit event", ev)
	}

	// Panics: misconfiguration is the only panic of the middleware.
	for _, fn := range []func(){
		func() { e.v.Require(middleware.Policy{Scope: "everything"}) },
		func() { e.v.Require(middleware.Policy{})(nil) },
	} {
		func() {
			defer func() { out.addValue("panic", recover()) }()
			fn()
		}()
	}

	require.NoError(t, v2.Close())
	require.NoError(t, e.v.Close())
	for _, h := range []string{"OnAuthenticated", "OnRejected", "OnBackgroundError"} {
		assert.Positive(t, counts[h], "hook %s never ran", h)
	}
	var logged int
	for _, w := range out.where {
		if w == "log" {
			logged++
		}
	}
	require.Positive(t, logged)

	out.mu.Lock()
	defer out.mu.Unlock()
	assert.Contains(t, strings.Join(out.texts, "\n"), "storing the upgraded hash", "the default logger got the background errors")
	for _, key := range secrets {
		for i, text := range out.texts {
			if j := LeakAt(text, key); j >= 0 {
				t.Errorf("%s holds characters %d-%d of the secret of %s:\n%s", out.where[i], j, j+leakWindow, key[:19], text)
			}
		}
	}
	t.Logf("%d texts checked (%d log lines) against %d secrets", len(out.texts), logged, len(secrets))
}
