package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestLifecycleInChromium drives the lifecycle pieces of the console in
// headless Chromium: an owner sets the environment's key lifetime policy
// (a refusal shown next to the field it names), is refused a key beyond
// the maximum lifetime, renames a key in its view, creates an environment
// by keyboard and is shown its two keys once, and rotates an imported key
// into a keystile key; a read-only user sees the policy and the imported
// mark, and no action.
func TestLifecycleInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startStack(t, false)
	b := newBrowser(t, ctx)
	shots := screenshotDir(t)
	owner := s.signIn(t, b, "alice")
	bg := context.Background()
	lifetime := func(tab context.Context) map[string]string {
		return eval[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll("#lifetime dd")].map(dd => [dd.dataset.lifetime, dd.textContent]))`)
	}
	var created apikey.Key // a key created within the policy
	clear := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { document.querySelector(%q).value = ""; })()`, sel))
	}

	t.Run("owner sets the lifetime policy", func(t *testing.T) {
		assert.Equal(t, map[string]string{"default_expiry": "never", "max_lifetime": "none"}, lifetime(owner))
		do(t, owner,
			chromedp.Click(chromedp.CSS("#edit-lifetime-button")),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #lifetime-default")),
		)
		assert.Equal(t, "lifetime-default", eval[string](t, owner, activeElement), "the focus is on the first field")
		// A default expiry longer than the maximum: the API refuses it, and
		// the page shows the refusal next to the field it names.
		do(t, owner,
			chromedp.SendKeys(chromedp.CSS("#lifetime-default"), "2"),
			chromedp.SendKeys(chromedp.CSS("#lifetime-max"), "1"),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
		)
		shown := poll[string](t, owner, `document.getElementById("lifetime-default-error").textContent`)
		assert.Equal(t, "The default expiry must be at most the maximum lifetime (1 day)", shown)
		assert.Equal(t, "lifetime-default", eval[string](t, owner, activeElement), "the focus is on the field the API named")
		assert.Equal(t, "true", eval[string](t, owner, `document.getElementById("lifetime-default").getAttribute("aria-invalid")`))
		settings, err := s.manager.Settings(bg, bootstrapActor, apikey.Production)
		require.NoError(t, err)
		assert.True(t, settings.Lifetime.IsZero(), "nothing was saved")

		// A number that is not whole is refused before anything is sent.
		puts := len(s.changesTo("/console/api/environments/production/lifetime"))
		do(t, owner,
			chromedp.SetValue(chromedp.CSS("#lifetime-default"), ""),
			chromedp.SendKeys(chromedp.CSS("#lifetime-default"), "1.5"),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
		)
		assert.Equal(t, "Default expiry must be a whole number of days, at least 1; leave it empty for none.",
			poll[string](t, owner, `document.getElementById("lifetime-default-error").textContent`))
		assert.Len(t, s.changesTo("/console/api/environments/production/lifetime"), puts)

		// 1 day by default, 30 days at most.
		do(t, owner,
			chromedp.SetValue(chromedp.CSS("#lifetime-default"), ""),
			chromedp.SendKeys(chromedp.CSS("#lifetime-default"), "24"),
			chromedp.SetValue(chromedp.CSS("#lifetime-default-unit"), "3600"),
			chromedp.SetValue(chromedp.CSS("#lifetime-max"), ""),
			chromedp.SendKeys(chromedp.CSS("#lifetime-max"), "30"),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
			chromedp.WaitNotPresent(chromedp.CSS("dialog")),
		)
		assert.Contains(t, poll[string](t, owner, `document.getElementById("notice").textContent.includes("lifetime") && document.getElementById("notice").textContent`), "The key lifetime of production was saved.")
		assert.Equal(t, map[string]string{"default_expiry": "1 day after creation", "max_lifetime": "30 days"}, lifetime(owner))
		assert.Equal(t, "edit-lifetime-button", eval[string](t, owner, activeElement), "the focus returns to the button")
		settings, err = s.manager.Settings(bg, bootstrapActor, apikey.Production)
		require.NoError(t, err)
		assert.Equal(t, apikey.LifetimePolicy{DefaultExpiry: 24 * time.Hour, MaxLifetime: 30 * 24 * time.Hour}, settings.Lifetime)
		screenshot(t, owner, shots, "lifetime")

		// The dialog opens with the policy as it is.
		do(t, owner,
			chromedp.Click(chromedp.CSS("#edit-lifetime-button")),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #lifetime-default")),
		)
		assert.Equal(t, []string{"1", "86400", "30", "86400"}, eval[[]string](t, owner,
			`["lifetime-default", "lifetime-default-unit", "lifetime-max", "lifetime-max-unit"].map(id => document.getElementById(id).value)`))
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
	})

	t.Run("a key beyond the maximum lifetime is refused", func(t *testing.T) {
		do(t, owner,
			chromedp.Click(chromedp.CSS("#create-key")),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #create-name")),
		)
		assert.Equal(t, "The environment's default: in 1 day", eval[string](t, owner, `document.querySelector('#create-expiry option[value=""]').textContent`))
		assert.Equal(t, "Keys of production may live at most 30 days (its maximum lifetime).", eval[string](t, owner, `document.getElementById("create-expiry-hint").textContent`))
		do(t, owner,
			chromedp.SendKeys(chromedp.CSS("#create-name"), "yearly"),
			chromedp.Click(chromedp.CSS(`dialog[open] input[name="scope"][value="reports:read"]`)),
			chromedp.SetValue(chromedp.CSS("#create-expiry"), "8760h"),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
		)
		assert.Equal(t, "Beyond the maximum key lifetime of production: its keys may live at most 30 days. Choose an earlier expiry.",
			poll[string](t, owner, `document.getElementById("create-expiry-error").textContent`))
		assert.Equal(t, "create-expiry", eval[string](t, owner, activeElement))
		assert.True(t, eval[bool](t, owner, `!!document.querySelector("dialog[open]")`), "the dialog stays open")
		list, err := s.manager.List(bg, bootstrapActor, apikey.Production, apikey.Page{})
		require.NoError(t, err)
		assert.Len(t, list.Keys, 2, "nothing was created")

		before := time.Now()
		do(t, owner,
			chromedp.SetValue(chromedp.CSS("#create-expiry"), "168h"),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #secret-value")),
		)
		var err2 error
		created, err2 = apikey.ParseKey(eval[string](t, owner, `document.getElementById("secret-value").value`))
		require.NoError(t, err2)
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		assert.WithinRange(t, s.key(t, created.Prefix()).ExpiresAt, before.Add(7*24*time.Hour-time.Minute), time.Now().Add(7*24*time.Hour+time.Minute))
		assertStatus(t, owner, created.Prefix(), "active")
	})

	t.Run("owner renames a key in its view", func(t *testing.T) {
		require.NotEmpty(t, created.Prefix())
		do(t, owner, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-prefix=%q] a.key-link`, created.Prefix()))))
		assert.Equal(t, "yearly", poll[string](t, owner, `!document.getElementById("key-view").hidden && document.getElementById("rename-name").value`))
		assert.Equal(t, "Name", eval[string](t, owner, `document.querySelector('label[for="rename-name"]').textContent`))

		// Too long in bytes (101 two-byte letters): refused next to the field.
		do(t, owner,
			clear("#rename-name"),
			chromedp.SendKeys(chromedp.CSS("#rename-name"), strings.Repeat("é", 101)),
			chromedp.Click(chromedp.CSS("#save-name")),
		)
		assert.Contains(t, poll[string](t, owner, `document.getElementById("rename-name-error").textContent`), "200 bytes")
		assert.Equal(t, "rename-name", eval[string](t, owner, activeElement))
		assert.Equal(t, "true", eval[string](t, owner, `document.getElementById("rename-name").getAttribute("aria-invalid")`))
		assert.Equal(t, "yearly", s.key(t, created.Prefix()).Name)

		// By keyboard: a new name, then Enter.
		do(t, owner,
			clear("#rename-name"),
			chromedp.Focus(chromedp.CSS("#rename-name")),
			chromedp.KeyEvent("weekly report\r"),
		)
		assert.Contains(t, poll[string](t, owner, `document.getElementById("notice").textContent.includes("is now named") && document.getElementById("notice").textContent`), "is now named weekly report")
		assert.Equal(t, "", eval[string](t, owner, `document.getElementById("rename-name-error").textContent`))
		assert.Nil(t, eval[any](t, owner, `document.getElementById("rename-name").getAttribute("aria-invalid")`))
		details := eval[map[string]string](t, owner, `Object.fromEntries([...document.querySelectorAll("#key-details dt")].map(dt => [dt.textContent, dt.nextElementSibling.textContent.trim()]))`)
		assert.Equal(t, "weekly report", details["Name"])
		assert.Equal(t, "weekly report", s.key(t, created.Prefix()).Name)
		do(t, owner, chromedp.Click(chromedp.CSS("#key-back")))
		assert.Equal(t, "weekly report", poll[string](t, owner, fmt.Sprintf(`!document.getElementById("list-view").hidden && document.querySelector('tr[data-prefix=%q] td[data-col="name"]').textContent`, created.Prefix())))
	})

	t.Run("owner creates an environment by keyboard", func(t *testing.T) {
		do(t, owner, chromedp.Focus(chromedp.CSS("#create-environment")), chromedp.KeyEvent("\r"))
		assert.Equal(t, "environment-name", poll[string](t, owner, `document.querySelector("dialog[open]") && document.activeElement.id`))
		do(t, owner, chromedp.KeyEvent("Sand Box\r"))
		assert.Contains(t, poll[string](t, owner, `document.getElementById("environment-name-error").textContent`), "[a-z0-9_-]")
		assert.Equal(t, "environment-name", eval[string](t, owner, activeElement))
		do(t, owner, clear("#environment-name"), chromedp.Focus(chromedp.CSS("#environment-name")), chromedp.KeyEvent("production\r"))
		assert.Equal(t, "An environment named production exists already.", poll[string](t, owner, `document.getElementById("environment-name-error").textContent`))

		do(t, owner, clear("#environment-name"), chromedp.Focus(chromedp.CSS("#environment-name")), chromedp.KeyEvent("sandbox\r"))
		assert.Equal(t, "Copy the secret key to clipboard", poll[string](t, owner, `document.querySelectorAll("dialog[open] .secret-value").length === 2 && document.activeElement.getAttribute("aria-label")`))
		assert.Equal(t, "The keys of sandbox", eval[string](t, owner, `document.querySelector("dialog[open] h2").textContent`))
		assert.Contains(t, eval[string](t, owner, `document.querySelector("dialog[open] .warning").textContent`), "it will not be shown again")
		assert.Equal(t, []string{"Default secret key (server-)", "Default publishable key (client-)"},
			eval[[]string](t, owner, `[...document.querySelectorAll("dialog[open] .secrets label")].map(l => l.textContent)`))
		full := eval[[]string](t, owner, `[...document.querySelectorAll("dialog[open] .secret-value")].map(i => i.value)`)
		require.Len(t, full, 2)
		var keys []apikey.Key
		for i, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
			require.Regexp(t, keyPattern, full[i])
			k, err := apikey.ParseKey(full[i])
			require.NoError(t, err)
			v := s.key(t, k.Prefix())
			assert.Equal(t, typ, v.Type)
			assert.Equal(t, "sandbox", v.Environment)
			assert.True(t, v.Default)
			keys = append(keys, k)
		}
		screenshot(t, owner, shots, "new-environment")
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button.copy")))
		assert.Equal(t, "Copied to the clipboard.", poll[string](t, owner, `document.querySelector("dialog[open] .copy-status").textContent`))
		assert.Equal(t, full[0], eval[string](t, owner, `navigator.clipboard.readText()`))

		// Done: the keys are gone from the page, which shows the new
		// environment with its two default keys.
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		for _, k := range full {
			assert.False(t, eval[bool](t, owner, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, k)))
		}
		assert.Equal(t, "create-environment", eval[string](t, owner, activeElement), "the focus returns to the button")
		assert.Equal(t, "sandbox", eval[string](t, owner, `document.getElementById("environment").value`))
		assert.Contains(t, eval[string](t, owner, `location.hash`), "env=sandbox")
		assert.Contains(t, eval[string](t, owner, `document.getElementById("notice").textContent`), "The environment sandbox was created")
		for _, k := range keys {
			assertStatus(t, owner, k.Prefix(), "active")
		}
	})

	var imported apikey.View
	t.Run("owner rotates an imported key into a keystile key", func(t *testing.T) {
		var err error
		operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount} // the service imports
		imported, err = s.manager.Import(bg, operator, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
			Key: apikey.NewOpaque("sk_live_legacy0123456789"), Name: "legacy billing", Scopes: []string{"*"}})
		require.NoError(t, err)
		do(t, owner, chromedp.Navigate(s.url+"/login?as=alice")) // production, read afresh
		waitReady(t, owner)
		row := fmt.Sprintf(`tr[data-prefix=%q]`, imported.Prefix)
		badge := poll[map[string]string](t, owner, fmt.Sprintf(`(() => { const b = document.querySelector('%s [data-imported]'); return b && {text: b.textContent, title: b.title}; })()`, row))
		assert.Equal(t, map[string]string{"text": "imported: rotate to a keystile key", "title": "imported — rotate to a keystile key"}, badge)
		assert.Equal(t, "Rotate", eval[string](t, owner, fmt.Sprintf(`document.querySelector('%s button[data-action="rotate"]').textContent`, row)), "the list offers the rotation")

		do(t, owner, chromedp.Click(chromedp.CSS(row+" a.key-link")))
		assert.Contains(t, poll[string](t, owner, `!document.getElementById("key-view").hidden && !document.getElementById("key-imported").hidden && document.getElementById("key-imported").textContent`),
			"Imported — rotate to a keystile key.")
		rotate := fmt.Sprintf(`#key-actions button[data-view-action="rotate"][data-key=%q]`, imported.Prefix)
		assert.Equal(t, "Rotate to a keystile key", eval[string](t, owner, fmt.Sprintf(`document.querySelector('%s').textContent`, rotate)))
		screenshot(t, owner, shots, "key-view-imported")

		do(t, owner,
			chromedp.Click(chromedp.CSS(rotate)),
			chromedp.Click(chromedp.CSS(`dialog[open] input[name="grace"][value="24h"]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("dialog[open] #secret-value")),
		)
		replacement, err := apikey.ParseKey(eval[string](t, owner, `document.getElementById("secret-value").value`))
		require.NoError(t, err)
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		assert.Equal(t, "expiring", poll[string](t, owner, `(document.querySelector("#key-details [data-status]") || {dataset: {}}).dataset.status`),
			"the key's view shows the imported key rotated out")
		assert.Equal(t, 0, eval[int](t, owner, `document.querySelectorAll('#key-actions [data-view-action="rotate"]').length`))
		old := s.key(t, imported.Prefix)
		assert.Equal(t, apikey.Expiring, old.Status)
		assert.True(t, old.Imported)
		v := s.key(t, replacement.Prefix())
		assert.False(t, v.Imported, "a keystile key")
		assert.Equal(t, "legacy billing", v.Name)
		assert.Equal(t, apikey.Active, v.Status)
	})

	t.Run("owner disables and enables a key", func(t *testing.T) {
		require.NotEmpty(t, created.Prefix())
		do(t, owner, chromedp.Navigate(s.url+"/login?as=alice"))
		waitReady(t, owner)
		assert.Equal(t, 0, eval[int](t, owner, `[...document.querySelectorAll("#keys-body tr")].filter(tr => tr.querySelector(".badge:not(.badge-imported)") && tr.querySelector('[data-action="disable"]')).length`),
			"default keys are not offered Disable")
		disable := fmt.Sprintf(`button[data-action="disable"][data-key=%q]`, created.Prefix())
		do(t, owner,
			chromedp.Click(chromedp.CSS(disable)),
			chromedp.WaitVisible(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
		)
		assert.Equal(t, "Disable "+created.Prefix()+"?", eval[string](t, owner, `document.querySelector("dialog[open] h2").textContent`))
		do(t, owner, chromedp.Click(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		assertStatus(t, owner, created.Prefix(), "disabled")
		assert.Equal(t, apikey.Disabled, s.key(t, created.Prefix()).Status)
		assert.Contains(t, eval[string](t, owner, `document.getElementById("notice").textContent`), "was disabled")
		screenshot(t, owner, shots, "disabled")

		// The key's view says since when, and offers Enable there too.
		do(t, owner, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-prefix=%q] a.key-link`, created.Prefix()))))
		assert.Contains(t, poll[string](t, owner, `!document.getElementById("key-view").hidden && [...document.querySelectorAll("#key-details dt")].filter(dt => dt.textContent === "Disabled").map(dt => dt.nextElementSibling.textContent).join("")`),
			"refused until it is enabled")
		assert.Equal(t, 1, eval[int](t, owner, `document.querySelectorAll('#key-actions [data-view-action="enable"]').length`))
		do(t, owner, chromedp.Click(chromedp.CSS("#key-back")))
		poll[bool](t, owner, `!document.getElementById("list-view").hidden`)

		enable := fmt.Sprintf(`button[data-action="enable"][data-key=%q]`, created.Prefix())
		do(t, owner, chromedp.Focus(chromedp.CSS(enable)), chromedp.KeyEvent("\r"))
		assertStatus(t, owner, created.Prefix(), "active")
		assert.Equal(t, apikey.Active, s.key(t, created.Prefix()).Status)
		assert.Equal(t, "Disable "+created.Prefix(), poll[string](t, owner, `document.activeElement.getAttribute("aria-label")`), "the focus moves to the key's Disable")
	})

	t.Run("a suspended account is shown, and only revocation offered", func(t *testing.T) {
		operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
		require.NoError(t, s.manager.SuspendAccount(bg, operator, apikey.DefaultAccount))
		do(t, owner, chromedp.Reload())
		waitReady(t, owner)
		assert.False(t, eval[bool](t, owner, `document.getElementById("suspended").hidden`))
		assert.Contains(t, eval[string](t, owner, `document.getElementById("suspended").textContent`), "Every request with its keys is refused")
		since := eval[map[string]string](t, owner, `(() => { const t = document.querySelector("#suspended-since time.human"); return t ? {rel: t.querySelector(".rel").textContent, title: t.title, tab: String(t.tabIndex)} : {}; })()`)
		assert.Regexp(t, `^(now|\d+ minutes? ago)$`, since["rel"], "the suspension's time in words")
		assert.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d UTC$`, since["title"], "the exact time on hover")
		assert.Equal(t, "0", since["tab"], "and on focus")
		actions := eval[[]string](t, owner, `[...new Set([...document.querySelectorAll("[data-action]")].map(b => b.dataset.action))]`)
		assert.Equal(t, []string{"revoke"}, actions, "only revocation works while suspended")
		assert.Equal(t, 0, eval[int](t, owner, `document.querySelectorAll("#create-key, #create-environment, #edit-lifetime-button, #edit-origins-button").length`))
		screenshot(t, owner, shots, "suspended")
		tab := s.signIn(t, b, "carol")
		assert.False(t, eval[bool](t, tab, `document.getElementById("suspended").hidden`), "every role sees the suspension")

		require.NoError(t, s.manager.ResumeAccount(bg, operator, apikey.DefaultAccount))
		do(t, owner, chromedp.Reload())
		waitReady(t, owner)
		assert.True(t, eval[bool](t, owner, `document.getElementById("suspended").hidden`))

		// Suspended while the page is open: the first refusal shows it.
		require.NoError(t, s.manager.SuspendAccount(bg, operator, apikey.DefaultAccount))
		do(t, owner,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="disable"][data-key=%q]`, created.Prefix()))),
			chromedp.Click(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
		)
		assert.Contains(t, poll[string](t, owner, `document.querySelector("dialog[open] .form-error").textContent`), "suspended")
		assert.False(t, eval[bool](t, owner, `document.getElementById("suspended").hidden`))
		do(t, owner, chromedp.Click(chromedp.CSS("dialog[open] button[data-close]")), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		assert.Equal(t, 0, eval[int](t, owner, `document.querySelectorAll('[data-action="disable"]').length`))
		assert.Equal(t, apikey.Active, s.key(t, created.Prefix()).Status)
		require.NoError(t, s.manager.ResumeAccount(bg, operator, apikey.DefaultAccount))
	})

	var user42 []apikey.View // the keys of owner user_42
	t.Run("expiring soon at the top, and every key of an owner revoked at once", func(t *testing.T) {
		add := func(env, who string, expires time.Time) apikey.View {
			k, err := s.manager.Create(bg, bootstrapActor, apikey.CreateRequest{Environment: env, Type: apikey.Server, Owner: who,
				Name: who + " " + env, Scopes: []string{"reports:read"}, ExpiresAt: expires})
			require.NoError(t, err)
			return k.View
		}
		now := time.Now()
		user42 = []apikey.View{add(apikey.Production, "user_42", now.Add(2*time.Hour)), add(apikey.Staging, "user_42", time.Time{})}
		other := add(apikey.Production, "user_7", now.Add(20*24*time.Hour))
		do(t, owner, chromedp.Navigate(s.url+"/login?as=alice"))
		waitReady(t, owner)

		// Expiring soon: the production key of user_42 first (2 hours),
		// and not user_7's (20 days).
		expiring := poll[[]string](t, owner, `(() => { const l = [...document.querySelectorAll("#expiring-list li")].map(li => li.dataset.prefix); return !document.getElementById("expiring").hidden && l.length > 0 && l; })()`)
		assert.Equal(t, user42[0].Prefix, expiring[0], "soonest first")
		assert.NotContains(t, expiring, other.Prefix)
		assert.Contains(t, expiring, created.Prefix(), "the key created with 7 days")
		first := eval[string](t, owner, `document.querySelector("#expiring-list li").textContent`)
		assert.Contains(t, first, "in production")
		assert.Contains(t, first, "expires in 2 hours")
		screenshot(t, owner, shots, "expiring")

		// The owner's link, by keyboard: their keys in every environment.
		do(t, owner, chromedp.Focus(chromedp.CSS(fmt.Sprintf(`#keys-body tr[data-prefix=%q] a.owner-link`, user42[0].Prefix))), chromedp.KeyEvent("\r"))
		assert.Equal(t, "owner-heading", poll[string](t, owner, `!document.getElementById("owner-view").hidden && document.activeElement.id`))
		assert.Equal(t, "Keys of user_42", eval[string](t, owner, `document.getElementById("owner-heading").textContent`))
		rows := func() []string {
			return eval[[]string](t, owner, `[...document.querySelectorAll("#owner-keys-body tr")].map(tr => tr.dataset.prefix + " " + tr.children[1].textContent + " " + tr.dataset.status)`)
		}
		assert.ElementsMatch(t, []string{user42[0].Prefix + " production active", user42[1].Prefix + " staging active"}, rows())
		do(t, owner,
			chromedp.Click(chromedp.CSS("#revoke-owner")),
			chromedp.WaitVisible(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
		)
		assert.Equal(t, "Revoke every key of user_42?", eval[string](t, owner, `document.querySelector("dialog[open] h2").textContent`))
		assert.Contains(t, eval[string](t, owner, `document.querySelector("dialog[open] .explain").textContent`), "2 keys in production, staging are revoked at once")
		assert.Equal(t, "Cancel", eval[string](t, owner, activeElement), "the safe choice has the focus")
		do(t, owner, chromedp.Click(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)), chromedp.WaitNotPresent(chromedp.CSS("dialog")))
		assert.Equal(t, "2 keys of user_42 were revoked.", poll[string](t, owner, `document.getElementById("notice").textContent.includes("user_42") && document.getElementById("notice").textContent`))
		assert.ElementsMatch(t, []string{user42[0].Prefix + " production revoked", user42[1].Prefix + " staging revoked"},
			poll[[]string](t, owner, `(() => { const r = [...document.querySelectorAll("#owner-keys-body tr")].map(tr => tr.dataset.prefix + " " + tr.children[1].textContent + " " + tr.dataset.status); return r.every(x => x.endsWith("revoked")) && r; })()`))
		assert.Equal(t, "owner-heading", eval[string](t, owner, activeElement))
		assert.Equal(t, 0, eval[int](t, owner, `document.querySelectorAll("#revoke-owner").length`), "nothing left to revoke")
		for _, v := range user42 {
			assert.Equal(t, apikey.Revoked, s.key(t, v.Prefix).Status)
		}
		assert.Equal(t, apikey.Active, s.key(t, other.Prefix).Status)
		screenshot(t, owner, shots, "owner-keys")

		// Back to the list: user_42's keys are revoked, which the list
		// hides until asked, so the focus goes to the keys' heading.
		do(t, owner, chromedp.Click(chromedp.CSS("#owner-back")))
		assert.Equal(t, "keys-heading", poll[string](t, owner, `!document.getElementById("list-view").hidden && document.activeElement.id`))
		assert.True(t, eval[bool](t, owner, fmt.Sprintf(`document.querySelector('#keys-body tr[data-prefix=%q]').hidden`, user42[0].Prefix)), "revoked: hidden by the list's filter")
		assert.NotContains(t, eval[[]string](t, owner, `[...document.querySelectorAll("#expiring-list li")].map(li => li.dataset.prefix)`), user42[0].Prefix,
			"a revoked key does not expire")
	})

	t.Run("read-only user sees the policy and the imported mark, and no action", func(t *testing.T) {
		require.NotEmpty(t, imported.Prefix)
		tab := s.signIn(t, b, "carol")
		assert.Equal(t, map[string]string{"default_expiry": "1 day after creation", "max_lifetime": "30 days"}, lifetime(tab))
		assert.Equal(t, 1, eval[int](t, tab, fmt.Sprintf(`document.querySelectorAll('tr[data-prefix=%q] [data-imported]').length`, imported.Prefix)))
		do(t, tab, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-prefix=%q] a.key-link`, imported.Prefix))))
		assert.Contains(t, poll[string](t, tab, `!document.getElementById("key-view").hidden && document.getElementById("key-imported").textContent`), "Imported")
		assert.Equal(t, 0, eval[int](t, tab, `[...document.querySelectorAll("button, input, textarea, select:not(#environment), dialog, [data-action], [data-view-action]")].filter(e => !e.closest("#owner-search, .list-tools")).length`),
			"no action, form or dialog, but the search for an owner's keys")

		// The search for an owner's keys, by keyboard.
		do(t, tab, chromedp.Click(chromedp.CSS("#key-back")))
		poll[bool](t, tab, `!document.getElementById("list-view").hidden`)
		do(t, tab, chromedp.Focus(chromedp.CSS("#owner-search-input")), chromedp.KeyEvent("\r"))
		assert.Equal(t, "Type an owner, such as a user or customer id.", eval[string](t, tab, `document.getElementById("owner-search-error").textContent`))
		assert.Equal(t, "owner-search-input", eval[string](t, tab, activeElement))
		do(t, tab, chromedp.KeyEvent("user_42\r"))
		assert.Equal(t, 2, poll[int](t, tab, `!document.getElementById("owner-view").hidden && document.querySelectorAll("#owner-keys-body tr").length`))
		assert.Equal(t, 0, eval[int](t, tab, `document.querySelectorAll("#owner-view button").length`), "no Revoke every key")
	})
}
