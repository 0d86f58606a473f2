package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// BenchmarkImportedFirstRequest checks b.N distinct imported keys, each for
// the first time: it reports the store's Key reads and the argon2
// verifications per request (1 and 0, by design).
func BenchmarkImportedFirstRequest(b *testing.B) {
	ctx := context.Background()
	store := faultstore.New(memory.New())
	hasher := newHasher(apikey.TestParams)
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Bootstrap(ctx, owner, apikey.Production); err != nil {
		b.Fatal(err)
	}
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		key := fmt.Sprintf("sk_live_%032d", i)
		if _, err := m.Import(ctx, importer, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
			Digest: apikey.ImportDigest(key), Scopes: []string{apikey.AllScopes}}); err != nil {
			b.Fatal(err)
		}
		reqs[i] = request(key)
	}
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher, FeedInterval: time.Hour,
		Keys: middleware.KeyOptions{Imported: []apikey.ImportFormat{skLive}}})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	reads := store.Calls(faultstore.OpKey)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Check(reqs[i], middleware.Policy{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(store.Calls(faultstore.OpKey)-reads)/float64(b.N), "keyreads/op")
	b.ReportMetric(float64(hasher.Calls(faultstore.OpVerify))/float64(b.N), "argon2/op")
}

// BenchmarkImportedCached checks one imported key that is cached.
func BenchmarkImportedCached(b *testing.B) {
	ctx := context.Background()
	store := memory.New()
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	if _, err := m.Bootstrap(ctx, owner, apikey.Production); err != nil {
		b.Fatal(err)
	}
	key := oldKey('a')
	if _, err := m.Import(ctx, importer, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
		Digest: apikey.ImportDigest(key), Scopes: []string{apikey.AllScopes}}); err != nil {
		b.Fatal(err)
	}
	v, err := middleware.New(middleware.Options{Store: store, FeedInterval: time.Hour,
		Keys: middleware.KeyOptions{Imported: []apikey.ImportFormat{skLive}}})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	r := request(key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Check(r, middleware.Policy{}); err != nil {
			b.Fatal(err)
		}
	}
}
