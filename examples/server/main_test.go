package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/examples/internal/syncbuf"
	"github.com/keystile/keystile/examples/server/app"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
)

// server is one start of the example server, as main runs it.
type server struct {
	url    string
	stdout string          // what the start printed: the new keys, if any
	out    *syncbuf.Buffer // all it printed on stdout, so far
	stderr *syncbuf.Buffer
	stop   func() error // shuts down and returns run's error
}

// start runs the server on a free port with the database file db and
// extra flags, and stops it when the test ends.
func start(t *testing.T, db string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	started := make(chan *app.App, 1)
	done := make(chan error, 1)
	args = append([]string{"-addr", "127.0.0.1:0", "-db", db}, args...)
	go func() {
		done <- run(ctx, args, stdout, stderr, func(a *app.App) { started <- a })
	}()
	var a *app.App
	select {
	case a = <-started:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\n%s", err, stderr)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server did not start in time\n%s", stderr)
	}
	var once sync.Once
	var runErr error
	s := &server{url: a.URL(), stdout: stdout.String(), out: stdout, stderr: stderr}
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = context.DeadlineExceeded
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = s.stop() })
	return s
}

// keys parses the "<environment> <type> <key>" lines of a first start.
func keys(t *testing.T, stdout string) map[string]apikey.Key {
	t.Helper()
	out := map[string]apikey.Key{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		f := strings.Split(line, " ")
		require.Len(t, f, 3, "line %q", line)
		k, err := apikey.ParseKey(f[2])
		require.NoError(t, err)
		require.Equal(t, f[1], string(k.Type()))
		out[f[0]+" "+f[1]] = k
	}
	return out
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// problemCode returns the "code" member of a problem response.
func (r response) problemCode(t *testing.T) string {
	t.Helper()
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), "body: %s", r.body)
	var p problem.Problem
	require.NoError(t, json.Unmarshal(r.body, &p))
	return p.Code
}

// call sends one request, as the README's curl lines do.
func call(t *testing.T, method, url, key, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// TestWalkthrough follows the README's curl story against the real server.
func TestWalkthrough(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	s := start(t, db)

	lines := strings.Split(strings.TrimSpace(s.stdout), "\n")
	require.Len(t, lines, 6, "two keys for each built-in environment:\n%s", s.stdout)
	for i, prefix := range []string{
		"production server server-", "production client client-",
		"staging server server-", "staging client client-",
		"development server server-", "development client client-",
	} {
		assert.True(t, strings.HasPrefix(lines[i], prefix), "line %d: %q", i, lines[i])
	}
	k := keys(t, s.stdout)
	prodServer, prodClient := k["production server"], k["production client"]
	assert.NotContains(t, s.stderr.String(), prodServer.Reveal(), "no secret in the log")

	r := call(t, "GET", s.url+"/healthz", "", "")
	assert.Equal(t, http.StatusOK, r.status)

	r = call(t, "GET", s.url+"/v1/whoami", "", "")
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "missing_key", r.problemCode(t))

	r = call(t, "GET", s.url+"/v1/whoami", prodServer.Reveal(), "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var who app.Whoami
	require.NoError(t, json.Unmarshal(r.body, &who))
	assert.Equal(t, app.Whoami{
		KeyID: prodServer.ID(), Prefix: prodServer.Prefix(), Type: apikey.Server,
		Environment: "production", Scopes: []string{"*"},
	}, who)

	r = call(t, "GET", s.url+"/v1/whoami", prodClient.Reveal(), "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.NoError(t, json.Unmarshal(r.body, &who))
	assert.Equal(t, apikey.Client, who.Type)
	assert.Empty(t, who.Scopes)

	r = call(t, "POST", s.url+"/v1/echo", prodClient.Reveal(), `{"hello":"world"}`)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "key_type_not_allowed", r.problemCode(t))

	r = call(t, "POST", s.url+"/v1/echo", prodServer.Reveal(), `{"hello":"world"}`)
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"hello":"world"}`, string(r.body))

	// A rotation needs an explicit grace.
	r = call(t, "POST", s.url+"/admin/keys/"+prodServer.Prefix()+"/rotate", prodServer.Reveal(), "")
	assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.body)
	assert.Equal(t, "grace_required", r.problemCode(t))

	// Rotate the production server key with an hour of grace.
	r = call(t, "POST", s.url+"/admin/keys/"+prodServer.ID()+"/rotate", prodServer.Reveal(), `{"grace":"1h"}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	var rotated struct {
		Key  string      `json:"full_key"`
		View apikey.View `json:"view"`
	}
	require.NoError(t, json.Unmarshal(r.body, &rotated))
	fresh, err := apikey.ParseKey(rotated.Key)
	require.NoError(t, err)
	assert.NotEqual(t, prodServer.ID(), fresh.ID())

	// The old key works during its grace period and says until when.
	r = call(t, "GET", s.url+"/v1/whoami", prodServer.Reveal(), "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	expires, err := time.Parse(time.RFC3339, r.header.Get(middleware.HeaderKeyExpires))
	require.NoError(t, err, "header %q", r.header.Get(middleware.HeaderKeyExpires))
	assert.WithinDuration(t, time.Now().Add(time.Hour), expires, time.Minute)
	require.NoError(t, json.Unmarshal(r.body, &who))
	assert.True(t, who.Expiring)
	require.NotNil(t, who.ExpiresAt)

	r = call(t, "GET", s.url+"/v1/whoami", fresh.Reveal(), "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.header.Get(middleware.HeaderKeyExpires))

	// A rotated-out key may not manage keys, not even extend its own grace.
	r = call(t, "PUT", s.url+"/admin/keys/"+prodServer.Prefix()+"/grace", prodServer.Reveal(), `{"grace":"8760h"}`)
	assert.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	assert.Equal(t, "role_not_allowed", r.problemCode(t))
	r = call(t, "GET", s.url+"/admin/environments/production/keys", fresh.Reveal(), "")
	assert.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.NotContains(t, string(r.body), fresh.Reveal()[apikey.PrefixLength:], "the list holds no secret")

	// Revoke the old key: it stops working at once.
	r = call(t, "POST", s.url+"/admin/keys/"+prodServer.ID()+"/revoke", fresh.Reveal(), "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	r = call(t, "GET", s.url+"/v1/whoami", prodServer.Reveal(), "")
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "revoked_key", r.problemCode(t))

	// A default key is rotated first; a malformed grace names its field.
	r = call(t, "POST", s.url+"/admin/keys/"+fresh.Prefix()+"/revoke", fresh.Reveal(), "")
	assert.Equal(t, http.StatusConflict, r.status, "%s", r.body)
	assert.Equal(t, "rotate_first", r.problemCode(t))
	r = call(t, "POST", s.url+"/admin/keys/"+fresh.Prefix()+"/rotate", fresh.Reveal(), `{"grace":"1d"}`)
	assert.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	assert.Contains(t, string(r.body), `grace: want a duration`)
	r = call(t, "GET", s.url+"/admin/openapi.json", fresh.Reveal(), "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `"openapi": "3.1`)

	// Environments are hard boundaries: a staging key cannot manage
	// production keys.
	r = call(t, "POST", s.url+"/admin/keys/"+fresh.ID()+"/rotate", k["staging server"].Reveal(), `{"grace":"1h"}`)
	assert.Equal(t, http.StatusNotFound, r.status, "%s", r.body)

	require.NoError(t, s.stop())
	assert.Contains(t, s.stderr.String(), "stopped")

	// Shutting down wrote the last-used times.
	store, err := exampledb.Open(context.Background(), db)
	require.NoError(t, err)
	defer store.DB().Close()
	rec, err := store.Key(context.Background(), fresh.ID())
	require.NoError(t, err)
	assert.False(t, rec.LastUsedAt.IsZero(), "last-used time written at shutdown")
}

// TestSecondStart: a second start on the same database prints no key, says
// how to rotate, and the first start's keys still work.
func TestSecondStart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	first := start(t, db)
	k := keys(t, first.stdout)
	require.Len(t, k, 6)
	require.NoError(t, first.stop())

	second := start(t, db)
	assert.Empty(t, second.stdout, "a second start prints no key")
	assert.Contains(t, second.stderr.String(), "rotate production server --grace 24h")
	for name, key := range k {
		r := call(t, "GET", second.url+"/v1/whoami", key.Reveal(), "")
		assert.Equal(t, http.StatusOK, r.status, "%s: %s", name, r.body)
	}
	r := call(t, "GET", second.url+"/healthz", "", "")
	assert.Equal(t, http.StatusOK, r.status)
}

// TestAllowOrigin: -allow-origin seeds an environment's allowed origins,
// which the middleware applies to publishable keys sent by browsers.
func TestAllowOrigin(t *testing.T) {
	const page = "http://127.0.0.1:8081"
	db := filepath.Join(t.TempDir(), "keystile.db")
	s := start(t, db, "-allow-origin", "development="+page)
	k := keys(t, s.stdout)
	dev := k["development client"].Reveal()

	get := func(key, origin string) *http.Response {
		req, err := http.NewRequest("GET", s.url+"/v1/whoami", nil)
		require.NoError(t, err)
		req.Header.Set("X-API-Key", key)
		req.Header.Set("Origin", origin)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	res := get(dev, page)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, page, res.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, http.StatusForbidden, get(dev, "http://127.0.0.1:9999").StatusCode, "origin_not_allowed")
	assert.Equal(t, http.StatusForbidden, get(k["production client"].Reveal(), page).StatusCode,
		"an environment without a list admits no browser origin")
	assert.Equal(t, http.StatusForbidden, get(k["development server"].Reveal(), page).StatusCode,
		"server_key_from_browser")
	assert.Contains(t, s.stderr.String(), "server key used from a browser")

	// The preflight is answered for the page.
	req, err := http.NewRequest("OPTIONS", s.url+"/v1/whoami", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", page)
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "x-api-key")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Less(t, res.StatusCode, 300)
	assert.Equal(t, page, res.Header.Get("Access-Control-Allow-Origin"))
	require.NoError(t, s.stop())

	// A later start with other flags for the environment replaces its list.
	s = start(t, db, "-allow-origin", "development=http://localhost:3000", "-allow-origin", "development=https://*.example.com")
	store, err := exampledb.Open(context.Background(), db)
	require.NoError(t, err)
	defer store.DB().Close()
	settings, err := store.Settings(context.Background(), apikey.DefaultAccount, "development")
	require.NoError(t, err)
	assert.Equal(t, []string{"http://localhost:3000", "https://*.example.com"}, settings.AllowedOrigins)
}

func TestEcho(t *testing.T) {
	s := start(t, filepath.Join(t.TempDir(), "keystile.db"))
	key := keys(t, s.stdout)["staging server"].Reveal()
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"object", `{"a":[1,2,{"b":null}]}`, http.StatusOK, ""},
		{"not JSON", `{"a":`, http.StatusBadRequest, "invalid_json"},
		{"empty", ``, http.StatusBadRequest, "invalid_json"},
		{"too large", `"` + strings.Repeat("x", app.MaxEchoBytes) + `"`, http.StatusRequestEntityTooLarge, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", s.url+"/v1/echo", strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("X-API-Key", key)
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			r := response{status: res.StatusCode, header: res.Header, body: b}
			assert.Equal(t, tc.status, r.status)
			if tc.code == "" {
				assert.Equal(t, tc.body, string(r.body))
			} else {
				assert.Equal(t, tc.code, r.problemCode(t))
			}
		})
	}
}

// TestReportCost sets a quota as an operator would (keyctl: another
// process on the same database), and spends it on the route that costs
// app.ReportCost uses once the change has reached the server.
func TestReportCost(t *testing.T) {
	db := filepath.Join(t.TempDir(), "keystile.db")
	s := start(t, db)
	key := keys(t, s.stdout)["staging server"]
	store, err := exampledb.Open(context.Background(), db)
	require.NoError(t, err)
	defer store.DB().Close()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store})
	require.NoError(t, err)
	_, err = m.SetLimits(context.Background(), apikey.Actor{ID: "operator", Role: apikey.Owner}, key.ID(), apikey.Limits{
		Quota: apikey.Quota{Limit: 25},
		Rate:  apikey.RateLimit{Requests: 100, Window: time.Minute},
	})
	require.NoError(t, err)
	var r response
	require.Eventually(t, func() bool { // the change feed brings the limits to the server
		r = call(t, "GET", s.url+"/v1/whoami", key.Reveal(), "")
		return r.header.Get("RateLimit-Policy") != ""
	}, 10*time.Second, 50*time.Millisecond) // spends 1 use per call

	for i := range 2 { // 2 x 10 uses
		r = call(t, "POST", s.url+"/v1/reports", key.Reveal(), "")
		require.Equal(t, http.StatusOK, r.status, "report %d: %s", i, r.body)
		assert.Equal(t, `"key";q=100;w=60`, r.header.Get("RateLimit-Policy"))
	}
	r = call(t, "POST", s.url+"/v1/reports", key.Reveal(), "") // at most 4 uses left
	require.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "quota_exhausted", r.problemCode(t))
	assert.Empty(t, r.header.Get("Retry-After"), "a quota without refill")

	r = call(t, "GET", s.url+"/v1/whoami", key.Reveal(), "") // a cheap route still works
	require.Equal(t, http.StatusOK, r.status)
	var who app.Whoami
	require.NoError(t, json.Unmarshal(r.body, &who))
	require.NotNil(t, who.Limits)
	assert.EqualValues(t, 25, who.Limits.Quota.Limit)
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-allow-origin", "development"},
		{"-allow-origin", "Dev=http://localhost:1"},
		{"-allow-origin", "development=not an origin"},
		{"-otel", "jaeger"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), args, io.Discard, &stderr, nil)
		assert.ErrorAs(t, err, new(usageError), "%v", args)
	}
	err := run(context.Background(), []string{"-db", filepath.Join(t.TempDir(), "k.db"), "-addr", "127.0.0.1:0",
		"-allow-origin", "qa=http://localhost:1"}, io.Discard, io.Discard, nil)
	assert.ErrorIs(t, err, apikey.ErrUnknownEnvironment, "origins for an environment that does not exist")
}

// TestBusyPort: a server that cannot listen fails before it opens the
// database, so that a first start on a busy port neither prints nor
// creates a key (nor the database file), and says why it failed.
func TestBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"-addr", busy.Addr().String(), "-db", filepath.Join(dir, "keystile.db")},
		&stdout, &stderr, func(*app.App) { t.Error("the server started") })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "address already in use")
	assert.Contains(t, err.Error(), "-addr", "the message says how to choose another address")
	assert.Empty(t, stdout.String(), "no key printed")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no database file: no key was created")
}

// TestWebhook: with -webhook-url, a rotation made through the management
// API reaches a local receiver as a Standard Webhook that the reference
// library verifies, with the event's id as webhook-id; the server never
// prints the secret.
func TestWebhook(t *testing.T) {
	secret := webhook.GenerateSecret()
	t.Setenv(WebhookSecretEnv, secret.Reveal())
	wh, err := standardwebhooks.NewWebhook(secret.Reveal())
	require.NoError(t, err)
	var (
		mu       sync.Mutex
		received []events.Payload
		ids      []string
		refused  int
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p events.Payload
		mu.Lock()
		defer mu.Unlock()
		if wh.Verify(body, r.Header) != nil || json.Unmarshal(body, &p) != nil {
			refused++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		received = append(received, p)
		ids = append(ids, r.Header.Get(standardwebhooks.HeaderWebhookID))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	s := start(t, filepath.Join(t.TempDir(), "keystile.db"), "-webhook-url", rcv.URL+"/hooks", "-webhook-allow-loopback")
	old := keys(t, s.stdout)["production server"]
	r := call(t, "POST", s.url+"/admin/keys/"+old.ID()+"/rotate", old.Reveal(), `{"grace":"1h"}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)

	rotation := func() (events.Payload, string, bool) {
		mu.Lock()
		defer mu.Unlock()
		for i, p := range received {
			if p.Type == apikey.ActionRotate && p.Data.KeyID == old.ID() {
				return p, ids[i], true
			}
		}
		return events.Payload{}, "", false
	}
	require.Eventually(t, func() bool { _, _, ok := rotation(); return ok }, 20*time.Second, 50*time.Millisecond,
		"the rotation arrives as a webhook")
	p, id, _ := rotation()
	assert.Equal(t, p.Data.ID(), id, "webhook-id is the event's id")
	assert.Equal(t, apikey.DefaultAccount, p.Data.Account)
	assert.Equal(t, apikey.Production, p.Data.Environment)
	mu.Lock()
	assert.Zero(t, refused, "every request verifies")
	mu.Unlock()
	require.NoError(t, s.stop())
	assert.NotContains(t, s.stdout+s.stderr.String(), secret.Reveal(), "the secret is never printed")
	assert.Contains(t, s.stderr.String(), "webhooks: delivering events")
}

// TestWebhookFlags: -webhook-url needs a valid secret in the environment,
// and a loopback URL needs -webhook-allow-loopback: the strict default
// refuses it at start.
func TestWebhookFlags(t *testing.T) {
	for _, tc := range []struct {
		name, secret string
		args         []string
		usage        bool   // a usage error
		contains     string // in the error
	}{
		{"no secret", "", []string{"-webhook-url", "https://hooks.example.com/"}, true, ""},
		{"not a secret", "hunter2", []string{"-webhook-url", "https://hooks.example.com/"}, true, ""},
		{"loopback flag alone", webhook.GenerateSecret().Reveal(), []string{"-webhook-allow-loopback"}, true, ""},
		{"loopback refused by default", webhook.GenerateSecret().Reveal(), []string{"-webhook-url", "http://127.0.0.1:9/hooks"}, false, "url.scheme"},
		{"https loopback refused by default", webhook.GenerateSecret().Reveal(), []string{"-webhook-url", "https://127.0.0.1:9/hooks"}, false, "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(WebhookSecretEnv, tc.secret)
			var stderr bytes.Buffer
			dbFile := filepath.Join(t.TempDir(), "k.db")
			args := append([]string{"-db", dbFile, "-addr", "127.0.0.1:0"}, tc.args...)
			err := run(context.Background(), args, io.Discard, &stderr, func(*app.App) { t.Error("the server started") })
			require.Error(t, err)
			if tc.usage {
				assert.ErrorAs(t, err, new(usageError))
			} else {
				assert.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
				assert.Contains(t, err.Error(), tc.contains)
			}
			entries, dirErr := os.ReadDir(filepath.Dir(dbFile))
			require.NoError(t, dirErr)
			assert.Empty(t, entries, "refused before the database is created")
			if tc.secret != "" {
				assert.NotContains(t, stderr.String()+err.Error(), tc.secret, "the secret is never printed")
			}
		})
	}
}
