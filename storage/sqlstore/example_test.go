package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/sqlstore"
)

// Example opens a SQLite store with modernc.org/sqlite, migrates it and
// bootstraps an environment through a Manager.
func Example() {
	dir, err := os.MkdirTemp("", "keystile-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	dsn := "file:" + filepath.Join(dir, "keystile.db") +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	store, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.SQLite})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.LightParams}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.Bootstrap(ctx, apikey.Actor{ID: "admin", Role: apikey.Owner}, apikey.Production); err != nil {
		log.Fatal(err)
	}
	keys, err := store.Keys(ctx, apikey.Production)
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
