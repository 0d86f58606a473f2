package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestMigrateAddsLifetime upgrades a database made before version 8, with
// environments, allowed origins and keys, to version 8 on both engines:
// the settings read back as they were, with no lifetime policy, and the
// keys as they were; a policy can then be set, stored and read back, and
// applies to a new key; Migrate again changes nothing.
func TestMigrateAddsLifetime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		m := fixtureManager(t, s)
		for _, env := range []string{apikey.Production, apikey.Staging} {
			_, err := m.Bootstrap(ctx, owner, env)
			require.NoError(t, err)
		}
		_, err := m.SetAllowedOrigins(ctx, owner, apikey.Production, []string{"https://app.example.com"})
		require.NoError(t, err)
		extra, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client, Name: "widget"})
		require.NoError(t, err)

		db := b.open(t, dsn)
		defer db.Close()
		undoVersions(t, db, 8)
		var version int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		require.Less(t, version, 8, "a database before version 8")
		revision, err := s.Revision(ctx)
		require.NoError(t, err)

		require.NoError(t, s.Migrate(ctx))
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM keystile_schema_migrations").Scan(&version))
		assert.Equal(t, sqlstore.SchemaVersion, version)
		got, err := s.Settings(ctx, apikey.DefaultAccount, apikey.Production)
		require.NoError(t, err)
		assert.Equal(t, []string{"https://app.example.com"}, got.AllowedOrigins)
		assert.True(t, got.Lifetime.IsZero(), "environments of earlier versions have no lifetime policy")
		envs, err := s.Environments(ctx, apikey.EnvironmentQuery{Account: apikey.DefaultAccount, Limit: 10})
		require.NoError(t, err)
		require.Len(t, envs, 2)
		key, err := s.Key(ctx, extra.View.ID)
		require.NoError(t, err)
		assert.Equal(t, "widget", key.Name)
		assert.True(t, key.ExpiresAt.IsZero())
		again, err := s.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, revision, again, "the migration writes no change")

		policy := apikey.LifetimePolicy{DefaultExpiry: 30 * 24 * time.Hour, MaxLifetime: 365 * 24 * time.Hour}
		_, err = m.SetLifetimePolicy(ctx, owner, apikey.Production, policy)
		require.NoError(t, err)
		got, err = s.Settings(ctx, apikey.DefaultAccount, apikey.Production)
		require.NoError(t, err)
		assert.Equal(t, policy, got.Lifetime)
		assert.Equal(t, []string{"https://app.example.com"}, got.AllowedOrigins, "the origins are kept")
		staging, err := s.Settings(ctx, apikey.DefaultAccount, apikey.Staging)
		require.NoError(t, err)
		assert.True(t, staging.Lifetime.IsZero(), "another environment keeps none")
		created, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
		require.NoError(t, err)
		assert.Equal(t, fixtureNow.Add(30*24*time.Hour), created.View.ExpiresAt)
		key, err = s.Key(ctx, extra.View.ID)
		require.NoError(t, err)
		assert.True(t, key.ExpiresAt.IsZero(), "the policy does not rewrite existing keys")

		require.NoError(t, s.Migrate(ctx), "Migrate again")
		got, err = s.Settings(ctx, apikey.DefaultAccount, apikey.Production)
		require.NoError(t, err)
		assert.Equal(t, policy, got.Lifetime)
	})
}
