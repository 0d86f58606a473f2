package apikey_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/fakeclock"
	"github.com/keystile/keystile/storage/memory"
)

// roleFixture is a Manager whose account "acme" has a production
// environment named "live" (ManagerOptions.Production) and a staging
// environment, with sealed server keys so that reveals can succeed.
type roleFixture struct {
	m     *apikey.Manager
	clock *fakeclock.Clock
	mu    sync.Mutex
	by    map[string]int // audit events by actor id
}

// The environments of the role table: "live" is production by the
// service's choice, "staging" is not.
const (
	liveEnv    = "live"
	stagingEnv = apikey.Staging
)

func newRoleFixture(t *testing.T) *roleFixture {
	t.Helper()
	f := &roleFixture{clock: fakeclock.New(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)), by: map[string]int{}}
	sealer, err := apikey.NewAESGCMSealer(make([]byte, 32))
	require.NoError(t, err)
	f.m, err = apikey.NewManager(apikey.ManagerOptions{
		Store: memory.New(), Now: f.clock.Now, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Sealer: sealer,
		OnEvent:    func(e apikey.Event) { f.mu.Lock(); f.by[e.Actor.ID]++; f.mu.Unlock() },
		Production: func(account, environment string) bool { return account == "acme" && environment == liveEnv },
	})
	require.NoError(t, err)
	for _, env := range []string{liveEnv, stagingEnv} {
		_, err := f.m.Bootstrap(ctx, acmeAs(apikey.Owner), env)
		require.NoError(t, err)
	}
	return f
}

// eventsBy returns how many audit events the actor with id recorded.
func (f *roleFixture) eventsBy(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.by[id]
}

func acmeAs(r apikey.Role) apikey.Actor {
	return apikey.Actor{ID: "user-" + string(r), Role: r, Account: "acme"}
}

// extra creates, as an owner, a key of env and typ that is not a default
// key, issued to owner "u1".
func (f *roleFixture) extra(t *testing.T, env string, typ apikey.KeyType) apikey.Issued {
	t.Helper()
	var scopes []string
	if typ == apikey.Server {
		scopes = []string{"orders:read"}
	}
	k, err := f.m.Create(ctx, acmeAs(apikey.Owner), apikey.CreateRequest{Environment: env, Type: typ, Scopes: scopes, Owner: "u1",
		ExpiresAt: f.clock.Now().Add(24 * time.Hour)})
	require.NoError(t, err)
	return k
}

// TestRoles is the role × action matrix (docs/concepts.md): every role
// against every action of the Manager, in a production and a
// non-production environment and on server and publishable keys where
// that matters. An allowed action succeeds; a refused one fails with
// ErrForbidden, says who may not do what and why, and records nothing.
func TestRoles(t *testing.T) {
	owner := apikey.Owner
	quota := apikey.Limits{Quota: apikey.Quota{Limit: 10}}
	both := []apikey.KeyType{apikey.Server, apikey.Client}
	// member is what members may do: "yes", "non-production" (outside
	// production environments), "client" (on publishable keys only) or
	// "no". Owners may do everything; read-only users only view.
	rows := []struct {
		name     string
		action   apikey.Action
		member   string
		types    []apikey.KeyType // nil: the action acts on no key
		envs     bool             // it acts in one environment
		operator bool             // the actor acts across accounts
		do       func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error
	}{
		{"view", apikey.ActionView, "yes", nil, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, _ apikey.KeyType) error {
			k := f.extra(t, env, apikey.Server)
			for _, read := range []func() error{
				func() error { _, err := f.m.List(ctx, a, env, apikey.Page{}); return err },
				func() error { _, err := f.m.Get(ctx, a, k.View.ID); return err },
				func() error { _, err := f.m.Settings(ctx, a, env); return err },
				func() error { _, err := f.m.Environments(ctx, a, apikey.Page{}); return err },
				func() error { _, err := f.m.OwnerKeys(ctx, a, "u1", apikey.Page{}); return err },
				func() error { _, err := f.m.OwnerLimits(ctx, a, "u1"); return err },
				func() error {
					_, err := f.m.Expiring(ctx, a, apikey.ExpiringRequest{Environment: env, Within: 48 * time.Hour}, apikey.Page{})
					return err
				},
				func() error {
					_, err := f.m.Usage(ctx, a, apikey.UsageRequest{Environment: env, From: f.clock.Now().Add(-time.Hour), To: f.clock.Now()}, apikey.Page{})
					return err
				},
			} {
				if err := read(); err != nil {
					return err
				}
			}
			return nil
		}},
		{"create", apikey.ActionCreate, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			var scopes []string
			if typ == apikey.Server {
				scopes = []string{"orders:read"}
			}
			_, err := f.m.Create(ctx, a, apikey.CreateRequest{Environment: env, Type: typ, Scopes: scopes})
			return err
		}},
		{"rotate", apikey.ActionRotate, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.Rotate(ctx, a, apikey.RotateRequest{KeyID: f.extra(t, env, typ).View.ID, Grace: time.Hour})
			return err
		}},
		{"rotate the default key", apikey.ActionRotate, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.Rotate(ctx, a, apikey.RotateRequest{Environment: env, Type: typ, Grace: time.Hour})
			return err
		}},
		{"change grace", apikey.ActionChangeGrace, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			k := f.extra(t, env, typ)
			_, err := f.m.Rotate(ctx, acmeAs(owner), apikey.RotateRequest{KeyID: k.View.ID, Grace: time.Hour})
			require.NoError(t, err)
			_, err = f.m.ChangeGrace(ctx, a, k.View.ID, 2*time.Hour, apikey.APIPolicy)
			return err
		}},
		{"revoke", apikey.ActionRevoke, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.Revoke(ctx, a, f.extra(t, env, typ).View.ID)
			return err
		}},
		{"set scopes", apikey.ActionSetScopes, "non-production", []apikey.KeyType{apikey.Server}, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.SetScopes(ctx, a, f.extra(t, env, typ).View.ID, []string{"orders:write"})
			return err
		}},
		{"set owner", apikey.ActionSetOwner, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.SetOwner(ctx, a, f.extra(t, env, typ).View.ID, "u2")
			return err
		}},
		{"set metadata", apikey.ActionSetMetadata, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.SetMetadata(ctx, a, f.extra(t, env, typ).View.ID, map[string]string{"team": "web"})
			return err
		}},
		{"set limits", apikey.ActionSetLimits, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.SetLimits(ctx, a, f.extra(t, env, typ).View.ID, quota)
			return err
		}},
		{"disable", apikey.ActionDisable, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.Disable(ctx, a, f.extra(t, env, typ).View.ID)
			return err
		}},
		{"enable", apikey.ActionEnable, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			k := f.extra(t, env, typ)
			_, err := f.m.Disable(ctx, acmeAs(owner), k.View.ID)
			require.NoError(t, err)
			_, err = f.m.Enable(ctx, a, k.View.ID)
			return err
		}},
		{"rename", apikey.ActionRename, "non-production", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			_, err := f.m.Rename(ctx, a, f.extra(t, env, typ).View.ID, "renamed")
			return err
		}},
		{"reveal", apikey.ActionReveal, "client", both, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, typ apikey.KeyType) error {
			k := f.extra(t, env, typ)
			got, err := f.m.Reveal(ctx, a, k.View.ID)
			if err == nil {
				assert.Equal(t, k.Key.Reveal(), got.Reveal(), "the key revealed is the key issued")
			}
			return err
		}},
		{"create an environment", apikey.ActionBootstrap, "no", nil, false, false, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			_, err := f.m.Bootstrap(ctx, a, apikey.Development)
			return err
		}},
		{"set allowed origins", apikey.ActionSetOrigins, "no", nil, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, _ apikey.KeyType) error {
			_, err := f.m.SetAllowedOrigins(ctx, a, env, []string{"https://app.example.com"})
			return err
		}},
		{"set the lifetime policy", apikey.ActionSetLifetime, "no", nil, true, false, func(t *testing.T, f *roleFixture, a apikey.Actor, env string, _ apikey.KeyType) error {
			_, err := f.m.SetLifetimePolicy(ctx, a, env, apikey.LifetimePolicy{MaxLifetime: 90 * 24 * time.Hour})
			return err
		}},
		{"set owner limits", apikey.ActionSetOwnerLimits, "no", nil, false, false, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			f.extra(t, stagingEnv, apikey.Server)
			_, err := f.m.SetOwnerLimits(ctx, a, "u1", quota)
			return err
		}},
		{"revoke an owner's keys", apikey.ActionRevokeOwner, "no", nil, false, false, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			f.extra(t, stagingEnv, apikey.Server)
			_, err := f.m.RevokeOwner(ctx, a, "u1")
			return err
		}},
		{"close the account", apikey.ActionClose, "no", nil, false, false, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			_, err := f.m.CloseAccount(ctx, a, "acme")
			return err
		}},
		{"list accounts", apikey.ActionView, "yes", nil, false, true, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			_, err := f.m.Accounts(ctx, a, apikey.Page{})
			return err
		}},
		{"import", apikey.ActionImport, "no", nil, false, true, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			_, err := f.m.Import(ctx, a, apikey.ImportRequest{Account: "acme", Environment: stagingEnv, Type: apikey.Server,
				Digest: apikey.ImportDigest(oldKey), Scopes: []string{"orders:read"}})
			return err
		}},
		{"suspend the account", apikey.ActionSuspend, "no", nil, false, true, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			return f.m.SuspendAccount(ctx, a, "acme")
		}},
		{"resume the account", apikey.ActionResume, "no", nil, false, true, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			require.NoError(t, f.m.SuspendAccount(ctx, apikey.Actor{ID: "ops", Role: owner, Account: apikey.AnyAccount}, "acme"))
			return f.m.ResumeAccount(ctx, a, "acme")
		}},
		{"purge", apikey.ActionPurge, "no", nil, false, true, func(t *testing.T, f *roleFixture, a apikey.Actor, _ string, _ apikey.KeyType) error {
			_, err := f.m.Purge(ctx, a, time.Hour)
			return err
		}},
	}
	covered := map[apikey.Action]bool{}
	for _, row := range rows {
		covered[row.action] = true
		envs := []string{""}
		if row.envs {
			envs = []string{liveEnv, stagingEnv}
		}
		types := row.types
		if types == nil {
			types = []apikey.KeyType{""}
		}
		for _, env := range envs {
			for _, typ := range types {
				for _, role := range []apikey.Role{apikey.Owner, apikey.Member, apikey.ReadOnly, "admin", ""} {
					name := strings.Join(strings.Fields(strings.Join([]string{row.name, env, string(typ), "as", string(role)}, " ")), " ")
					t.Run(name, func(t *testing.T) {
						f := newRoleFixture(t)
						a := acmeAs(role)
						if row.operator {
							a.Account = apikey.AnyAccount
						}
						prod := env == liveEnv
						allowed := role == apikey.Owner || row.member == "yes" && role.Valid()
						if role == apikey.Member {
							switch row.member {
							case "non-production":
								allowed = !prod
							case "client":
								allowed = typ == apikey.Client
							}
						}
						assert.Equal(t, allowed, role.Permits(row.action, apikey.Target{Environment: env, Production: prod, Type: typ}) == nil,
							"Role.Permits agrees with the Manager")

						err := row.do(t, f, a, env, typ)
						if allowed {
							require.NoError(t, err)
							return
						}
						require.ErrorIs(t, err, apikey.ErrForbidden)
						assert.Zero(t, f.eventsBy(a.ID), "a refused action records nothing")
						switch {
						case !role.Valid():
							assert.ErrorContains(t, err, "unknown role")
						case role == apikey.ReadOnly:
							assert.ErrorContains(t, err, "read-only users may not")
							assert.ErrorContains(t, err, "they only view")
						case row.member == "non-production":
							assert.ErrorContains(t, err, `members may not `)
							assert.ErrorContains(t, err, ` in production environment "live"`)
						case row.member == "client":
							assert.ErrorContains(t, err, "members may not reveal server keys")
						default:
							assert.ErrorContains(t, err, "members may not ")
							assert.ErrorContains(t, err, "only owners")
						}
					})
				}
			}
		}
	}
	for _, a := range []apikey.Action{apikey.ActionView, apikey.ActionBootstrap, apikey.ActionCreate, apikey.ActionRotate,
		apikey.ActionChangeGrace, apikey.ActionRevoke, apikey.ActionSetScopes, apikey.ActionSetOrigins, apikey.ActionReveal,
		apikey.ActionSetOwner, apikey.ActionSetMetadata, apikey.ActionSetLimits, apikey.ActionClose, apikey.ActionImport,
		apikey.ActionDisable, apikey.ActionEnable, apikey.ActionSuspend, apikey.ActionResume, apikey.ActionSetLifetime,
		apikey.ActionRename, apikey.ActionRevokeOwner, apikey.ActionSetOwnerLimits, apikey.ActionPurge} {
		assert.True(t, covered[a], "the table covers %s", a)
	}
}

// TestProductionDefault: without ManagerOptions.Production, the
// environment named "production" is the one production environment of
// every account.
func TestProductionDefault(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.Bootstrap(ctx, owner, apikey.Staging)
	require.NoError(t, err)
	assert.True(t, f.m.Production(apikey.DefaultAccount, apikey.Production))
	assert.True(t, f.m.Production("acme", apikey.Production))
	assert.False(t, f.m.Production(apikey.DefaultAccount, apikey.Staging))
	assert.False(t, f.m.Production(apikey.DefaultAccount, "live"))

	_, err = f.m.Rotate(ctx, member, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, Grace: time.Hour})
	require.ErrorIs(t, err, apikey.ErrForbidden)
	assert.ErrorContains(t, err, `members may not rotate keys in production environment "production"`)
	_, err = f.m.Rotate(ctx, member, apikey.RotateRequest{Environment: apikey.Staging, Type: apikey.Client, Grace: time.Hour})
	require.NoError(t, err)
}
