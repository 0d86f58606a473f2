package apikey_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// operator (state_test.go) is an owner acting across accounts.

func (f *fixture) create(t *testing.T, req apikey.CreateRequest) apikey.Issued {
	t.Helper()
	if req.Environment == "" {
		req.Environment = apikey.Production
	}
	if req.Type == "" {
		req.Type, req.Scopes = apikey.Server, []string{"orders:read"}
	}
	k, err := f.m.Create(ctx, owner, req)
	require.NoError(t, err)
	return k
}

func TestOwnerKeysAndRevokeOwner(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.Bootstrap(ctx, owner, apikey.Staging)
	require.NoError(t, err)
	a := f.create(t, apikey.CreateRequest{Owner: "user-1"})
	b := f.create(t, apikey.CreateRequest{Owner: "user-1", Environment: apikey.Staging, Type: apikey.Client})
	c := f.create(t, apikey.CreateRequest{Owner: "user-1", ExpiresAt: f.clock.Now().Add(time.Hour)})
	other := f.create(t, apikey.CreateRequest{Owner: "user-2"})
	_, err = f.m.SetOwner(ctx, owner, f.server.View.ID, "user-1")
	require.NoError(t, err)

	list, err := f.m.OwnerKeys(ctx, readOnly, "user-1", apikey.Page{Limit: 2})
	require.NoError(t, err, "every role may list")
	require.Len(t, list.Keys, 2)
	require.NotEmpty(t, list.Next)
	rest, err := f.m.OwnerKeys(ctx, readOnly, "user-1", apikey.Page{After: list.Next, Limit: 2})
	require.NoError(t, err)
	require.Len(t, rest.Keys, 2)
	assert.Empty(t, rest.Next, "the last page has no cursor")
	var got []string
	for _, v := range append(list.Keys, rest.Keys...) {
		got = append(got, v.ID)
		assert.Equal(t, "user-1", v.Owner)
	}
	assert.ElementsMatch(t, []string{a.View.ID, b.View.ID, c.View.ID, f.server.View.ID}, got)
	assert.IsIncreasing(t, got, "ordered by id")

	_, err = f.m.RevokeOwner(ctx, member, "user-1")
	assert.ErrorIs(t, err, apikey.ErrForbidden, "role rules are Revoke's")
	f.events = nil
	res, err := f.m.RevokeOwner(ctx, owner, "user-1")
	require.NoError(t, err)
	assert.Equal(t, 3, res.Revoked)
	assert.Equal(t, []string{f.server.View.Prefix}, res.SkippedDefaults, "default keys are skipped and reported")
	for _, id := range []string{a.View.ID, b.View.ID, c.View.ID} {
		assert.Equal(t, apikey.Revoked, f.record(t, id).Status(f.clock.Now()))
	}
	assert.Equal(t, apikey.Active, f.record(t, f.server.View.ID).Status(f.clock.Now()))
	assert.Equal(t, apikey.Active, f.record(t, other.View.ID).Status(f.clock.Now()))
	require.Len(t, f.events, 4, "one event per key and a summary")
	assert.Equal(t, apikey.ActionRevokeOwner, f.events[3].Action)
	assert.Equal(t, "owner user-1: 3 keys revoked, 1 default keys skipped", f.events[3].Detail)

	again, err := f.m.RevokeOwner(ctx, owner, "user-1")
	require.NoError(t, err)
	assert.Zero(t, again.Revoked, "revoked keys are left alone")

	out, err := json.Marshal(res)
	require.NoError(t, err)
	assert.JSONEq(t, fmt.Sprintf(`{"revoked":3,"skipped_defaults":[%q]}`, f.server.View.Prefix), string(out))
}

func TestOwnerInputs(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	for _, tt := range []struct {
		name  string
		actor apikey.Actor
		owner string
		page  apikey.Page
		want  error
	}{
		{"empty owner", owner, "", apikey.Page{}, apikey.ErrInvalidMetadata},
		{"owner holding a key", owner, f.server.Key.Reveal(), apikey.Page{}, apikey.ErrInvalidMetadata},
		{"bad cursor", owner, "u", apikey.Page{After: "not-a-cursor"}, apikey.ErrInvalidCursor},
		{"cursor of another list", owner, "u", apikey.Page{After: "MTIzLmFiYw"}, apikey.ErrInvalidCursor},
		{"page too large", owner, "u", apikey.Page{Limit: apikey.MaxPageSize + 1}, apikey.ErrInvalidCursor},
		{"across accounts", operator, "u", apikey.Page{}, apikey.ErrInvalidAccount},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.m.OwnerKeys(ctx, tt.actor, tt.owner, tt.page)
			assert.ErrorIs(t, err, tt.want)
			if tt.page == (apikey.Page{}) {
				_, err = f.m.RevokeOwner(ctx, tt.actor, tt.owner)
				assert.ErrorIs(t, err, tt.want)
			}
		})
	}
}

func TestRevokeOwnerBound(t *testing.T) {
	s := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	now := m.Now()
	var c apikey.Change
	for i := range apikey.MaxOwnerRevocation + 1 {
		c.Insert = append(c.Insert, apikey.Record{ID: fmt.Sprintf("bound%07d", i), Account: apikey.DefaultAccount,
			Type: apikey.Server, Environment: apikey.Production, Owner: "many", Scopes: []string{"*"}, CreatedAt: now,
			Hash: apikey.NewOpaque("x")})
	}
	require.NoError(t, s.Apply(ctx, c))
	_, err = m.RevokeOwner(ctx, owner, "many")
	require.ErrorIs(t, err, apikey.ErrTooManyKeys)
	assert.Contains(t, err.Error(), "10000")
	k, err := s.Key(ctx, "bound0000000")
	require.NoError(t, err)
	assert.True(t, k.RevokedAt.IsZero(), "nothing was revoked")

	// One key fewer fits.
	k.RevokedAt = now
	require.NoError(t, s.Apply(ctx, apikey.Change{Update: []apikey.Record{k}}))
	res, err := m.RevokeOwner(ctx, owner, "many")
	require.NoError(t, err)
	assert.Equal(t, apikey.MaxOwnerRevocation, res.Revoked)
}

func TestExpiring(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.Bootstrap(ctx, owner, apikey.Staging)
	require.NoError(t, err)
	now := f.clock.Now()
	soon := f.create(t, apikey.CreateRequest{ExpiresAt: now.Add(2 * time.Hour)})
	sooner := f.create(t, apikey.CreateRequest{ExpiresAt: now.Add(time.Hour), Environment: apikey.Staging})
	f.create(t, apikey.CreateRequest{ExpiresAt: now.Add(100 * time.Hour)})
	revoked := f.create(t, apikey.CreateRequest{ExpiresAt: now.Add(time.Hour)})
	_, err = f.m.Revoke(ctx, owner, revoked.View.ID)
	require.NoError(t, err)
	_, err = f.m.Rotate(ctx, owner, apikey.RotateRequest{Environment: apikey.Production, Type: apikey.Client, Grace: 3 * time.Hour})

	require.NoError(t, err)

	list, err := f.m.Expiring(ctx, readOnly, apikey.ExpiringRequest{Within: 72 * time.Hour}, apikey.Page{Limit: 2})
	require.NoError(t, err)
	require.Len(t, list.Keys, 2)
	assert.Equal(t, []string{sooner.View.ID, soon.View.ID}, []string{list.Keys[0].ID, list.Keys[1].ID}, "soonest first")
	require.NotEmpty(t, list.Next)
	rest, err := f.m.Expiring(ctx, readOnly, apikey.ExpiringRequest{Within: 72 * time.Hour}, apikey.Page{After: list.Next})
	require.NoError(t, err)
	require.Len(t, rest.Keys, 1)
	assert.Equal(t, f.client.View.ID, rest.Keys[0].ID, "a rotated-out key's end of grace")
	assert.Equal(t, apikey.Expiring, rest.Keys[0].Status)

	staging, err := f.m.Expiring(ctx, owner, apikey.ExpiringRequest{Environment: apikey.Staging, Within: 72 * time.Hour}, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, staging.Keys, 1)
	assert.Equal(t, sooner.View.ID, staging.Keys[0].ID)

	f.clock.Advance(90 * time.Minute)
	later, err := f.m.Expiring(ctx, owner, apikey.ExpiringRequest{Within: time.Hour}, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, later.Keys, 1, "expired keys are not listed; the window starts now")
	assert.Equal(t, soon.View.ID, later.Keys[0].ID)

	for _, tt := range []struct {
		name string
		req  apikey.ExpiringRequest
		want error
	}{
		{"no window", apikey.ExpiringRequest{}, apikey.ErrInvalidTimeRange},
		{"negative window", apikey.ExpiringRequest{Within: -time.Hour}, apikey.ErrInvalidTimeRange},
		{"window too long", apikey.ExpiringRequest{Within: apikey.MaxExpiringWindow + time.Second}, apikey.ErrInvalidTimeRange},
		{"unknown environment", apikey.ExpiringRequest{Environment: "qa", Within: time.Hour}, apikey.ErrUnknownEnvironment},
		{"invalid environment", apikey.ExpiringRequest{Environment: "Q A", Within: time.Hour}, apikey.ErrInvalidEnvironment},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.m.Expiring(ctx, owner, tt.req, apikey.Page{})
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

func TestPurge(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	now := f.clock.Now()
	old := f.create(t, apikey.CreateRequest{})
	_, err := f.m.Revoke(ctx, owner, old.View.ID)
	require.NoError(t, err)
	expired := f.create(t, apikey.CreateRequest{ExpiresAt: now.Add(time.Hour)})
	f.clock.Advance(48 * time.Hour)
	recent := f.create(t, apikey.CreateRequest{})
	_, err = f.m.Revoke(ctx, owner, recent.View.ID)
	require.NoError(t, err)

	for _, tt := range []struct {
		name      string
		actor     apikey.Actor
		olderThan time.Duration
		want      error
	}{
		{"an account's owner", owner, time.Hour, apikey.ErrForbidden},
		{"a read-only operator", apikey.Actor{ID: "x", Role: apikey.ReadOnly, Account: apikey.AnyAccount}, time.Hour, apikey.ErrForbidden},
		{"negative retention", operator, -time.Hour, apikey.ErrInvalidTimeRange},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, err := f.m.Purge(ctx, tt.actor, tt.olderThan)
			assert.ErrorIs(t, err, tt.want)
			assert.Zero(t, n)
		})
	}
	n, err := f.m.Purge(ctx, operator, 0)
	require.NoError(t, err)
	assert.Zero(t, n, "a zero retention purges nothing")

	f.events = nil
	n, err = f.m.Purge(ctx, operator, 24*time.Hour)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	for _, id := range []string{old.View.ID, expired.View.ID} {
		_, err := f.store.Key(ctx, id)
		assert.ErrorIs(t, err, apikey.ErrNotFound)
	}
	f.record(t, recent.View.ID)
	require.Len(t, f.events, 1)
	assert.Equal(t, apikey.ActionPurge, f.events[0].Action)
	assert.Equal(t, apikey.DefaultAccount, f.events[0].Account)
	assert.Equal(t, "2 keys deleted, revoked or expired more than 24h ago", f.events[0].Detail)
}

// bareStore is a Store with none of the optional capabilities.
type bareStore struct{ apikey.Store }

func TestOwnersUnsupported(t *testing.T) {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: bareStore{memory.New()}})
	require.NoError(t, err)
	_, err = m.OwnerKeys(ctx, owner, "u", apikey.Page{})
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = m.RevokeOwner(ctx, owner, "u")
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = m.Expiring(ctx, owner, apikey.ExpiringRequest{Within: time.Hour}, apikey.Page{})
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = m.Purge(context.Background(), operator, time.Hour)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
}

// TestPurgeKeepsImportedKeys: a revoked imported key outlives the
// retention, so that importing its digest again (a migration run twice)
// still fails.
func TestPurgeKeepsImportedKeys(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	digest := sha256.Sum256([]byte("sk_live_" + strings.Repeat("x9", 16)))
	req := apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server, Digest: digest, Scopes: []string{"orders:read"}}
	v, err := f.m.Import(ctx, operator, req)
	require.NoError(t, err)
	_, err = f.m.Revoke(ctx, owner, v.ID)
	require.NoError(t, err)
	f.clock.Advance(48 * time.Hour)
	n, err := f.m.Purge(ctx, operator, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, apikey.Revoked, f.record(t, v.ID).Status(f.clock.Now()))
	_, err = f.m.Import(ctx, operator, req)
	assert.ErrorIs(t, err, apikey.ErrConflict, "the revoked legacy key is not imported again")
}

// TestOwnersInSuspendedAccount: a suspended account's owner keys can
// still be listed and revoked (revocation is the one change a suspension
// allows), and a disabled key is revoked like any other.
func TestOwnersInSuspendedAccount(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	a := f.create(t, apikey.CreateRequest{Owner: "user-1"})
	b := f.create(t, apikey.CreateRequest{Owner: "user-1", ExpiresAt: f.clock.Now().Add(time.Hour)})
	_, err := f.m.Disable(ctx, owner, b.View.ID)
	require.NoError(t, err)
	require.NoError(t, f.m.SuspendAccount(ctx, operator, apikey.DefaultAccount))

	list, err := f.m.OwnerKeys(ctx, owner, "user-1", apikey.Page{})
	require.NoError(t, err)
	assert.Len(t, list.Keys, 2)
	soon, err := f.m.Expiring(ctx, owner, apikey.ExpiringRequest{Within: 2 * time.Hour}, apikey.Page{})
	require.NoError(t, err)
	require.Len(t, soon.Keys, 1, "a disabled key still expires")
	res, err := f.m.RevokeOwner(ctx, owner, "user-1")
	require.NoError(t, err)
	assert.Equal(t, 2, res.Revoked)
	for _, id := range []string{a.View.ID, b.View.ID} {
		assert.Equal(t, apikey.Revoked, f.record(t, id).Status(f.clock.Now()))
	}
}

// listingHookStore runs after, on each listing of an owner's keys that
// are not revoked (RevokeOwner's), as the write of another process that
// commits between that listing and RevokeOwner's write.
type listingHookStore struct {
	*memory.Store
	listings int
	after    func(listing int)
}

func (s *listingHookStore) OwnerKeys(ctx context.Context, q apikey.OwnerQuery) ([]apikey.Record, error) {
	out, err := s.Store.OwnerKeys(ctx, q)
	if q.NotRevoked {
		s.listings++
		s.after(s.listings)
	}
	return out, err
}

func TestRevokeOwnerRevokesKeysIssuedDuringIt(t *testing.T) {
	for _, tt := range []struct {
		name string
		// issue gives mallory a key, as another process would, after the
		// listing-th listing; it returns the key's id, or "".
		issue func(t *testing.T, m *apikey.Manager, bystander string, listing int) string
		// wantErr, if set, is RevokeOwner's error.
		wantErr error
	}{
		{"created after the first listing", func(t *testing.T, m *apikey.Manager, _ string, listing int) string {
			if listing != 1 {
				return ""
			}
			k, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
				Scopes: []string{"*"}, Owner: "mallory"})
			require.NoError(t, err)
			return k.View.ID
		}, nil},
		{"moved to the owner after the first listing", func(t *testing.T, m *apikey.Manager, bystander string, listing int) string {
			if listing != 1 {
				return ""
			}
			_, err := m.SetOwner(ctx, owner, bystander, "mallory")
			require.NoError(t, err)
			return bystander
		}, nil},
		{"created after every listing", func(t *testing.T, m *apikey.Manager, _ string, _ int) string {
			k, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
				Scopes: []string{"*"}, Owner: "mallory"})
			require.NoError(t, err)
			return k.View.ID
		}, apikey.ErrConflict},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &listingHookStore{Store: memory.New(), after: func(int) {}}
			var events []apikey.Event
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
				OnEvent: func(e apikey.Event) { events = append(events, e) }})
			require.NoError(t, err)
			// Another process's manager on the same store.
			other, err := apikey.NewManager(apikey.ManagerOptions{Store: store.Store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
			require.NoError(t, err)
			_, err = m.Bootstrap(ctx, owner, apikey.Production)
			require.NoError(t, err)
			first, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
				Scopes: []string{"*"}, Owner: "mallory"})
			require.NoError(t, err)
			bystander, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server,
				Scopes: []string{"*"}, Owner: "bob"})
			require.NoError(t, err)
			var issued []string
			store.listings = 0 // Create lists the owner's keys too (their owner limits)
			store.after = func(listing int) {
				if id := tt.issue(t, other, bystander.View.ID, listing); id != "" {
					issued = append(issued, id)
				}
			}
			events = nil

			res, err := m.RevokeOwner(ctx, owner, "mallory")
			var summaries []string
			for _, e := range events {
				if e.Action == apikey.ActionRevokeOwner {
					summaries = append(summaries, e.Detail)
				}
			}
			if tt.wantErr != nil {
				// Each Create for the owner also rewrites one of the owner's
				// keys (to order itself with SetOwnerLimits), so that every
				// write of RevokeOwner loses the race: it fails, and says so.
				require.ErrorIs(t, err, tt.wantErr)
				assert.Equal(t, len(summaries), res.Revoked, "the keys of the writes made are counted")
				return
			}
			require.NoError(t, err)
			require.Len(t, issued, 1)
			for _, id := range []string{first.View.ID, issued[0]} {
				rec, err := store.Key(ctx, id)
				require.NoError(t, err)
				assert.False(t, rec.RevokedAt.IsZero(), "mallory's key %s is revoked when RevokeOwner returns", rec.Prefix())
			}
			assert.Equal(t, 2, res.Revoked)
			// The key issued meanwhile also rewrote mallory's first key (to
			// order itself with SetOwnerLimits): RevokeOwner's first write
			// lost the race and its retry, listing again, revoked both.
			assert.Equal(t, []string{"owner mallory: 2 keys revoked, 0 default keys skipped"}, summaries)
			assert.Equal(t, 3, store.listings, "the listing after the write finds nothing left")
		})
	}
}
