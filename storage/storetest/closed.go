package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// closeFirstEnvironment marks acme's production closed, as CloseAccount's
// first write does, and revokes nothing: the state in which a racing
// change must already be refused.
func closeFirstEnvironment(t *testing.T, s apikey.Store) {
	t.Helper()
	st := mustSettings(t, s, acme, apikey.Production)
	st.ClosedAt = base
	apply(t, s, apikey.Change{Settings: []apikey.Settings{st}})
}

// testOpenAccount checks Change.OpenAccount at the store: once one
// environment of an account is closed, a change that names the account
// open writes nothing (keys, settings, events) and fails with
// ErrAccountClosed; a change that does not name it (a revocation) and a
// change in another account are applied.
func testOpenAccount(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	twoAccounts(t, s)
	staging := mustDefault(t, s, acme, apikey.Staging, apikey.Server)
	closeFirstEnvironment(t, s)
	eventsBefore := 0
	if _, ok := s.(storage.AuditLog); ok {
		eventsBefore = len(events(t, s, storage.EventQuery{}))
	}

	fresh := record(acme, apikey.Staging, apikey.Server, false)
	renamed := staging.Clone()
	renamed.Name = "renamed"
	event := apikey.Event{Time: base, Actor: acmeOwner, Action: apikey.ActionCreate, Account: acme, Environment: apikey.Staging}
	refused := []struct {
		name   string
		change apikey.Change
	}{
		{"insert a key in another environment", apikey.Change{Insert: []apikey.Record{fresh}}},
		{"update a key", apikey.Change{Update: []apikey.Record{renamed}}},
		{"bootstrap an environment", apikey.Change{Settings: []apikey.Settings{{Account: acme, Environment: apikey.Development, UpdatedAt: base}}}},
		{"append an event", apikey.Change{Events: []apikey.Event{event}}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			tt.change.OpenAccount = acme
			err := s.Apply(ctx, tt.change)
			require.ErrorIs(t, err, apikey.ErrAccountClosed)
			assert.False(t, errors.Is(err, apikey.ErrConflict), "not a conflict: a retry cannot succeed")
		})
	}
	_, err := s.Key(ctx, fresh.ID)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "no key inserted")
	assert.Equal(t, staging.Revision, mustKey(t, s, staging.ID).Revision, "no key updated")
	_, err = s.Settings(ctx, acme, apikey.Development)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "no environment created")
	if _, ok := s.(storage.AuditLog); ok {
		assert.Len(t, events(t, s, storage.EventQuery{}), eventsBefore, "no event appended")
	}

	// Revoking is what closing does: allowed.
	revoke := mustKey(t, s, staging.ID)
	revoke.RevokedAt = base
	apply(t, s, apikey.Change{Update: []apikey.Record{revoke}})
	// Another account is open.
	apply(t, s, apikey.Change{Insert: []apikey.Record{record(globex, apikey.Staging, apikey.Server, false)}, OpenAccount: globex})
}

// testClosedAccountRefusesChanges checks every Manager change in an
// account whose first environment was closed and whose keys are not
// revoked yet (CloseAccount half-way, in another process): each fails with
// ErrAccountClosed and changes nothing. Revoking still works.
func testClosedAccountRefusesChanges(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	m := twoAccounts(t, s)
	extra, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	rotatedOut := mustDefault(t, s, acme, apikey.Staging, apikey.Client)
	_, err = m.Rotate(ctx, acmeOwner, apikey.RotateRequest{KeyID: rotatedOut.ID, Grace: time.Hour})
	require.NoError(t, err)
	closeFirstEnvironment(t, s)
	before := map[string]int64{}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		for _, k := range allKeys(t, s, acme, env) {
			before[k.ID] = k.Revision
		}
	}
	stagingSettings := mustSettings(t, s, acme, apikey.Staging)

	calls := []struct {
		name string
		call func() error
	}{
		{"Bootstrap", func() error { _, err := m.Bootstrap(ctx, acmeOwner, apikey.Development); return err }},
		{"Create", func() error {
			_, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
			return err
		}},
		{"Rotate by environment", func() error {
			_, err := m.Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Staging, Type: apikey.Server, Grace: time.Hour})
			return err
		}},
		{"Rotate by id", func() error {
			_, err := m.Rotate(ctx, acmeOwner, apikey.RotateRequest{KeyID: extra.View.ID, ExpireNow: true})
			return err
		}},
		{"ChangeGrace", func() error {
			_, err := m.ChangeGrace(ctx, acmeOwner, rotatedOut.ID, 2*time.Hour, apikey.APIPolicy)
			return err
		}},
		{"SetScopes", func() error { _, err := m.SetScopes(ctx, acmeOwner, extra.View.ID, []string{"*"}); return err }},
		{"SetOwner", func() error { _, err := m.SetOwner(ctx, acmeOwner, extra.View.ID, "mallory"); return err }},
		{"SetMetadata", func() error {
			_, err := m.SetMetadata(ctx, acmeOwner, extra.View.ID, map[string]string{"team": "x"})
			return err
		}},
		{"SetAllowedOrigins", func() error {
			_, err := m.SetAllowedOrigins(ctx, acmeOwner, apikey.Staging, []string{"https://acme.example"})
			return err
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.call(), apikey.ErrAccountClosed)
		})
	}
	for _, env := range []string{apikey.Production, apikey.Staging} {
		keys := allKeys(t, s, acme, env)
		for _, k := range keys {
			rev, ok := before[k.ID]
			if assert.True(t, ok, "a key appeared: %s", describe(k)) {
				assert.Equal(t, rev, k.Revision, "%s unchanged", describe(k))
			}
		}
	}
	assert.Equal(t, stagingSettings.Revision, mustSettings(t, s, acme, apikey.Staging).Revision, "settings unchanged")

	_, err = m.Revoke(ctx, acmeOwner, extra.View.ID)
	require.NoError(t, err, "revoking works in a closed account")
}

// testConcurrentCloseAccount closes an account while writers in several
// processes (peers) bootstrap environments, create and rotate keys and
// change them. Closing wins: when CloseAccount returns, every environment
// of the account is closed and every key revoked, whatever the writers
// did, and nothing they do afterwards succeeds.
func testConcurrentCloseAccount(t *testing.T, c Config) {
	s, ctx := c.New(t), context.Background()
	stores := c.peers(t, s, 4)
	ms := managers(t, stores)
	bootstrap(t, ms[0], acmeOwner, apikey.Production)

	var (
		closed       atomic.Bool // CloseAccount returned
		late         atomic.Int32
		succeeded    atomic.Int32
		bootstrapped atomic.Int32
		wg           sync.WaitGroup
	)
	// tally counts a writer's outcome; a success after the close returned
	// is a broken rule.
	tally := func(err error) {
		switch {
		case err == nil:
			if closed.Load() {
				late.Add(1)
			}
			succeeded.Add(1)
		case errors.Is(err, apikey.ErrAccountClosed), errors.Is(err, apikey.ErrAlreadyRevoked),
			errors.Is(err, apikey.ErrAlreadyRotated), errors.Is(err, apikey.ErrKeyExpired),
			errors.Is(err, apikey.ErrConflict), errors.Is(err, apikey.ErrUnknownEnvironment):
		default:
			assert.NoError(t, err)
		}
	}
	stop := make(chan struct{})
	for w := range 6 {
		m := ms[w%len(ms)]
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				env := fmt.Sprintf("w%d-%d", w, n)
				_, err := m.Bootstrap(ctx, acmeOwner, env)
				tally(err)
				if err == nil {
					bootstrapped.Add(1)
				}
				k, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
				tally(err)
				if err == nil {
					_, err = m.SetOwner(ctx, acmeOwner, k.View.ID, "someone")
					tally(err)
				}
				_, err = m.Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, Grace: time.Hour})
				tally(err)
			}
		})
	}
	// Close once the writers are under way (two environments added).
	for deadline := time.Now().Add(10 * time.Second); bootstrapped.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatal("the writers bootstrapped nothing in 10 s")
		}
	}
	_, err := ms[1%len(ms)].CloseAccount(ctx, acmeOwner, acme)
	closed.Store(true)
	time.Sleep(20 * time.Millisecond) // writers keep trying after the close
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.Positive(t, succeeded.Load(), "the writers raced the close")

	assert.Zero(t, late.Load(), "no change succeeds after CloseAccount returned")
	envs := 0
	after := apikey.EnvironmentPosition{Account: acme}
	for {
		page, err := s.Environments(ctx, apikey.EnvironmentQuery{Account: acme, After: after, Limit: 100})
		require.NoError(t, err)
		for _, env := range page {
			envs++
			assert.False(t, env.ClosedAt.IsZero(), "%s is closed", env.Environment)
			for _, k := range allKeys(t, s, acme, env.Environment) {
				assert.False(t, k.RevokedAt.IsZero(), "%s is revoked", describe(k))
			}
		}
		if len(page) < 100 {
			break
		}
		after = apikey.EnvironmentPosition{Account: acme, Environment: page[len(page)-1].Environment}
	}
	assert.Greater(t, envs, 1, "environments were bootstrapped during the race")
}
