package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/chromiumtest"
	"github.com/keystile/keystile/examples/internal/syncbuf"
	"github.com/keystile/keystile/examples/server/app"
)

// outcome is the page's window.keystileResult.
type outcome struct {
	State       string `json:"state"` // ok, refused or blocked
	Status      int    `json:"status"`
	Code        string `json:"code"`
	Environment string `json:"environment"`
	Error       string `json:"error"`
}

// stack is the example API and two copies of the page, each on its own
// origin: one that the development environment allows and one that no
// environment allows.
type stack struct {
	api     *app.App
	page    string // allowed origin
	other   string // disallowed origin
	keys    map[string]apikey.Key
	stopAPI func()
	log     *syncbuf.Buffer // the API's log
}

func startStack(t *testing.T) *stack {
	t.Helper()
	pageLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	otherLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &stack{page: "http://" + pageLn.Addr().String(), other: "http://" + otherLn.Addr().String(), log: &syncbuf.Buffer{}}

	// Every environment allows only the page, so that the browser's
	// preflight from the other origin is refused whatever key it carries.
	ctx, cancel := context.WithCancel(context.Background())
	s.api, err = app.New(ctx, app.Config{
		Addr: "127.0.0.1:0",
		DB:   filepath.Join(t.TempDir(), "keystile.db"),
		AllowedOrigins: map[string][]string{
			"development": {s.page}, "staging": {s.page}, "production": {s.page},
		},
		Logger: slog.New(slog.NewTextHandler(s.log, nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.api.Run(ctx) }()
	s.stopAPI = func() { cancel(); assert.NoError(t, <-done) }
	t.Cleanup(s.stopAPI)
	s.keys = map[string]apikey.Key{}
	for _, k := range s.api.Issued() {
		s.keys[k.View.Environment+" "+string(k.View.Type)] = k.Key
	}

	for _, ln := range []net.Listener{pageLn, otherLn} {
		h, err := newHandler(s.api.URL())
		require.NoError(t, err)
		srv := httptest.NewUnstartedServer(h)
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		t.Cleanup(srv.Close)
	}
	return s
}

// newBrowser starts headless Chromium (see chromiumtest.New).
func newBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	return chromiumtest.New(t, ctx)
}

// visit opens origin's page in a new tab with key in its fragment and
// returns what the page reports once its call has finished, and the
// environment it shows.
func visit(t *testing.T, browser context.Context, origin string, key apikey.Key) (outcome, string) {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	defer cancel()
	require.NoError(t, chromedp.Do(tab, chromedp.Navigate(origin+"/#key="+key.Reveal())))
	out, err := chromedp.Run(tab, chromedp.Poll[outcome](`window.keystileResult`, chromedp.WithPollingTimeout(15*time.Second)))
	require.NoError(t, err, "the page reports the outcome of its call")
	t.Logf("page at %s with key %s: %+v", origin, key.Prefix(), out)
	shown, err := chromedp.Run(tab, chromedp.TextContent(chromedp.CSS("#environment")))
	require.NoError(t, err)
	return out, shown
}

// TestBrowser drives a real headless Chromium against the example API with
// pages on an allowed and a disallowed origin.
func TestBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startStack(t)
	browser := newBrowser(t, ctx)
	devClient, devServer := s.keys["development client"], s.keys["development server"]

	t.Run("allowed origin", func(t *testing.T) {
		out, shown := visit(t, browser, s.page, devClient)
		assert.Equal(t, outcome{State: "ok", Status: 200, Environment: "development"}, out)
		assert.Equal(t, "development", shown, "the page shows the key's environment")
	})

	t.Run("disallowed origin: the browser blocks the call", func(t *testing.T) {
		// The X-API-Key header makes the browser send a CORS preflight
		// first. No environment allows this origin, so the middleware
		// answers it without Access-Control-Allow-Origin, and the browser
		// never sends the GET: fetch rejects with a TypeError and the page
		// cannot even read a status.
		out, _ := visit(t, browser, s.other, devClient)
		assert.Equal(t, "blocked", out.State, "%+v", out)
		assert.Contains(t, out.Error, "TypeError")
		assert.Zero(t, out.Status)
	})

	t.Run("disallowed origin, preflight allowed by another environment: 403 origin_not_allowed", func(t *testing.T) {
		// A preflight carries no key, so it is answered for an origin that
		// any environment allows. Once production allows every origin (the
		// entry "*"), the preflight passes, the GET is sent, and the
		// middleware refuses the development key from this origin: the
		// page reads the 403 (its response carries the CORS headers).
		_, err := s.api.Manager().SetAllowedOrigins(ctx, app.Actor, "production", []string{apikey.AnyOrigin})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return preflightAllowed(t, s.api.URL(), s.other) },
			5*time.Second, 20*time.Millisecond, "the validator reloads the settings")
		out, _ := visit(t, browser, s.other, devClient)
		assert.Equal(t, outcome{State: "refused", Status: 403, Code: "origin_not_allowed"}, out)
	})

	t.Run("server key from the page is refused", func(t *testing.T) {
		out, shown := visit(t, browser, s.page, devServer)
		assert.Equal(t, outcome{State: "refused", Status: 403, Code: "server_key_from_browser"}, out)
		assert.Equal(t, "-", shown)
	})
}

// preflightAllowed reports whether the API answers a CORS preflight for
// GET /v1/whoami from origin with Access-Control-Allow-Origin.
func preflightAllowed(t *testing.T, api, origin string) bool {
	req, err := http.NewRequest(http.MethodOptions, api+"/v1/whoami", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "x-api-key")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res.Header.Get("Access-Control-Allow-Origin") == origin
}

func TestPage(t *testing.T) {
	h, err := newHandler("http://127.0.0.1:8080/")
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for path, want := range map[string]string{
		"/":          `data-api="http://127.0.0.1:8080"`,
		"/app.js":    "window.keystileResult",
		"/style.css": "#status",
	} {
		res, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, res.StatusCode, path)
		assert.Contains(t, string(body), want, path)
		assert.Contains(t, res.Header.Get("Content-Security-Policy"), "connect-src http://127.0.0.1:8080", path)
	}
	res, err := http.Get(srv.URL + "/nothing")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode)

	for _, bad := range []string{"127.0.0.1:8080", "ftp://x", "http://", "http://h/v1", "http://h/?q=1"} {
		_, err := newHandler(bad)
		assert.Error(t, err, bad)
	}
}

// sameOrigin is what a script on the API's own origin reads from a
// same-origin GET /v1/whoami with a key.
type sameOrigin struct {
	Status      int    `json:"status"`
	Code        string `json:"code"`
	Environment string `json:"environment"`
}

// TestSameOriginServerKey: a page on the API's own origin fetches
// /v1/whoami with a GET. Chromium sends no Origin header on a same-origin
// GET, only Fetch Metadata (Sec-Fetch-Site: same-origin): a server key is
// still recognised as used from a browser, refused with 403
// server_key_from_browser and logged by its prefix, never its secret. A
// publishable key is served: the page is on the API's own origin.
func TestSameOriginServerKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := startStack(t)
	browser := newBrowser(t, ctx)
	tab, cancelTab := chromedp.NewContext(browser)
	defer cancelTab()
	// Any document of the API's origin will do: the 404 page of "/".
	require.NoError(t, chromedp.Do(tab, chromedp.Navigate(s.api.URL()+"/")))
	fetch := func(key apikey.Key) sameOrigin {
		t.Helper()
		script := `fetch("/v1/whoami", {headers: {"X-API-Key": ` + strconvQuote(key.Reveal()) + `}, cache: "no-store"})
			.then(async (res) => { const body = await res.json(); return {status: res.status, code: body.code || "", environment: body.environment || ""}; })`
		out, err := chromedp.Run(tab, chromedp.Evaluate[sameOrigin](script, chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		t.Logf("same-origin GET with key %s: %+v", key.Prefix(), out)
		return out
	}

	server := s.keys["development server"]
	assert.Equal(t, sameOrigin{Status: 403, Code: "server_key_from_browser"}, fetch(server))
	assert.Equal(t, sameOrigin{Status: 200, Environment: "development"}, fetch(s.keys["development client"]))

	log := s.log.String()
	assert.Contains(t, log, "server key used from a browser", "the API reports the leaked key")
	assert.Contains(t, log, server.Prefix())
	assert.Contains(t, log, `origin=""`, "Chromium sent no Origin header")
	for _, k := range s.keys {
		assert.NotContains(t, log, k.Reveal()[len(k.Prefix()):], "no secret in the log")
	}
}

// strconvQuote quotes s as a JavaScript string literal.
func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
