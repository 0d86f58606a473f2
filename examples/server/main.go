// Command server is keystile's example API. This first version bootstraps the
// built-in environments in memory, prints their keys once and serves
// /healthz; later versions add the middleware, the management API and a
// SQLite file.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()

	m, err := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	if err != nil {
		log.Fatal(err)
	}
	admin := apikey.Actor{ID: "example-server", Role: apikey.Owner}
	for _, env := range apikey.BuiltinEnvironments {
		issued, err := m.Bootstrap(context.Background(), admin, env)
		if err != nil {
			log.Fatal(err)
		}
		for _, k := range issued {
			fmt.Println(env, k.Key.Type(), k.Key.Reveal())
		}
	}
	http.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	log.Printf("listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
