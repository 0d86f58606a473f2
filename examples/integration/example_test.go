package integration_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// Example_sqlite runs storage/sqlstore's set-up with a driver: it opens a
// SQLite store as the example programs do (modernc.org/sqlite with the DSN
// settings that sqlstore's documentation recommends), bootstraps an
// environment through a Manager and reads back the keys and the change
// feed's revision.
func Example_sqlite() {
	dir, err := os.MkdirTemp("", "keystile-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	store, err := exampledb.Open(ctx, filepath.Join(dir, "keystile.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.DB().Close()

	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.LightParams}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.Bootstrap(ctx, apikey.Actor{ID: "admin", Role: apikey.Owner}, apikey.Production); err != nil {
		log.Fatal(err)
	}
	keys, err := store.Keys(ctx, apikey.KeyQuery{Account: apikey.DefaultAccount, Environment: apikey.Production, Limit: 10})
	if err != nil {
		log.Fatal(err)
	}
	revision, err := store.Revision(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(keys), "default keys; feed revision", revision)
	// Output: 2 default keys; feed revision 3
}
