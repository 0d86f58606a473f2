package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/memory"
)

// TestReviewCallersBoundLetsEndGraceKillAKeyInUse: another account fills
// the Tracker's bound of keys rotated out (1,000) with its own keys; the
// victim's rotated-out key, used a minute ago, has its sightings dropped,
// and EndGraceIfSilent then takes it for silent and ends its grace,
// although the store's last-used time of the key says it was just used.
func TestReviewCallersBoundLetsEndGraceKillAKeyInUse(t *testing.T) {
	ctx := context.Background()
	store, clk := memory.New(), newClock()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: clk.Now})
	require.NoError(t, err)
	// The victim: the default account's production server key, rotated out.
	issued, err := m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	var victim apikey.Key
	for _, is := range issued {
		if is.Key.Type() == apikey.Server {
			victim = is.Key
		}
	}
	_, err = m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: victim.ID(), Grace: 72 * time.Hour})
	require.NoError(t, err)
	// The attacker: another tenant, 1,000 extra keys of its own, rotated out.
	mallory := apikey.Actor{ID: "mallory", Role: apikey.Owner, Account: "mallory"}
	_, err = m.Bootstrap(ctx, mallory, apikey.Staging)
	require.NoError(t, err)
	var filler []apikey.Key
	for i := range 1000 {
		c, err := m.Create(ctx, mallory, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server,
			Name: fmt.Sprintf("k%d", i), Scopes: []string{"a:read"}})
		require.NoError(t, err)
		_, err = m.Rotate(ctx, mallory, apikey.RotateRequest{KeyID: c.View.ID, Grace: 72 * time.Hour})
		require.NoError(t, err)
		filler = append(filler, c.Key)
	}
	v, err := middleware.New(middleware.Options{Store: store, Hasher: newHasher(apikey.TestParams), Now: clk.Now, LastUsedInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	call := func(key apikey.Key, remote string) {
		r := request(key.Reveal())
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		v.Handler(okHandler).ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	}

	clk.Advance(30 * time.Minute)
	for _, k := range filler {
		call(k, "203.0.113.66:1")
	}
	call(victim, "192.0.2.7:1") // the victim's own client, still using the old key
	require.NoError(t, v.Close())
	assert.NotZero(t, v.Stats().CallersDropped, "the victim's sighting was dropped")

	rec, err := store.Key(ctx, victim.ID())
	require.NoError(t, err)
	require.True(t, rec.LastUsedAt.Equal(clk.Now()), "the store knows the key was used just now: %s", rec.LastUsedAt)

	clk.Advance(time.Minute)
	_, err = m.EndGraceIfSilent(ctx, owner, victim.ID(), 30*time.Minute)
	require.ErrorIs(t, err, apikey.ErrNotSilent, "a key used a minute ago is not silent")
}

// TestReviewEndGraceIfSilentBeforeTheFirstWrite: a validator whose
// LastUsedInterval (any value is accepted) is longer than
// apikey.MinSilence serves a rotated-out key every minute; before its
// first write, EndGraceIfSilent with the minimum silence ends the grace of
// the key that was used a minute ago.
func TestReviewEndGraceIfSilentBeforeTheFirstWrite(t *testing.T) {
	f := newCallersFixture(t, func(o *middleware.Options) { o.LastUsedInterval = 15 * time.Minute })
	for range 11 {
		f.clock.Advance(time.Minute)
		f.call(t, f.old, "192.0.2.7:1", "billing-cron/2.1")
	}
	_, err := f.manager.EndGraceIfSilent(context.Background(), owner, f.old.ID(), apikey.MinSilence)
	require.ErrorIs(t, err, apikey.ErrNotSilent, "the key was used a minute ago")
}

// TestReviewUserAgentCutBeforeRedaction: a client that sends its key in
// its User-Agent (a misconfigured SDK) near the 200-byte cut: the cut
// leaves fewer than 20 characters of the secret, which the redaction no
// longer recognises, and they reach the store.
func TestReviewUserAgentCutBeforeRedaction(t *testing.T) {
	f := newCallersFixture(t, nil)
	key := f.old.Reveal()
	secretStart := apikey.PrefixLength + 1
	keep := 19 // secret characters left after the cut
	pad := apikey.MaxUserAgentLength - secretStart - keep
	agent := strings.Repeat("a", pad-1) + " " + key
	require.Len(t, agent[:apikey.MaxUserAgentLength], apikey.MaxUserAgentLength)
	f.call(t, f.old, "192.0.2.7:1", agent)
	require.NoError(t, f.v.Close())
	got := f.callers(t, f.old)
	require.Len(t, got.Callers, 1)
	// (assert.False, not NotContains: the test prints no part of a secret)
	assert.False(t, strings.Contains(got.Callers[0].UserAgent, key[secretStart:secretStart+keep]), "no part of the secret is stored")
}

// TestReviewThrottledCallersAreStillCallers: a client of a rotated-out key
// over its rate limit keeps calling (every request authenticated, then
// refused with 429); none of those requests is recorded, so
// EndGraceIfSilent takes the key for silent and ends its grace.
func TestReviewThrottledCallersAreStillCallers(t *testing.T) {
	f := newCallersFixture(t, nil)
	_, err := f.manager.SetLimits(context.Background(), owner, f.old.ID(),
		apikey.Limits{Rate: apikey.RateLimit{Requests: 1, Window: time.Hour}})
	require.NoError(t, err)
	codes := map[int]int{}
	for range 20 {
		f.clock.Advance(time.Minute)
		r := request(f.old.Reveal())
		r.RemoteAddr = "192.0.2.7:1"
		w := httptest.NewRecorder()
		f.v.Handler(okHandler).ServeHTTP(w, r)
		codes[w.Code]++
	}
	require.Equal(t, map[int]int{http.StatusOK: 1, http.StatusTooManyRequests: 19}, codes)
	require.NoError(t, f.v.Close())
	_, err = f.manager.EndGraceIfSilent(context.Background(), owner, f.old.ID(), apikey.MinSilence)
	require.ErrorIs(t, err, apikey.ErrNotSilent, "the client called a minute ago")
}
