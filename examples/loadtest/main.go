// Command loadtest is the server that scripts/load.sh drives with wrk: one
// HTTP server on loopback, over a SQLite store in a temporary directory, with
// two routes that share one handler:
//
//	GET /bare       the handler alone
//	GET /protected  the handler behind the keystile middleware (v.Handler)
//
// It bootstraps the production environment with apikey.DefaultParams, prints
// the listening address and the server key on stdout, and serves until
// SIGINT or SIGTERM:
//
//	addr http://127.0.0.1:40123
//	key server-...
//
// Comparing the two routes under the same load measures what the middleware
// costs per request with a cached key. The printed key is a secret of a
// throwaway store that is deleted on exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/middleware"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	flag.Parse()
	if err := run(*addr); err != nil {
		log.Fatal(err)
	}
}

// hello is the handler of both routes: a small JSON body.
func hello(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"message":"hello","ok":true}` + "\n"))
}

func run(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "keystile-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := exampledb.Open(ctx, filepath.Join(dir, "keystile.db"))
	if err != nil {
		return err
	}
	defer store.DB().Close()

	hasher := apikey.Argon2id{Params: apikey.DefaultParams}
	v, err := middleware.New(middleware.Options{Store: store, Hasher: hasher})
	if err != nil {
		return err
	}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: hasher, OnEvent: v.Invalidate})
	if err != nil {
		return err
	}
	issued, err := m.Bootstrap(ctx, apikey.Actor{ID: "loadtest", Role: apikey.Owner}, apikey.Production)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /bare", hello)
	mux.Handle("GET /protected", v.Handler(http.HandlerFunc(hello)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("addr http://%s\nkey %s\n", ln.Addr(), issued[0].Key.Reveal())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	if cerr := v.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
