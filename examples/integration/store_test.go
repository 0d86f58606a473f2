package integration_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/sqlstore"
)

var owner = apikey.Actor{ID: "sqlstore-test-owner", Role: apikey.Owner}

// Queries of a whole small environment and of every environment.
var (
	productionKeys  = apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: apikey.MaxPageSize}
	allEnvironments = apikey.EnvironmentQuery{Limit: apikey.MaxPageSize}
)

// forEachBackend runs fn once per dialect, each on a fresh database.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b, b.fresh(t)) })
	}
}

func TestNewValidates(t *testing.T) {
	_, err := sqlstore.New(nil, sqlstore.Options{Dialect: sqlstore.SQLite})
	assert.Error(t, err, "nil db")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "x.db"))
	require.NoError(t, err)
	defer db.Close()
	_, err = sqlstore.New(db, sqlstore.Options{})
	assert.ErrorContains(t, err, "Dialect", "the zero dialect")
	_, err = sqlstore.New(db, sqlstore.Options{Dialect: 7})
	assert.ErrorContains(t, err, "Dialect(7)")
	s, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.SQLite})
	require.NoError(t, err)
	assert.Same(t, db, s.DB())
	assert.Equal(t, sqlstore.SQLite, s.Dialect())
	assert.Equal(t, "sqlite", sqlstore.SQLite.String())
	assert.Equal(t, "postgres", sqlstore.Postgres.String())
}

// TestReopen checks that keys, settings, audit events and the feed's
// revision survive closing the database and opening it again.
func TestReopen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		db := b.open(t, dsn)
		s, err := sqlstore.New(db, sqlstore.Options{Dialect: b.dialect})
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx))
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
		require.NoError(t, err)
		issued, err := m.Bootstrap(ctx, owner, apikey.Production)
		require.NoError(t, err)
		_, err = m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: issued[0].View.ID, Grace: time.Hour})
		require.NoError(t, err)
		_, err = m.SetAllowedOrigins(ctx, owner, apikey.Production, []string{"https://app.example.com", "https://*.example.com"})
		require.NoError(t, err)
		require.NoError(t, s.RecordLastUsed(ctx, map[string]time.Time{issued[1].View.ID: time.Now()}))

		keys, err := s.Keys(ctx, productionKeys)
		require.NoError(t, err)
		settings, err := s.Environments(ctx, allEnvironments)
		require.NoError(t, err)
		events, err := s.Events(ctx, storage.EventQuery{})
		require.NoError(t, err)
		revision, err := s.Revision(ctx)
		require.NoError(t, err)
		require.Len(t, keys, 3)
		require.Len(t, events, 5, "bootstrap (2), rotate (create, rotate), set origins")
		require.NoError(t, db.Close())

		db = b.open(t, dsn)
		defer db.Close()
		s, err = sqlstore.New(db, sqlstore.Options{Dialect: b.dialect})
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx), "migrating again is a no-op")

		gotKeys, err := s.Keys(ctx, productionKeys)
		require.NoError(t, err)
		require.Len(t, gotKeys, len(keys))
		for i := range keys { // Opaque values compare with Equal, not by reflection
			assert.True(t, keys[i].Hash.Equal(gotKeys[i].Hash), "hash of key %d", i)
			assert.True(t, keys[i].Recoverable.Equal(gotKeys[i].Recoverable), "recoverable copy of key %d", i)
			keys[i].Hash, keys[i].Recoverable = gotKeys[i].Hash, gotKeys[i].Recoverable
		}
		assert.Equal(t, keys, gotKeys)
		gotSettings, err := s.Environments(ctx, allEnvironments)
		require.NoError(t, err)
		assert.Equal(t, settings, gotSettings)
		gotEvents, err := s.Events(ctx, storage.EventQuery{})
		require.NoError(t, err)
		assert.Equal(t, events, gotEvents)
		gotRevision, err := s.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, revision, gotRevision)

		// The key issued before the restart still verifies; its last use
		// survived.
		rec, err := s.Key(ctx, issued[1].View.ID)
		require.NoError(t, err)
		assert.False(t, rec.LastUsedAt.IsZero(), "last use survives")
		match, _, err := apikey.Argon2id{Params: apikey.TestParams}.Verify([]byte(issued[1].Key.Reveal()), rec.Hash.Reveal())
		require.NoError(t, err)
		assert.True(t, match)
	})
}

// TestMigrate checks that Migrate is idempotent, safe to call from several
// processes at once, and refuses a schema newer than the package's.
func TestMigrate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		// A new SQLite file switches to WAL when its first connection opens,
		// which needs the file alone: SQLite answers a second connection
		// opening meanwhile with SQLITE_BUSY at once, before Migrate runs.
		// Open the file once first; what runs concurrently below is Migrate.
		first := b.open(t, dsn)
		require.NoError(t, first.PingContext(ctx))
		require.NoError(t, first.Close())
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			db := b.open(t, dsn)
			t.Cleanup(func() { db.Close() })
			s, err := sqlstore.New(db, sqlstore.Options{Dialect: b.dialect})
			require.NoError(t, err)
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Migrate(ctx)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err, "concurrent Migrate calls")
		}

		s := b.store(t, dsn, sqlstore.Options{}) // migrates once more
		require.NoError(t, s.Migrate(ctx))
		var versions, distinct, latest int
		require.NoError(t, s.DB().QueryRowContext(ctx,
			"SELECT COUNT(*), COUNT(DISTINCT version), MAX(version) FROM keystile_schema_migrations").Scan(&versions, &distinct, &latest))
		assert.Equal(t, distinct, versions, "each version recorded once")
		assert.Equal(t, sqlstore.SchemaVersion, latest)
		rev, err := s.Revision(ctx)
		require.NoError(t, err)
		assert.Zero(t, rev, "the counter row was created once")

		_, err = s.DB().ExecContext(ctx, "INSERT INTO keystile_schema_migrations (version, applied_at) VALUES (999, 0)")
		require.NoError(t, err)
		assert.ErrorContains(t, s.Migrate(ctx), "newer", "a newer schema is never downgraded")
	})
}

// TestFeedPruning checks that Apply prunes the change feed to its retention
// and that a reader behind the pruned entries gets ErrFeedGap.
func TestFeedPruning(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{FeedRetention: 10})
		// 1100 revisions in one change: past the pruning point at 1024.
		var c apikey.Change
		for i := range 1100 {
			c.Insert = append(c.Insert, apikey.Record{
				ID: fmt.Sprintf("prune%07d", i), Account: apikey.DefaultAccount, Type: apikey.Server, Environment: apikey.Production,
				CreatedAt: time.Now().UTC(), Hash: apikey.NewOpaque("h"),
			})
		}
		require.NoError(t, s.Apply(ctx, c))
		latest, err := s.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1100), latest)

		_, next, err := s.Changes(ctx, 0, 0)
		require.ErrorIs(t, err, storage.ErrFeedGap, "entries were pruned")
		assert.Equal(t, latest, next, "start again from the current revision")

		entries, next, err := s.Changes(ctx, latest-10, 0)
		require.NoError(t, err, "the retained entries are there")
		assert.Len(t, entries, 10)
		assert.Equal(t, latest, next)

		entries, next, err = s.Changes(ctx, latest, 0)
		require.NoError(t, err)
		assert.Empty(t, entries)
		assert.Equal(t, latest, next)

		_, next, err = s.Changes(ctx, latest+5, 0)
		require.ErrorIs(t, err, storage.ErrFeedGap, "a reader ahead of the database (restored from a backup)")
		assert.Equal(t, latest, next)
	})
}

// TestSQLiteBusy checks that a writer that cannot get SQLite's write lock
// within the busy timeout fails with a system error that says so, not with
// ErrConflict (which the Manager would retry).
func TestSQLiteBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keystile.db")
	ctx := context.Background()
	s := sqliteBackend.store(t, "file:"+path+"?_pragma=busy_timeout(50)", sqlstore.Options{})

	holder, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	defer holder.Close()
	conn, err := holder.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	require.NoError(t, err)

	settings := apikey.Settings{Account: apikey.DefaultAccount, Environment: "production", UpdatedAt: time.Now()}
	err = s.Apply(ctx, apikey.Change{Settings: []apikey.Settings{settings}})
	require.Error(t, err)
	assert.False(t, errors.Is(err, apikey.ErrConflict))
	assert.ErrorContains(t, err, "busy timeout")

	_, err = conn.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)
	require.NoError(t, s.Apply(ctx, apikey.Change{Settings: []apikey.Settings{settings}}))
}

// TestDefaultIndexAcrossPools checks that the database itself refuses a
// second default key, even from a writer that checked nothing first.
func TestDefaultIndexAcrossPools(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s := b.store(t, dsn, sqlstore.Options{})
		_, err := s.DB().ExecContext(ctx, `INSERT INTO keystile_keys
			(id, account, type, environment, name, owner, is_default, created_at, created_by, hash, revision)
			VALUES ('rawdefault01', 'acme', 'server', 'production', '', '', TRUE, 0, '', 'h', 1)`)
		require.NoError(t, err)
		peer := b.store(t, dsn, sqlstore.Options{})
		newDefault := apikey.Record{
			ID: "newdefault01", Account: "acme", Type: apikey.Server, Environment: "production", Default: true,
			CreatedAt: time.Now().UTC(), Hash: apikey.NewOpaque("h"),
		}
		err = peer.Apply(ctx, apikey.Change{Insert: []apikey.Record{newDefault}})
		require.ErrorIs(t, err, apikey.ErrConflict)
		assert.ErrorContains(t, err, "production of account acme already has a default server key")

		// The same environment name in another account has a default of
		// its own.
		newDefault.Account = "globex"
		require.NoError(t, peer.Apply(ctx, apikey.Change{Insert: []apikey.Record{newDefault}}))
	})
}

// TestFeedMissesNothing runs writers on several pools while a reader on
// another pool follows the feed in small pages: the reader must see every
// revision exactly once, in order, never skipping one that committed late.
func TestFeedMissesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		reader := b.store(t, dsn, sqlstore.Options{})
		const writers, changes = 4, 40
		var wg sync.WaitGroup
		for w := range writers {
			s := b.store(t, dsn, sqlstore.Options{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range changes {
					r := apikey.Record{
						ID: fmt.Sprintf("feed%02d%04d", w, i), Account: apikey.DefaultAccount, Type: apikey.Client, Environment: apikey.Staging,
						CreatedAt: time.Now().UTC(), Hash: apikey.NewOpaque("h"),
					}
					if !assert.NoError(t, s.Apply(ctx, apikey.Change{Insert: []apikey.Record{r}})) {
						return
					}
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()

		var seen []int64
		var since int64
		follow := func() {
			for {
				entries, next, err := reader.Changes(ctx, since, 3)
				require.NoError(t, err)
				for _, e := range entries {
					seen = append(seen, e.Revision)
				}
				since = next
				if len(entries) < 3 {
					return
				}
			}
		}
		for finished := false; !finished; {
			select {
			case <-done:
				finished = true
			default:
			}
			follow()
		}
		follow()
		require.Len(t, seen, writers*changes)
		for i, rev := range seen {
			require.Equal(t, int64(i+1), rev, "revisions arrive dense and in order")
		}
	})
}
