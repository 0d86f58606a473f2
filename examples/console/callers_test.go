package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestCallersInChromium: the view of a key rotated out says who still uses
// it ("Still used by 2 callers, last seen 3 minutes ago") and lists each
// caller, most recent first, at every width, to a read-only user; the view
// of its active replacement shows no such section.
func TestCallersInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startStack(t, false)
	list, err := s.manager.List(ctx, bootstrapActor, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	var old apikey.View
	for _, k := range list.Keys {
		if k.Default && k.Type == apikey.Server {
			old = k
		}
	}
	require.NotEmpty(t, old.ID)
	issued, err := s.manager.Rotate(ctx, bootstrapActor, apikey.RotateRequest{KeyID: old.ID, Grace: 72 * time.Hour})
	require.NoError(t, err)
	now := time.Now().UTC()
	longAgent := "reports-exporter/" + strings.Repeat("x", apikey.MaxUserAgentLength-len("reports-exporter/"))
	require.NoError(t, s.store.RecordCallers(ctx, []apikey.KeyCallers{{Account: apikey.DefaultAccount, KeyID: old.ID,
		Callers: []apikey.Caller{
			{Address: "192.0.2.7", UserAgent: "billing-cron/2.1", Requests: 5, FirstSeen: now.Add(-time.Hour), LastSeen: now.Add(-3 * time.Minute)},
			{Address: "2001:db8:4006:812::200e", UserAgent: longAgent, Requests: 2, FirstSeen: now.Add(-time.Hour), LastSeen: now.Add(-10 * time.Minute)},
		}}}))
	// A key rotated out two hours ago, used by no caller since.
	twoHoursAgo, err := apikey.NewManager(apikey.ManagerOptions{Store: s.store, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	require.NoError(t, err)
	quiet, err := twoHoursAgo.Create(ctx, bootstrapActor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
		Name: "quiet", Scopes: []string{"reports:read"}})
	require.NoError(t, err)
	_, err = twoHoursAgo.Rotate(ctx, bootstrapActor, apikey.RotateRequest{KeyID: quiet.View.ID, Grace: 72 * time.Hour})
	require.NoError(t, err)
	b := newBrowser(t, ctx)
	shots := screenshotDir(t)
	tab := s.signIn(t, b, "carol")

	open := func(t *testing.T, tab context.Context, prefix string) {
		t.Helper()
		do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, "env=production&key="+prefix)))
		poll[bool](t, tab, fmt.Sprintf(`!document.getElementById("key-view").hidden && document.getElementById("key-heading").textContent === %q
			&& !!document.querySelector("#key-usage figure, #usage-unavailable, #key-usage .error")`, "Key "+prefix))
	}

	t.Run("a key rotated out", func(t *testing.T) {
		open(t, tab, old.Prefix)
		summary := poll[string](t, tab, `(document.getElementById("callers-summary") || {}).textContent`)
		assert.Contains(t, summary, "Still used by 2 callers, last seen 3 minutes ago")
		assert.Contains(t, summary, "(7 requests since the rotation)")
		assert.Equal(t, "Still in use", eval[string](t, tab, `document.getElementById("callers-heading").textContent`))
		assert.False(t, eval[bool](t, tab, `!!document.getElementById("silence-form")`), "read-only users cannot end a grace")
		rows := eval[[]string](t, tab, `[...document.querySelectorAll("#callers-table tbody tr")].map(tr => [...tr.cells].slice(0, 3).map(td => td.textContent).join(" | "))`)
		assert.Equal(t, []string{"192.0.2.7 | billing-cron/2.1 | 5", "2001:db8:4006:812::200e | " + longAgent + " | 2"}, rows,
			"most recently seen first")
		for _, width := range widths {
			t.Run(fmt.Sprint(width), func(t *testing.T) {
				do(t, tab, chromedp.EmulateViewport(int64(width), 900))
				poll[bool](t, tab, fmt.Sprintf(`innerWidth === %d`, width))
				assert.LessOrEqual(t, eval[int](t, tab, `document.documentElement.scrollWidth`), width, "the page does not scroll sideways, long user agents included")
				assert.Empty(t, eval[[]string](t, tab, unreachable+`("#key-callers")`), "every time of the list can be scrolled into view, whole and uncovered")
				screenshot(t, tab, shots, fmt.Sprintf("callers-%d", width))
			})
		}
		if src := os.Getenv(axeCoreEnv); src != "" {
			do(t, tab, chromedp.Evaluate[chromedp.Void](axeSourceOf(t, src)))
			assert.Empty(t, eval[[]string](t, tab, axeViolations), "the view of a key rotated out")
		}
	})

	t.Run("owner ends the grace of a key gone quiet", func(t *testing.T) {
		owner := s.signIn(t, b, "alice")
		open(t, owner, old.Prefix)
		poll[bool](t, owner, `!!document.getElementById("silence-form")`)
		for _, width := range []int{1280, 390} {
			do(t, owner, chromedp.EmulateViewport(int64(width), 900))
			poll[bool](t, owner, fmt.Sprintf(`innerWidth === %d`, width))
			assert.LessOrEqual(t, eval[int](t, owner, `document.documentElement.scrollWidth`), width, "the form fits at %d", width)
			assert.Empty(t, eval[[]string](t, owner, unreachable+`("#key-callers")`), "the form's controls can be reached at %d", width)
			screenshot(t, owner, shots, fmt.Sprintf("callers-owner-%d", width))
		}
		if src := os.Getenv(axeCoreEnv); src != "" {
			do(t, owner, chromedp.Evaluate[chromedp.Void](axeSourceOf(t, src)))
			assert.Empty(t, eval[[]string](t, owner, axeViolations), "the owner's view of a key rotated out")
		}
		do(t, owner, chromedp.SetValue(chromedp.CSS("#silence"), "1h"), chromedp.Click(chromedp.CSS("#silence-submit")))
		refusal := poll[string](t, owner, `document.getElementById("silence-status").textContent`)
		assert.Contains(t, refusal, "The grace goes on")
		assert.Contains(t, refusal, "last seen at")
		assert.Equal(t, apikey.Expiring, s.key(t, old.Prefix).Status, "a key still in use keeps its grace")

		open(t, owner, quiet.View.Prefix)
		summary := poll[string](t, owner, `(document.getElementById("callers-summary") || {}).textContent`)
		assert.Contains(t, summary, "No caller seen since the key was rotated 2 hours ago")
		do(t, owner, chromedp.SetValue(chromedp.CSS("#silence"), "1h"), chromedp.Click(chromedp.CSS("#silence-submit")))
		assert.Contains(t, poll[string](t, owner, `document.getElementById("notice").textContent`), "has expired: no caller used it for 1 hour")
		assert.Equal(t, apikey.Expired, s.key(t, quiet.View.Prefix).Status)
		poll[bool](t, owner, `document.getElementById("key-callers").hidden`)
	})

	t.Run("its active replacement", func(t *testing.T) {
		open(t, tab, issued.View.Prefix)
		assert.True(t, eval[bool](t, tab, `document.getElementById("key-callers").hidden`), "an active key has no callers section")
		assert.Empty(t, eval[string](t, tab, `document.getElementById("key-callers").textContent`))
	})
}

// axeSourceOf reads axe-core's script from path.
func axeSourceOf(t *testing.T, path string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	require.NoError(t, err, "%s", axeCoreEnv)
	return string(src)
}
