package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// propagationStatus is the text of the console's propagation status.
const propagationStatus = `document.getElementById("propagation-status").textContent`

// TestRevocationReachInChromium: after an owner revokes a key, the console
// follows how far the revocation has reached the running validators (a
// real Validator following the store's feed, and a slower instance that
// the test reports for): "Reaching instances: 1 of 2 applied" until both
// have applied it, then "Revoked everywhere at <time> — 2 of 2
// instances", in a polite live region. The view of a revoked key that an
// unreachable instance may still admit says when it is confirmed at the
// latest, stops reading after a while and offers Refresh, at every width,
// with no serious accessibility violation; where the store keeps no
// instances, the view says the confirmation is not available.
func TestRevocationReachInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startStack(t, false)
	extra := func(name string) apikey.View {
		issued, err := s.manager.Create(ctx, bootstrapActor, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
			Name: name, Scopes: []string{"reports:read"}})
		require.NoError(t, err)
		return issued.View
	}
	first, second := extra("first"), extra("second")

	v, err := middleware.New(middleware.Options{Store: s.store, FeedInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	require.Eventually(t, func() bool {
		list, _, err := s.store.Instances(ctx)
		return err == nil && len(list) == 1
	}, 10*time.Second, 10*time.Millisecond, "the Validator reports to the store")

	// A slower instance: live (it reports every 200 ms), it applies
	// nothing until the test says so, then every change as it is made.
	var caughtUp atomic.Bool
	beat := func() error {
		var applied int64
		if caughtUp.Load() {
			rev, err := s.store.Revision(ctx)
			if err != nil {
				return err
			}
			applied = rev
		}
		return s.store.ReportInstance(ctx, apikey.InstanceReport{ID: "slow", Label: "slow:1", Applied: applied,
			Lease: time.Minute})
	}
	require.NoError(t, beat())
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = beat()
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})

	b := newBrowser(t, ctx)
	shots := screenshotDir(t)

	t.Run("an owner revokes a key", func(t *testing.T) {
		owner := s.signIn(t, b, "alice")
		do(t, owner,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="revoke"][data-key=%q]`, first.Prefix))),
			chromedp.WaitVisible(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
			chromedp.Click(chromedp.CSS(`dialog[open] button.danger[type="submit"]`)),
		)
		assertStatus(t, owner, first.Prefix, "revoked")
		assert.Equal(t, "Revocation of "+first.Prefix, poll[string](t, owner, `!document.getElementById("propagation").hidden && document.getElementById("propagation-heading").textContent`))
		assert.Equal(t, "polite", eval[string](t, owner, `document.getElementById("propagation-status").getAttribute("aria-live")`))
		assert.Equal(t, "Reaching instances: 1 of 2 applied.",
			poll[string](t, owner, propagationStatus+`.startsWith("Reaching instances: 1 of 2") && `+propagationStatus),
			"the Validator applied it, the slow instance did not")
		screenshot(t, owner, shots, "propagation-reaching")

		caughtUp.Store(true)
		text := poll[string](t, owner, propagationStatus+`.startsWith("Revoked everywhere") && `+propagationStatus)
		assert.Regexp(t, `^Revoked everywhere at \d{4}-\d\d-\d\d \d\d:\d\d UTC \(.+\) — 2 of 2 instances\.$`, text)
		at := eval[string](t, owner, `document.querySelector("#propagation-status time").dateTime`)
		confirmed, err := time.Parse(time.RFC3339Nano, at)
		require.NoError(t, err, at)
		assert.WithinDuration(t, time.Now(), confirmed, time.Minute, "the time every instance had applied it")
		assert.Equal(t, 0, eval[int](t, owner, `document.querySelector("#propagation-status time").tabIndex`), "the time can take the focus")
		assert.Equal(t, apikey.Revoked, s.key(t, first.Prefix).Status)
		screenshot(t, owner, shots, "propagation-confirmed")
	})

	t.Run("a revoked key's view while an instance is unreachable", func(t *testing.T) {
		// An instance that may serve its cache for two more minutes and
		// goes quiet: once it is no longer live (apikey.InstanceStaleAfter)
		// it blocks the confirmation until its lease ends.
		require.NoError(t, s.store.ReportInstance(ctx, apikey.InstanceReport{ID: "gone", Label: "gone:1", Applied: 1,
			Lease: 2*time.Minute + apikey.InstanceStaleAfter}))
		list, _, err := s.store.Instances(ctx)
		require.NoError(t, err)
		var until time.Time
		for _, in := range list {
			if in.ID == "gone" {
				until = in.ServesUntil
			}
		}
		require.False(t, until.IsZero(), "the quiet instance is in the log")
		time.Sleep(apikey.InstanceStaleAfter + 100*time.Millisecond)
		_, err = s.manager.Revoke(ctx, bootstrapActor, second.ID)
		require.NoError(t, err)

		tab := s.signIn(t, b, "carol")
		do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, "env=production&key="+second.Prefix)))
		text := poll[string](t, tab, propagationStatus+`.includes("unreachable") && `+propagationStatus)
		assert.Regexp(t, `^`+regexp.QuoteMeta(fmt.Sprintf("Reaching instances: 2 of 2 applied. 1 instance unreachable, confirmed by %s UTC",
			until.UTC().Format("2006-01-02 15:04")))+` \(in (a minute|\d minutes?)\) at the latest\.$`, text)
		for _, width := range widths {
			t.Run(fmt.Sprint(width), func(t *testing.T) {
				do(t, tab, chromedp.EmulateViewport(int64(width), 900))
				poll[bool](t, tab, fmt.Sprintf(`innerWidth === %d`, width))
				assert.LessOrEqual(t, eval[int](t, tab, `document.documentElement.scrollWidth`), width, "the page does not scroll sideways")
				assert.Empty(t, eval[[]string](t, tab, unreachable+`("#propagation")`), "the status's controls and times can be reached")
				screenshot(t, tab, shots, fmt.Sprintf("propagation-unreachable-%d", width))
			})
		}
		if src := os.Getenv(axeCoreEnv); src != "" {
			do(t, tab, chromedp.Evaluate[chromedp.Void](axeSourceOf(t, src)))
			assert.Empty(t, eval[[]string](t, tab, axeViolations), "the view of a key being revoked")
		}

		// The page stops reading after a while and offers Refresh.
		_, err = chromedp.Run(tab, chromedp.Poll[bool](`!!document.getElementById("propagation-refresh")`, chromedp.WithPollingTimeout(time.Minute)))
		require.NoError(t, err, "a Refresh button once the page stops reading")
		assert.Contains(t, eval[string](t, tab, propagationStatus), "1 instance unreachable", "the last status stays")
		assert.Empty(t, eval[[]string](t, tab, unreachable+`("#propagation")`), "Refresh can be reached")

		require.NoError(t, s.store.RemoveInstance(ctx, "gone"))
		do(t, tab, chromedp.Click(chromedp.CSS("#propagation-refresh")))
		text = poll[string](t, tab, propagationStatus+`.startsWith("Revoked everywhere") && `+propagationStatus)
		assert.Contains(t, text, "— 2 of 2 instances.")
		assert.Equal(t, "propagation-status", eval[string](t, tab, `document.activeElement.id`), "the focus stays on the status, not on the page")
	})

	t.Run("a store that keeps no instances", func(t *testing.T) {
		s.noInstances.Store(true)
		t.Cleanup(func() { s.noInstances.Store(false) })
		tab := s.signIn(t, b, "carol")
		do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, "env=production&key="+first.Prefix)))
		assert.Contains(t, poll[string](t, tab, propagationStatus), "not available")
		assert.False(t, eval[bool](t, tab, `!!document.getElementById("propagation-refresh")`), "nothing to refresh")
	})

	t.Run("an active key's view", func(t *testing.T) {
		tab := s.signIn(t, b, "carol")
		list, err := s.manager.List(ctx, bootstrapActor, apikey.Production, apikey.Page{})
		require.NoError(t, err)
		active := list.Keys[0]
		for _, k := range list.Keys {
			if k.Status == apikey.Active {
				active = k
			}
		}
		require.Equal(t, apikey.Active, active.Status)
		do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, "env=production&key="+active.Prefix)))
		poll[bool](t, tab, fmt.Sprintf(`document.getElementById("key-heading").textContent === %q`, "Key "+active.Prefix))
		assert.True(t, eval[bool](t, tab, `document.getElementById("propagation").hidden`), "no revocation to follow")
	})
}
