package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
)

// active is the id of the focused element, or its text.
const active = `(document.activeElement.id || document.activeElement.textContent.trim())`

// qs is the JavaScript expression of the element that selector selects.
func qs(selector string) string { return "document.querySelector(" + strconv.Quote(selector) + ")" }

// press sends each of keys (a character, or kb.Enter and such) to the
// focused element, in turn.
func press(t *testing.T, tab context.Context, keys ...string) {
	t.Helper()
	for _, k := range keys {
		do(t, tab, chromedp.KeyEvent(k))
	}
}

// receiver is a local webhook receiver that refuses every request until
// healthy, and keeps the webhook-id of each request it accepted.
type receiver struct {
	srv     *httptest.Server
	healthy atomic.Bool
	mu      sync.Mutex
	ids     []string
	bodies  [][]byte
	headers []http.Header
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !rc.healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.ids = append(rc.ids, r.Header.Get(standardwebhooks.HeaderWebhookID))
		rc.bodies = append(rc.bodies, body)
		rc.headers = append(rc.headers, r.Header.Clone())
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// TestWebhooksInChromium drives the console's Webhooks view: an owner adds
// an endpoint by keyboard only (an http:// URL and an internal address are
// refused at the URL field first), sees its signing secret once, with a
// copy button, rotates the secret with an overlap, edits the endpoint's
// event types (an unknown one refused at its field) and disables it, and
// deletes it after a confirmation. An endpoint whose receiver (local)
// fails has a dead letter, shown with its event's type (recorded with the
// letter: the view asks the audit log nothing), attempts and error; Replay
// re-queues it and the deliverer delivers it, signed, under the same event
// id. Members and read-only users see the endpoints and the dead letters
// with no control to change them; two endpoints on one host, redacted
// alike, have Dead letters buttons and headings of distinct names. At 1280
// and 390 pixels every control of the view is in view, and axe-core finds
// no serious violation in it or its dialogs. Where the store keeps no
// endpoints, the view says webhooks are not available.
func TestWebhooksInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startStack(t, false)

	// An endpoint on a local receiver, which only a Manager that allows
	// internal targets registers (the console's does not), and a deliverer
	// that may reach it, stepped by the test.
	internal, err := apikey.NewManager(apikey.ManagerOptions{Store: s.store, AllowInternalEndpoints: true})
	require.NoError(t, err)
	rc := newReceiver(t)
	local, err := internal.CreateEndpoint(ctx, bootstrapActor, apikey.EndpointRequest{URL: rc.srv.URL + "/hooks"})
	require.NoError(t, err)
	sender, err := webhook.NewSender(webhook.Options{Policy: webhook.Policy{AllowHTTP: true,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, Timeout: 5 * time.Second})
	require.NoError(t, err)
	d, err := events.NewTenantDeliverer(events.TenantDelivererOptions{Store: s.store, Sender: sender,
		Retry: webhook.RetryPolicy{Schedule: []time.Duration{time.Millisecond}}})
	require.NoError(t, err)
	_, err = s.manager.Create(ctx, bootstrapActor, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server,
		Name: "webhook trigger", Scopes: []string{"reports:read"}})
	require.NoError(t, err)
	n, err := d.Step(ctx, local.Endpoint.ID)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the creation's event, dead-lettered after its retry")
	letters, _, err := internal.EndpointDeadLetters(ctx, bootstrapActor, local.Endpoint.ID, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, letters, 1)
	letter := letters[0]
	require.Equal(t, apikey.ActionCreate, letter.Type, "the letter records its event's type")

	b := newBrowser(t, ctx)
	shots := screenshotDir(t)
	localRow := fmt.Sprintf(`#endpoints-body tr[data-endpoint=%q]`, local.Endpoint.ID)

	t.Run("owner", func(t *testing.T) {
		tab := s.signIn(t, b, "alice")
		// From the list to the Webhooks view, by keyboard.
		do(t, tab, chromedp.Focus(chromedp.CSS("#webhooks-link")))
		press(t, tab, kb.Enter)
		assert.Equal(t, "webhooks-heading", poll[string](t, tab, `!document.getElementById("webhooks-view").hidden && `+qs(localRow)+` && `+active), "the view's heading takes the focus")
		assert.Equal(t, "#webhooks", eval[string](t, tab, `location.hash`))
		assert.True(t, eval[bool](t, tab, `document.getElementById("webhooks-role-note").hidden`), "owners may do everything: no note")
		assert.Equal(t, []string{"letters", "edit", "rotate", "delete"}, eval[[]string](t, tab,
			`[...document.querySelectorAll(`+strconv.Quote(localRow+" [data-hook-action]")+`)].map(b => b.dataset.hookAction)`))
		assert.Equal(t, local.Endpoint.URL, eval[string](t, tab, qs(localRow+" td.endpoint-url code")+`.textContent`), "owners see the whole URL")
		assert.Equal(t, local.Endpoint.URL, eval[string](t, tab, qs(localRow+" td.endpoint-url")+`.textContent`), "and no note that it is redacted")

		// Add an endpoint, by keyboard: Tab reaches Add endpoint, the URL
		// field has the focus, Enter submits.
		press(t, tab, "\t")
		require.Equal(t, "add-endpoint", eval[string](t, tab, active))
		press(t, tab, kb.Enter)
		require.Equal(t, "endpoint-url", poll[string](t, tab, `document.querySelector("dialog[open]") && `+active))
		urlError := `document.getElementById("endpoint-url-error").textContent`
		for _, bad := range []struct{ url, says string }{
			{"http://hooks.example.com/keystile", "https"},
			{"https://10.1.2.3/keystile", "internal address"},
			{"https://localhost:8443/keystile", "localhost"},
		} {
			do(t, tab, chromedp.Evaluate[chromedp.Void](`document.getElementById("endpoint-url").select()`))
			do(t, tab, chromedp.KeyEvent(bad.url))
			press(t, tab, kb.Enter)
			text := poll[string](t, tab, urlError)
			assert.Contains(t, text, bad.says, bad.url)
			assert.True(t, strings.HasPrefix(text, "The URL "), "the field named as the form labels it: %q", text)
			assert.Equal(t, "true", eval[string](t, tab, `document.getElementById("endpoint-url").getAttribute("aria-invalid")`))
			assert.Equal(t, "endpoint-url", eval[string](t, tab, active), "the refused field has the focus")
			assert.Contains(t, eval[string](t, tab, `document.getElementById("endpoint-url").getAttribute("aria-describedby")`), "endpoint-url-error")
		}
		if injectAxe(t, tab) {
			assert.Empty(t, eval[[]string](t, tab, axeViolations), "the endpoint dialog, with a refusal")
		}
		do(t, tab, chromedp.Evaluate[chromedp.Void](`document.getElementById("endpoint-url").select()`))
		do(t, tab, chromedp.KeyEvent("https://hooks.example.com/keystile"))
		press(t, tab, kb.Enter)

		// The secret, once, with a copy button that has the focus.
		secret := poll[string](t, tab, `document.querySelector("dialog[open] #secret-value") && document.querySelector("dialog[open] #secret-value").value`)
		assert.Regexp(t, `^whsec_[A-Za-z0-9+/]+=*$`, secret)
		assert.Contains(t, eval[string](t, tab, `document.querySelector("dialog[open] .warning-text").textContent`), "you will not see it again")
		assert.Equal(t, "Signing secret", eval[string](t, tab, `document.querySelector('dialog[open] label[for="secret-value"]').textContent`))
		assert.Equal(t, "Copy the signing secret to clipboard", eval[string](t, tab, `document.activeElement.getAttribute("aria-label")`))
		press(t, tab, kb.Enter)
		assert.Equal(t, "Copied to the clipboard.", poll[string](t, tab, `document.querySelector("dialog[open] .copy-status").textContent`))
		assert.Equal(t, secret, eval[string](t, tab, `navigator.clipboard.readText()`))
		if eval[bool](t, tab, `typeof axe === "object"`) {
			assert.Empty(t, eval[[]string](t, tab, axeViolations), "the secret dialog")
		}
		press(t, tab, kb.Escape)
		poll[bool](t, tab, `!document.querySelector("dialog")`)
		assert.Equal(t, "add-endpoint", eval[string](t, tab, active), "the focus returns to Add endpoint")
		assert.False(t, eval[bool](t, tab, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, secret)), "the secret leaves the page with its dialog")
		list, _, err := s.manager.Endpoints(ctx, bootstrapActor, apikey.Page{})
		require.NoError(t, err)
		require.Len(t, list, 2)
		var added apikey.WebhookEndpoint
		for _, e := range list {
			if e.ID != local.Endpoint.ID {
				added = e
			}
		}
		assert.Equal(t, "https://hooks.example.com/keystile", added.URL)
		assert.True(t, added.Enabled)
		row := fmt.Sprintf(`#endpoints-body tr[data-endpoint=%q]`, added.ID)
		assert.Equal(t, "enabled", eval[string](t, tab, qs(row)+`.dataset.status`))
		assert.Contains(t, eval[string](t, tab, `document.getElementById("notice").textContent`), "was added")

		// Rotate, keeping the old secret for 24 hours: chosen by arrows.
		do(t, tab, chromedp.Focus(chromedp.CSS(row+` [data-hook-action="rotate"]`)))
		press(t, tab, kb.Enter)
		require.Equal(t, "overlap-0", poll[string](t, tab, `document.querySelector("dialog[open]") && `+active))
		assert.Equal(t, []string{"Not at all: the old secret stops signing now", "1 hour", "24 hours", "3 days", "7 days"},
			eval[[]string](t, tab, `[...document.querySelectorAll("dialog[open] .choice label")].map(l => l.textContent)`))
		press(t, tab, kb.ArrowDown, kb.ArrowDown)
		assert.Equal(t, "24h", eval[string](t, tab, `document.querySelector('dialog[open] input[name="overlap"]:checked').value`))
		press(t, tab, "\t", "\t")
		require.Equal(t, "Rotate secret", eval[string](t, tab, active))
		press(t, tab, kb.Enter)
		rotated := poll[string](t, tab, `document.querySelector("dialog[open] #secret-value") && document.querySelector("dialog[open] #secret-value").value`)
		assert.Regexp(t, `^whsec_`, rotated)
		assert.NotEqual(t, secret, rotated, "a new secret")
		e, err := s.manager.Endpoint(ctx, bootstrapActor, added.ID)
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(24*time.Hour), e.PreviousSecretUntil, time.Minute, "the old secret signs 24 hours more")
		assert.Contains(t, eval[string](t, tab, `document.getElementById("notice").textContent`), "the old one keeps signing until")
		screenshot(t, tab, shots, "webhooks-secret")
		press(t, tab, kb.Escape)
		poll[bool](t, tab, `!document.querySelector("dialog")`)
		assert.Equal(t, "Rotate secret of https://hooks.example.com/keystile", eval[string](t, tab, `document.activeElement.getAttribute("aria-label")`),
			"the focus returns to the endpoint's Rotate secret")
		assert.Contains(t, eval[string](t, tab, qs(row)+`.textContent`), "previous secret signs until")

		// Edit: an unknown event type is refused at its field; then the
		// endpoint receives revocations only, and is disabled.
		do(t, tab, chromedp.Click(chromedp.CSS(row+` [data-hook-action="edit"]`)),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #endpoint-actions")))
		assert.Equal(t, "https://hooks.example.com/keystile", eval[string](t, tab, `document.getElementById("endpoint-url").value`))
		assert.True(t, eval[bool](t, tab, `document.getElementById("endpoint-enabled").checked`))
		do(t, tab, chromedp.SetValue(chromedp.CSS("#endpoint-actions"), "revoke, sneeze"),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)))
		assert.Contains(t, poll[string](t, tab, `document.getElementById("endpoint-actions-error").textContent`), "The event types names an unknown action")
		assert.Equal(t, "endpoint-actions", eval[string](t, tab, active))
		do(t, tab, chromedp.SetValue(chromedp.CSS("#endpoint-actions"), "revoke"),
			chromedp.Click(chromedp.CSS("#endpoint-enabled")),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)))
		poll[bool](t, tab, `!document.querySelector("dialog") && `+qs(row)+`.dataset.status === "disabled"`)
		assert.Contains(t, eval[string](t, tab, qs(row)+`.textContent`), "receives nothing until enabled")
		e, err = s.manager.Endpoint(ctx, bootstrapActor, added.ID)
		require.NoError(t, err)
		assert.Equal(t, []apikey.Action{apikey.ActionRevoke}, e.Actions)
		assert.False(t, e.Enabled)

		// At each width, every control of the view is in view, and
		// axe-core finds nothing serious. Showing the dead letters asks the
		// audit log nothing.
		do(t, tab, chromedp.Evaluate[chromedp.Void](`performance.clearResourceTimings()`))
		do(t, tab, chromedp.Click(chromedp.CSS(localRow+` [data-hook-action="letters"]`)))
		poll[bool](t, tab, `!!document.querySelector("#letters-body tr")`)
		assert.NotEmpty(t, eval[[]string](t, tab, `performance.getEntriesByType("resource").map(e => e.name).filter(n => n.includes("/dead-letters"))`),
			"the dead letters were read")
		assert.Empty(t, eval[[]string](t, tab, `performance.getEntriesByType("resource").map(e => e.name).filter(n => n.includes("/audit"))`),
			"no audit request")
		for _, width := range []int{1280, 390} {
			do(t, tab, chromedp.EmulateViewport(int64(width), 900))
			poll[bool](t, tab, fmt.Sprintf(`innerWidth === %d`, width))
			assert.Empty(t, eval[[]string](t, tab, unreachable+`("#webhooks-view")`), "%d: every control can be scrolled into view, whole and uncovered", width)
			assert.LessOrEqual(t, eval[int](t, tab, `document.documentElement.scrollWidth`), width, "the page does not scroll sideways")
			assert.Empty(t, eval[[]string](t, tab, `[...document.querySelectorAll("#webhooks-view .table-wrap")].filter(w => w.scrollWidth > w.clientWidth).map(w => w.querySelector("table").id + " " + w.scrollWidth + ">" + w.clientWidth)`),
				"%d: the tables fit: no column hides beyond the table's edge or under its actions", width)
			if eval[bool](t, tab, `typeof axe === "object"`) {
				assert.Empty(t, eval[[]string](t, tab, axeViolations), "%d: the Webhooks view", width)
			}
			screenshot(t, tab, shots, fmt.Sprintf("webhooks-owner-%d", width))
		}
		do(t, tab, chromedp.EmulateViewport(1440, 900))

		// The dead letter: its event's type, attempts and error; Replay
		// re-queues it, and the deliverer delivers it under its id.
		letterRow := fmt.Sprintf(`#letters-body tr[data-event=%q]`, letter.EventID)
		assert.Equal(t, "Dead letters of "+local.Endpoint.URL, eval[string](t, tab, `document.getElementById("letters-heading").textContent`))
		assert.Equal(t, "letters-heading", eval[string](t, tab, active))
		cells := eval[[]string](t, tab, `[...`+qs(letterRow)+`.children].map(td => td.dataset.label + ": " + td.textContent.trim())`)
		require.Len(t, cells, 7)
		assert.Equal(t, "Event: "+letter.EventID, cells[0])
		assert.Equal(t, "Type: create", cells[1], "the type of the event, from the letter")
		assert.Equal(t, fmt.Sprintf("Attempts: %d", letter.Attempts), cells[3])
		assert.Contains(t, cells[4], "503")
		assert.Equal(t, "State: not delivered", cells[5])
		rc.healthy.Store(true)
		do(t, tab, chromedp.Focus(chromedp.CSS(letterRow+` [data-letter-action="replay"]`)))
		press(t, tab, kb.Enter)
		assert.Equal(t, "replaying", poll[string](t, tab, qs(letterRow)+`.dataset.state === "replaying" && "replaying"`))
		assert.Equal(t, "letters-heading", eval[string](t, tab, active), "the focus stays with the dead letters")
		assert.Contains(t, eval[string](t, tab, `document.getElementById("notice").textContent`), "is queued to be sent")
		n, err := d.Step(ctx, local.Endpoint.ID)
		require.NoError(t, err)
		assert.Equal(t, 1, n, "the replayed letter")
		do(t, tab, chromedp.Click(chromedp.CSS("#letters-refresh")))
		poll[bool](t, tab, qs(letterRow)+`.dataset.state === "delivered"`)
		assert.Contains(t, eval[string](t, tab, qs(letterRow)+`.textContent`), "delivered by a replay")
		rc.mu.Lock()
		require.Equal(t, []string{letter.EventID}, rc.ids, "delivered once, under the event's id")
		wh, err := standardwebhooks.NewWebhook(local.Secret.Reveal())
		require.NoError(t, err)
		assert.NoError(t, wh.Verify(rc.bodies[0], rc.headers[0]), "signed with the endpoint's secret")
		rc.mu.Unlock()

		// Delete, after the confirmation (Cancel has the focus first).
		do(t, tab, chromedp.Focus(chromedp.CSS(row+` [data-hook-action="delete"]`)))
		press(t, tab, kb.Enter)
		require.Equal(t, "Cancel", poll[string](t, tab, `document.querySelector("dialog[open]") && `+active))
		assert.Equal(t, "Delete the endpoint?", eval[string](t, tab, `document.querySelector("dialog[open] h2").textContent`))
		press(t, tab, "\t")
		require.Equal(t, "Delete endpoint", eval[string](t, tab, active))
		press(t, tab, kb.Enter)
		poll[bool](t, tab, `!document.querySelector("dialog") && !`+qs(row))
		assert.Equal(t, "add-endpoint", eval[string](t, tab, active), "the focus goes to Add endpoint")
		_, err = s.manager.Endpoint(ctx, bootstrapActor, added.ID)
		assert.ErrorIs(t, err, apikey.ErrNotFound)
		assert.Contains(t, eval[string](t, tab, `document.getElementById("notice").textContent`), "was deleted")
	})

	// A second endpoint on the receiver's host: redacted to scheme and
	// host, its URL reads as the first one's.
	other, err := internal.CreateEndpoint(ctx, bootstrapActor, apikey.EndpointRequest{URL: rc.srv.URL + "/other"})
	require.NoError(t, err)
	otherRow := fmt.Sprintf(`#endpoints-body tr[data-endpoint=%q]`, other.Endpoint.ID)
	lettersName := func(row string) string {
		return qs(row+` [data-hook-action="letters"]`) + `.getAttribute("aria-label")`
	}
	for _, role := range []struct{ user, name string }{{"bob", "member"}, {"carol", "read-only"}} {
		t.Run(role.name, func(t *testing.T) {
			tab := s.signIn(t, b, role.user)
			do(t, tab, chromedp.Click(chromedp.CSS("#webhooks-link")))
			poll[bool](t, tab, `!!`+qs(localRow))
			assert.Contains(t, eval[string](t, tab, `document.getElementById("webhooks-role-note").textContent`), "Only owners add, change or delete endpoints")
			// The URL is redacted to scheme and host, and the cell says so
			// in text, which a screen reader reads with the URL.
			assert.Equal(t, rc.srv.URL, eval[string](t, tab, qs(localRow+" td.endpoint-url code")+`.textContent`), "scheme and host only")
			assert.Equal(t, rc.srv.URL+"Path hidden: only owners see the whole URL.", eval[string](t, tab, qs(localRow+" td.endpoint-url")+`.textContent`))
			assert.Equal(t, "Path hidden: only owners see the whole URL.", eval[string](t, tab,
				`(() => { const n = `+qs(localRow+" td.endpoint-url .url-redacted")+`; return n && !n.closest("[aria-hidden=true]") && getComputedStyle(n).display !== "none" && getComputedStyle(n).visibility === "visible" ? n.textContent : "" })()`),
				"the note is shown and not hidden from assistive technology")
			assert.False(t, eval[bool](t, tab, `!!document.getElementById("add-endpoint")`), "no Add endpoint")
			assert.Equal(t, []string{"letters", "letters"}, eval[[]string](t, tab, `[...document.querySelectorAll("#endpoints-body [data-hook-action]")].map(b => b.dataset.hookAction)`),
				"only the dead letters, to read")
			// Two endpoints on one host, redacted alike: each Dead letters
			// button, and the heading it shows, has a name of its own that
			// still says the URL as far as it is shown.
			assert.Equal(t, rc.srv.URL, eval[string](t, tab, qs(otherRow+" td.endpoint-url code")+`.textContent`))
			localName, otherName := eval[string](t, tab, lettersName(localRow)), eval[string](t, tab, lettersName(otherRow))
			assert.NotEqual(t, localName, otherName, "two endpoints on one host have distinct names")
			for _, name := range []string{localName, otherName} {
				assert.True(t, strings.HasPrefix(name, "Dead letters of "+rc.srv.URL+" "), "the name says the redacted URL: %q", name)
			}
			do(t, tab, chromedp.Click(chromedp.CSS(otherRow+` [data-hook-action="letters"]`)))
			poll[bool](t, tab, `!document.getElementById("letters-empty").hidden`)
			assert.Equal(t, otherName, eval[string](t, tab, `document.getElementById("letters-heading").textContent`), "the heading names the endpoint as its button does")
			do(t, tab, chromedp.Click(chromedp.CSS(localRow+` [data-hook-action="letters"]`)))
			poll[bool](t, tab, `!!document.querySelector("#letters-body tr")`)
			assert.Equal(t, localName, eval[string](t, tab, `document.getElementById("letters-heading").textContent`))
			assert.Equal(t, 0, eval[int](t, tab, `document.querySelectorAll("#letters-body button, #letters-replay-all").length`), "no Replay")
			assert.Equal(t, []string{"letters-refresh"}, eval[[]string](t, tab, `[...document.querySelectorAll("#webhooks-view button")].filter(b => !b.dataset.hookAction).map(b => b.id)`),
				"Refresh, which changes nothing, is the only other button")
			for _, width := range []int{1280, 390} {
				do(t, tab, chromedp.EmulateViewport(int64(width), 900))
				poll[bool](t, tab, fmt.Sprintf(`innerWidth === %d`, width))
				assert.Empty(t, eval[[]string](t, tab, unreachable+`("#webhooks-view")`), "%d: every control in view", width)
				if injectAxe(t, tab) {
					assert.Empty(t, eval[[]string](t, tab, axeViolations), "%d: the Webhooks view", width)
				}
			}
			do(t, tab, chromedp.EmulateViewport(1440, 900))
		})
	}

	t.Run("no endpoints in the store", func(t *testing.T) {
		s.noEndpoints.Store(true)
		defer s.noEndpoints.Store(false)
		tab := s.signIn(t, b, "alice")
		do(t, tab, chromedp.Click(chromedp.CSS("#webhooks-link")))
		poll[bool](t, tab, `!document.getElementById("webhooks-unavailable").hidden`)
		assert.Equal(t, "Webhooks are not available on this service: its key store keeps no webhook endpoints.",
			eval[string](t, tab, `document.getElementById("webhooks-unavailable").textContent`))
		assert.True(t, eval[bool](t, tab, `document.getElementById("webhooks-list").hidden`))
		assert.False(t, eval[bool](t, tab, `!!document.getElementById("add-endpoint")`), "nothing to add")
		assert.Empty(t, eval[string](t, tab, `document.getElementById("error").textContent`), "not an error")
	})
}

// injectAxe loads axe-core into the tab, if it is not there yet, and
// reports whether it is (it fails the test under CI without it).
func injectAxe(t *testing.T, tab context.Context) bool {
	t.Helper()
	if eval[bool](t, tab, `typeof axe === "object"`) {
		return true
	}
	src := axeSource(t)
	do(t, tab, chromedp.Evaluate[chromedp.Void](src))
	return eval[bool](t, tab, `typeof axe === "object"`)
}
