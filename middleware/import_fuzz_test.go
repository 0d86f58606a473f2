package middleware_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// FuzzCheckImported drives Check with arbitrary X-API-Key values against a
// Validator that declares the sk_live_ format, over a store holding an
// active and a revoked imported key. It checks that a request succeeds
// only with the active imported key (or a keystile key of the store), that
// every refusal has a 401, 403, 429 or 503 reason, that a string that is
// neither of the format nor shaped like a keystile key costs no store
// read, and that argon2 never runs for a string not shaped like a keystile
// key.
func FuzzCheckImported(f *testing.F) {
	ctx := context.Background()
	store := faultstore.New(memory.New())
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := m.Bootstrap(ctx, owner, apikey.Production); err != nil {
		f.Fatal(err)
	}
	active, revoked := oldKey('a'), oldKey('r')
	for _, k := range []string{active, revoked} {
		if _, err := m.Import(ctx, importer, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
			Digest: apikey.ImportDigest(k), Scopes: []string{apikey.AllScopes}}); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := m.Revoke(ctx, owner, apikey.ImportedID(apikey.ImportDigest(revoked))); err != nil {
		f.Fatal(err)
	}
	hasher := newHasher(apikey.TestParams)
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher, FeedInterval: time.Hour,
		Keys: middleware.KeyOptions{Imported: []apikey.ImportFormat{skLive, hexKeys}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = v.Close() })

	for _, s := range []string{active, revoked, " " + active + " ", active[:len(active)-1], active + "a", "sk_live_", "key_" + strings.Repeat("0f", 16), "server-"} {
		f.Add(s)
	}
	statuses := []int{401, 403, 429, 503}
	f.Fuzz(func(t *testing.T, key string) {
		reads, verifies := store.Calls(faultstore.OpKey), hasher.Calls(faultstore.OpVerify)
		id, err := v.Check(request(key), middleware.Policy{})
		trimmed := strings.TrimSpace(key)
		if err == nil {
			if trimmed != active || !id.Imported {
				t.Fatalf("accepted %q as %+v", key, id)
			}
		} else if reason := problem.Of(err); reason == nil || !slices.Contains(statuses, reason.Status()) {
			t.Fatalf("refusal without a 401/403/429/503 reason: %v", err)
		}
		keystileShaped := len(trimmed) == apikey.KeyLength && (strings.HasPrefix(trimmed, "server-") || strings.HasPrefix(trimmed, "client-"))
		if !skLive.Match(trimmed) && !hexKeys.Match(trimmed) && !keystileShaped && store.Calls(faultstore.OpKey) != reads {
			t.Fatalf("%q is of no declared format and cost a store read", key)
		}
		if !keystileShaped && hasher.Calls(faultstore.OpVerify) != verifies {
			t.Fatalf("argon2 ran for %q", key)
		}
	})
}
