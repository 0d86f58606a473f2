package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/sqlstore"
)

// Example sets up a service's keys on SQLite: the store, its schema, and a
// Validator and a Manager that share it. The program imports the driver of
// its choice, here modernc.org/sqlite (pure Go, driver name "sqlite"):
//
//	import _ "modernc.org/sqlite"
//
// The examples module runs this set-up with the driver (examples/server,
// and Example_sqlite in examples/integration).
func Example() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:keystile.db?"+
		"_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
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

	v, err := middleware.New(middleware.Options{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close() // writes the last-used times
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, OnEvent: v.Invalidate})
	if err != nil {
		log.Fatal(err)
	}
	// The first start creates the default keys; later starts find them.
	issued, err := m.Bootstrap(ctx, apikey.Actor{ID: "setup", Role: apikey.Owner}, apikey.Production)
	if err != nil && !errors.Is(err, apikey.ErrAlreadyBootstrapped) {
		log.Fatal(err)
	}
	for _, is := range issued {
		fmt.Println(is.Key.Reveal()) // shown once: hand it to its owner
	}
}
