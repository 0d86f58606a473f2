package integration_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/pgtest"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestImportedKeys, on both engines: of concurrent imports of one digest
// by two processes, one stores the key; a Validator of a third process
// admits it with one Key read and no argon2; rotated, the old key works in
// its grace and the new keystile key works; revoked in another process,
// the old key is refused through the change feed.
func TestImportedKeys(t *testing.T) {
	format := apikey.ImportFormat{Prefix: "sk_live_", Length: 32}
	old := "sk_live_" + strings.Repeat("q", 32)
	owner := apikey.Actor{ID: "alice", Role: apikey.Owner}
	operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount} // imports
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.dialect == sqlstore.Postgres {
				pgtest.DSN(t)
			}
			ctx := context.Background()
			dsn := b.fresh(t)
			var managers []*apikey.Manager
			for range 2 {
				m, err := apikey.NewManager(apikey.ManagerOptions{Store: b.store(t, dsn, sqlstore.Options{}), Hasher: apikey.Argon2id{Params: apikey.TestParams}})
				require.NoError(t, err)
				managers = append(managers, m)
			}
			_, err := managers[0].Bootstrap(ctx, owner, apikey.Production)
			require.NoError(t, err)

			req := apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server, Digest: apikey.ImportDigest(old),
				Scopes: []string{apikey.AllScopes}, Owner: "cus_1001"}
			errs := make([]error, 8)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() { _, errs[i] = managers[i%2].Import(ctx, operator, req) })
			}
			wg.Wait()
			stored := 0
			for _, err := range errs {
				if err == nil {
					stored++
				} else {
					require.ErrorIs(t, err, apikey.ErrConflict)
				}
			}
			require.Equal(t, 1, stored)

			fs := faultstore.New(b.store(t, dsn, sqlstore.Options{}))
			hasher := faultstore.NewHasher(apikey.Argon2id{Params: apikey.TestParams})
			v, err := middleware.New(middleware.Options{Store: fs, Hasher: hasher, FeedInterval: 10 * time.Millisecond,
				Keys: middleware.KeyOptions{Imported: []apikey.ImportFormat{format}}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })
			check := func(key string) (middleware.Identity, error) {
				r := httptest.NewRequest("GET", "/", nil)
				r.Header.Set(middleware.HeaderAPIKey, key)
				return v.Check(r, middleware.Policy{})
			}
			reads := fs.Calls(faultstore.OpKey)
			id, err := check(old)
			require.NoError(t, err)
			assert.True(t, id.Imported)
			assert.Equal(t, "cus_1001", id.Owner)
			assert.EqualValues(t, 1, fs.Calls(faultstore.OpKey)-reads, "one Key read")
			assert.Zero(t, hasher.Calls(faultstore.OpVerify), "no argon2")

			issued, err := managers[1].Rotate(ctx, owner, apikey.RotateRequest{KeyID: id.KeyID, Grace: time.Hour})
			require.NoError(t, err)
			require.Eventually(t, func() bool { id, err := check(old); return err == nil && id.Expiring }, 5*time.Second, 5*time.Millisecond)
			id, err = check(issued.Key.Reveal())
			require.NoError(t, err)
			assert.False(t, id.Imported)

			_, err = managers[1].Revoke(ctx, owner, apikey.ImportedID(apikey.ImportDigest(old)))
			require.NoError(t, err)
			require.Eventually(t, func() bool { _, err := check(old); return err != nil }, 5*time.Second, 5*time.Millisecond)
			_, err = check(old)
			assert.ErrorIs(t, err, middleware.ErrRevokedKey)
		})
	}
}
