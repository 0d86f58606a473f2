package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/chromiumtest"
	"github.com/keystile/keystile/storage/memory"
)

// screenshotDirEnv names a directory for the test's screenshots; unset, they
// go to a temporary directory that the test removes.
const screenshotDirEnv = "KEYSTILE_SCREENSHOT_DIR"

// keyPattern matches every full key (the README's pattern for scanners).
var keyPattern = regexp.MustCompile(`^(server|client)-[A-Za-z0-9_-]+$`)

// change is a state-changing request that reached the example's server.
type change struct {
	Method, Path      string
	Origin, FetchSite string
	SignedIn          bool // it carried the session cookie
	Status            int
}

// stack is the example, on one origin, and another site's page, on a
// second origin of the same host (another port: the same site, so the
// browser sends the SameSite=Lax session cookie with its requests).
type stack struct {
	url     string // the example: login at /, console at /console/
	other   string // another origin's page
	manager *apikey.Manager
	store   *memory.Store
	// noUsage answers every usage request with 501 usage_unavailable, as
	// the API does when the store keeps no usage.
	noUsage atomic.Bool
	// noInstances answers every propagation request with 501
	// instances_unavailable, as the API does when the store keeps no
	// validator instances.
	noInstances atomic.Bool
	// noEndpoints answers every webhook request with 501
	// endpoints_unavailable, as the API does when the store keeps no
	// webhook endpoints.
	noEndpoints atomic.Bool
	mu          sync.Mutex
	changes     []change
}

// startStack starts the stack; closeAccount lets owners close the account.
func startStack(t *testing.T, closeAccount bool) *stack {
	t.Helper()
	store := memory.New()
	h, err := newHandler(context.Background(), store, closeAccount)
	require.NoError(t, err)
	s := &stack{store: store}
	s.manager, err = apikey.NewManager(apikey.ManagerOptions{Store: store})
	require.NoError(t, err)
	srv := httptest.NewServer(s.record(s.usageSwitch(pagedListing(h))))
	t.Cleanup(srv.Close)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><title>Another site</title><h1>Another site</h1></html>`)
	}))
	t.Cleanup(other.Close)
	s.url, s.other = srv.URL, other.URL
	return s
}

// pagedDevelopment is the path of the development environment's keys.
const pagedDevelopment = "/console/api/environments/development/keys"

// pagedListing answers GET pagedDevelopment as the management API will
// once keys belong to accounts: {"keys": [...], "next": "<cursor>"}, with
// ?after=<cursor> for the next page, and views that carry an owner and
// metadata. It serves three made-up keys in two pages.
func pagedListing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != pagedDevelopment {
			next.ServeHTTP(w, r)
			return
		}
		// Each key an hour older than the one before it, in the listing's
		// order, which the page's default sort (newest first) keeps.
		hour := time.Now().UTC().Truncate(time.Hour)
		view := func(id, name, owner string, metadata map[string]string) map[string]any {
			age := map[string]time.Duration{"PAGEONEKEY01": 1, "PAGEONEKEY02": 2, "PAGETWOKEY01": 3}[id]
			created := hour.Add(-age * time.Hour).Format(time.RFC3339)
			return map[string]any{
				"prefix": "server-" + id, "id": id, "type": "server", "environment": "development",
				"name": name, "scopes": []string{"reports:read"}, "default": false, "status": "active",
				"created_at": created, "owner": owner, "metadata": metadata,
			}
		}
		page := map[string]any{
			"keys": []any{
				view("PAGEONEKEY01", "ci", "user_42", map[string]string{"team": "billing"}),
				view("PAGEONEKEY02", "cron", "user_7", nil),
			},
			"next": "cursor-2",
		}
		if r.URL.Query().Get("after") == "cursor-2" {
			page = map[string]any{"keys": []any{view("PAGETWOKEY01", "export", "user_42", map[string]string{"region": "eu"})}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
	})
}

// usageSwitch answers usage requests with 501 usage_unavailable while
// s.noUsage is set, propagation requests with 501 instances_unavailable
// while s.noInstances is set, and webhook requests with 501
// endpoints_unavailable while s.noEndpoints is set.
func (s *stack) usageSwitch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.noEndpoints.Load() && strings.HasPrefix(r.URL.Path, "/console/api/webhooks") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotImplemented)
			fmt.Fprint(w, `{"type":"about:blank","title":"this store keeps no webhook endpoints","status":501,"code":"endpoints_unavailable"}`)
			return
		}
		if s.noInstances.Load() && strings.HasSuffix(r.URL.Path, "/propagation") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotImplemented)
			fmt.Fprint(w, `{"type":"about:blank","title":"this store keeps no validator instances","status":501,"code":"instances_unavailable"}`)
			return
		}
		if !s.noUsage.Load() || !strings.HasSuffix(r.URL.Path, "/usage") {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotImplemented)
		fmt.Fprint(w, `{"type":"about:blank","title":"this store keeps no usage","status":501,"code":"usage_unavailable"}`)
	})
}

// record notes every request that is not a GET or HEAD.
func (s *stack) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		_, err := r.Cookie(sessionCookie)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.changes = append(s.changes, change{
			Method: r.Method, Path: r.URL.Path, Origin: r.Header.Get("Origin"),
			FetchSite: r.Header.Get("Sec-Fetch-Site"), SignedIn: err == nil, Status: sw.status,
		})
	})
}

func (s *stack) changesTo(path string) []change {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []change
	for _, c := range s.changes {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

func (s *stack) key(t *testing.T, prefix string) apikey.View {
	t.Helper()
	v, err := s.manager.Get(context.Background(), bootstrapActor, prefix)
	require.NoError(t, err)
	return v
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// newBrowser starts headless Chromium (see chromiumtest.New).
func newBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	return chromiumtest.New(t, ctx, chromedp.WindowSize(1440, 1000))
}

// signIn opens a tab in a fresh browser context (its own cookies), signs in
// as user and waits for the console to be ready. The tab may use the
// clipboard on the example's origin, and behaves as if it had the focus.
func (s *stack) signIn(t *testing.T, b context.Context, user string) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(b, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(tab, chromedp.EmulateViewport(1440, 900)))
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(tab, browser.SetPermission, browser.SetPermissionParams{
			Permission:       &browser.PermissionDescriptor{Name: name},
			Setting:          browser.PermissionSettingGranted,
			Origin:           s.url,
			BrowserContextID: chromedp.FromContext(tab).BrowserContextID,
		})
		require.NoError(t, err, "granting %s", name)
	}
	_, err := chromedp.Call(tab, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
	require.NoError(t, err)
	watchConsole(t, tab)
	require.NoError(t, chromedp.Do(tab, chromedp.Navigate(s.url+"/login?as="+user)))
	waitReady(t, tab)
	return tab
}

// watchConsole fails the test, when it ends, if the tab threw an uncaught
// exception or the browser blocked something by the console's Content
// Security Policy (an inline script or style, an outside resource).
func watchConsole(t *testing.T, tab context.Context) {
	t.Helper()
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				problems = append(problems, string(m.Type)+": "+m.Text)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		assert.Empty(t, problems, "errors in the page")
	})
}

func waitReady(t *testing.T, tab context.Context) {
	t.Helper()
	state, err := chromedp.Run(tab, chromedp.Poll[string](`document.body.dataset.ready`, chromedp.WithPollingTimeout(15*time.Second)))
	require.NoError(t, err, "the console loads")
	require.Equal(t, "true", state, "the console loads without error")
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](t *testing.T, tab context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(t, err, js)
	return v
}

// poll waits until a JavaScript expression is truthy and returns it.
func poll[T any](t *testing.T, tab context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Poll[T](js, chromedp.WithPollingTimeout(10*time.Second)))
	require.NoError(t, err, "waiting for %s", js)
	return v
}

func do(t *testing.T, tab context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	require.NoError(t, chromedp.Do(tab, steps...))
}

// rowStatus is the status that the console shows for a key.
func rowStatus(prefix string) string {
	return fmt.Sprintf(`(document.querySelector('tr[data-prefix=%q]') || {dataset: {}}).dataset.status`, prefix)
}

// assertStatus waits until the console shows the key with status want.
func assertStatus(t *testing.T, tab context.Context, prefix, want string) {
	t.Helper()
	_, err := chromedp.Run(tab, chromedp.Poll[bool](fmt.Sprintf(`%s === %q`, rowStatus(prefix), want), chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		shown, _ := chromedp.Run(tab, chromedp.Evaluate[string](rowStatus(prefix)))
		t.Errorf("the console shows %s as %q, want %q", prefix, shown, want)
	}
}

// activeElement describes the focused element.
const activeElement = `(() => { const e = document.activeElement; return e.id || e.getAttribute("aria-label") || e.textContent.trim(); })()`

// screenshot saves the whole page as name.png and logs where.
func screenshot(t *testing.T, tab context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join(dir, name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}

func screenshotDir(t *testing.T) string {
	if dir := os.Getenv(screenshotDirEnv); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	return t.TempDir()
}

// TestConsoleInChromium drives the console in headless Chromium: an owner
// creates, copies, rotates and revokes keys (one of them by keyboard only),
// another origin's page fails to change a key with the owner's cookie,
// read-only users see the keys and no action, and members are offered
// Reveal on publishable keys in production and the key actions in
// development.
func TestConsoleInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startStack(t, false)
	b := newBrowser(t, ctx)
	shots := screenshotDir(t)
	owner := s.signIn(t, b, "alice")
	var keyboardKey string // an active key that is not a default key

	t.Run("owner creates, copies, rotates and revokes", func(t *testing.T) {
		assert.Contains(t, eval[string](t, owner, `document.getElementById("session").textContent`), "alice (owner)")
		defaults := eval[[]string](t, owner, `[...document.querySelectorAll("#keys-body tr")].map(tr => tr.dataset.prefix + " " + tr.dataset.status)`)
		require.Len(t, defaults, 2, "production has its two default keys")

		// Create: the key is shown once, with a warning and a copy button.
		do(t, owner,
			chromedp.Click(chromedp.CSS("#create-key")),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #create-name")),
			chromedp.SendKeys(chromedp.CSS("#create-name"), "billing worker"),
			chromedp.Click(chromedp.CSS(`dialog[open] input[name="scope"][value="invoices:write"]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #secret-value")),
		)
		created := eval[string](t, owner, `document.getElementById("secret-value").value`)
		require.Regexp(t, keyPattern, created)
		key, err := apikey.ParseKey(created)
		require.NoError(t, err)
		assert.Equal(t, "billing worker", s.key(t, key.Prefix()).Name)
		assert.Equal(t, []string{"invoices:write"}, s.key(t, key.Prefix()).Scopes)
		assert.Contains(t, eval[string](t, owner, `document.querySelector("dialog[open] .warning").textContent`), "It will not be shown again")
		assert.Equal(t, "Copy key to clipboard", eval[string](t, owner, `document.querySelector("dialog[open] button.copy").getAttribute("aria-label")`))
		screenshot(t, owner, shots, "owner-new-key")

		// Copy: the key lands on the real clipboard.
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button.copy")))
		assert.Equal(t, "Copied to the clipboard.", poll[string](t, owner, `document.querySelector("dialog[open] .copy-status").textContent`))
		assert.Equal(t, created, eval[string](t, owner, `navigator.clipboard.readText()`), "the clipboard holds the key")

		// Closing the dialog forgets the key: it is nowhere in the page.
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		assert.False(t, eval[bool](t, owner, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, created)))
		assertStatus(t, owner, key.Prefix(), "active")

		// Rotate with "1 hour": the choices are the console's, none picked.
		do(t, owner,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="rotate"][data-key=%q]`, key.Prefix()))),
			chromedp.WaitVisible(chromedp.CSS(`dialog[open] input[name="grace"]`)),
		)
		assert.Equal(t, []string{"Now", "1 hour", "24 hours", "3 days", "7 days"},
			eval[[]string](t, owner, `[...document.querySelectorAll("dialog[open] fieldset label")].map(l => l.textContent)`))
		assert.Equal(t, 0, eval[int](t, owner, `document.querySelectorAll("dialog[open] input[name=grace]:checked").length`), "no grace is picked silently")
		before := time.Now()
		do(t, owner,
			chromedp.Click(chromedp.CSS(`dialog[open] input[name="grace"][value="1h"]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #secret-value")),
		)
		after := time.Now()
		replacement, err := apikey.ParseKey(eval[string](t, owner, `document.getElementById("secret-value").value`))
		require.NoError(t, err)
		assert.NotEqual(t, key.ID(), replacement.ID())
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))

		assertStatus(t, owner, key.Prefix(), "expiring")
		assertStatus(t, owner, replacement.Prefix(), "active")
		shown, err := time.Parse(time.RFC3339Nano, eval[string](t, owner,
			fmt.Sprintf(`document.querySelector('tr[data-prefix=%q] td[data-col="expires"] time').getAttribute("datetime")`, key.Prefix())))
		require.NoError(t, err)
		assert.WithinRange(t, shown, before.Add(time.Hour-time.Second), after.Add(time.Hour+time.Second), "the old key expires an hour after the rotation")
		assert.True(t, shown.Equal(s.key(t, key.Prefix()).ExpiresAt))
		assert.Contains(t, eval[string](t, owner, `document.getElementById("notice").textContent`), "keeps working until")

		// Revoke the old key, after a confirmation.
		do(t, owner,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="revoke"][data-key=%q]`, key.Prefix()))),
			chromedp.WaitVisible(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
		)
		assertStatus(t, owner, key.Prefix(), "revoked")
		assert.Equal(t, apikey.Revoked, s.key(t, key.Prefix()).Status)
		assert.Equal(t, apikey.Active, s.key(t, replacement.Prefix()).Status)
	})

	t.Run("owner creates a key by keyboard only", func(t *testing.T) {
		do(t, owner, chromedp.Reload())
		waitReady(t, owner)
		// The focus order: the environment, then "Create key".
		do(t, owner, chromedp.KeyEvent("\t"))
		assert.Equal(t, "environment", eval[string](t, owner, activeElement))
		do(t, owner, chromedp.KeyEvent("\t"))
		assert.Equal(t, "create-key", eval[string](t, owner, activeElement))
		assert.Equal(t, "solid", eval[string](t, owner, `getComputedStyle(document.activeElement).outlineStyle`), "the focus is visible")

		do(t, owner, chromedp.KeyEvent("\r"))
		assert.Equal(t, "create-type", poll[string](t, owner, `document.querySelector("dialog[open]") && document.activeElement.id`))
		do(t, owner, chromedp.KeyEvent("\t"))
		assert.Equal(t, "create-name", eval[string](t, owner, activeElement))
		do(t, owner, chromedp.KeyEvent("keyboard key\t"))
		// The scopes are the service's catalogue, one checkbox each.
		assert.Equal(t, "create-scope-0", eval[string](t, owner, activeElement))
		do(t, owner, chromedp.KeyEvent("\t\t\t\t"))
		assert.Equal(t, "reports:read", eval[string](t, owner, `document.activeElement.value`))
		do(t, owner, chromedp.KeyEvent(" \t\t\t"))
		assert.Equal(t, "Create key", eval[string](t, owner, activeElement))
		do(t, owner, chromedp.KeyEvent("\r"))

		assert.Equal(t, "Copy key to clipboard", poll[string](t, owner, `document.querySelector("dialog[open] #secret-value") && document.activeElement.getAttribute("aria-label")`))
		created, err := apikey.ParseKey(eval[string](t, owner, `document.getElementById("secret-value").value`))
		require.NoError(t, err)
		do(t, owner, chromedp.KeyEvent("\t"))
		assert.Equal(t, "Done", eval[string](t, owner, activeElement))
		do(t, owner, chromedp.KeyEvent("\r"))
		assert.Equal(t, "create-key", poll[string](t, owner, `!document.querySelector("dialog") && document.activeElement.id`), "the focus returns to the button that opened the dialog")

		v := s.key(t, created.Prefix())
		assert.Equal(t, "keyboard key", v.Name)
		assert.Equal(t, []string{"reports:read"}, v.Scopes)
		assertStatus(t, owner, created.Prefix(), "active")
		keyboardKey = created.Prefix()
	})

	t.Run("owner changes a grace period, reveals a key and sets origins", func(t *testing.T) {
		var client apikey.View
		views, err := s.manager.List(context.Background(), bootstrapActor, apikey.Production, apikey.Page{})
		require.NoError(t, err)
		for _, v := range views.Keys {
			if v.Default && v.Type == apikey.Client {
				client = v
			}
		}
		require.NotEmpty(t, client.Prefix)

		// Rotate the publishable key with "24 hours", then make it 3 days.
		do(t, owner,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="rotate"][data-key=%q]`, client.Prefix))),
			chromedp.Click(chromedp.CSS(`dialog[open] input[name="grace"][value="24h"]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #secret-value")),
		)
		assert.Contains(t, eval[string](t, owner, `document.querySelector("dialog[open] .warning").textContent`), "public by design")
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		assertStatus(t, owner, client.Prefix, "expiring")
		do(t, owner,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="grace"][data-key=%q]`, client.Prefix))),
			chromedp.WaitVisible(chromedp.CSS(`dialog[open] input[name="grace"]`)),
		)
		assert.Equal(t, 0, eval[int](t, owner, `document.querySelectorAll("dialog[open] input[name=grace]:checked").length`))
		do(t, owner,
			chromedp.Click(chromedp.CSS(`dialog[open] input[name="grace"][value="72h"]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
			chromedp.WaitNotPresent(chromedp.CSS("dialog")),
		)
		assert.Contains(t, poll[string](t, owner, `document.getElementById("notice").textContent.includes("now expires") && document.getElementById("notice").textContent`), client.Prefix)
		old := s.key(t, client.Prefix)
		assert.True(t, old.ExpiresAt.Equal(old.RotatedAt.Add(72*time.Hour)), "3 days from the rotation: %v, rotated %v", old.ExpiresAt, old.RotatedAt)
		shown := eval[string](t, owner, fmt.Sprintf(`document.querySelector('tr[data-prefix=%q] td[data-col="expires"] time').getAttribute("datetime")`, client.Prefix))
		assert.Equal(t, old.ExpiresAt.Format(time.RFC3339Nano), shown)

		// Reveal the publishable key again.
		do(t, owner,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="reveal"][data-key=%q]`, client.Prefix))),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #secret-value")),
		)
		revealed, err := apikey.ParseKey(eval[string](t, owner, `document.getElementById("secret-value").value`))
		require.NoError(t, err)
		assert.Equal(t, client.Prefix, revealed.Prefix())
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))

		// Allowed origins: a bad one is refused in the dialog, which stays
		// open; good ones are saved.
		do(t, owner,
			chromedp.Click(chromedp.CSS("#edit-origins-button")),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #edit-origins")),
			chromedp.SendKeys(chromedp.CSS("#edit-origins"), "ftp://files.example.com"),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
		)
		assert.Contains(t, poll[string](t, owner, `document.querySelector("dialog[open] .form-error").textContent`), "origin")
		do(t, owner,
			chromedp.Evaluate[chromedp.Void](`(() => { document.getElementById("edit-origins").value = ""; })()`),
			chromedp.SendKeys(chromedp.CSS("#edit-origins"), "https://app.example.com\nhttp://localhost:3000"),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
			chromedp.WaitNotPresent(chromedp.CSS("dialog")),
		)
		assert.Equal(t, []string{"https://app.example.com", "http://localhost:3000"},
			poll[[]string](t, owner, `[...document.querySelectorAll("#origins li")].map(li => li.textContent)`))
		settings, err := s.manager.Settings(context.Background(), bootstrapActor, apikey.Production)
		require.NoError(t, err)
		assert.Equal(t, []string{"https://app.example.com", "http://localhost:3000"}, settings.AllowedOrigins)
		screenshot(t, owner, shots, "owner")
	})

	t.Run("another origin cannot change a key with the owner's cookie", func(t *testing.T) {
		require.NotEmpty(t, keyboardKey)
		path := "/console/api/keys/" + keyboardKey + "/revoke"
		target := s.url + path
		// The other site's page, in a tab of the owner's browser context:
		// the browser holds the owner's session cookie.
		other, cancel := chromedp.NewContext(owner)
		defer cancel()
		var (
			mu     sync.Mutex
			logged []string
		)
		messages := chromedp.Console(other)
		go func() {
			for m, err := range messages {
				if err != nil {
					return
				}
				mu.Lock()
				logged = append(logged, m.Text)
				mu.Unlock()
			}
		}()
		do(t, other, chromedp.Navigate(s.other+"/"))
		// A simple request (no preflight), as any page may send: it reaches
		// the server with the cookie, which refuses it. (The page cannot
		// even read the opaque response: Cross-Origin-Resource-Policy.)
		assert.Equal(t, "TypeError", eval[string](t, other, fmt.Sprintf(
			`fetch(%q, {method: "POST", mode: "no-cors", credentials: "include"}).then(r => r.type, e => e.name)`, target)))
		// A form post into a frame of the page, the classic forgery.
		do(t, other, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const sink = document.createElement("iframe");
			sink.name = "sink";
			document.body.append(sink);
			const f = document.createElement("form");
			f.method = "POST";
			f.action = %q;
			f.target = "sink";
			document.body.append(f);
			f.submit();
		})()`, target)))
		// A JSON request needs a preflight, which fails: the browser never
		// sends the POST.
		assert.Equal(t, "TypeError", eval[string](t, other, fmt.Sprintf(
			`fetch(%q, {method: "POST", credentials: "include", headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => "status " + r.status, e => e.name)`, target)))

		posts := func() []change {
			var out []change
			for _, c := range s.changesTo(path) {
				if c.Method == http.MethodPost {
					out = append(out, c)
				}
			}
			return out
		}
		require.Eventually(t, func() bool { return len(posts()) == 2 }, 10*time.Second, 20*time.Millisecond, "the fetch and the form reach the server")
		for _, c := range posts() {
			assert.True(t, c.SignedIn, "the browser sent the owner's session cookie: %+v", c)
			assert.Equal(t, s.other, c.Origin)
			assert.Equal(t, "same-site", c.FetchSite, "another port of the same host is the same site")
			assert.Equal(t, http.StatusForbidden, c.Status, "and the console refused it: %+v", c)
		}
		for _, c := range s.changesTo(path) {
			if c.Method != http.MethodPost {
				assert.Equal(t, http.MethodOptions, c.Method)
				assert.GreaterOrEqual(t, c.Status, 400, "the preflight fails: %+v", c)
			}
		}
		t.Logf("requests from %s: %+v", s.other, s.changesTo(path))
		assert.Equal(t, apikey.Active, s.key(t, keyboardKey).Status, "the key is unchanged")

		// The console may not be framed either (frame-ancestors 'none').
		assert.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range logged {
				if strings.Contains(m, "frame-ancestors 'none'") {
					return true
				}
			}
			return false
		}, 5*time.Second, 20*time.Millisecond, "the browser refuses to show the console in the other page's frame")

		// The owner's console still shows the key active.
		do(t, owner, chromedp.Reload())
		waitReady(t, owner)
		assertStatus(t, owner, keyboardKey, "active")
	})

	t.Run("owner sets limits and sees usage in the key's view", func(t *testing.T) {
		require.NotEmpty(t, keyboardKey)
		v := s.key(t, keyboardKey)
		// Usage as the middleware records it: two hours of the last day,
		// and a day of the last month.
		hour := time.Now().UTC().Truncate(time.Hour)
		record := func(at time.Time, outcome string, n int64) apikey.UsageCount {
			return apikey.UsageCount{Account: apikey.DefaultAccount, Environment: apikey.Production, KeyID: v.ID, Hour: at, Outcome: outcome, Count: n}
		}
		require.NoError(t, s.store.RecordUsage(context.Background(), []apikey.UsageCount{
			record(hour.Add(-time.Hour), "admitted", 40),
			record(hour.Add(-time.Hour), "rate_limited", 5),
			record(hour.Add(-3*time.Hour), "admitted", 12),
			record(hour.Add(-5*24*time.Hour), "admitted", 100),
			record(hour.Add(-5*24*time.Hour), "quota_exhausted", 7),
		}))

		// By keyboard: the key's link, then Enter.
		do(t, owner, chromedp.Reload())
		waitReady(t, owner)
		link := fmt.Sprintf(`tr[data-prefix=%q] a.key-link`, keyboardKey)
		do(t, owner, chromedp.Focus(chromedp.CSS(link)), chromedp.KeyEvent("\r"))
		assert.Equal(t, "key-heading", poll[string](t, owner, `!document.getElementById("key-view").hidden && document.activeElement.id`),
			"the key's view opens with the focus on its heading")
		assert.Equal(t, "Key "+keyboardKey, eval[string](t, owner, `document.getElementById("key-heading").textContent`))
		assert.True(t, eval[bool](t, owner, `document.getElementById("list-view").hidden`))
		details := eval[map[string]string](t, owner, `Object.fromEntries([...document.querySelectorAll("#key-details dt")].map(dt => [dt.textContent, dt.nextElementSibling.textContent.trim()]))`)
		assert.Equal(t, "keyboard key", details["Name"])
		assert.Equal(t, "active", details["Status"])
		assert.Equal(t, "reports:read", details["Scopes"])
		assert.Equal(t, "never", details["Last used"])
		for _, name := range []string{"Key", "Type", "Owner", "Created", "Expires"} {
			assert.Contains(t, details, name)
		}
		assert.Contains(t, eval[string](t, owner, `document.getElementById("key-limits").textContent`), "No limits")

		// The charts: inline SVG, admitted below refused, summed up in words.
		assert.Equal(t, 2, poll[int](t, owner, `document.querySelectorAll("#usage-hours rect.bar-admitted").length`))
		chart := func(id string) map[string]any {
			return eval[map[string]any](t, owner, fmt.Sprintf(`(() => { const svg = document.getElementById(%q); return {
				ns: svg.namespaceURI, role: svg.getAttribute("role"), title: svg.querySelector("title").textContent,
				admitted: svg.dataset.admitted, refused: svg.dataset.refused, bars: svg.querySelectorAll("g.bar").length,
				refusedBars: svg.querySelectorAll("rect.bar-refused").length,
				summary: document.querySelector('[data-summary=%q]').textContent,
				rows: svg.closest("figure").querySelectorAll("table tbody tr").length }; })()`, id, id))
		}
		hours := chart("usage-hours")
		assert.Equal(t, "http://www.w3.org/2000/svg", hours["ns"])
		assert.Equal(t, "img", hours["role"])
		assert.Equal(t, "52", hours["admitted"])
		assert.Equal(t, "5", hours["refused"])
		assert.Equal(t, 24.0, hours["bars"])
		assert.Equal(t, 24.0, hours["rows"], "the table has a row per hour")
		assert.Equal(t, 1.0, hours["refusedBars"])
		assert.Equal(t, "Requests per hour, last 24 hours: 57 requests, 52 admitted, 5 refused (rate limited 5).", hours["title"])
		assert.Equal(t, hours["title"], hours["summary"])
		days := chart("usage-days")
		assert.Equal(t, "152", days["admitted"])
		assert.Equal(t, "12", days["refused"])
		assert.Equal(t, 30.0, days["bars"])
		assert.Equal(t, 2.0, days["refusedBars"])
		assert.Equal(t, "Requests per day, last 30 days: 164 requests, 152 admitted, 12 refused (quota exhausted 7, rate limited 5).", days["title"])

		// Set limits; an address that is not a range is refused next to
		// the field the API names, and nothing is saved.
		do(t, owner,
			chromedp.SendKeys(chromedp.CSS("#limit-rate-requests"), "100"),
			chromedp.SetValue(chromedp.CSS("#limit-rate-window"), "60"),
			chromedp.SendKeys(chromedp.CSS("#limit-rate-burst"), "20"),
			chromedp.SendKeys(chromedp.CSS("#limit-quota-limit"), "10000"),
			chromedp.SendKeys(chromedp.CSS("#limit-quota-refill"), "10000"),
			chromedp.SetValue(chromedp.CSS("#limit-quota-period"), "month"),
			chromedp.SendKeys(chromedp.CSS("#limit-ips"), "10.0.0.0/8\nnot an address"),
			chromedp.Click(chromedp.CSS("#save-limits")),
		)
		shown := poll[string](t, owner, `document.getElementById("limit-ips-error").textContent`)
		assert.True(t, strings.HasPrefix(shown, "Address ranges, line 2, is not an address range"), "the field as the form labels it: %s", shown)
		assert.Equal(t, "limit-ips", eval[string](t, owner, activeElement), "the focus is on the field the API named")
		assert.Equal(t, "true", eval[string](t, owner, `document.getElementById("limit-ips").getAttribute("aria-invalid")`))
		assert.True(t, s.key(t, keyboardKey).Limits.IsZero())

		do(t, owner,
			chromedp.SetValue(chromedp.CSS("#limit-ips"), "10.0.0.0/8"),
			chromedp.Click(chromedp.CSS("#save-limits")),
		)
		assert.Contains(t, poll[string](t, owner, `document.getElementById("notice").textContent.includes("were saved") && document.getElementById("notice").textContent`), keyboardKey)
		assert.Equal(t, "", eval[string](t, owner, `document.getElementById("limit-ips-error").textContent`))
		limits := func(tab context.Context) map[string]string {
			return eval[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll("#key-limits [data-limit]")].map(dd => [dd.dataset.limit, dd.textContent.trim()]))`)
		}
		assert.Equal(t, map[string]string{
			"rate":        "100 requests per minute, in bursts of at most 20",
			"quota":       "10,000 uses, refilled by 10,000 each month (the 1st, 00:00 UTC)",
			"allowed_ips": "10.0.0.0/8",
		}, limits(owner))
		got := s.key(t, keyboardKey).Limits
		assert.Equal(t, apikey.RateLimit{Requests: 100, Window: time.Minute, Burst: 20}, got.Rate)
		assert.Equal(t, apikey.Quota{Limit: 10000, Refill: 10000, Period: apikey.Monthly}, got.Quota)
		assert.Equal(t, "[10.0.0.0/8]", fmt.Sprint(got.AllowedIPs))
		screenshot(t, owner, shots, "key-view")

		// By mouse: back to the list, and into the key's view again.
		do(t, owner, chromedp.Click(chromedp.CSS("#key-back")))
		assert.Equal(t, keyboardKey, poll[string](t, owner, `!document.getElementById("list-view").hidden && document.activeElement.closest("tr") && document.activeElement.closest("tr").dataset.prefix`),
			"the focus returns to the key's link")
		do(t, owner, chromedp.Click(chromedp.CSS(link)))
		assert.Equal(t, "100", poll[string](t, owner, `!document.getElementById("key-view").hidden && document.getElementById("limit-rate-requests").value`))

		// Remove the limits, after a confirmation; then a rate limit alone.
		do(t, owner,
			chromedp.Click(chromedp.CSS("#remove-limits")),
			chromedp.WaitVisible(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
			chromedp.WaitNotPresent(chromedp.CSS("dialog")),
		)
		assert.Contains(t, poll[string](t, owner, `document.getElementById("no-limits") && document.getElementById("no-limits").textContent`), "No limits")
		assert.True(t, s.key(t, keyboardKey).Limits.IsZero())
		assert.Equal(t, "limits-heading", eval[string](t, owner, activeElement), "the focus goes to the limits, Remove limits being hidden")
		assert.True(t, eval[bool](t, owner, `document.getElementById("remove-limits").hidden`), "no limits to remove")

		// A number that is not whole is refused before anything is sent.
		puts := len(s.changesTo("/console/api/keys/" + keyboardKey + "/limits"))
		require.Equal(t, 3, puts, "the refused, the saved and the removed limits")
		do(t, owner,
			chromedp.SendKeys(chromedp.CSS("#limit-rate-burst"), "1.5"),
			chromedp.Click(chromedp.CSS("#save-limits")),
		)
		assert.Equal(t, "Burst must be a whole number.", poll[string](t, owner, `document.getElementById("limit-rate-burst-error").textContent`))
		assert.Len(t, s.changesTo("/console/api/keys/"+keyboardKey+"/limits"), puts)
		do(t, owner,
			chromedp.SetValue(chromedp.CSS("#limit-rate-burst"), ""),
			chromedp.SendKeys(chromedp.CSS("#limit-rate-requests"), "5"),
			chromedp.SetValue(chromedp.CSS("#limit-rate-window"), "3600"),
			chromedp.Click(chromedp.CSS("#save-limits")),
		)
		assert.Equal(t, "5 requests per hour", poll[string](t, owner, `(document.querySelector('#key-limits [data-limit="rate"]') || {}).textContent`))
		assert.Equal(t, apikey.Limits{Rate: apikey.RateLimit{Requests: 5, Window: time.Hour}}, s.key(t, keyboardKey).Limits)
	})

	t.Run("read-only user sees limits and usage, and no form", func(t *testing.T) {
		require.NotEmpty(t, keyboardKey)
		tab := s.signIn(t, b, "carol")
		do(t, tab, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-prefix=%q] a.key-link`, keyboardKey))))
		assert.Equal(t, "5 requests per hour", poll[string](t, tab, `(document.querySelector('#key-limits [data-limit="rate"]') || {}).textContent`))
		assert.Equal(t, "52", poll[string](t, tab, `(document.getElementById("usage-hours") || {dataset: {}}).dataset.admitted`))
		assert.Equal(t, 0, eval[int](t, tab, `document.querySelectorAll("#key-view form, #key-view input, #key-view select, #key-view textarea, #key-view button").length`),
			"no form and no button")
		screenshot(t, tab, shots, "key-view-read-only")

		// Where the store keeps no usage, the view says so in words.
		s.noUsage.Store(true)
		defer s.noUsage.Store(false)
		do(t, tab, chromedp.Reload())
		waitReady(t, tab)
		assert.Contains(t, poll[string](t, tab, `(document.getElementById("usage-unavailable") || {}).textContent`), "Usage is not available")
		assert.Equal(t, 0, eval[int](t, tab, `document.querySelectorAll("#key-view svg").length`))
	})

	for _, user := range []struct{ name, role, shot string }{
		{"carol", "read-only", "read-only"},
	} {
		t.Run(user.role+" sees keys and no action", func(t *testing.T) {
			tab := s.signIn(t, b, user.name)
			assert.Contains(t, eval[string](t, tab, `document.getElementById("session").textContent`), user.name+" ("+user.role+")")
			views, err := s.manager.List(context.Background(), bootstrapActor, apikey.Production, apikey.Page{})
			require.NoError(t, err)
			var want []string
			for _, v := range views.Keys {
				want = append(want, v.Prefix+" "+string(v.Status))
			}
			shown := eval[[]string](t, tab, `[...document.querySelectorAll("#keys-body tr")].map(tr => tr.dataset.prefix + " " + tr.dataset.status)`)
			assert.ElementsMatch(t, want, shown, "every key is listed, with its status")
			assert.GreaterOrEqual(t, len(shown), 5)

			assert.Equal(t, 0, eval[int](t, tab,
				`[...document.querySelectorAll("button, input, textarea, dialog, [role=button], [data-action]")].filter(e => !e.closest("#owner-search, .list-tools")).length`),
				"no action button, form or dialog at all, but the list's search, filter and sort and the search for an owner's keys")
			headings := eval[[]string](t, tab, `[...document.querySelectorAll("#keys-head th")].map(th => th.textContent)`)
			assert.Equal(t, []string{"Key", "Name", "Type", "Status", "Scopes", "Created", "Expires", "Last used"}, headings)
			screenshot(t, tab, shots, user.shot)
		})
	}

	t.Run("member reveals publishable keys in production and manages keys elsewhere", func(t *testing.T) {
		tab := s.signIn(t, b, "bob")
		assert.Contains(t, eval[string](t, tab, `document.getElementById("session").textContent`), "bob (member)")
		// Production: the only action offered is Reveal, on publishable keys.
		offered := eval[[]string](t, tab, `[...document.querySelectorAll("button, input, textarea, dialog, [role=button], [data-action]")]
			.filter(e => !e.closest("#owner-search, .list-tools"))
			.map(e => e.textContent + " " + ((e.closest("tr") || {dataset: {}}).dataset.prefix || "").split("-")[0])`)
		require.NotEmpty(t, offered, "members reveal publishable keys")
		for _, o := range offered {
			assert.Equal(t, "Reveal client", o, "in production a member is offered Reveal on publishable keys only")
		}
		assert.Contains(t, eval[string](t, tab, `document.getElementById("role-note").textContent`),
			"Only owners create, rotate, revoke or change production keys", "the page says why")
		assert.False(t, eval[bool](t, tab, `document.getElementById("role-note").hidden`))
		screenshot(t, tab, shots, "member-production")

		// Development is not production: the member manages its keys.
		do(t, tab, chromedp.Evaluate[chromedp.Void](`(() => {
			const s = document.getElementById("environment");
			s.value = "development";
			s.dispatchEvent(new Event("change"));
		})()`))
		buttons := poll[[]string](t, tab, `(() => {
			const rows = [...document.querySelectorAll("#keys-body tr")];
			if (rows.length === 0 || !rows.every(tr => tr.dataset.prefix.startsWith("server-PAGE"))) return false;
			return [...document.querySelectorAll("#keys-body button")].map(e => e.textContent);
		})()`)
		assert.Contains(t, buttons, "Rotate", "members rotate keys outside production")
		assert.Contains(t, buttons, "Revoke", "members revoke keys outside production")
		assert.NotContains(t, buttons, "Reveal", "members reveal no server key")
		screenshot(t, tab, shots, "member-development")
	})

	t.Run("paged listing with owners and metadata", func(t *testing.T) {
		// The listing that the accounts work brings: the page follows
		// "next" and shows the owner and metadata columns.
		tab := s.signIn(t, b, "carol")
		do(t, tab, chromedp.Evaluate[chromedp.Void](`(() => {
			const s = document.getElementById("environment");
			s.value = "development";
			s.dispatchEvent(new Event("change"));
		})()`))
		assert.Equal(t, []string{"server-PAGEONEKEY01", "server-PAGEONEKEY02", "server-PAGETWOKEY01"},
			poll[[]string](t, tab, `(() => { const rows = [...document.querySelectorAll("#keys-body tr")].map(tr => tr.dataset.prefix); return rows.length === 3 && rows; })()`))
		assert.Equal(t, []string{"Key", "Name", "Owner", "Type", "Status", "Scopes", "Created", "Expires", "Last used", "Metadata"},
			eval[[]string](t, tab, `[...document.querySelectorAll("#keys-head th")].map(th => th.textContent)`))
		assert.Equal(t, []string{"user_42", "user_7", "user_42"}, eval[[]string](t, tab, `[...document.querySelectorAll('td[data-col="owner"]')].map(td => td.textContent)`))
		assert.Equal(t, []string{"team=billing", "", "region=eu"}, eval[[]string](t, tab, `[...document.querySelectorAll('td[data-col="metadata"]')].map(td => td.textContent.trim())`))
		assert.Contains(t, eval[string](t, tab, `location.hash`), "env=development")
	})
}

// TestCloseAccountInChromium: where the service enables it, an owner closes
// the account only after typing its id. The button stays disabled and Enter
// sends nothing until the typed text is the account's; members are offered
// no such action.
func TestCloseAccountInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startStack(t, true)
	b := newBrowser(t, ctx)
	const closePath = "/console/api/account/close"

	member := s.signIn(t, b, "bob")
	assert.True(t, eval[bool](t, member, `document.getElementById("close-account") === null && document.getElementById("account").hidden`),
		"members are offered no Close account")

	owner := s.signIn(t, b, "alice")
	submitDisabled := `document.querySelector('dialog[open] button[type="submit"]').disabled`
	do(t, owner,
		chromedp.Click(chromedp.CSS("#close-account")),
		chromedp.WaitVisible(chromedp.CSS("dialog[open] #close-account-confirm")),
	)
	assert.Equal(t, "Type default to confirm", eval[string](t, owner, `document.querySelector("dialog[open] label").textContent`))
	assert.Equal(t, "close-account-confirm", eval[string](t, owner, activeElement), "the focus is on the field")
	assert.True(t, eval[bool](t, owner, submitDisabled))

	do(t, owner, chromedp.KeyEvent("defaul\r")) // Enter with the id half typed
	assert.True(t, eval[bool](t, owner, submitDisabled))
	do(t, owner, chromedp.KeyEvent("T\r"))
	assert.True(t, eval[bool](t, owner, submitDisabled), "the id, typed exactly")
	assert.True(t, eval[bool](t, owner, `!!document.querySelector("dialog[open]")`))
	assert.Empty(t, s.changesTo(closePath), "nothing was sent")
	views, err := s.manager.List(context.Background(), bootstrapActor, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	for _, v := range views.Keys {
		assert.Equal(t, apikey.Active, v.Status, v.Prefix)
	}

	do(t, owner, chromedp.KeyEvent("\bt")) // "defaulT" becomes "default"
	assert.False(t, eval[bool](t, owner, submitDisabled))
	do(t, owner, chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
	assert.Contains(t, poll[string](t, owner, `document.getElementById("notice").textContent`), "The account default was closed")
	require.Len(t, s.changesTo(closePath), 1)
	assert.Equal(t, http.StatusOK, s.changesTo(closePath)[0].Status)
	views, err = s.manager.List(context.Background(), bootstrapActor, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	for _, v := range views.Keys {
		assert.Equal(t, apikey.Revoked, v.Status, v.Prefix)
	}
}

// TestSampleUsage: -sample-usage records 30 days of usage for each live
// production key, which the management API then reads.
func TestSampleUsage(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	_, err := newHandler(ctx, store, false)
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, recordSampleUsage(ctx, store, now))
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store})
	require.NoError(t, err)
	views, err := m.List(ctx, bootstrapActor, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	require.NotEmpty(t, views.Keys)
	for _, v := range views.Keys {
		list, err := m.Usage(ctx, bootstrapActor, apikey.UsageRequest{KeyID: v.ID, From: now.Truncate(time.Hour).Add(-23 * time.Hour), To: now},
			apikey.Page{Limit: apikey.MaxPageSize})
		require.NoError(t, err)
		outcomes := map[string]int64{}
		hours := map[time.Time]bool{}
		for _, c := range list.Counts {
			outcomes[c.Outcome] += c.Count
			hours[c.Hour] = true
		}
		assert.Len(t, hours, 24, "%s: every hour of the last day", v.Prefix)
		assert.Positive(t, outcomes["admitted"], v.Prefix)
		assert.Positive(t, outcomes["rate_limited"], "%s: refusals in the busiest hours", v.Prefix)
	}
	assert.Error(t, recordSampleUsage(ctx, noUsage{store}, now), "a store that keeps no usage")
}

// noUsage is a store that keeps no usage: a memory store without its
// UsageRecorder.
type noUsage struct{ store }

// TestLogin checks the stand-in login without a browser: the console
// answers only signed-in users, with their role.
func TestLogin(t *testing.T) {
	h, err := newHandler(context.Background(), memory.New(), false)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	res, err := noRedirect.Get(srv.URL + "/console/")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/", res.Header.Get("Location"))

	res, err = noRedirect.Get(srv.URL + "/console/session")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)

	res, err = noRedirect.Get(srv.URL + "/login?as=carol")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/console/", res.Header.Get("Location"))
	cookies := res.Cookies()
	require.Len(t, cookies, 1)
	assert.True(t, cookies[0].HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, cookies[0].SameSite)

	req, err := http.NewRequest("GET", srv.URL+"/console/session", nil)
	require.NoError(t, err)
	req.AddCookie(cookies[0])
	res, err = noRedirect.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, string(body), `"actor":{"id":"carol","role":"read-only"}`)
	assert.Contains(t, string(body), `"actions":[]`)
}
