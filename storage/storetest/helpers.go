package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// base is a fixed UTC time with microsecond precision, as stores keep it.
var base = time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC)

// The accounts of the suite. Both have environments of the same names.
const (
	acme   = "acme"
	globex = "globex"
)

// owner acts in the default account; acmeOwner and globexOwner in theirs.
var (
	owner       = apikey.Actor{ID: "storetest-owner", Role: apikey.Owner}
	acmeOwner   = apikey.Actor{ID: "acme-owner", Role: apikey.Owner, Account: acme}
	globexOwner = apikey.Actor{ID: "globex-owner", Role: apikey.Owner, Account: globex}
	operator    = apikey.Actor{ID: "operator", Role: apikey.Owner, Account: apikey.AnyAccount}
)

var idCounter struct {
	sync.Mutex
	n int
}

// newID returns a fresh key id: prefix (two characters of [0-9A-Za-z])
// and a counter, IDLength characters in all.
func newID(prefix string) string {
	idCounter.Lock()
	defer idCounter.Unlock()
	idCounter.n++
	return fmt.Sprintf("%s%010d", prefix, idCounter.n)
}

// record returns a record of an account's environment with a fresh id; it
// is not stored.
func record(account, env string, t apikey.KeyType, isDefault bool) apikey.Record {
	r := apikey.Record{
		ID: newID("st"), Account: account, Type: t, Environment: env, Name: "test key", Default: isDefault,
		CreatedAt: base, CreatedBy: owner.ID,
		Hash: apikey.NewOpaque("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"),
	}
	if t == apikey.Server {
		r.Scopes = []string{"customers:write", "invoices:read"}
	} else {
		r.Recoverable = apikey.NewOpaque("client-public")
	}
	return r
}

func apply(t testing.TB, s apikey.Store, c apikey.Change) {
	t.Helper()
	require.NoError(t, s.Apply(context.Background(), c))
}

func mustKey(t testing.TB, s apikey.Store, id string) apikey.Record {
	t.Helper()
	r, err := s.Key(context.Background(), id)
	require.NoError(t, err)
	return r
}

func mustSettings(t testing.TB, s apikey.Store, account, env string) apikey.Settings {
	t.Helper()
	st, err := s.Settings(context.Background(), account, env)
	require.NoError(t, err)
	return st
}

func mustDefault(t testing.TB, s apikey.Store, account, env string, typ apikey.KeyType) apikey.Record {
	t.Helper()
	r, err := s.DefaultKey(context.Background(), account, env, typ)
	require.NoError(t, err, "default %s key of %s/%s", typ, account, env)
	return r
}

// allKeys pages through an account's environment's keys, pageSize at a
// time, and returns them all in order.
func allKeys(t testing.TB, s apikey.Store, account, env string) []apikey.Record {
	t.Helper()
	const pageSize = 100
	var out []apikey.Record
	q := apikey.KeyQuery{Account: account, Environment: env, Limit: pageSize}
	for {
		page, err := s.Keys(context.Background(), q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), pageSize, "Keys returned more than Limit")
		out = append(out, page...)
		if len(page) < pageSize {
			return out
		}
		last := page[len(page)-1]
		q.After = apikey.KeyPosition{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}

// events returns the audit events that q selects; s must implement
// storage.AuditLog.
func events(t testing.TB, s apikey.Store, q storage.EventQuery) []apikey.Event {
	t.Helper()
	out, err := as[storage.AuditLog](t, s).Events(context.Background(), q)
	require.NoError(t, err)
	return out
}

func ids(recs []apikey.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// assertSameRecord compares records field by field, times with Equal.
func assertSameRecord(t testing.TB, want, got apikey.Record) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.Account, got.Account)
	assert.Equal(t, want.Type, got.Type)
	assert.Equal(t, want.Environment, got.Environment)
	assert.Equal(t, want.Name, got.Name)
	assert.Equal(t, want.Owner, got.Owner)
	if len(want.Metadata) == 0 {
		assert.Empty(t, got.Metadata, "metadata")
	} else {
		assert.Equal(t, want.Metadata, got.Metadata, "metadata")
	}
	assert.Equal(t, len(want.Scopes), len(got.Scopes), "scopes")
	assert.Equal(t, fmt.Sprint(want.Scopes), fmt.Sprint(got.Scopes), "scopes")
	assert.Equal(t, want.Default, got.Default)
	assert.True(t, want.Limits.Equal(got.Limits), "limits: want %v, got %v", want.Limits, got.Limits)
	assert.True(t, want.OwnerLimits.Equal(got.OwnerLimits), "owner limits: want %v, got %v", want.OwnerLimits, got.OwnerLimits)
	assert.True(t, want.Hash.Equal(got.Hash), "hash")
	assert.True(t, want.Recoverable.Equal(got.Recoverable), "recoverable")
	assert.Equal(t, want.CreatedBy, got.CreatedBy)
	for _, tm := range []struct {
		name      string
		want, got time.Time
	}{
		{"CreatedAt", want.CreatedAt, got.CreatedAt},
		{"ExpiresAt", want.ExpiresAt, got.ExpiresAt},
		{"RotatedAt", want.RotatedAt, got.RotatedAt},
		{"ExpiryLimit", want.ExpiryLimit, got.ExpiryLimit},
		{"RevokedAt", want.RevokedAt, got.RevokedAt},
		{"DisabledAt", want.DisabledAt, got.DisabledAt},
		{"LastUsedAt", want.LastUsedAt, got.LastUsedAt},
	} {
		assert.True(t, tm.want.Equal(tm.got), "%s: want %v, got %v", tm.name, tm.want, tm.got)
	}
}

// managers returns one Manager per store, built on the test goroutine
// (require may not be called from the goroutines that use them).
func managers(t *testing.T, stores []apikey.Store) []*apikey.Manager {
	out := make([]*apikey.Manager, len(stores))
	for i, s := range stores {
		out[i] = manager(t, s)
	}
	return out
}

func manager(t testing.TB, s apikey.Store) *apikey.Manager {
	t.Helper()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	return m
}

func bootstrap(t testing.TB, m *apikey.Manager, actor apikey.Actor, envs ...string) {
	t.Helper()
	for _, env := range envs {
		_, err := m.Bootstrap(context.Background(), actor, env)
		require.NoError(t, err, "bootstrap %s in %s", env, actor.InAccount())
	}
}

// assertOneActiveDefault checks that an account's environment has exactly
// one default key of each type, active and with no expiry, and that
// DefaultKey finds it.
func assertOneActiveDefault(t *testing.T, s apikey.Store, account, env string) {
	t.Helper()
	keys := allKeys(t, s, account, env)
	for _, typ := range []apikey.KeyType{apikey.Server, apikey.Client} {
		var defaults []string
		for _, k := range keys {
			if k.Default && k.Type == typ {
				defaults = append(defaults, k.ID)
				assert.Equal(t, apikey.Active, k.Status(time.Now()), "the default key is active")
				assert.True(t, k.ExpiresAt.IsZero(), "the default key has no expiry")
			}
		}
		if assert.Len(t, defaults, 1, "exactly one default %s key in %s/%s", typ, account, env) {
			got, err := s.DefaultKey(context.Background(), account, env, typ)
			if assert.NoError(t, err) {
				assert.Equal(t, defaults[0], got.ID, "DefaultKey finds the default %s key of %s/%s", typ, account, env)
			}
		}
	}
}
