package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestKeyControlsByRoleInChromium drives the controls that change a key
// and an account with the keyboard only, at a phone's width, for each role
// that has them: a member renames a staging key and sets its limits (a
// value the API refuses shown next to the field it names), an owner
// creates an environment. The API refuses what the page does not offer:
// a member's limits in production and new environment, a read-only
// user's rename and limits. The activity names the time-based and quota
// events in words.
func TestKeyControlsByRoleInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startStack(t, false)
	bg := context.Background()
	seeded := seedKeys(t, s)
	issued, err := s.manager.Create(bg, bootstrapActor, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server,
		Name: "checkout tests", Scopes: []string{"invoices:read"}})
	require.NoError(t, err)
	staging := issued.View
	b := newBrowser(t, ctx)
	shots := screenshotDir(t)
	focused := func(tab context.Context) string { return eval[string](t, tab, activeElement) }
	// refused sends a change from the signed-in page, as a script of its
	// own could, and returns the status and code of the answer.
	refused := func(tab context.Context, method, path string, body string) string {
		return eval[string](t, tab, fmt.Sprintf(`fetch(%q, {method: %q, headers: {"Content-Type": "application/json"}, body: %q})
			.then(r => r.json().then(p => r.status + " " + p.code))`, path, method, body))
	}

	t.Run("member renames a staging key and sets its limits by keyboard", func(t *testing.T) {
		tab := s.signIn(t, b, "bob")
		do(t, tab, chromedp.EmulateViewport(390, 844))
		do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, "env=staging")))
		link := fmt.Sprintf(`#keys-body tr[data-prefix=%q] a.key-link`, staging.Prefix)
		poll[bool](t, tab, fmt.Sprintf(`!!document.querySelector(%q)`, link))
		do(t, tab, chromedp.Focus(chromedp.CSS(link)), chromedp.KeyEvent("\r"))
		assert.Equal(t, "key-heading", poll[string](t, tab, `!document.getElementById("key-view").hidden && document.activeElement.id`))

		// Rename: Tab reaches the name, which holds the key's name.
		do(t, tab, chromedp.KeyEvent("\t"))
		for range 60 {
			if focused(tab) == "rename-name" {
				break
			}
			do(t, tab, chromedp.KeyEvent("\t"))
		}
		require.Equal(t, "rename-name", focused(tab))
		assert.Equal(t, "checkout tests", eval[string](t, tab, `document.activeElement.value`))
		do(t, tab, chromedp.Evaluate[chromedp.Void](`document.activeElement.select()`), chromedp.KeyEvent("checkout suite\r"))
		assert.Contains(t, poll[string](t, tab, `document.getElementById("notice").textContent.includes("is now named") && document.getElementById("notice").textContent`), "is now named checkout suite")
		assert.Equal(t, "checkout suite", s.key(t, staging.Prefix).Name)

		// Limits: the fields in order, each reached by Tab, the selects
		// moved with the arrow keys; Tab then reaches Save limits.
		do(t, tab, chromedp.KeyEvent("\t"))
		for range 20 {
			if focused(tab) == "limit-rate-requests" {
				break
			}
			do(t, tab, chromedp.KeyEvent("\t"))
		}
		require.Equal(t, "limit-rate-requests", focused(tab))
		do(t, tab, chromedp.KeyEvent("100\t"))
		assert.Equal(t, "limit-rate-window", focused(tab))
		do(t, tab, chromedp.KeyEvent(kb.ArrowDown))
		assert.Equal(t, "3600", eval[string](t, tab, `document.activeElement.value`), "per hour")
		do(t, tab, chromedp.KeyEvent("\t20\t1000\t5000\t"))
		assert.Equal(t, "limit-quota-period", focused(tab))
		do(t, tab, chromedp.KeyEvent(kb.ArrowDown))
		assert.Equal(t, "day", eval[string](t, tab, `document.activeElement.value`))
		do(t, tab, chromedp.KeyEvent("\t"))
		assert.Equal(t, "limit-ips", focused(tab))
		do(t, tab, chromedp.KeyEvent("\t"))
		assert.Equal(t, "save-limits", focused(tab), "Remove limits is hidden while there are none")
		do(t, tab, chromedp.KeyEvent("\r"))

		// A refill beyond the quota: the API's refusal is shown next to
		// Refill, which takes the focus; nothing is saved.
		shown := poll[string](t, tab, `document.getElementById("limit-quota-refill-error").textContent`)
		assert.Equal(t, "Refill must be 0 to Uses (1000)", shown, "the fields as the form labels them")
		assert.Equal(t, "limit-quota-refill", focused(tab))
		assert.Equal(t, "true", eval[string](t, tab, `document.activeElement.getAttribute("aria-invalid")`))
		assert.True(t, s.key(t, staging.Prefix).Limits.IsZero())
		screenshot(t, tab, shots, "limits-refused-member-390")
		if os.Getenv(axeCoreEnv) != "" {
			do(t, tab, chromedp.Evaluate[chromedp.Void](axeSource(t)))
			assert.Empty(t, eval[[]string](t, tab, axeViolations), "the key's view with a refused limit")
		}

		do(t, tab, chromedp.Evaluate[chromedp.Void](`document.activeElement.select()`), chromedp.KeyEvent("1000\r"))
		assert.Contains(t, poll[string](t, tab, `document.getElementById("notice").textContent.includes("limits") && document.getElementById("notice").textContent`), "were saved")
		assert.Equal(t, map[string]string{
			"rate":        "100 requests per hour, in bursts of at most 20",
			"quota":       "1,000 uses, refilled by 1,000 each day (00:00 UTC)",
			"allowed_ips": "any address",
		}, eval[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll("#key-limits [data-limit]")].map(dd => [dd.dataset.limit, dd.textContent.trim()]))`))
		assert.Equal(t, "", eval[string](t, tab, `document.getElementById("limit-quota-refill-error").textContent`))
		assert.Equal(t, apikey.Limits{Rate: apikey.RateLimit{Requests: 100, Window: time.Hour, Burst: 20},
			Quota: apikey.Quota{Limit: 1000, Refill: 1000, Period: apikey.Daily}}, s.key(t, staging.Prefix).Limits)
		assert.Equal(t, []string{"100", "3600", "20", "1000", "1000", "day"}, eval[[]string](t, tab,
			`["limit-rate-requests", "limit-rate-window", "limit-rate-burst", "limit-quota-limit", "limit-quota-refill", "limit-quota-period"].map(id => document.getElementById(id).value)`),
			"the form shows the limits saved")
		screenshot(t, tab, shots, "limits-member-390")

		// A production key's view offers a member no rename, limits or
		// action: its limits read as text.
		do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, "env=production&key="+seeded[0].Prefix)))
		poll[bool](t, tab, fmt.Sprintf(`!document.getElementById("key-view").hidden && document.getElementById("key-heading").textContent === %q`, "Key "+seeded[0].Prefix))
		assert.Equal(t, 0, eval[int](t, tab, `document.querySelectorAll("#key-view button, #key-view input, #key-view select, #key-view textarea").length`))
		assert.Contains(t, eval[string](t, tab, `document.getElementById("key-limits").textContent`), "No limits")

		// Revoking every key of an owner is for owners only, whatever the
		// environment the list shows.
		do(t, tab, chromedp.Evaluate[chromedp.Void](`location.hash = "env=staging"`))
		poll[bool](t, tab, `!document.getElementById("list-view").hidden`)
		do(t, tab, chromedp.Evaluate[chromedp.Void](`location.hash = "owner=user_42"`))
		poll[bool](t, tab, `!document.getElementById("owner-view").hidden && document.querySelectorAll("#owner-keys-body tr").length > 0`)
		assert.Equal(t, 0, eval[int](t, tab, `document.querySelectorAll("#revoke-owner").length`), "no Revoke every key for members")

		// What members may not do, the API refuses too.
		assert.Equal(t, "403 role_not_allowed", refused(tab, "PUT", "api/keys/"+seeded[0].Prefix+"/limits", `{"rate":{"requests":1,"window_seconds":60}}`), "production limits")
		assert.Equal(t, "403 role_not_allowed", refused(tab, "PUT", "api/keys/"+seeded[0].Prefix+"/name", `{"name":"mine"}`), "a production rename")
		assert.Equal(t, "403 role_not_allowed", refused(tab, "POST", "api/environments", `{"environment":"sandbox"}`), "a new environment")
		assert.Equal(t, "403 role_not_allowed", refused(tab, "POST", "api/owners/user_42/revoke", `{}`), "every key of an owner")
		assert.True(t, s.key(t, seeded[0].Prefix).Limits.IsZero())
		assert.Equal(t, "billing worker", s.key(t, seeded[0].Prefix).Name)
	})

	t.Run("read-only user is refused by the API too", func(t *testing.T) {
		tab := s.signIn(t, b, "carol")
		assert.Equal(t, "403 role_not_allowed", refused(tab, "PUT", "api/keys/"+staging.Prefix+"/limits", `{}`))
		assert.Equal(t, "403 role_not_allowed", refused(tab, "PUT", "api/keys/"+staging.Prefix+"/name", `{"name":"mine"}`))
		assert.Equal(t, "403 role_not_allowed", refused(tab, "POST", "api/keys/"+staging.Prefix+"/disable", `{}`))
		v := s.key(t, staging.Prefix)
		assert.Equal(t, "checkout suite", v.Name)
		assert.Equal(t, apikey.Active, v.Status)
		assert.False(t, v.Limits.IsZero())
	})

	t.Run("owner creates an environment by keyboard at a phone's width", func(t *testing.T) {
		tab := s.signIn(t, b, "alice")
		do(t, tab, chromedp.EmulateViewport(390, 844))
		do(t, tab, chromedp.Focus(chromedp.CSS("#create-environment")), chromedp.KeyEvent("\r"))
		assert.Equal(t, "environment-name", poll[string](t, tab, `document.querySelector("dialog[open]") && document.activeElement.id`))
		do(t, tab, chromedp.KeyEvent("\r"))
		assert.Equal(t, "Name the environment.", poll[string](t, tab, `document.getElementById("environment-name-error").textContent`))
		assert.Equal(t, "environment-name", focused(tab))
		do(t, tab, chromedp.KeyEvent("qa\r"))
		assert.Equal(t, "Copy the secret key to clipboard", poll[string](t, tab, `document.querySelectorAll("dialog[open] .secret-value").length === 2 && document.activeElement.getAttribute("aria-label")`))
		// Tab: the publishable key, its copy button, then Done.
		do(t, tab, chromedp.KeyEvent("\t\t\t"))
		assert.Equal(t, "Done", focused(tab))
		do(t, tab, chromedp.KeyEvent("\r"), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		assert.Equal(t, "create-environment", focused(tab), "the focus returns to the button")
		assert.Equal(t, "qa", eval[string](t, tab, `document.getElementById("environment").value`))
		_, err := s.manager.Settings(bg, bootstrapActor, "qa")
		assert.NoError(t, err, "the environment exists")
	})

	t.Run("the activity names automatic events in words", func(t *testing.T) {
		// A quota of 1 use, asked for 5: the ledger writes quota_exhausted.
		billing := seeded[0]
		_, err := s.manager.SetLimits(bg, bootstrapActor, billing.ID, apikey.Limits{Quota: apikey.Quota{Limit: 1}})
		require.NoError(t, err)
		_, err = s.store.LeaseQuota(bg, billing.ID, 5, time.Now())
		require.NoError(t, err)
		// The rotated key's grace ending soon, as the scanner writes it.
		rotated := s.key(t, seeded[2].Prefix)
		require.Equal(t, apikey.Expiring, rotated.Status)
		n, err := s.store.AppendTimed(bg, []apikey.TimedEvent{{Kind: apikey.TimedExpiring, ExpiresAt: rotated.ExpiresAt, Event: apikey.Event{
			Time: time.Now(), Actor: apikey.SystemActor, Action: apikey.ActionExpiring, Account: apikey.DefaultAccount,
			Environment: apikey.Production, KeyID: rotated.ID, KeyType: rotated.Type, Detail: "expires at " + rotated.ExpiresAt.UTC().Format(time.RFC3339),
		}}})
		require.NoError(t, err)
		require.Equal(t, 1, n)

		tab := s.signIn(t, b, "carol")
		lines := poll[map[string]string](t, tab, `(() => { const m = Object.fromEntries([...document.querySelectorAll("#events li[data-event]")].map(li => [li.dataset.event, li.textContent])); return m.quota_exhausted && m.key_expiring && m; })()`)
		assert.Contains(t, lines["quota_exhausted"], "keystile (automatic) quota used up: "+billing.Prefix)
		assert.Contains(t, lines["key_expiring"], "keystile (automatic) expiring soon: "+rotated.Prefix)
		assert.NotRegexp(t, `\d{4}-\d\d-\d\dT`, lines["key_expiring"], "exact times read as the page's others")
		assert.Contains(t, lines["set_limits"], "console-example (owner) changed the limits of "+billing.Prefix)
	})
}
