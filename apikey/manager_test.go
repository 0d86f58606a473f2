package apikey_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/fakeclock"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/memory"
)

var (
	owner    = apikey.Actor{ID: "alice", Role: apikey.Owner}
	member   = apikey.Actor{ID: "bob", Role: apikey.Member}
	readOnly = apikey.Actor{ID: "carol", Role: apikey.ReadOnly}
	ctx      = context.Background()
)

// clock is a settable clock for tests.
type clock = fakeclock.Clock

type fixture struct {
	m      *apikey.Manager
	store  *memory.Store
	clock  *clock
	events []apikey.Event
	server apikey.Issued // production's default server key
	client apikey.Issued // production's default publishable key
}

func newFixture(t testing.TB, opts apikey.ManagerOptions) *fixture {
	t.Helper()
	f := &fixture{store: memory.New(), clock: fakeclock.New(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))}
	opts.Store, opts.Now = f.store, f.clock.Now
	opts.Hasher = apikey.Argon2id{Params: apikey.TestParams}
	var mu sync.Mutex
	opts.OnEvent = func(e apikey.Event) { mu.Lock(); f.events = append(f.events, e); mu.Unlock() }
	var err error
	f.m, err = apikey.NewManager(opts)
	require.NoError(t, err)
	issued, err := f.m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	require.Len(t, issued, 2)
	f.server, f.client = issued[0], issued[1]
	return f
}

func (f *fixture) record(t *testing.T, id string) apikey.Record {
	t.Helper()
	r, err := f.store.Key(ctx, id)
	require.NoError(t, err)
	return r
}

func TestNewManagerNeedsStore(t *testing.T) {
	_, err := apikey.NewManager(apikey.ManagerOptions{})
	assert.Error(t, err)
}

func TestBootstrap(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	assert.Equal(t, apikey.Server, f.server.Key.Type())
	assert.Equal(t, apikey.Client, f.client.Key.Type())
	for _, k := range []apikey.Issued{f.server, f.client} {
		rec := f.record(t, k.View.ID)
		assert.True(t, rec.Default)
		assert.True(t, rec.ExpiresAt.IsZero(), "default keys have no expiry")
		assert.Equal(t, apikey.Active, rec.Status(f.clock.Now()))
		ok, _, err := apikey.Argon2id{Params: apikey.TestParams}.Verify([]byte(k.Key.Reveal()), rec.Hash.Reveal())
		require.NoError(t, err)
		assert.True(t, ok, "the stored hash verifies the issued key")
		assert.NotContains(t, rec.Hash.Reveal(), k.Key.Reveal())
	}
	assert.Equal(t, []string{apikey.AllScopes}, f.server.View.Scopes)
	assert.Empty(t, f.client.View.Scopes)

	_, err := f.m.Bootstrap(ctx, owner, apikey.Production)
	assert.ErrorIs(t, err, apikey.ErrAlreadyBootstrapped)
	_, err = f.m.Bootstrap(ctx, owner, "Bad Name")
	assert.ErrorIs(t, err, apikey.ErrInvalidEnvironment)
	_, err = f.m.Bootstrap(ctx, member, apikey.Staging)
	assert.ErrorIs(t, err, apikey.ErrForbidden)

	require.Len(t, f.events, 2)
	assert.Equal(t, apikey.ActionBootstrap, f.events[0].Action)
	assert.Equal(t, owner, f.events[0].Actor)
	assert.Equal(t, f.server.View.ID, f.events[0].KeyID)
	stored, err := f.store.Events(ctx, storage.EventQuery{Environment: apikey.Production})
	require.NoError(t, err)
	assert.Len(t, stored, 2, "events are stored with the change")
}

func TestListShowsNoSecret(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	list, err := f.m.List(ctx, readOnly, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, list.Keys, 2)
	out, err := json.Marshal(list)
	require.NoError(t, err)
	for _, k := range []apikey.Issued{f.server, f.client} {
		assert.NotContains(t, string(out), k.Key.Reveal()[20:])
		assert.Contains(t, string(out), k.Key.Prefix())
	}
	assert.NotContains(t, string(out), "argon2id")
	_, err = f.m.List(ctx, readOnly, "nowhere", apikey.Page{})
	assert.ErrorIs(t, err, apikey.ErrUnknownEnvironment)
}

// TestIssuedJSON: an issued key marshals as its view, never with the key.
func TestIssuedJSON(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	out, err := json.Marshal(f.server)
	require.NoError(t, err)
	view, err := json.Marshal(f.server.View)
	require.NoError(t, err)
	assert.JSONEq(t, `{"view":`+string(view)+`}`, string(out))
	assert.NotContains(t, string(out), f.server.Key.Reveal()[20:])
}

func TestCreate(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	now := f.clock.Now()
	scoped, err := f.m.Create(ctx, owner, apikey.CreateRequest{
		Environment: apikey.Production, Type: apikey.Server, Name: "billing worker",
		Scopes: []string{"customers:write"}, ExpiresAt: now.Add(24 * time.Hour),
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"customers:write"}, scoped.View.Scopes)
	assert.False(t, scoped.View.Default)
	assert.True(t, now.Add(24*time.Hour).Equal(scoped.View.ExpiresAt))
	assert.Equal(t, "billing worker", scoped.View.Name)
	assert.Equal(t, apikey.ActionCreate, f.events[len(f.events)-1].Action)

	tests := []struct {
		name string
		req  apikey.CreateRequest
		want error
	}{
		{"scopes on a publishable key", apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client, Scopes: []string{"customers:read"}}, apikey.ErrInvalidScope},
		{"bad scope", apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"everything"}}, apikey.ErrInvalidScope},
		{"expiry in the past", apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: now.Add(-time.Second)}, apikey.ErrInvalidExpiry},
		{"expiry now", apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: now}, apikey.ErrInvalidExpiry},
		{"unknown environment", apikey.CreateRequest{Environment: apikey.Staging, Type: apikey.Server, Scopes: []string{apikey.AllScopes}}, apikey.ErrUnknownEnvironment},
		{"bad type", apikey.CreateRequest{Environment: apikey.Production, Type: "root"}, apikey.ErrInvalidKeyType},
		{"server key without scopes", apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server}, apikey.ErrScopesRequired},
		{"server key with an empty scope list", apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{}}, apikey.ErrScopesRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := f.m.List(ctx, owner, apikey.Production, apikey.Page{})
			require.NoError(t, err)
			_, err = f.m.Create(ctx, owner, tt.req)
			assert.ErrorIs(t, err, tt.want)
			after, err := f.m.List(ctx, owner, apikey.Production, apikey.Page{})
			require.NoError(t, err)
			assert.Len(t, after.Keys, len(before.Keys), "no key was created")
		})
	}
	full, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}})
	require.NoError(t, err)
	assert.Equal(t, []string{apikey.AllScopes}, full.View.Scopes, "full access is the explicit scope")
}

func TestRotate(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	now := f.clock.Now()
	fresh, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: time.Hour, Policy: apikey.ConsolePolicy})
	require.NoError(t, err)
	assert.True(t, fresh.View.Default)
	assert.Equal(t, []string{apikey.AllScopes}, fresh.View.Scopes)
	old := f.record(t, f.server.View.ID)
	assert.False(t, old.Default)
	assert.True(t, now.Add(time.Hour).Equal(old.ExpiresAt), "old key expires after the grace")
	assert.Equal(t, apikey.Expiring, old.Status(now))

	f.clock.Advance(time.Hour - time.Second)
	assert.Equal(t, apikey.Expiring, f.record(t, old.ID).Status(f.clock.Now()))
	f.clock.Advance(time.Second)
	assert.Equal(t, apikey.Expired, f.record(t, old.ID).Status(f.clock.Now()), "expired to the second")

	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: old.ID, ExpireNow: true})
	assert.ErrorIs(t, err, apikey.ErrKeyExpired)

	// Rotate by environment and type.
	client, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, ExpireNow: true})
	require.NoError(t, err)
	assert.Equal(t, apikey.Client, client.Key.Type())
	assert.Equal(t, apikey.Expired, f.record(t, f.client.View.ID).Status(f.clock.Now()), "expire now ends the old key at once")
	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Staging, Type: apikey.Client, ExpireNow: true})
	assert.ErrorIs(t, err, apikey.ErrUnknownEnvironment)
}

func TestRotateGracePolicy(t *testing.T) {
	tests := []struct {
		name   string
		grace  time.Duration
		policy apikey.GracePolicy
		ok     bool
	}{
		{"console 0", 0, apikey.ConsolePolicy, true},
		{"console 7 days", 7 * 24 * time.Hour, apikey.ConsolePolicy, true},
		{"console 7 days and a second", 7*24*time.Hour + time.Second, apikey.ConsolePolicy, false},
		{"api 1 year", 365 * 24 * time.Hour, apikey.APIPolicy, true},
		{"api over a year", 366 * 24 * time.Hour, apikey.APIPolicy, false},
		{"zero policy is api", 300 * 24 * time.Hour, apikey.GracePolicy{}, true},
		{"negative", -time.Second, apikey.APIPolicy, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, apikey.ManagerOptions{})
			_, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: tt.grace, ExpireNow: tt.grace == 0, Policy: tt.policy})
			if tt.ok {
				require.NoError(t, err)
				assert.True(t, f.clock.Now().Add(tt.grace).Equal(f.record(t, f.server.View.ID).ExpiresAt))
			} else {
				assert.ErrorIs(t, err, apikey.ErrGraceOutOfRange)
				assert.True(t, f.record(t, f.server.View.ID).Default, "nothing changed")
			}
		})
	}
}

// TestRotateNeedsExplicitGrace: no rotation picks a grace silently. A zero
// grace is refused unless ExpireNow says so, and ExpireNow with a grace is a
// contradiction.
func TestRotateNeedsExplicitGrace(t *testing.T) {
	tests := []struct {
		name   string
		req    apikey.RotateRequest
		want   error  // nil: the rotation succeeds
		says   string // in the error
		expiry time.Duration
	}{
		{"no grace", apikey.RotateRequest{}, apikey.ErrGraceRequired, "up to the policy's maximum (api policy: 8760h)", 0},
		{"no grace, console policy", apikey.RotateRequest{Policy: apikey.ConsolePolicy}, apikey.ErrGraceRequired, "(console policy: 168h)", 0},
		{"no grace, by environment and type", apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server}, apikey.ErrGraceRequired, "0s (expire now), 1h, 24h, 72h or 168h", 0},
		{"expire now", apikey.RotateRequest{ExpireNow: true}, nil, "", 0},
		{"expire now, console policy", apikey.RotateRequest{ExpireNow: true, Policy: apikey.ConsolePolicy}, nil, "", 0},
		{"expire now and a grace", apikey.RotateRequest{ExpireNow: true, Grace: time.Hour}, apikey.ErrGraceOutOfRange, "expire now", 0},
		{"expire now and a negative grace", apikey.RotateRequest{ExpireNow: true, Grace: -time.Hour}, apikey.ErrGraceOutOfRange, "expire now", 0},
		{"a grace", apikey.RotateRequest{Grace: time.Hour}, nil, "", time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, apikey.ManagerOptions{})
			req := tt.req
			if req.Environment == "" {
				req.KeyID = f.server.View.ID
			}
			fresh, err := f.m.Rotate(ctx, owner, req)
			old := f.record(t, f.server.View.ID)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				assert.True(t, apikey.IsRequestError(err))
				assert.Contains(t, err.Error(), tt.says)
				assert.True(t, old.Default, "nothing changed")
				assert.Equal(t, apikey.Active, old.Status(f.clock.Now()), "the old key still works")
				assert.Len(t, f.events, 2, "no rotation event, only the bootstrap's")
				return
			}
			require.NoError(t, err)
			assert.True(t, fresh.View.Default)
			assert.True(t, f.clock.Now().Add(tt.expiry).Equal(old.ExpiresAt), "the old key expires after exactly the grace asked for")
			if tt.expiry == 0 {
				assert.Equal(t, apikey.Expired, old.Status(f.clock.Now()), "expire now ends the old key at once")
			}
		})
	}
}

func TestRotateNeverExtendsExpiry(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	expires := f.clock.Now().Add(2 * time.Hour)
	temp, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:read"}, ExpiresAt: expires})
	require.NoError(t, err)
	next, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: temp.View.ID, Grace: 30 * 24 * time.Hour})
	require.NoError(t, err)
	assert.True(t, expires.Equal(f.record(t, temp.View.ID).ExpiresAt), "a 30-day grace does not extend a 2-hour expiry")
	assert.Equal(t, []string{"customers:read"}, next.View.Scopes, "the replacement keeps the scopes")
	assert.False(t, next.View.Default)
	assert.True(t, expires.Equal(next.View.ExpiresAt), "the replacement keeps the lifetime")

	_, err = f.m.ChangeGrace(ctx, owner, temp.View.ID, 100*24*time.Hour, apikey.APIPolicy)
	require.NoError(t, err)
	assert.True(t, expires.Equal(f.record(t, temp.View.ID).ExpiresAt), "a grace change does not extend it either")

	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: temp.View.ID, ExpireNow: true})
	assert.ErrorIs(t, err, apikey.ErrAlreadyRotated)
}

func TestChangeGrace(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	rotatedAt := f.clock.Now()
	_, err := f.m.ChangeGrace(ctx, owner, f.server.View.ID, time.Hour, apikey.APIPolicy)
	assert.ErrorIs(t, err, apikey.ErrNotRotated)

	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: time.Hour})
	require.NoError(t, err)
	f.clock.Advance(30 * time.Minute)

	view, err := f.m.ChangeGrace(ctx, owner, f.server.View.ID, 3*24*time.Hour, apikey.ConsolePolicy)
	require.NoError(t, err)
	assert.True(t, rotatedAt.Add(3*24*time.Hour).Equal(view.ExpiresAt), "grace counts from the rotation")
	assert.Equal(t, apikey.Expiring, view.Status)

	_, err = f.m.ChangeGrace(ctx, owner, f.server.View.ID, 8*24*time.Hour, apikey.ConsolePolicy)
	assert.ErrorIs(t, err, apikey.ErrGraceOutOfRange, "never beyond the policy's cap")

	view, err = f.m.ChangeGrace(ctx, owner, f.server.View.ID, 10*time.Minute, apikey.ConsolePolicy)
	require.NoError(t, err)
	assert.Equal(t, apikey.Expired, view.Status, "a grace already over ends the key now")
	assert.True(t, f.clock.Now().Equal(view.ExpiresAt))

	_, err = f.m.ChangeGrace(ctx, owner, f.server.View.ID, time.Hour, apikey.ConsolePolicy)
	assert.ErrorIs(t, err, apikey.ErrKeyExpired, "an expired key stays expired")
	_, err = f.m.ChangeGrace(ctx, owner, "nosuchkey000", time.Hour, apikey.ConsolePolicy)
	assert.ErrorIs(t, err, apikey.ErrNotFound)
}

func TestRevoke(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.Revoke(ctx, owner, f.server.View.ID)
	require.ErrorIs(t, err, apikey.ErrDefaultKeyNotRevocable)
	assert.Contains(t, err.Error(), "rotate it first")

	_, err = f.m.Revoke(ctx, owner, f.client.View.ID)
	require.ErrorIs(t, err, apikey.ErrDefaultKeyNotRevocable, "the default publishable key too")
	for _, k := range []apikey.Issued{f.server, f.client} {
		assert.Equal(t, apikey.Active, f.record(t, k.View.ID).Status(f.clock.Now()), "default keys stay active")
	}

	// An extra key without expiry is not what keeps the environment
	// working: it is revoked directly, with no rotation (which would only
	// make another permanent key).
	for _, req := range []apikey.CreateRequest{
		{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:read"}},
		{Environment: apikey.Production, Type: apikey.Client},
	} {
		permanent, err := f.m.Create(ctx, owner, req)
		require.NoError(t, err)
		require.True(t, permanent.View.ExpiresAt.IsZero())
		view, err := f.m.Revoke(ctx, owner, permanent.View.ID)
		require.NoError(t, err, "an extra %s key without expiry is revocable", req.Type)
		assert.Equal(t, apikey.Revoked, view.Status)
		assert.Equal(t, apikey.Revoked, f.record(t, permanent.View.ID).Status(f.clock.Now()))
	}

	temp, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{apikey.AllScopes}, ExpiresAt: f.clock.Now().Add(time.Hour)})
	require.NoError(t, err)
	view, err := f.m.Revoke(ctx, owner, temp.View.ID)
	require.NoError(t, err)
	assert.Equal(t, apikey.Revoked, view.Status)
	assert.True(t, f.clock.Now().Equal(view.RevokedAt), "immediate")
	_, err = f.m.Revoke(ctx, owner, temp.View.ID)
	assert.ErrorIs(t, err, apikey.ErrAlreadyRevoked)
	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: temp.View.ID, ExpireNow: true})
	assert.ErrorIs(t, err, apikey.ErrAlreadyRevoked)
	_, err = f.m.ChangeGrace(ctx, owner, temp.View.ID, time.Hour, apikey.APIPolicy)
	assert.ErrorIs(t, err, apikey.ErrAlreadyRevoked, "revocation is irreversible")
	_, err = f.m.Revoke(ctx, owner, "nosuchkey000")
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	assert.Equal(t, apikey.ActionRevoke, f.events[len(f.events)-1].Action)
}

func TestReveal(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	k, err := f.m.Reveal(ctx, owner, f.client.View.ID)
	require.NoError(t, err)
	assert.Equal(t, f.client.Key.Reveal(), k.Reveal(), "publishable keys can always be revealed")
	_, err = f.m.Reveal(ctx, owner, f.server.View.ID)
	assert.ErrorIs(t, err, apikey.ErrNotRevealable, "server keys are hashes only by default")
	_, err = f.m.Reveal(ctx, readOnly, f.client.View.ID)
	assert.ErrorIs(t, err, apikey.ErrForbidden, "read-only users only view")
	assert.Equal(t, apikey.ActionReveal, f.events[len(f.events)-1].Action)

	sealer, err := apikey.NewAESGCMSealer(make([]byte, 32))
	require.NoError(t, err)
	sealed := newFixture(t, apikey.ManagerOptions{Sealer: sealer})
	k, err = sealed.m.Reveal(ctx, owner, sealed.server.View.ID)
	require.NoError(t, err)
	assert.Equal(t, sealed.server.Key.Reveal(), k.Reveal(), "sealed server keys can be revealed")
	assert.NotContains(t, sealed.record(t, sealed.server.View.ID).Recoverable.Reveal(), sealed.server.Key.Reveal()[20:], "stored encrypted")

	other, err := apikey.NewAESGCMSealer([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	wrong, err := apikey.NewManager(apikey.ManagerOptions{Store: sealed.store, Sealer: other})
	require.NoError(t, err)
	_, err = wrong.Reveal(ctx, owner, sealed.server.View.ID)
	assert.ErrorIs(t, err, apikey.ErrNotRevealable, "another sealer key cannot open it")
	_, err = apikey.NewAESGCMSealer([]byte("short"))
	assert.Error(t, err)
}

func TestSetScopes(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	scoped, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	view, err := f.m.SetScopes(ctx, owner, scoped.View.ID, []string{"customers:write", "invoices:read"})
	require.NoError(t, err)
	assert.Equal(t, []string{"customers:write", "invoices:read"}, view.Scopes)
	_, err = f.m.SetScopes(ctx, owner, f.server.View.ID, []string{"customers:read"})
	assert.ErrorIs(t, err, apikey.ErrInvalidScope, "the default key keeps every scope")
	_, err = f.m.SetScopes(ctx, owner, f.client.View.ID, []string{"customers:read"})
	assert.ErrorIs(t, err, apikey.ErrInvalidScope)
	assert.Equal(t, apikey.ActionSetScopes, f.events[len(f.events)-1].Action)

	for _, tt := range []struct {
		name   string
		scopes []string
	}{{"a nil list", nil}, {"an empty list", []string{}}} {
		t.Run("never full access from "+tt.name, func(t *testing.T) {
			_, err := f.m.SetScopes(ctx, owner, scoped.View.ID, tt.scopes)
			require.ErrorIs(t, err, apikey.ErrScopesRequired)
			assert.Contains(t, err.Error(), `"*"`, "the error says how to ask for full access")
			assert.Equal(t, []string{"customers:write", "invoices:read"}, f.record(t, scoped.View.ID).Scopes, "scopes unchanged")
		})
	}
	view, err = f.m.SetScopes(ctx, owner, scoped.View.ID, []string{apikey.AllScopes})
	require.NoError(t, err)
	assert.Equal(t, []string{apikey.AllScopes}, view.Scopes, "full access is the explicit scope")
}

func TestSetAllowedOrigins(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	s, err := f.m.SetAllowedOrigins(ctx, owner, apikey.Production, []string{"HTTPS://App.Example.com", "https://*.example.com", "http://localhost:3000"})
	require.NoError(t, err)
	assert.Equal(t, []string{"https://app.example.com", "https://*.example.com", "http://localhost:3000"}, s.AllowedOrigins)
	stored, err := f.m.Settings(ctx, readOnly, apikey.Production)
	require.NoError(t, err)
	assert.Equal(t, s.AllowedOrigins, stored.AllowedOrigins)

	_, err = f.m.SetAllowedOrigins(ctx, owner, apikey.Production, []string{"https://example.com/path"})
	assert.ErrorIs(t, err, apikey.ErrInvalidOrigin)
	_, err = f.m.SetAllowedOrigins(ctx, owner, apikey.Staging, nil)
	assert.ErrorIs(t, err, apikey.ErrUnknownEnvironment)
	e := f.events[len(f.events)-1]
	assert.Equal(t, apikey.ActionSetOrigins, e.Action)
	assert.Equal(t, apikey.Production, e.Environment)
}

// failingStore fails every Apply, to show that a failed audit write is an
// error to the caller, not a silent loss.
type failingStore struct{ *memory.Store }

func (failingStore) Apply(context.Context, apikey.Change) error { return assert.AnError }

func TestStoreErrorsReachTheCaller(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: failingStore{f.store}, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	_, err = m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: f.server.View.ID, ExpireNow: true})
	assert.ErrorIs(t, err, assert.AnError)
	_, err = m.Reveal(ctx, owner, f.client.View.ID)
	assert.ErrorIs(t, err, assert.AnError, "a reveal whose audit event cannot be stored is refused")
}

func TestIsRequestError(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.Revoke(ctx, owner, f.server.View.ID)
	assert.True(t, apikey.IsRequestError(err), "a rule")
	_, err = f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client, Name: strings.Repeat("x", 201)})
	assert.True(t, apikey.IsRequestError(err), "bad input")
	assert.False(t, apikey.IsRequestError(assert.AnError), "a storage failure")
	assert.False(t, apikey.IsRequestError(nil))
}

// TestManagerKeyNames: every Manager method that takes a key id also takes
// the key's displayable prefix, as the management API and keyctl do. A
// prefix of the other type finds nothing, as if the key did not exist; a
// full key or anything else that is not a key id is refused with
// ErrInvalidKeyID before any storage call. No refusal repeats what was
// given, and none changes the key.
func TestManagerKeyNames(t *testing.T) {
	// extra creates a scoped server key that is not a default key.
	extra := func(t *testing.T, f *fixture) apikey.Issued {
		k, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"customers:read"}})
		require.NoError(t, err)
		return k
	}
	methods := []struct {
		name string
		key  func(*testing.T, *fixture) apikey.Issued // the key acted on, in a state where the call succeeds
		call func(f *fixture, keyID string) error
	}{
		{"Get", func(_ *testing.T, f *fixture) apikey.Issued { return f.server },
			func(f *fixture, id string) error { _, err := f.m.Get(ctx, readOnly, id); return err }},
		{"Reveal", func(_ *testing.T, f *fixture) apikey.Issued { return f.client },
			func(f *fixture, id string) error { _, err := f.m.Reveal(ctx, owner, id); return err }},
		{"Rotate", func(_ *testing.T, f *fixture) apikey.Issued { return f.server },
			func(f *fixture, id string) error {
				_, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: id, Grace: time.Hour})
				return err
			}},
		{"ChangeGrace", func(t *testing.T, f *fixture) apikey.Issued {
			_, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: f.server.View.ID, Grace: time.Hour})
			require.NoError(t, err)
			return f.server
		}, func(f *fixture, id string) error {
			_, err := f.m.ChangeGrace(ctx, owner, id, 2*time.Hour, apikey.APIPolicy)
			return err
		}},
		{"Revoke", extra,
			func(f *fixture, id string) error { _, err := f.m.Revoke(ctx, owner, id); return err }},
		{"SetScopes", extra,
			func(f *fixture, id string) error {
				_, err := f.m.SetScopes(ctx, owner, id, []string{"customers:write"})
				return err
			}},
	}
	other := map[apikey.KeyType]apikey.KeyType{apikey.Server: apikey.Client, apikey.Client: apikey.Server}
	names := []struct {
		name string
		of   func(apikey.Key) string
		want error // nil: the call succeeds
	}{
		{"key id", func(k apikey.Key) string { return k.ID() }, nil},
		{"prefix", func(k apikey.Key) string { return k.Prefix() }, nil},
		{"prefix of the other type", func(k apikey.Key) string { return apikey.Prefix(other[k.Type()], k.ID()) }, apikey.ErrNotFound},
		{"unknown key id", func(apikey.Key) string { return "nosuchkey000" }, apikey.ErrNotFound},
		{"unknown prefix", func(k apikey.Key) string { return apikey.Prefix(k.Type(), "nosuchkey000") }, apikey.ErrNotFound},
		{"full key", func(k apikey.Key) string { return k.Reveal() }, apikey.ErrInvalidKeyID},
		{"full key with a wrong checksum", func(k apikey.Key) string { return k.Reveal()[:apikey.KeyLength-1] + "!" }, apikey.ErrInvalidKeyID},
		{"full key without its checksum", func(k apikey.Key) string { return k.Reveal()[:apikey.KeyLength-apikey.ChecksumLength] }, apikey.ErrInvalidKeyID},
		{"id and secret", func(k apikey.Key) string { return k.Reveal()[len("server-"):] }, apikey.ErrInvalidKeyID},
		{"prefix twice", func(k apikey.Key) string { return apikey.Prefix(other[k.Type()], k.Prefix()) }, apikey.ErrInvalidKeyID},
		{"prefix without an id", func(k apikey.Key) string { return string(k.Type()) + "-" }, apikey.ErrInvalidKeyID},
		{"capitalised prefix", func(k apikey.Key) string { return strings.ToUpper(string(k.Type())) + "-" + k.ID() }, apikey.ErrInvalidKeyID},
		{"unknown type", func(k apikey.Key) string { return "secret-" + k.ID() }, apikey.ErrInvalidKeyID},
		{"short id", func(k apikey.Key) string { return k.ID()[1:] }, apikey.ErrInvalidKeyID},
		{"long id", func(k apikey.Key) string { return k.ID() + "0" }, apikey.ErrInvalidKeyID},
		{"symbol in id", func(k apikey.Key) string { return k.ID()[:11] + "%" }, apikey.ErrInvalidKeyID},
		{"space around id", func(k apikey.Key) string { return " " + k.ID() }, apikey.ErrInvalidKeyID},
		{"non-ASCII id", func(k apikey.Key) string { return k.ID()[:10] + "é" }, apikey.ErrInvalidKeyID},
		{"path", func(k apikey.Key) string { return "../" + k.ID() }, apikey.ErrInvalidKeyID},
	}
	for _, method := range methods {
		for _, name := range names {
			t.Run(method.name+"/"+name.name, func(t *testing.T) {
				f := newFixture(t, apikey.ManagerOptions{})
				k := method.key(t, f)
				before := f.record(t, k.View.ID)
				given := name.of(k.Key)
				err := method.call(f, given)
				if name.want == nil {
					require.NoError(t, err, "%s by %s", method.name, name.name)
					return
				}
				require.ErrorIs(t, err, name.want)
				assert.True(t, apikey.IsRequestError(err))
				assert.NotContains(t, err.Error(), k.Key.Reveal()[apikey.PrefixLength:apikey.PrefixLength+16], "never a piece of the secret")
				if len(given) >= apikey.IDLength {
					assert.NotContains(t, err.Error(), given, "never what was given")
				}
				after := f.record(t, k.View.ID)
				assert.Equal(t, before.Revision, after.Revision, "the key is unchanged")
				assert.Equal(t, before.View(f.clock.Now()), after.View(f.clock.Now()))
			})
		}
	}
}
