// Command custom-store runs keystile on a custom storage backend: package
// jsonstore, which keeps everything in one JSON file. It bootstraps the
// development environment of an account, rotates its server key with an
// hour of grace and lists the keys, a page at a time. New keys are printed
// once, as "<account> <environment> <type> <key>"; the listing shows
// prefixes only.
//
//	go run ./examples/custom-store                        # a fresh temporary file
//	go run ./examples/custom-store -file keystile.json    # keep state between runs
//	go run ./examples/custom-store -file keystile.json -account acme
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/custom-store/jsonstore"
)

func main() {
	file := flag.String("file", "", "the JSON file to keep keys in (default: a new temporary file, removed on exit)")
	account := flag.String("account", apikey.DefaultAccount, "the account to act in (your customer's id)")
	flag.Parse()
	if err := run(context.Background(), *file, *account); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, path, account string) error {
	if path == "" {
		dir, err := os.MkdirTemp("", "keystile-example-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "keystile-example.json")
	}
	log.Printf("store: %s", path)

	store, err := jsonstore.Open(path)
	if err != nil {
		return err
	}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store})
	if err != nil {
		return err
	}
	admin := apikey.Actor{ID: "custom-store-example", Role: apikey.Owner, Account: account}
	env := apikey.Development

	issued, err := m.Bootstrap(ctx, admin, env)
	switch {
	case errors.Is(err, apikey.ErrAlreadyBootstrapped):
		log.Printf("%s of %s was bootstrapped before; rotating its server key", env, account)
	case err != nil:
		return err
	}
	rotated, err := m.Rotate(ctx, admin, apikey.RotateRequest{Environment: env, Type: apikey.Server, Grace: time.Hour})
	if err != nil {
		return err
	}
	// The only time full keys are shown: the store keeps just their hashes.
	for _, k := range append(issued, rotated) {
		fmt.Println(account, env, k.Key.Type(), k.Key.Reveal())
	}

	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "PREFIX\tTYPE\tSTATUS\tDEFAULT")
	page := apikey.Page{Limit: 50}
	for {
		list, err := m.List(ctx, admin, env, page)
		if err != nil {
			return err
		}
		for _, v := range list.Keys {
			fmt.Fprintf(w, "%s\t%s\t%s\t%t\n", v.Prefix, v.Type, v.Status, v.Default)
		}
		if list.Next == "" {
			break
		}
		page.After = list.Next
	}
	return w.Flush()
}
