package integration_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/pgtest"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/sqlstore"
)

// The migration tests upgrade databases that the code before accounts
// (schema version 1) created and filled, with keys in every state:
//
//   - testdata/v1.sqlite: a SQLite file, as that code left it;
//   - testdata/v1-postgres.sql: the rows of a PostgreSQL database of that
//     code (pg_dump --data-only --inserts), applied to the version-1
//     statements of storage/sqlstore/schema.go;
//   - testdata/v1-*-keys.json: the full keys of each, by role (test
//     fixtures hashed with apikey.TestParams, not secrets), to present
//     them to a Validator after the upgrade.

// fixtureNow is the clock of the migration tests: after the fixtures were
// made (2026-11-25) and before the rotated-out publishable key's grace ends
// (2027-09-21).
var fixtureNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// v1SQLite copies testdata/v1.sqlite (never migrated itself) to a temporary
// file and returns its DSN.
func v1SQLite(t *testing.T) string {
	data, err := os.ReadFile(filepath.Join("testdata", "v1.sqlite"))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "keystile.db")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return "file:" + path + "?" + sqliteParams
}

// v1Postgres creates a fresh schema with the version-1 tables of
// storage/sqlstore and the rows of testdata/v1-postgres.sql, and returns
// its DSN.
func v1Postgres(t *testing.T) string {
	ctx := context.Background()
	dsn := pgtest.FreshSchema(t, "keystile_test")
	db := postgresBackend.open(t, dsn)
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	for _, stmt := range version1Statements(t, "Postgres") {
		_, err := tx.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	// The dump holds the revision counter's row, which version 1 created
	// with the value 0.
	_, err = tx.ExecContext(ctx, "DELETE FROM keystile_revision")
	require.NoError(t, err)
	rows, err := os.ReadFile(filepath.Join("testdata", "v1-postgres.sql"))
	require.NoError(t, err)
	for stmt := range strings.SplitSeq(strings.TrimSpace(string(rows)), ";\n") {
		_, err := tx.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	require.NoError(t, tx.Commit())
	return dsn
}

// version1Statements returns what Migrate ran on a new database before
// accounts, read from storage/sqlstore/schema.go, where version 1 stays as
// it was released: the schema_migrations table (migrationsTable) and the
// statements of version 1 of the dialect named by its identifier.
func version1Statements(t *testing.T, dialect string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join("..", "..", "storage", "sqlstore", "schema.go"), nil, 0)
	require.NoError(t, err)
	str := func(e ast.Expr) string {
		lit, ok := e.(*ast.BasicLit)
		require.True(t, ok && lit.Kind == token.STRING, "a string literal")
		s, err := strconv.Unquote(lit.Value)
		require.NoError(t, err)
		return s
	}
	values := map[string]ast.Expr{}
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok {
			for _, spec := range g.Specs {
				if v, ok := spec.(*ast.ValueSpec); ok && len(v.Values) == len(v.Names) {
					for i, name := range v.Names {
						values[name.Name] = v.Values[i]
					}
				}
			}
		}
	}
	out := []string{str(values["migrationsTable"])}
	byDialect, ok := values["migrations"].(*ast.CompositeLit)
	require.True(t, ok, "migrations is a map literal")
	for _, elt := range byDialect.Elts {
		kv := elt.(*ast.KeyValueExpr)
		if id, ok := kv.Key.(*ast.Ident); !ok || id.Name != dialect {
			continue
		}
		versions := kv.Value.(*ast.CompositeLit)
		for _, v := range versions.Elts {
			fields := map[string]ast.Expr{}
			for _, field := range v.(*ast.CompositeLit).Elts {
				kv := field.(*ast.KeyValueExpr)
				fields[kv.Key.(*ast.Ident).Name] = kv.Value
			}
			if n, ok := fields["version"].(*ast.BasicLit); !ok || n.Value != "1" {
				continue
			}
			for _, stmt := range fields["statements"].(*ast.CompositeLit).Elts {
				out = append(out, str(stmt))
			}
			return out
		}
	}
	t.Fatalf("no version 1 for %s in schema.go", dialect)
	return nil
}

// fixtureKeys reads a fixture's full keys, by role.
func fixtureKeys(t *testing.T, name string) map[string]apikey.Key {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var raw map[string]string
	require.NoError(t, json.Unmarshal(data, &raw))
	keys := map[string]apikey.Key{}
	for role, s := range raw {
		k, err := apikey.ParseKey(s)
		require.NoError(t, err, role)
		keys[role] = k
	}
	require.Len(t, keys, 7)
	return keys
}

// v1Tables are the tables of version 1 and the columns it gave them, in a
// stable order.
var v1Tables = []struct{ name, columns, order string }{
	{"keystile_keys", `id, type, environment, name, scopes, is_default, created_at, created_by, expires_at,
		rotated_at, expiry_limit, revoked_at, last_used_at, hash, recoverable, revision`, "id"},
	{"keystile_settings", "environment, allowed_origins, updated_at, revision", "environment"},
	{"keystile_events", "seq, occurred_at, actor_id, actor_role, action, environment, key_id, detail", "seq"},
	{"keystile_changes", "revision, environment, key_id", "revision"},
	{"keystile_revision", "id, value", "id"},
}

// dumpV1 returns the rows of every table of version 1, its columns only,
// as text.
func dumpV1(t *testing.T, db *sql.DB) map[string][]string {
	out := map[string][]string{}
	for _, table := range v1Tables {
		rows, err := db.Query("SELECT " + table.columns + " FROM " + table.name + " ORDER BY " + table.order)
		require.NoError(t, err)
		cols, err := rows.Columns()
		require.NoError(t, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = string(b)
				}
			}
			out[table.name] = append(out[table.name], fmt.Sprintf("%v", vals))
		}
		require.NoError(t, rows.Err())
		rows.Close()
	}
	return out
}

// TestMigrateVersion1 upgrades each engine's version-1 database and checks
// that nothing was lost and everything works: every row joined the default
// account; keys (rotated, revoked, scoped, last used), settings (origins),
// audit events and the change feed are as they were; event key types were
// filled in from the keys; the fixture's keys still validate through a
// middleware.Validator, or are refused, as their state says; the default
// keys are found by index; a new key can be created and a default rotated,
// the new events continuing the old sequence; another account can use the
// same environment names; and Migrate again changes nothing.
func TestMigrateVersion1(t *testing.T) {
	fixtures := []struct {
		backend backend
		dsn     func(t *testing.T) string
		keys    string
	}{
		{sqliteBackend, v1SQLite, "v1-sqlite-keys.json"},
		{postgresBackend, v1Postgres, "v1-postgres-keys.json"},
	}
	for _, f := range fixtures {
		t.Run(f.backend.name, func(t *testing.T) {
			ctx := context.Background()
			keys := fixtureKeys(t, f.keys)
			db := f.backend.open(t, f.dsn(t))
			t.Cleanup(func() { db.Close() })
			var version int
			require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
			require.Equal(t, 1, version, "the fixture is a version-1 database")
			before := dumpV1(t, db)
			require.Len(t, before["keystile_keys"], 7)
			require.Len(t, before["keystile_events"], 10)

			s, err := sqlstore.New(db, sqlstore.Options{Dialect: f.backend.dialect})
			require.NoError(t, err)
			require.NoError(t, s.Migrate(ctx))

			// Nothing of version 1 changed, and every row joined the default
			// account.
			assert.Equal(t, before, dumpV1(t, db), "the rows of version 1")
			for _, table := range []string{"keystile_keys", "keystile_settings", "keystile_events", "keystile_changes"} {
				var total, inDefault int
				require.NoError(t, db.QueryRow("SELECT COUNT(*), COUNT(CASE WHEN account = 'default' THEN 1 END) FROM "+table).
					Scan(&total, &inDefault))
				assert.Equal(t, len(before[table]), total, table)
				assert.Equal(t, total, inDefault, "every row of %s is in the default account", table)
			}
			var versions []int
			rows, err := db.Query("SELECT version FROM keystile_schema_migrations ORDER BY version")
			require.NoError(t, err)
			for rows.Next() {
				var v int
				require.NoError(t, rows.Scan(&v))
				versions = append(versions, v)
			}
			require.NoError(t, rows.Err())
			assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, versions)

			// Keys, through the store.
			rec := func(role string) apikey.Record {
				r, err := s.Key(ctx, keys[role].ID())
				require.NoError(t, err, role)
				return r
			}
			for role, k := range keys {
				r := rec(role)
				assert.Equal(t, apikey.DefaultAccount, r.Account, role)
				assert.Equal(t, k.Type(), r.Type, role)
				assert.Empty(t, r.Owner, role)
				assert.Nil(t, r.Metadata, role)
			}
			assert.Equal(t, apikey.Revoked, rec("staging/revoked").Status(fixtureNow))
			old := rec("production/rotated-client-old")
			assert.Equal(t, apikey.Expiring, old.Status(fixtureNow))
			assert.False(t, old.Default)
			assert.Equal(t, []string{"invoices:write"}, rec("production/scoped").Scopes)
			assert.False(t, rec("production/scoped").LastUsedAt.IsZero(), "last use survives")
			for _, slot := range []struct {
				env  string
				typ  apikey.KeyType
				role string
			}{
				{"production", apikey.Server, "production/default/server"},
				{"production", apikey.Client, "production/rotated-client-new"},
				{"staging", apikey.Server, "staging/default/server"},
				{"staging", apikey.Client, "staging/default/client"},
			} {
				def, err := s.DefaultKey(ctx, apikey.DefaultAccount, slot.env, slot.typ)
				require.NoError(t, err, slot.role)
				assert.Equal(t, keys[slot.role].ID(), def.ID, "the default %s key of %s", slot.typ, slot.env)
			}
			page, err := s.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: "production", Limit: 10})
			require.NoError(t, err)
			assert.Len(t, page, 4)

			// Settings, events and the feed.
			production, err := s.Settings(ctx, apikey.DefaultAccount, "production")
			require.NoError(t, err)
			assert.Equal(t, []string{"https://app.example.com", "https://*.example.org"}, production.AllowedOrigins)
			assert.True(t, production.ClosedAt.IsZero())
			staging, err := s.Settings(ctx, apikey.DefaultAccount, "staging")
			require.NoError(t, err)
			assert.Empty(t, staging.AllowedOrigins)
			accounts, err := s.Accounts(ctx, "", 10)
			require.NoError(t, err)
			assert.Equal(t, []string{apikey.DefaultAccount}, accounts)

			events, err := s.Events(ctx, storage.EventQuery{Account: apikey.DefaultAccount})
			require.NoError(t, err)
			require.Len(t, events, 10)
			for i, e := range events {
				assert.Equal(t, int64(10-i), e.Seq, "newest first")
				assert.Equal(t, apikey.DefaultAccount, e.Account)
				assert.Equal(t, apikey.Actor{ID: "fixture-owner", Role: apikey.Owner}, e.Actor)
				if e.KeyID == "" {
					assert.Equal(t, apikey.ActionSetOrigins, e.Action)
					assert.Empty(t, e.KeyType)
					continue
				}
				r, err := s.Key(ctx, e.KeyID)
				require.NoError(t, err)
				assert.Equal(t, r.Type, e.KeyType, "event %d's key type, from its key", e.Seq)
			}
			revoked, err := s.Events(ctx, storage.EventQuery{Account: apikey.DefaultAccount, Environment: "staging", Limit: 1})
			require.NoError(t, err)
			require.Len(t, revoked, 1)
			assert.Equal(t, apikey.ActionRevoke, revoked[0].Action)
			assert.Equal(t, "server-"+keys["staging/revoked"].ID(), revoked[0].KeyPrefix())
			feed, next, err := s.Changes(ctx, 0, 0)
			require.NoError(t, err)
			assert.Len(t, feed, 12)
			assert.Equal(t, int64(12), next)
			for _, c := range feed {
				assert.Equal(t, apikey.DefaultAccount, c.Account)
			}

			// The keys, presented to a Validator over the migrated store.
			v, err := middleware.New(middleware.Options{
				Store: s, Hasher: testHasher, Now: func() time.Time { return fixtureNow },
				OnBackgroundError: func(err error) { t.Logf("background: %v", err) },
			})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, v.Close()) })
			anyKey := middleware.Policy{Types: []apikey.KeyType{apikey.Server, apikey.Client}}
			present := func(k apikey.Key, origin string) (middleware.Identity, error) {
				r := httptest.NewRequest(http.MethodGet, "/orders", nil)
				r.Header.Set("X-API-Key", k.Reveal())
				if origin != "" {
					r.Header.Set("Origin", origin)
				}
				return v.Check(r, anyKey)
			}
			for _, c := range []struct {
				role, origin string
				want         error // nil: accepted
				expiring     bool
			}{
				{role: "production/default/server"},
				{role: "production/scoped"},
				{role: "production/rotated-client-new", origin: "https://app.example.com"},
				{role: "production/rotated-client-new", origin: "https://shop.example.org"},
				{role: "production/rotated-client-new", origin: "https://evil.example.net", want: middleware.ErrOrigin},
				{role: "production/rotated-client-old", origin: "https://app.example.com", expiring: true},
				{role: "staging/default/server"},
				{role: "staging/default/client"},
				{role: "staging/default/client", origin: "https://app.example.com", want: middleware.ErrOrigin},
				{role: "staging/revoked", want: middleware.ErrRevokedKey},
			} {
				id, err := present(keys[c.role], c.origin)
				if c.want != nil {
					assert.ErrorIs(t, err, c.want, "%s from %q", c.role, c.origin)
					continue
				}
				if assert.NoError(t, err, "%s from %q", c.role, c.origin) {
					assert.Equal(t, keys[c.role].ID(), id.KeyID)
					assert.Equal(t, strings.SplitN(c.role, "/", 2)[0], id.Environment)
					assert.Equal(t, c.expiring, id.Expiring, c.role)
				}
			}

			// New work: a key with an owner and metadata, a rotated default,
			// a revealed publishable key, and another account with the same
			// environment names.
			clock := fixtureNow
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher, OnEvent: v.Invalidate,
				Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
			require.NoError(t, err)
			admin := apikey.Actor{ID: "admin", Role: apikey.Owner}
			created, err := m.Create(ctx, admin, apikey.CreateRequest{Environment: "staging", Type: apikey.Server,
				Scopes: []string{"orders:read"}, Owner: "user_7", Metadata: map[string]string{"team": "ops"}})
			require.NoError(t, err)
			rotated, err := m.Rotate(ctx, admin, apikey.RotateRequest{Environment: "production", Type: apikey.Server, Grace: time.Hour})
			require.NoError(t, err)
			_, err = present(created.Key, "")
			assert.NoError(t, err, "the new key")
			_, err = present(rotated.Key, "")
			assert.NoError(t, err, "the new default key")
			id, err := present(keys["production/default/server"], "")
			require.NoError(t, err, "the rotated-out default key, in its grace period")
			assert.True(t, id.Expiring)
			def, err := s.DefaultKey(ctx, apikey.DefaultAccount, "production", apikey.Server)
			require.NoError(t, err)
			assert.Equal(t, rotated.View.ID, def.ID)
			got, err := s.Key(ctx, created.View.ID)
			require.NoError(t, err)
			assert.Equal(t, "user_7", got.Owner)
			assert.Equal(t, map[string]string{"team": "ops"}, got.Metadata)
			revealed, err := m.Reveal(ctx, admin, keys["production/rotated-client-new"].ID())
			require.NoError(t, err)
			assert.Equal(t, keys["production/rotated-client-new"].Reveal(), revealed.Reveal())
			newest, err := s.Events(ctx, storage.EventQuery{Limit: 4})
			require.NoError(t, err)
			require.Len(t, newest, 4)
			assert.Equal(t, []int64{14, 13, 12, 11}, []int64{newest[0].Seq, newest[1].Seq, newest[2].Seq, newest[3].Seq},
				"new events continue the old sequence")
			acme := apikey.Actor{ID: "admin", Role: apikey.Owner, Account: "acme"}
			_, err = m.Bootstrap(ctx, acme, "production")
			require.NoError(t, err, "another account, same environment name")
			acmeEvents, err := s.Events(ctx, storage.EventQuery{Account: "acme"})
			require.NoError(t, err)
			require.Len(t, acmeEvents, 2)
			assert.Equal(t, []int64{2, 1}, []int64{acmeEvents[0].Seq, acmeEvents[1].Seq}, "a new account's events are numbered from 1")
			_, err = m.Bootstrap(ctx, admin, "production")
			require.ErrorIs(t, err, apikey.ErrAlreadyBootstrapped)

			// Migrate again: a no-op.
			after := dumpV1(t, db)
			revision, err := s.Revision(ctx)
			require.NoError(t, err)
			require.NoError(t, s.Migrate(ctx))
			assert.Equal(t, after, dumpV1(t, db))
			again, err := s.Revision(ctx)
			require.NoError(t, err)
			assert.Equal(t, revision, again)
			var count, latest int
			require.NoError(t, db.QueryRow("SELECT COUNT(*), MAX(version) FROM keystile_schema_migrations").Scan(&count, &latest))
			assert.Equal(t, sqlstore.SchemaVersion, count, "each version recorded once")
			assert.Equal(t, sqlstore.SchemaVersion, latest)
		})
	}
}

// TestMigrateNumbersEventsPerAccount upgrades a version-2 database whose
// audit log interleaves three accounts' events: version 3 numbers each
// account's events 1, 2, 3... in their order, and new events continue each
// account's numbers. The version-2 database is made from a new one by
// undoing version 3 (its column and indexes), on both engines.
func TestMigrateNumbersEventsPerAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		accounts := []string{"acme", "globex", "acme", "acme", "initech", "globex", "acme"}
		var change apikey.Change
		for i, a := range accounts {
			e := apikey.Event{Time: fixtureNow.Add(time.Duration(i) * time.Second), Actor: apikey.Actor{ID: "ops", Role: apikey.Owner},
				Action: apikey.ActionSetOrigins, Account: a, Environment: "production", Detail: fmt.Sprint(i)}
			if i < 3 {
				require.NoError(t, s.Apply(ctx, apikey.Change{Events: []apikey.Event{e}}))
				continue
			}
			change.Events = append(change.Events, e) // several accounts in one change
		}
		require.NoError(t, s.Apply(ctx, change))

		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 4)
		for _, stmt := range []string{
			`DROP INDEX keystile_events_account_seq`,
			`DROP INDEX keystile_events_account_environment`,
			`ALTER TABLE keystile_events DROP COLUMN account_seq`,
			`CREATE INDEX keystile_events_account ON keystile_events (account, seq)`,
			`CREATE INDEX keystile_events_account_environment ON keystile_events (account, environment, seq)`,
			`DELETE FROM keystile_schema_migrations WHERE version = 3`,
		} {
			_, err := db.Exec(stmt)
			require.NoError(t, err, stmt)
		}
		require.NoError(t, s.Migrate(ctx))

		want := map[string][]string{} // each account's details, newest first
		for i, a := range accounts {
			want[a] = append([]string{fmt.Sprint(i)}, want[a]...)
		}
		for a, details := range want {
			events, err := s.Events(ctx, storage.EventQuery{Account: a})
			require.NoError(t, err)
			require.Len(t, events, len(details), a)
			for i, e := range events {
				assert.Equal(t, details[i], e.Detail, "%s: newest first", a)
				assert.Equal(t, int64(len(details)-i), e.Seq, "%s: numbered in its own order", a)
			}
		}
		require.NoError(t, s.Apply(ctx, apikey.Change{Events: []apikey.Event{{Time: fixtureNow, Action: apikey.ActionSetOrigins,
			Actor: apikey.Actor{ID: "ops", Role: apikey.Owner}, Account: "globex", Environment: "production", Detail: "new"}}}))
		newest, err := s.Events(ctx, storage.EventQuery{Account: "globex", Limit: 1})
		require.NoError(t, err)
		require.Len(t, newest, 1)
		assert.Equal(t, int64(3), newest[0].Seq, "a new event continues its account's numbers")
	})
}
