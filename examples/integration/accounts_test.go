package integration_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/memory"
	"github.com/keystile/keystile/storage/sqlstore"
)

// fullStore is what both the SQL store and the memory store implement.
type fullStore interface {
	apikey.Store
	storage.ChangeFeed
	storage.AuditLog
}

// TestAccountsLikeMemory makes the same changes to a SQL store and to the
// memory store (the reference implementation of the contract), including
// changes that must fail, and then asks both the same questions: every
// lookup, page and list of the accounts contract, with cursors before,
// inside and after each account. The answers must be the same.
func TestAccountsLikeMemory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		stores := []fullStore{memory.New(), b.store(t, dsn, sqlstore.Options{})}
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
		actor := func(account string) apikey.Actor {
			return apikey.Actor{ID: "alice", Role: apikey.Owner, Account: account}
		}
		key := func(id, account, env string, t apikey.KeyType, def bool, created time.Time) apikey.Record {
			r := apikey.Record{ID: id, Account: account, Type: t, Environment: env, Name: "key " + id, Default: def,
				CreatedAt: created, CreatedBy: "alice", Hash: apikey.NewOpaque("hash-" + id)}
			if t == apikey.Server {
				r.Scopes = []string{apikey.AllScopes}
			}
			return r
		}
		event := func(a apikey.Action, r apikey.Record, when time.Time, detail string) apikey.Event {
			return apikey.Event{Time: when, Actor: actor(r.Account), Action: a, Account: r.Account,
				Environment: r.Environment, KeyID: r.ID, KeyType: r.Type, Detail: detail}
		}
		// apply makes the change that change builds from each store's
		// current state, and wants the same outcome from both.
		apply := func(name string, want error, change func(s fullStore) apikey.Change) {
			t.Helper()
			for _, s := range stores {
				err := s.Apply(ctx, change(s))
				if want == nil {
					require.NoError(t, err, name)
				} else {
					require.ErrorIs(t, err, want, name)
				}
			}
		}
		read := func(s fullStore, id string) apikey.Record {
			r, err := s.Key(ctx, id)
			require.NoError(t, err)
			return r
		}
		readSettings := func(s fullStore, account, env string) apikey.Settings {
			st, err := s.Settings(ctx, account, env)
			require.NoError(t, err)
			return st
		}

		// Three accounts; two share the environment names production and
		// staging.
		envs := []struct{ account, env string }{
			{"acme", "production"}, {"acme", "staging"}, {"globex", "production"},
			{apikey.DefaultAccount, "production"}, {"globex", "zeta"},
		}
		for i, e := range envs {
			srv := key(fmt.Sprintf("srv%09d", i), e.account, e.env, apikey.Server, true, at(i))
			cli := key(fmt.Sprintf("cli%09d", i), e.account, e.env, apikey.Client, true, at(i))
			apply("bootstrap "+e.account+"/"+e.env, nil, func(fullStore) apikey.Change {
				return apikey.Change{
					Settings: []apikey.Settings{{Account: e.account, Environment: e.env, UpdatedAt: at(i),
						AllowedOrigins: []string{"https://" + e.account + ".example.com"}}},
					Insert: []apikey.Record{srv, cli},
					Events: []apikey.Event{event(apikey.ActionBootstrap, srv, at(i), ""), event(apikey.ActionBootstrap, cli, at(i), "")},
				}
			})
		}

		// Extra keys in acme/production: two created at the same time (the
		// id breaks the tie), one created before the default keys, with
		// owners and metadata (one an empty map).
		extra := []apikey.Record{
			key("extb00000001", "acme", "production", apikey.Server, false, at(10)),
			key("extA00000002", "acme", "production", apikey.Server, false, at(10)),
			key("extc00000003", "acme", "production", apikey.Client, false, at(-5)),
		}
		extra[0].Owner, extra[0].Metadata, extra[0].Scopes = "user_42", map[string]string{"team": "billing", "tier": "gold"}, []string{"orders:read"}
		extra[1].Metadata, extra[1].ExpiresAt = map[string]string{}, at(3600)
		apply("create extra keys", nil, func(fullStore) apikey.Change {
			c := apikey.Change{Insert: extra}
			for _, r := range extra {
				c.Events = append(c.Events, event(apikey.ActionCreate, r, at(10), "no expiry"))
			}
			return c
		})

		// Failures, the same in both stores.
		apply("a second default in an account's environment", apikey.ErrConflict, func(fullStore) apikey.Change {
			return apikey.Change{Insert: []apikey.Record{key("dup000000001", "acme", "production", apikey.Server, true, at(20))}}
		})
		apply("a duplicate id, in another account", apikey.ErrConflict, func(fullStore) apikey.Change {
			return apikey.Change{Insert: []apikey.Record{key("srv000000000", "globex", "staging", apikey.Server, false, at(20))}}
		})
		apply("settings of an environment that has them", apikey.ErrConflict, func(fullStore) apikey.Change {
			return apikey.Change{Settings: []apikey.Settings{{Account: "acme", Environment: "staging", UpdatedAt: at(20)}}}
		})
		apply("settings read at another revision", apikey.ErrConflict, func(s fullStore) apikey.Change {
			st := readSettings(s, "globex", "production")
			st.Revision++
			return apikey.Change{Settings: []apikey.Settings{st}}
		})
		apply("settings updated where there are none", apikey.ErrConflict, func(s fullStore) apikey.Change {
			st := readSettings(s, "globex", "production")
			st.Account = "initech"
			return apikey.Change{Settings: []apikey.Settings{st}}
		})
		apply("an update of a missing key", apikey.ErrNotFound, func(fullStore) apikey.Change {
			r := key("missing00001", "acme", "production", apikey.Server, false, at(20))
			r.Revision = 1
			return apikey.Change{Update: []apikey.Record{r}}
		})
		apply("an update of a key read at another revision", apikey.ErrConflict, func(s fullStore) apikey.Change {
			r := read(s, "extb00000001")
			r.Revision++
			return apikey.Change{Update: []apikey.Record{r}}
		})

		// Rotate acme/production's default server key: the new default is
		// inserted in the change that clears the old one.
		apply("rotate", nil, func(s fullStore) apikey.Change {
			old, err := s.DefaultKey(ctx, "acme", "production", apikey.Server)
			require.NoError(t, err)
			old.Default, old.RotatedAt, old.ExpiresAt = false, at(30), at(30+3600)
			fresh := key("rot000000001", "acme", "production", apikey.Server, true, at(30))
			fresh.Owner, fresh.Metadata = old.Owner, old.Metadata
			return apikey.Change{Update: []apikey.Record{old}, Insert: []apikey.Record{fresh},
				Events: []apikey.Event{event(apikey.ActionRotate, old, at(30), "replaced"), event(apikey.ActionCreate, fresh, at(30), "replaces")}}
		})
		apply("owner, metadata and revocation", nil, func(s fullStore) apikey.Change {
			a, c := read(s, "extb00000001"), read(s, "extc00000003")
			a.Owner, a.Metadata = "user_43", map[string]string{"team": "payments"}
			c.RevokedAt = at(40)
			return apikey.Change{Update: []apikey.Record{a, c},
				Events: []apikey.Event{event(apikey.ActionSetOwner, a, at(40), ""), event(apikey.ActionRevoke, c, at(40), "")}}
		})
		apply("close globex/production", nil, func(s fullStore) apikey.Change {
			st := readSettings(s, "globex", "production")
			st.ClosedAt, st.UpdatedAt = at(50), at(50)
			return apikey.Change{Settings: []apikey.Settings{st}, Events: []apikey.Event{{Time: at(50),
				Actor: apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}, Action: apikey.ActionClose,
				Account: "globex", Environment: "production"}}}
		})

		// Now ask both the same questions.
		ask := func(what string, q func(s fullStore) (any, error)) {
			t.Helper()
			want, wantErr := q(stores[0])
			got, gotErr := q(stores[1])
			if wantErr != nil {
				require.Error(t, gotErr, what)
				for _, sentinel := range []error{apikey.ErrNotFound, apikey.ErrInvalidCursor} {
					assert.Equal(t, errors.Is(wantErr, sentinel), errors.Is(gotErr, sentinel), "%s: %v", what, sentinel)
				}
				return
			}
			require.NoError(t, gotErr, what)
			assert.Equal(t, comparable(want), comparable(got), what)
		}
		ids := []string{"missing00001", "extb00000001", "extA00000002", "extc00000003", "rot000000001"}
		for i := range envs {
			ids = append(ids, fmt.Sprintf("srv%09d", i), fmt.Sprintf("cli%09d", i))
		}
		for _, id := range ids {
			ask("Key "+id, func(s fullStore) (any, error) { return s.Key(ctx, id) })
		}
		accounts := []string{"", "acme", "acmf", "default", "globex", "initech", "zzz"}
		envNames := []string{"", "production", "staging", "zeta", "zz"}
		for _, a := range accounts {
			for _, e := range envNames {
				for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
					ask(fmt.Sprintf("DefaultKey %s/%s/%s", a, e, typ), func(s fullStore) (any, error) {
						return s.DefaultKey(ctx, a, e, typ)
					})
				}
				ask(fmt.Sprintf("Settings %s/%s", a, e), func(s fullStore) (any, error) { return s.Settings(ctx, a, e) })
				positions := []apikey.KeyPosition{{}, {CreatedAt: at(-5), ID: "extc00000003"}, {CreatedAt: at(0)},
					{CreatedAt: at(10), ID: "extA00000002"}, {CreatedAt: at(10), ID: "extb00000001"}, {CreatedAt: at(31)}}
				for _, after := range positions {
					for _, limit := range []int{0, 1, 2, 100} {
						q := apikey.KeyQuery{Account: a, Environment: e, After: after, Limit: limit}
						ask(fmt.Sprintf("Keys %+v", q), func(s fullStore) (any, error) { return s.Keys(ctx, q) })
					}
				}
			}
		}
		for _, a := range accounts {
			for _, afterAccount := range accounts {
				for _, afterEnv := range envNames {
					for _, limit := range []int{0, 1, 2, 100} {
						q := apikey.EnvironmentQuery{Account: a, After: apikey.EnvironmentPosition{Account: afterAccount, Environment: afterEnv}, Limit: limit}
						ask(fmt.Sprintf("Environments %+v", q), func(s fullStore) (any, error) { return s.Environments(ctx, q) })
					}
				}
			}
			for _, limit := range []int{0, 1, 2, 100} {
				ask(fmt.Sprintf("Accounts %q %d", a, limit), func(s fullStore) (any, error) { return s.Accounts(ctx, a, limit) })
			}
		}
		for _, a := range accounts {
			for _, e := range envNames {
				for _, before := range []int64{0, 1, 5, 12, 100} {
					for _, limit := range []int{0, 1, 3} {
						q := storage.EventQuery{Account: a, Environment: e, Before: before, Limit: limit}
						ask(fmt.Sprintf("Events %+v", q), func(s fullStore) (any, error) { return s.Events(ctx, q) })
					}
				}
			}
		}
		for _, since := range []int64{0, 3, 14} {
			ask(fmt.Sprintf("Changes %d", since), func(s fullStore) (any, error) {
				c, next, err := s.Changes(ctx, since, 5)
				return []any{comparable(c), next}, err
			})
		}
		all, _, err := stores[1].Changes(ctx, 0, 0)
		require.NoError(t, err)
		for _, c := range all {
			assert.NotEmpty(t, c.Account, "feed entry %d names its account", c.Revision)
		}
	})
}

// comparable replaces the Opaque hashes and recoverable copies of records,
// which compare only with Opaque.Equal, by what they hold.
func comparable(v any) any {
	type record struct {
		apikey.Record
		Hash, Recoverable string
	}
	conv := func(r apikey.Record) record {
		out := record{Record: r, Hash: r.Hash.Reveal(), Recoverable: string(r.Recoverable.Bytes())}
		out.Record.Hash, out.Record.Recoverable = apikey.Opaque{}, apikey.Opaque{}
		return out
	}
	switch v := v.(type) {
	case apikey.Record:
		return conv(v)
	case []apikey.Record:
		out := make([]record, len(v))
		for i, r := range v {
			out[i] = conv(r)
		}
		return out
	case []storage.Changed:
		type change struct {
			storage.Changed
			Key *record // the entry's record, compared by value
		}
		out := make([]change, len(v))
		for i, c := range v {
			out[i].Changed = c
			out[i].Changed.Key = nil
			if c.Key != nil {
				r := conv(*c.Key)
				out[i].Key = &r
			}
		}
		return out
	}
	return v
}

// TestConcurrentRotationAcrossAccounts rotates the default server keys of
// two accounts' environments of the same name at once, from several pools
// (processes, as far as the database can tell): every rotation succeeds
// (the Manager retries lost races), and each account's environment ends
// with exactly one default key of each type, the newest.
func TestConcurrentRotationAcrossAccounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		const pools, rotations = 4, 5
		accounts := []string{"acme", "globex"}
		managers := make([]*apikey.Manager, pools)
		for i := range managers {
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: b.store(t, dsn, sqlstore.Options{}), Hasher: testHasher})
			require.NoError(t, err)
			managers[i] = m
		}
		for _, a := range accounts {
			_, err := managers[0].Bootstrap(ctx, apikey.Actor{ID: "alice", Role: apikey.Owner, Account: a}, apikey.Production)
			require.NoError(t, err)
		}
		var wg sync.WaitGroup
		for i, m := range managers {
			for _, a := range accounts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					actor := apikey.Actor{ID: fmt.Sprintf("pool%d", i), Role: apikey.Owner, Account: a}
					for range rotations {
						_, err := m.Rotate(ctx, actor, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Server, Grace: time.Hour})
						assert.NoError(t, err)
					}
				}()
			}
		}
		wg.Wait()

		s := b.store(t, dsn, sqlstore.Options{})
		for _, a := range accounts {
			keys, err := s.Keys(ctx, apikey.KeyQuery{Account: a, Environment: apikey.Production, Limit: 1000})
			require.NoError(t, err)
			require.Len(t, keys, 2+pools*rotations, "the bootstrap's two keys and one per rotation")
			defaults := map[apikey.KeyType][]string{}
			var newestServer apikey.Record
			for _, k := range keys {
				assert.Equal(t, a, k.Account)
				if k.Default {
					defaults[k.Type] = append(defaults[k.Type], k.ID)
				}
				if k.Type == apikey.Server && k.RotatedAt.IsZero() {
					newestServer = k
				}
			}
			assert.Len(t, defaults[apikey.Server], 1, "one default server key in %s", a)
			assert.Len(t, defaults[apikey.Client], 1, "one default publishable key in %s", a)
			def, err := s.DefaultKey(ctx, a, apikey.Production, apikey.Server)
			require.NoError(t, err)
			assert.Equal(t, newestServer.ID, def.ID, "the default is the one server key never rotated out")
		}
	})
}
