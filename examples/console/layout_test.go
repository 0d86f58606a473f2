package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// axeCoreEnv names axe-core's axe.min.js, which scripts/test.sh installs
// with npm (a pinned version) and exports.
const axeCoreEnv = "KEYSTILE_AXE_CORE"

// axeSource returns axe-core's script. Without it the test fails under CI
// (scripts/test.sh installs it) and skips otherwise, saying how to get it.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv(axeCoreEnv)
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is unset in CI: scripts/test.sh installs axe-core and sets it", axeCoreEnv)
		}
		t.Skipf("needs axe-core: run ./scripts/test.sh, or npm install --prefix DIR axe-core and set %s=DIR/node_modules/axe-core/axe.min.js", axeCoreEnv)
	}
	src, err := os.ReadFile(path)
	require.NoError(t, err, "%s", axeCoreEnv)
	return string(src)
}

// widths are the page widths the console must work at: a laptop, a small
// laptop or tablet, and a phone.
var widths = []int{1280, 1024, 390}

// unreachable lists the controls (buttons, links, fields, times) of the
// part of the page that the selector root names that, once scrolled into
// view, are not wholly inside the viewport or are covered by something
// else.
const unreachable = `((root) => {
	const out = [];
	const controls = [...document.querySelector(root).querySelectorAll("button, a[href], select, input, textarea, summary, [tabindex]:not([tabindex='-1'])")]
		.filter(e => !e.closest("[hidden]") && e.getClientRects().length > 0);
	for (const e of controls) {
		e.scrollIntoView({block: "center", inline: "nearest"});
		const r = e.getBoundingClientRect();
		const inside = r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight;
		const first = e.getClientRects()[0]; // a link or time that wraps: its first line
		const hit = document.elementFromPoint(first.left + first.width / 2, first.top + first.height / 2);
		if (!inside || !hit || !(hit === e || e.contains(hit))) {
			out.push((e.id || e.getAttribute("aria-label") || e.textContent.trim()) + " at " + [r.left, r.top, r.right, r.bottom].map(Math.round).join(","));
		}
	}
	scrollTo(0, 0);
	return out;
})`

// visibleActions lists the key actions shown in the list, as "action key".
const visibleActions = `[...document.querySelectorAll("#keys-body [data-action]")]
	.filter(e => !e.closest("[hidden]") && e.getClientRects().length > 0)
	.map(e => e.dataset.action + " " + e.dataset.key)`

// axeViolations runs axe-core (injected beforehand) on the page and lists
// its serious and critical violations, each with where.
const axeViolations = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
	.filter(v => v.impact === "serious" || v.impact === "critical")
	.map(v => v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.slice(0, 5).map(n => n.target.join(" ")).join("; ")))`

// tabToActions presses Tab until the focus has gone round the page (or
// limit presses) and returns the key actions it reached, as "action key",
// and those whose focus was not drawn as an outline.
func tabToActions(t *testing.T, tab context.Context, limit int) (reached, unmarked []string) {
	t.Helper()
	do(t, tab, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	first := ""
	for range limit {
		do(t, tab, chromedp.KeyEvent("\t"))
		got := eval[[]string](t, tab, `(() => {
			const e = document.activeElement;
			const name = e.dataset && e.dataset.action ? e.dataset.action + " " + e.dataset.key : "";
			const id = e.id + "|" + (e.getAttribute("aria-label") || "") + "|" + e.textContent.trim().slice(0, 40) + "|" + name;
			return [id, name, name ? getComputedStyle(e).outlineStyle : ""];
		})()`)
		if first == "" {
			first = got[0]
		} else if got[0] == first {
			break
		}
		if got[1] != "" {
			reached = append(reached, got[1])
			if got[2] != "solid" {
				unmarked = append(unmarked, got[1])
			}
		}
	}
	return reached, unmarked
}

// tabTo presses Tab until the focus has gone round the page (or limit
// presses) and returns which of the controls ids it reached (a key's view
// action as "view-<action>"), and those whose focus was not drawn as an
// outline.
func tabTo(t *testing.T, tab context.Context, ids []string, limit int) (reached, unmarked []string) {
	t.Helper()
	do(t, tab, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	first := ""
	for range limit {
		do(t, tab, chromedp.KeyEvent("\t"))
		got := eval[[]string](t, tab, `(() => {
			const e = document.activeElement;
			const id = e.dataset && e.dataset.viewAction ? "view-" + e.dataset.viewAction : e.id;
			return [id + "|" + e.textContent.trim().slice(0, 40) + "|" + e.tagName, id, getComputedStyle(e).outlineStyle];
		})()`)
		if first == "" {
			first = got[0]
		} else if got[0] == first {
			break
		}
		if slices.Contains(ids, got[1]) && !slices.Contains(reached, got[1]) {
			reached = append(reached, got[1])
			if got[2] != "solid" {
				unmarked = append(unmarked, got[1])
			}
		}
	}
	return reached, unmarked
}

// TestLayoutInChromium shows the console to an owner (production), a member
// (staging, where members manage keys) and a read-only user
// (production) at 1280, 1024 and 390 pixels wide: every control of the
// list is inside the viewport once scrolled to and not covered, the page
// never scrolls sideways, the keyboard reaches every key action (disable
// and enable among them) with a visible focus, and axe-core finds no
// serious or critical violation, in the list, the create dialog and, for
// owners, the create-environment dialog. A key's view offers owners and
// members rename, its limits (filled in) and disable, each reached by Tab
// and in view, and read-only users no control. It saves a screenshot per
// role and width (layout-, key-, create- and environment-<role>-<width>.png).
func TestLayoutInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := startStack(t, false)
	seeded := seedKeys(t, s)
	viewed := map[string]string{apikey.Production: seeded[0].Prefix} // billing worker: a key with every control
	for _, k := range []struct{ name, owner, team string }{{"checkout tests", "user_42", "payments"}, {"load test", "user_7", "platform"}} {
		issued, err := s.manager.Create(context.Background(), bootstrapActor, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server,
			Name: k.name, Owner: k.owner, Metadata: map[string]string{"team": k.team}, Scopes: []string{"invoices:read"}})
		require.NoError(t, err)
		if viewed[apikey.Staging] == "" {
			viewed[apikey.Staging] = issued.View.Prefix
		}
	}
	// The viewed keys carry limits, which their view shows filled in.
	limited := apikey.Limits{Rate: apikey.RateLimit{Requests: 100, Window: time.Minute, Burst: 20},
		Quota: apikey.Quota{Limit: 10000, Refill: 10000, Period: apikey.Monthly}}
	for _, prefix := range viewed {
		_, err := s.manager.SetLimits(context.Background(), bootstrapActor, s.key(t, prefix).ID, limited)
		require.NoError(t, err)
	}
	// A disabled key in each environment, so that Enable is in the list.
	for _, env := range []string{apikey.Production, apikey.Staging} {
		issued, err := s.manager.Create(context.Background(), bootstrapActor, apikey.CreateRequest{Environment: env, Type: apikey.Server,
			Name: "paused sync", Scopes: []string{"reports:read"}})
		require.NoError(t, err)
		_, err = s.manager.Disable(context.Background(), bootstrapActor, issued.View.ID)
		require.NoError(t, err)
	}
	b := newBrowser(t, ctx)
	shots := screenshotDir(t)

	for _, role := range []struct {
		user, name, env string
		actions         bool // the role is offered key actions there
	}{
		{"alice", "owner", apikey.Production, true},
		{"bob", "member", apikey.Staging, true},
		{"carol", "read-only", apikey.Production, false},
	} {
		t.Run(role.name, func(t *testing.T) {
			tab := s.signIn(t, b, role.user)
			if role.env != apikey.Production {
				do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
					const s = document.getElementById("environment");
					s.value = %q;
					s.dispatchEvent(new Event("change"));
				})()`, role.env)))
				poll[bool](t, tab, `location.hash.includes("env=staging") && document.getElementById("env-marker").dataset.production === "false"`)
			}
			assert.Equal(t, "Acme Payments API keys", eval[string](t, tab, `document.getElementById("title").textContent`))
			assert.Contains(t, eval[string](t, tab, `document.getElementById("account-name").textContent`), "Globex Corporation")
			// Creating an environment is an account setting: owners only.
			assert.Equal(t, role.name == "owner", eval[bool](t, tab, `!!document.getElementById("create-environment")`), "Create environment")
			marker := eval[string](t, tab, `document.getElementById("env-marker").textContent`)
			note := eval[string](t, tab, `document.getElementById("role-note").hidden ? "" : document.getElementById("role-note").textContent`)
			switch role.name {
			case "owner":
				assert.Equal(t, "Production: live keys", marker)
				assert.Empty(t, note, "owners may do everything: no note")
			case "member":
				assert.Equal(t, "Not production", marker)
				assert.Empty(t, note, "members manage staging's keys: no note")
			case "read-only":
				assert.Equal(t, "Production: live keys", marker)
				assert.Contains(t, note, "read-only access")
				assert.Contains(t, note, "Owners of this account change keys")
			}

			for _, width := range widths {
				t.Run(fmt.Sprint(width), func(t *testing.T) {
					do(t, tab, chromedp.EmulateViewport(int64(width), 900))
					poll[bool](t, tab, fmt.Sprintf(`innerWidth === %d`, width))
					assert.Empty(t, eval[[]string](t, tab, unreachable+`("#list-view")`), "every control of the list can be scrolled into view, whole and uncovered")
					assert.LessOrEqual(t, eval[int](t, tab, `document.documentElement.scrollWidth`), width, "the page does not scroll sideways")
					assert.Empty(t, eval[[]string](t, tab, `[...document.querySelectorAll("#list-view .table-wrap")].filter(w => w.scrollWidth > w.clientWidth).map(w => w.querySelector("table").id + " " + w.scrollWidth + ">" + w.clientWidth)`),
						"the keys fit: no column hides beyond the table's edge or under its actions")

					actions := eval[[]string](t, tab, visibleActions)
					if role.actions {
						require.NotEmpty(t, actions)
						for _, a := range []string{"disable", "enable"} {
							assert.True(t, slices.ContainsFunc(actions, func(s string) bool { return strings.HasPrefix(s, a+" ") }), "%s is offered: %v", a, actions)
						}
						reached, unmarked := tabToActions(t, tab, 400)
						assert.ElementsMatch(t, actions, reached, "Tab reaches every key action, once")
						assert.Empty(t, unmarked, "the focus is drawn on every action")
					} else {
						assert.Empty(t, actions, "no key action for read-only users")
					}
					screenshot(t, tab, shots, fmt.Sprintf("layout-%s-%d", role.name, width))

					t.Run("axe-core", func(t *testing.T) {
						src := axeSource(t)
						if !eval[bool](t, tab, `typeof axe === "object"`) {
							do(t, tab, chromedp.Evaluate[chromedp.Void](src))
						}
						require.Equal(t, "4.14.1", eval[string](t, tab, `axe.version`), "the version scripts/test.sh pins")
						assert.Empty(t, eval[[]string](t, tab, axeViolations), "the list")
						if !role.actions {
							return
						}
						do(t, tab, chromedp.Click(chromedp.CSS("#create-key")), chromedp.WaitVisible(chromedp.CSS("dialog[open] #create-name")))
						assert.Empty(t, eval[[]string](t, tab, axeViolations), "the create dialog")
						if width == 390 {
							screenshot(t, tab, shots, fmt.Sprintf("create-%s-%d", role.name, width))
						}
						do(t, tab, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
						if role.name != "owner" {
							return
						}
						do(t, tab, chromedp.Click(chromedp.CSS("#create-environment")), chromedp.WaitVisible(chromedp.CSS("dialog[open] #environment-name")))
						assert.Empty(t, eval[[]string](t, tab, unreachable+`("dialog[open]")`), "the create-environment dialog fits")
						assert.Empty(t, eval[[]string](t, tab, axeViolations), "the create-environment dialog")
						screenshot(t, tab, shots, fmt.Sprintf("environment-%s-%d", role.name, width))
						do(t, tab, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
					})

					// A key's own view: its details, actions, forms and
					// charts fit too.
					t.Run("key view", func(t *testing.T) {
						do(t, tab, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#keys-body tr[data-prefix=%q] a.key-link`, viewed[role.env]))))
						poll[bool](t, tab, `!document.getElementById("key-view").hidden && !!document.querySelector("#key-usage figure, #usage-unavailable, #key-usage .error")`)
						assert.Empty(t, eval[[]string](t, tab, unreachable+`("#key-view")`), "every control of the key's view can be scrolled into view, whole and uncovered")
						assert.LessOrEqual(t, eval[int](t, tab, `document.documentElement.scrollWidth`), width, "the page does not scroll sideways")
						// Rename, limits and disable: for those who may change the key.
						controls := eval[[]string](t, tab, `["rename-name", "save-name", "limit-rate-requests", "limit-quota-limit", "save-limits"]
							.filter(id => document.getElementById(id)).concat([...document.querySelectorAll("#key-actions [data-view-action]")].map(b => b.dataset.viewAction))`)
						if role.actions {
							assert.Subset(t, controls, []string{"rename-name", "save-name", "limit-rate-requests", "limit-quota-limit", "save-limits", "rotate", "disable"})
							// The current limits are filled in, labelled.
							assert.Equal(t, []string{"Requests 100", "per 60", "Burst 20", "Uses 10000", "Refill 10000", "Refilled month"}, eval[[]string](t, tab,
								`["limit-rate-requests", "limit-rate-window", "limit-rate-burst", "limit-quota-limit", "limit-quota-refill", "limit-quota-period"]
									.map(id => document.querySelector('label[for="' + id + '"]').textContent + " " + document.getElementById(id).value)`))
							reached, unmarked := tabTo(t, tab, []string{"rename-name", "save-name", "limit-rate-requests", "limit-quota-limit", "save-limits", "view-disable"}, 200)
							assert.ElementsMatch(t, []string{"rename-name", "save-name", "limit-rate-requests", "limit-quota-limit", "save-limits", "view-disable"}, reached, "Tab reaches the key's controls")
							assert.Empty(t, unmarked, "the focus is drawn on each")
						} else {
							assert.Equal(t, "100 requests per minute, in bursts of at most 20", eval[string](t, tab, `document.querySelector('#key-limits [data-limit="rate"]').textContent`))
							assert.Empty(t, controls, "read-only users change nothing")
							assert.Equal(t, 0, eval[int](t, tab, `document.querySelectorAll("#key-view button, #key-view input, #key-view select, #key-view textarea").length`))
						}
						screenshot(t, tab, shots, fmt.Sprintf("key-%s-%d", role.name, width))
						if src := os.Getenv(axeCoreEnv); src != "" && eval[bool](t, tab, `typeof axe === "object"`) {
							assert.Empty(t, eval[[]string](t, tab, axeViolations), "the key's view")
						}
						do(t, tab, chromedp.Click(chromedp.CSS("#key-back")))
						poll[bool](t, tab, `!document.getElementById("list-view").hidden`)
					})
				})
			}
			do(t, tab, chromedp.EmulateViewport(1440, 900))
		})
	}
}

// seedKeys gives production keys of every kind the list sorts and filters:
// named and unnamed, publishable, a rotated one in its grace period, and
// revoked ones.
func seedKeys(t *testing.T, s *stack) []apikey.View {
	t.Helper()
	ctx := context.Background()
	var out []apikey.View
	create := func(name string, typ apikey.KeyType, owner string, scopes ...string) apikey.View {
		issued, err := s.manager.Create(ctx, bootstrapActor, apikey.CreateRequest{
			Environment: apikey.Production, Type: typ, Name: name, Owner: owner, Scopes: scopes,
		})
		require.NoError(t, err)
		out = append(out, issued.View)
		return issued.View
	}
	create("billing worker", apikey.Server, "team_billing", "invoices:write", "customers:read")
	create("mobile app", apikey.Client, "")
	rotated := create("nightly export", apikey.Server, "user_42", "reports:read")
	_, err := s.manager.Rotate(ctx, bootstrapActor, apikey.RotateRequest{KeyID: rotated.ID, Environment: apikey.Production, Type: apikey.Server, Grace: 72 * time.Hour})
	require.NoError(t, err)
	for _, name := range []string{"old cron", "old import"} {
		v := create(name, apikey.Server, "", "reports:read")
		_, err := s.manager.Revoke(ctx, bootstrapActor, v.ID)
		require.NoError(t, err)
	}
	return out
}

// TestListFindsKeysInChromium: the list shows current keys first, hides
// revoked ones until asked, searches by name, prefix and owner, and sorts.
func TestListFindsKeysInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startStack(t, false)
	seeded := seedKeys(t, s)
	b := newBrowser(t, ctx)
	tab := s.signIn(t, b, "carol")
	shown := func() []string {
		return eval[[]string](t, tab, `[...document.querySelectorAll("#keys-body tr:not([hidden])")].map(tr => tr.dataset.status + " " + (tr.querySelector('[data-col="name"]').textContent || "-"))`)
	}
	set := func(id, value string) {
		do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const e = document.getElementById(%q);
			e.value = %q;
			e.dispatchEvent(new Event(e.tagName === "INPUT" ? "input" : "change"));
		})()`, id, value)))
	}

	// By default: current keys, live ones first (newest first), none revoked.
	rows := shown()
	require.Len(t, rows, 6, "two defaults, three created, one replacement: %v", rows)
	for _, r := range rows {
		assert.NotContains(t, r, "revoked")
	}
	assert.Contains(t, eval[string](t, tab, `document.getElementById("keys-count").textContent`), "2 revoked or expired keys are hidden")

	set("key-filter", "ended")
	assert.Equal(t, []string{"revoked old import", "revoked old cron"}, shown())
	set("key-filter", "all")
	rows = shown()
	require.Len(t, rows, 8)
	assert.True(t, strings.HasPrefix(rows[6], "revoked") && strings.HasPrefix(rows[7], "revoked"), "revoked keys last: %v", rows)

	// Sorting by name: named keys A to Z, unnamed ones after them.
	set("key-filter", "current")
	set("key-sort", "name")
	byName := shown()
	require.Len(t, byName, 6)
	assert.Equal(t, []string{"active billing worker", "active default", "active default", "active mobile app"}, byName[:4])
	assert.ElementsMatch(t, []string{"expiring nightly export", "active nightly export"}, byName[4:6])
	set("key-sort", "expires")
	assert.Equal(t, "expiring nightly export", shown()[0], "the soonest expiry first")

	// Search by name, by prefix, by owner.
	for _, tt := range []struct{ search, want string }{
		{"BILLING", "active billing worker"},
		{seeded[1].Prefix, "active mobile app"},
		{"user_42", "nightly export"},
	} {
		set("key-search", tt.search)
		got := shown()
		require.NotEmpty(t, got, tt.search)
		for _, r := range got {
			assert.Contains(t, r, tt.want, tt.search)
		}
	}
	set("key-search", "no such key")
	assert.Empty(t, shown())
	assert.Contains(t, eval[string](t, tab, `document.getElementById("keys-count").textContent`), "Showing 0 keys of 8")

	// Times read in words, with the exact time on focus.
	set("key-search", "")
	do(t, tab, chromedp.Focus(chromedp.CSS(`#keys-body tr:not([hidden]) td[data-col="created"] time`)))
	assert.Equal(t, "visible", eval[string](t, tab, `(() => { const x = document.activeElement.querySelector(".exact"); return x.getBoundingClientRect().width > 10 ? "visible" : "hidden"; })()`))
	assert.Regexp(t, `^(now|\d+ minutes? ago)$`, eval[string](t, tab, `document.activeElement.querySelector(".rel").textContent`))
	assert.Regexp(t, `^in (3 days|\d+ hours)$`, eval[string](t, tab, `document.querySelector('#keys-body tr[data-status="expiring"] td[data-col="expires"] .rel').textContent`))

	// The activity names keys by prefix and says who acted.
	events := eval[[]string](t, tab, `[...document.querySelectorAll("#events li")].map(li => li.querySelector(".actor").textContent + " " + ((li.querySelector(".event-key") || {}).textContent || ""))`)
	require.NotEmpty(t, events)
	assert.Contains(t, events, "console-example "+seeded[4].Prefix, "the revocation of old import, by prefix and actor")
}

// TestScopeCatalogueInChromium: an owner edits a key's scopes by keyboard
// from the service's catalogue, each scope with its description; the
// key's scopes are checked, and saving with none is refused in the dialog.
func TestScopeCatalogueInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startStack(t, false)
	billing := seedKeys(t, s)[0] // invoices:write, customers:read
	b := newBrowser(t, ctx)
	tab := s.signIn(t, b, "alice")

	do(t, tab, chromedp.Focus(chromedp.CSS(fmt.Sprintf(`button[data-action="scopes"][data-key=%q]`, billing.Prefix))), chromedp.KeyEvent("\r"))
	assert.Equal(t, "edit-scope-0", poll[string](t, tab, `document.querySelector("dialog[open]") && document.activeElement.id`), "the first scope has the focus")
	choices := eval[[]string](t, tab, `[...document.querySelectorAll('dialog[open] input[name="scope"]')].map(i => i.value + (i.checked ? " checked" : "") + " — " + document.getElementById(i.getAttribute("aria-describedby")).textContent)`)
	assert.Equal(t, []string{
		"customers:read checked — Look up customers and their payment methods",
		"customers:write — Create, change and delete customers",
		"invoices:read — List and download invoices",
		"invoices:write checked — Create, send and void invoices",
		"reports:read — Download monthly reports",
	}, choices)

	// Uncheck customers:read (Space), check reports:read, save (Enter on
	// the Save button).
	do(t, tab, chromedp.KeyEvent(" \t\t\t\t "))
	assert.Equal(t, "reports:read", eval[string](t, tab, `document.activeElement.value`))
	do(t, tab, chromedp.KeyEvent("\t\t"))
	assert.Equal(t, "Save scopes", eval[string](t, tab, activeElement))
	do(t, tab, chromedp.KeyEvent("\r"), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
	assert.Equal(t, []string{"invoices:write", "reports:read"}, s.key(t, billing.Prefix).Scopes)

	// None chosen: refused in the dialog, which stays open.
	do(t, tab, chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="scopes"][data-key=%q]`, billing.Prefix))),
		chromedp.WaitVisible(chromedp.CSS(`dialog[open] input[name="scope"]`)))
	do(t, tab, chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('dialog[open] input[name="scope"]:checked').forEach(i => i.click())`),
		chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)))
	assert.Equal(t, "Choose at least one scope.", poll[string](t, tab, `document.querySelector("dialog[open] .form-error").textContent`))
	assert.Equal(t, []string{"invoices:write", "reports:read"}, s.key(t, billing.Prefix).Scopes)
}

// TestKeyboardActionsInChromium: an owner rotates, changes the grace of,
// disables, enables and revokes keys with the keyboard only (Tab, arrows,
// Space and Enter), at a phone's width, where the keys are cards.
func TestKeyboardActionsInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startStack(t, false)
	billing := seedKeys(t, s)[0]
	b := newBrowser(t, ctx)
	tab := s.signIn(t, b, "alice")
	do(t, tab, chromedp.EmulateViewport(390, 844))
	action := func(name, prefix string) chromedp.Action[chromedp.Void] {
		return chromedp.Focus(chromedp.CSS(fmt.Sprintf(`button[data-action=%q][data-key=%q]`, name, prefix)))
	}
	focused := func() string { return eval[string](t, tab, activeElement) }
	dialogFocus := func() string {
		return poll[string](t, tab, `document.querySelector("dialog[open]") && (document.activeElement.id || document.activeElement.textContent.trim())`)
	}

	// Rotate with 1 hour: the first choice has the focus, the arrow key
	// moves to the next, Tab twice reaches the button.
	do(t, tab, action("rotate", billing.Prefix), chromedp.KeyEvent("\r"))
	assert.Equal(t, "grace-0", dialogFocus())
	do(t, tab, chromedp.KeyEvent(kb.ArrowDown))
	assert.Equal(t, "1h", eval[string](t, tab, `document.querySelector("dialog[open] input[name=grace]:checked").value`))
	do(t, tab, chromedp.KeyEvent("\t\t"))
	assert.Equal(t, "Rotate key", focused())
	do(t, tab, chromedp.KeyEvent("\r"))
	assert.Equal(t, "Copy key to clipboard", poll[string](t, tab, `document.querySelector("dialog[open] #secret-value") && document.activeElement.getAttribute("aria-label")`))
	do(t, tab, chromedp.KeyEvent("\t\r"), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
	assertStatus(t, tab, billing.Prefix, "expiring")

	// Change its grace to Now: it expires.
	do(t, tab, action("grace", billing.Prefix), chromedp.KeyEvent("\r"))
	assert.Equal(t, "grace-0", dialogFocus())
	do(t, tab, chromedp.KeyEvent(" \t\t\r"), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
	assertStatus(t, tab, billing.Prefix, "expired")

	// Disable, enable and revoke the mobile app's key: each confirmation
	// opens on Cancel, Tab reaches the action.
	var mobile string
	for _, v := range eval[[]string](t, tab, `[...document.querySelectorAll("#keys-body tr:not([hidden])")].filter(tr => tr.querySelector('[data-col="name"]').textContent === "mobile app").map(tr => tr.dataset.prefix)`) {
		mobile = v
	}
	require.NotEmpty(t, mobile)
	do(t, tab, action("disable", mobile), chromedp.KeyEvent("\r"))
	assert.Equal(t, "Cancel", dialogFocus(), "the safe choice has the focus")
	do(t, tab, chromedp.KeyEvent("\t\r"), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
	assertStatus(t, tab, mobile, "disabled")
	do(t, tab, action("enable", mobile), chromedp.KeyEvent("\r"))
	assertStatus(t, tab, mobile, "active")
	do(t, tab, action("revoke", mobile), chromedp.KeyEvent("\r"))
	assert.Equal(t, "Cancel", dialogFocus())
	do(t, tab, chromedp.KeyEvent("\t"))
	assert.Equal(t, "Revoke key", focused())
	do(t, tab, chromedp.KeyEvent("\r"), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
	assertStatus(t, tab, mobile, "revoked")
	assert.Equal(t, apikey.Revoked, s.key(t, mobile).Status)
	assert.Equal(t, apikey.Expired, s.key(t, billing.Prefix).Status)
}
