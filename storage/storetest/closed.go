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

// refusingState is a state of an account in which the store refuses every
// change that names the account open (Change.OpenAccount), with want.
type refusingState struct {
	name string
	mark func(*apikey.Settings)
	want error
}

// refusingStates are closed, suspended, and both (closing wins).
var refusingStates = []refusingState{
	{"closed", func(st *apikey.Settings) { st.ClosedAt = base }, apikey.ErrAccountClosed},
	{"suspended", func(st *apikey.Settings) { st.SuspendedAt = base }, apikey.ErrAccountSuspended},
	{"closed and suspended", func(st *apikey.Settings) { st.ClosedAt, st.SuspendedAt = base, base }, apikey.ErrAccountClosed},
}

// markFirstEnvironment marks acme's production, as the first write of
// CloseAccount or SuspendAccount does, and changes no key: the state in
// which a racing change must already be refused.
func markFirstEnvironment(t *testing.T, s apikey.Store, state refusingState) {
	t.Helper()
	st := mustSettings(t, s, acme, apikey.Production)
	state.mark(&st)
	apply(t, s, apikey.Change{Settings: []apikey.Settings{st}})
}

// testOpenAccount checks Change.OpenAccount at the store: once one
// environment of an account is closed or suspended, a change that names
// the account open writes nothing (keys, settings, events) and fails with
// ErrAccountClosed or ErrAccountSuspended (closed wins); a change that does
// not name it (a revocation) and a change in another account are applied.
func testOpenAccount(t *testing.T, c Config) {
	for _, state := range refusingStates {
		t.Run(state.name, func(t *testing.T) { testOpenAccountIn(t, c, state) })
	}
}

func testOpenAccountIn(t *testing.T, c Config, state refusingState) {
	s, ctx := c.New(t), context.Background()
	twoAccounts(t, s)
	staging := mustDefault(t, s, acme, apikey.Staging, apikey.Server)
	markFirstEnvironment(t, s, state)
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
			require.ErrorIs(t, err, state.want)
			if state.want == apikey.ErrAccountClosed {
				assert.NotErrorIs(t, err, apikey.ErrAccountSuspended, "closed wins")
			}
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
// revoked yet (CloseAccount half-way, in another process), or suspended
// (SuspendAccount half-way): each fails with ErrAccountClosed or
// ErrAccountSuspended and changes nothing. Revoking still works.
func testClosedAccountRefusesChanges(t *testing.T, c Config) {
	for _, state := range refusingStates {
		t.Run(state.name, func(t *testing.T) { testRefusesChangesIn(t, c, state) })
	}
}

func testRefusesChangesIn(t *testing.T, c Config, state refusingState) {
	s, ctx := c.New(t), context.Background()
	m := twoAccounts(t, s)
	extra, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	rotatedOut := mustDefault(t, s, acme, apikey.Staging, apikey.Client)
	_, err = m.Rotate(ctx, acmeOwner, apikey.RotateRequest{KeyID: rotatedOut.ID, Grace: time.Hour})
	require.NoError(t, err)
	disabled, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Client})
	require.NoError(t, err)
	_, err = m.Disable(ctx, acmeOwner, disabled.View.ID)
	require.NoError(t, err)
	markFirstEnvironment(t, s, state)
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
		{"Disable", func() error { _, err := m.Disable(ctx, acmeOwner, extra.View.ID); return err }},
		{"Enable", func() error { _, err := m.Enable(ctx, acmeOwner, disabled.View.ID); return err }},
		{"SetAllowedOrigins", func() error {
			_, err := m.SetAllowedOrigins(ctx, acmeOwner, apikey.Staging, []string{"https://acme.example"})
			return err
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.call(), state.want)
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
	require.NoError(t, err, "revoking works in a %s account", state.name)
}

// testConcurrentCloseAccount closes an account while writers in several
// processes (peers) bootstrap environments, create and rotate keys and
// change them. Closing wins: when CloseAccount returns, every environment
// of the account is closed and every key revoked, whatever the writers
// did, and nothing they do afterwards succeeds.
func testConcurrentCloseAccount(t *testing.T, c Config) {
	raceAccountSwitch(t, c, accountSwitch{
		do: func(m *apikey.Manager) error {
			_, err := m.CloseAccount(context.Background(), acmeOwner, acme)
			return err
		},
		refusal: apikey.ErrAccountClosed,
		check: func(t *testing.T, s apikey.Store, env apikey.Settings) {
			assert.False(t, env.ClosedAt.IsZero(), "%s is closed", env.Environment)
			for _, k := range allKeys(t, s, acme, env.Environment) {
				assert.False(t, k.RevokedAt.IsZero(), "%s is revoked", describe(k))
			}
		},
	})
}

// testConcurrentSuspendAccount is testConcurrentCloseAccount for
// SuspendAccount: when it returns, every environment of the account is
// suspended, and nothing the writers do afterwards succeeds.
func testConcurrentSuspendAccount(t *testing.T, c Config) {
	raceAccountSwitch(t, c, accountSwitch{
		do: func(m *apikey.Manager) error {
			return m.SuspendAccount(context.Background(), apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}, acme)
		},
		refusal: apikey.ErrAccountSuspended,
		check: func(t *testing.T, _ apikey.Store, env apikey.Settings) {
			assert.False(t, env.SuspendedAt.IsZero(), "%s is suspended", env.Environment)
		},
	})
}

// accountSwitch is a change of a whole account that wins every race: do
// makes it, after which writers fail with refusal and check holds for
// every environment.
type accountSwitch struct {
	do      func(*apikey.Manager) error
	refusal error
	check   func(t *testing.T, s apikey.Store, env apikey.Settings)
}

// raceAccountSwitch makes sw while writers in several processes (peers)
// bootstrap environments, create and rotate keys and change them.
func raceAccountSwitch(t *testing.T, c Config, sw accountSwitch) {
	s, ctx := c.New(t), context.Background()
	stores := c.peers(t, s, 4)
	ms := managers(t, stores)
	bootstrap(t, ms[0], acmeOwner, apikey.Production)

	var (
		closed       atomic.Bool // the switch returned
		late         atomic.Int32
		succeeded    atomic.Int32
		bootstrapped atomic.Int32
		wg           sync.WaitGroup
	)
	// tally counts the outcome of a writer's call that began after the
	// switch returned (began late) or not: a late call that succeeds is a
	// broken rule. A call that began before may commit before the switch
	// and return after it.
	tally := func(beganLate bool, err error) {
		switch {
		case err == nil:
			if beganLate {
				late.Add(1)
			}
			succeeded.Add(1)
		case errors.Is(err, sw.refusal), errors.Is(err, apikey.ErrAlreadyRevoked),
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
				beganLate := closed.Load()
				_, err := m.Bootstrap(ctx, acmeOwner, env)
				tally(beganLate, err)
				if err == nil {
					bootstrapped.Add(1)
				}
				beganLate = closed.Load()
				k, err := m.Create(ctx, acmeOwner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
				tally(beganLate, err)
				if err == nil {
					beganLate = closed.Load()
					_, err = m.SetOwner(ctx, acmeOwner, k.View.ID, "someone")
					tally(beganLate, err)
				}
				beganLate = closed.Load()
				_, err = m.Rotate(ctx, acmeOwner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, Grace: time.Hour})
				tally(beganLate, err)
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
	err := sw.do(ms[1%len(ms)])
	closed.Store(true)
	time.Sleep(20 * time.Millisecond) // writers keep trying after the close
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.Positive(t, succeeded.Load(), "the writers raced the close")

	assert.Zero(t, late.Load(), "no change that began after the switch returned succeeds")
	envs := 0
	after := apikey.EnvironmentPosition{Account: acme}
	for {
		page, err := s.Environments(ctx, apikey.EnvironmentQuery{Account: acme, After: after, Limit: 100})
		require.NoError(t, err)
		for _, env := range page {
			envs++
			sw.check(t, s, env)
		}
		if len(page) < 100 {
			break
		}
		after = apikey.EnvironmentPosition{Account: acme, Environment: page[len(page)-1].Environment}
	}
	assert.Greater(t, envs, 1, "environments were bootstrapped during the race")
}
