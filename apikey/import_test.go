package apikey_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// skLive is the format of a typical pre-keystile key, "sk_live_" and 32
// base62 characters.
var skLive = apikey.ImportFormat{Prefix: "sk_live_", Length: 32}

const oldKey = "sk_live_4eC39HqLyjWDarjtT1zdp7dc8Xk2PqRs"

func TestImportFormatValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    apikey.ImportFormat
		want string // "" for valid
	}{
		{"base62", skLive, ""},
		{"hex", apikey.ImportFormat{Prefix: "key_", Length: 32, Alphabet: "0123456789abcdef"}, ""},
		{"no prefix", apikey.ImportFormat{Length: 32}, "prefix is required"},
		{"long prefix", apikey.ImportFormat{Prefix: strings.Repeat("a", apikey.MaxImportPrefixLength+1), Length: 32}, "prefix is longer"},
		{"space in prefix", apikey.ImportFormat{Prefix: "sk live", Length: 32}, "prefix: want printable ASCII"},
		{"keystile server", apikey.ImportFormat{Prefix: "server-x", Length: 32}, "confused"},
		{"keystile client", apikey.ImportFormat{Prefix: "client-", Length: 32}, "confused"},
		{"start of server-", apikey.ImportFormat{Prefix: "se", Length: 32}, "confused"},
		{"short", apikey.ImportFormat{Prefix: "sk_", Length: apikey.MinImportLength - 1}, "length must be"},
		{"long", apikey.ImportFormat{Prefix: "sk_", Length: apikey.MaxImportLength + 1}, "length must be"},
		{"low entropy", apikey.ImportFormat{Prefix: "sk_", Length: 20, Alphabet: "0123456789"}, "fewer than 128"},
		{"duplicate", apikey.ImportFormat{Prefix: "sk_", Length: 64, Alphabet: "0123456789abcdeff"}, "twice"},
		{"space in alphabet", apikey.ImportFormat{Prefix: "sk_", Length: 64, Alphabet: "ab cdef0123456789"}, "alphabet: want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, apikey.ErrInvalidImportFormat)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestImportFormatMatch(t *testing.T) {
	hex := apikey.ImportFormat{Prefix: "key_", Length: 32, Alphabet: "0123456789abcdef"}
	for _, tc := range []struct {
		name string
		f    apikey.ImportFormat
		s    string
		want bool
	}{
		{"match", skLive, oldKey, true},
		{"short", skLive, oldKey[:len(oldKey)-1], false},
		{"long", skLive, oldKey + "a", false},
		{"other prefix", skLive, "sk_test_4eC39HqLyjWDarjtT1zdp7dc8Xk2PqRs", false},
		{"outside base62", skLive, "sk_live_4eC39HqLyjWDarjtT1zdp7dc8Xk2PqR-", false},
		{"hex", hex, "key_" + strings.Repeat("0f", 16), true},
		{"hex upper", hex, "key_" + strings.Repeat("0F", 16), false},
		{"zero format", apikey.ImportFormat{}, "", false},
		{"keystile key", skLive, "server-AAAAAAAAAAAA_" + strings.Repeat("a", 49), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.f.Match(tc.s))
		})
	}
}

func TestImportFormatMatchAllocs(t *testing.T) {
	assert.Zero(t, testing.AllocsPerRun(100, func() { skLive.Match(oldKey) }))
	digest := apikey.ImportDigest(oldKey)
	hash := "$sha256$" + strings.Repeat("A", 43)
	assert.Zero(t, testing.AllocsPerRun(100, func() { apikey.MatchImported(digest, hash) }))
}

// FuzzImportFormatMatch checks Match against a regular expression of the
// same format.
func FuzzImportFormatMatch(f *testing.F) {
	f.Add(oldKey, "sk_live_", 32, "")
	f.Add("key_0f0f", "key_", 16, "0123456789abcdef")
	f.Add("x", "", 0, "")
	f.Fuzz(func(t *testing.T, s, prefix string, length int, alphabet string) {
		format := apikey.ImportFormat{Prefix: prefix, Length: length, Alphabet: alphabet}
		got := format.Match(s)
		if format.Validate() != nil {
			if got && (prefix == "" || length < apikey.MinImportLength) {
				t.Fatalf("a format without prefix or length matched %q", s)
			}
			return
		}
		class := "0-9A-Za-z"
		if alphabet != "" {
			var b strings.Builder
			for i := 0; i < len(alphabet); i++ {
				fmt.Fprintf(&b, `\x{%02x}`, alphabet[i])
			}
			class = b.String()
		}
		re := regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + "[" + class + "]{" + strconv.Itoa(length) + "}$")
		if want := re.MatchString(s); got != want {
			t.Fatalf("Match(%q) = %v, regexp %s says %v", s, got, re, want)
		}
		if got && apikey.KeyRegexp.MatchString(s) && strings.Index(s, "server-") == 0 {
			t.Fatalf("%q is both a keystile key and of the format", s)
		}
	})
}

func TestImportedID(t *testing.T) {
	digest := apikey.ImportDigest(oldKey)
	assert.Equal(t, sha256.Sum256([]byte(oldKey)), digest)
	id := apikey.ImportedID(digest)
	got, typ, err := apikey.ParseKeyID(id)
	require.NoError(t, err, "an imported key's id is a key id")
	assert.Equal(t, id, got)
	assert.Empty(t, typ)
	assert.Equal(t, id, apikey.ImportedID(digest), "the id follows from the digest")
	assert.NotEqual(t, id, apikey.ImportedID(apikey.ImportDigest(oldKey+"x")))
	assert.NotContains(t, hex.EncodeToString(digest[:]), strings.ToLower(id))
}

func TestImport(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	expires := f.clock.Now().Add(30 * 24 * time.Hour)
	view, err := f.m.Import(ctx, operator, apikey.ImportRequest{Account: apikey.DefaultAccount,
		Environment: apikey.Production, Type: apikey.Server, Digest: apikey.ImportDigest(oldKey),
		Scopes: []string{"charges:write"}, Owner: "user_42", Name: "legacy", Metadata: map[string]string{"plan": "pro"},
		ExpiresAt: expires, Limits: apikey.Limits{Rate: apikey.RateLimit{Requests: 10, Window: time.Second}},
	})
	require.NoError(t, err)
	assert.True(t, view.Imported)
	assert.False(t, view.Default, "an imported key is never a default key")
	assert.Equal(t, apikey.ImportedID(apikey.ImportDigest(oldKey)), view.ID)
	assert.Equal(t, "user_42", view.Owner)
	assert.Equal(t, []string{"charges:write"}, view.Scopes)
	assert.Equal(t, apikey.Active, view.Status)

	rec := f.record(t, view.ID)
	assert.True(t, rec.Imported())
	assert.True(t, strings.HasPrefix(rec.Hash.Reveal(), "$sha256$"))
	assert.True(t, apikey.MatchImported(apikey.ImportDigest(oldKey), rec.Hash.Reveal()))
	assert.False(t, apikey.MatchImported(apikey.ImportDigest(oldKey+"x"), rec.Hash.Reveal()))
	assert.False(t, f.record(t, f.server.View.ID).Imported())

	last := f.events[len(f.events)-1]
	assert.Equal(t, apikey.ActionImport, last.Action)
	assert.Equal(t, view.ID, last.KeyID)

	j, err := f.m.Get(ctx, readOnly, view.ID)
	require.NoError(t, err)
	assert.True(t, j.Imported)

	// The same digest again, by digest or by key, in any account.
	_, err = f.m.Import(ctx, operator, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
		Key: apikey.NewOpaque(oldKey), Scopes: []string{"*"}})
	assert.ErrorIs(t, err, apikey.ErrConflict)

	_, err = f.m.Reveal(ctx, owner, view.ID)
	assert.ErrorIs(t, err, apikey.ErrNotRevealable)

	// Not a default key: revoked directly.
	_, err = f.m.Revoke(ctx, owner, view.ID)
	require.NoError(t, err)
}

func TestImportByKey(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	view, err := f.m.Import(ctx, operator, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Client,
		Key: apikey.NewOpaque("pk_live_" + strings.Repeat("Z", 32))})
	require.NoError(t, err)
	assert.Equal(t, apikey.ImportedID(apikey.ImportDigest("pk_live_"+strings.Repeat("Z", 32))), view.ID)
	assert.Equal(t, apikey.Client, view.Type)
}

func TestImportRefusals(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	ok := apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server, Digest: apikey.ImportDigest(oldKey), Scopes: []string{"*"}}
	for _, tc := range []struct {
		name   string
		actor  apikey.Actor
		change func(*apikey.ImportRequest)
		want   error
		text   string
	}{
		{"member", member, nil, apikey.ErrForbidden, ""},
		{"read-only", readOnly, nil, apikey.ErrForbidden, ""},
		{"the account's owner", owner, nil, apikey.ErrForbidden, "operator"},
		{"another account's owner", apikey.Actor{ID: "mallory", Role: apikey.Owner, Account: "globex"}, nil, apikey.ErrForbidden, "operator"},
		{"a key of the account", apikey.Actor{ID: "k", Role: apikey.Owner, Scopes: []string{"*"}, KeyID: "AAAAAAAAAAAA"}, nil, apikey.ErrForbidden, "operator"},
		{"a key across accounts", apikey.Actor{ID: "k", Role: apikey.Owner, Account: apikey.AnyAccount, Scopes: []string{"*"}}, nil, apikey.ErrForbidden, "operator"},
		{"an operator not an owner", apikey.Actor{ID: "ops", Role: apikey.Member, Account: apikey.AnyAccount}, nil, apikey.ErrForbidden, ""},
		{"no account", operator, func(r *apikey.ImportRequest) { r.Account = "" }, apikey.ErrInvalidAccount, "account is required"},
		{"any account", operator, func(r *apikey.ImportRequest) { r.Account = apikey.AnyAccount }, apikey.ErrInvalidAccount, "account is required"},
		{"bad account", operator, func(r *apikey.ImportRequest) { r.Account = "-acme" }, apikey.ErrInvalidAccount, ""},
		{"unknown account", operator, func(r *apikey.ImportRequest) { r.Account = "initech" }, apikey.ErrUnknownEnvironment, ""},
		{"no digest", operator, func(r *apikey.ImportRequest) { r.Digest = [32]byte{} }, apikey.ErrInvalidImport, "digest or key is required"},
		{"both", operator, func(r *apikey.ImportRequest) { r.Key = apikey.NewOpaque(oldKey) }, apikey.ErrInvalidImport, "not both"},
		{"keystile key", operator, func(r *apikey.ImportRequest) { r.Digest, r.Key = [32]byte{}, apikey.NewOpaque(f.server.Key.Reveal()) }, apikey.ErrInvalidImport, "keystile key"},
		{"space in key", operator, func(r *apikey.ImportRequest) { r.Digest, r.Key = [32]byte{}, apikey.NewOpaque("sk live") }, apikey.ErrInvalidImport, "printable ASCII"},
		{"long key", operator, func(r *apikey.ImportRequest) {
			r.Digest, r.Key = [32]byte{}, apikey.NewOpaque(strings.Repeat("a", apikey.MaxImportedKeyLength+1))
		}, apikey.ErrInvalidImport, "longer than"},
		{"type", operator, func(r *apikey.ImportRequest) { r.Type = "admin" }, apikey.ErrInvalidKeyType, ""},
		{"no scopes", operator, func(r *apikey.ImportRequest) { r.Scopes = nil }, apikey.ErrScopesRequired, ""},
		{"name", operator, func(r *apikey.ImportRequest) { r.Name = strings.Repeat("n", 1000) }, apikey.ErrInvalidName, ""},
		{"owner", operator, func(r *apikey.ImportRequest) { r.Owner = strings.Repeat("o", 1000) }, apikey.ErrInvalidMetadata, ""},
		{"past expiry", operator, func(r *apikey.ImportRequest) { r.ExpiresAt = f.clock.Now().Add(-time.Hour) }, apikey.ErrInvalidExpiry, ""},
		{"environment", operator, func(r *apikey.ImportRequest) { r.Environment = apikey.Staging }, apikey.ErrUnknownEnvironment, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			if tc.change != nil {
				tc.change(&req)
			}
			_, err := f.m.Import(ctx, tc.actor, req)
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), tc.text)
			assert.True(t, apikey.IsRequestError(err))
			assert.NotContains(t, err.Error(), f.server.Key.Reveal())
		})
	}
	_, err := f.store.Key(ctx, apikey.ImportedID(apikey.ImportDigest(oldKey)))
	assert.ErrorIs(t, err, apikey.ErrNotFound, "no refusal stored anything")
}

func TestImportClosedAccount(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.CloseAccount(ctx, apikey.Actor{ID: "ops", Role: apikey.Owner}, apikey.DefaultAccount)
	require.NoError(t, err)
	_, err = f.m.Import(ctx, operator, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
		Digest: apikey.ImportDigest(oldKey), Scopes: []string{"*"}})
	assert.ErrorIs(t, err, apikey.ErrAccountClosed)
}

func TestRotateImported(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	expires := f.clock.Now().Add(90 * 24 * time.Hour)
	view, err := f.m.Import(ctx, operator, apikey.ImportRequest{Account: apikey.DefaultAccount,
		Environment: apikey.Production, Type: apikey.Server, Digest: apikey.ImportDigest(oldKey),
		Scopes: []string{"charges:write"}, Owner: "user_42", Name: "legacy", Metadata: map[string]string{"plan": "pro"},
		ExpiresAt: expires,
	})
	require.NoError(t, err)
	issued, err := f.m.Rotate(ctx, owner, apikey.RotateRequest{KeyID: view.Prefix, Grace: 24 * time.Hour})
	require.NoError(t, err)

	nv := issued.View
	assert.False(t, nv.Imported, "the replacement is a keystile key")
	assert.False(t, nv.Default)
	_, err = apikey.ParseKey(issued.Key.Reveal())
	require.NoError(t, err)
	assert.Equal(t, view.Scopes, nv.Scopes)
	assert.Equal(t, view.Owner, nv.Owner)
	assert.Equal(t, view.Metadata, nv.Metadata)
	assert.Equal(t, view.Name, nv.Name)
	assert.Equal(t, expires, nv.ExpiresAt)
	ok, _, err := apikey.Argon2id{Params: apikey.TestParams}.Verify([]byte(issued.Key.Reveal()), f.record(t, nv.ID).Hash.Reveal())
	require.NoError(t, err)
	assert.True(t, ok)

	old := f.record(t, view.ID)
	assert.True(t, old.Imported())
	assert.Equal(t, apikey.Expiring, old.Status(f.clock.Now()))
	assert.Equal(t, f.clock.Now().Add(24*time.Hour), old.ExpiresAt)
	assert.Equal(t, view.ID, f.record(t, nv.ID).LineageID())

	// UpgradeHash never turns the digest into an argon2 hash.
	k, err := apikey.AssembleKey(apikey.Server, view.ID, strings.Repeat("a", apikey.SecretLength))
	require.NoError(t, err)
	_, stored, err := apikey.UpgradeHash(ctx, f.store, apikey.Argon2id{}, old, k)
	require.NoError(t, err)
	assert.False(t, stored)
}

func TestImportSuspendedAccount(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	ops := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
	require.NoError(t, f.m.SuspendAccount(ctx, ops, apikey.DefaultAccount))
	_, err := f.m.Import(ctx, operator, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
		Digest: apikey.ImportDigest(oldKey), Scopes: []string{"*"}})
	assert.ErrorIs(t, err, apikey.ErrAccountSuspended)
}

// TestImportLifetime: the environment's lifetime policy applies to an
// import as to a create, counted from the import.
func TestImportLifetime(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.SetLifetimePolicy(ctx, owner, apikey.Production,
		apikey.LifetimePolicy{DefaultExpiry: 30 * 24 * time.Hour, MaxLifetime: 90 * 24 * time.Hour})
	require.NoError(t, err)
	req := apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server, Digest: apikey.ImportDigest(oldKey), Scopes: []string{"*"}}

	req.ExpiresAt = f.clock.Now().Add(100 * 24 * time.Hour)
	_, err = f.m.Import(ctx, operator, req)
	require.ErrorIs(t, err, apikey.ErrBeyondLifetime)

	req.ExpiresAt = time.Time{}
	view, err := f.m.Import(ctx, operator, req)
	require.NoError(t, err)
	assert.Equal(t, f.clock.Now().Add(30*24*time.Hour), view.ExpiresAt, "the default expiry")
}

// TestImportConcurrently: of many concurrent imports of one digest,
// exactly one stores the key; the others fail with ErrConflict.
func TestImportConcurrently(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	req := apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server, Digest: apikey.ImportDigest(oldKey), Scopes: []string{"*"}}
	errs := make([]error, 10)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = f.m.Import(ctx, operator, req) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			require.ErrorIs(t, err, apikey.ErrConflict)
		}
	}
	assert.Equal(t, 1, ok)
}

// TestImportIsTheOperators: importing is the service's act. A tenant
// (another account's owner, or its full-access key) cannot claim a legacy
// key of another account, such as a publishable key published in that
// account's web pages, nor learn from a conflict that it exists; the
// operator imports it into the account it names.
func TestImportIsTheOperators(t *testing.T) {
	f := newFixture(t, apikey.ManagerOptions{})
	globex := apikey.Actor{ID: "mallory", Role: apikey.Owner, Account: "globex"}
	_, err := f.m.Bootstrap(ctx, globex, apikey.Production)
	require.NoError(t, err)
	legacy := "pk_live_0123456789abcdefABCDEFGHIJKLmnop" // the default account's, public
	for _, actor := range []apikey.Actor{
		globex,
		{ID: "k", Role: apikey.Owner, Account: "globex", Scopes: []string{"*"}, KeyID: "AAAAAAAAAAAA"},
	} {
		_, err = f.m.Import(ctx, actor, apikey.ImportRequest{Account: "globex", Environment: apikey.Production,
			Type: apikey.Server, Key: apikey.NewOpaque(legacy), Scopes: []string{"*"}})
		require.ErrorIs(t, err, apikey.ErrForbidden)
	}
	_, err = f.store.Key(ctx, apikey.ImportedID(apikey.ImportDigest(legacy)))
	require.ErrorIs(t, err, apikey.ErrNotFound, "a tenant stored nothing")

	view, err := f.m.Import(ctx, operator, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production,
		Type: apikey.Client, Key: apikey.NewOpaque(legacy)})
	require.NoError(t, err)
	assert.Equal(t, apikey.DefaultAccount, view.Account)
	assert.Equal(t, apikey.Client, view.Type)
	last := f.events[len(f.events)-1]
	assert.Equal(t, apikey.ActionImport, last.Action)
	assert.Equal(t, apikey.DefaultAccount, last.Account, "audited in the key's account")
	assert.Equal(t, operator.ID, last.Actor.ID)
	assert.Equal(t, apikey.AnyAccount, last.Actor.Account, "by the operator")
}
