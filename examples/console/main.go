// Command console serves keystile's web console (package
// middleware/console) behind a stand-in for a service's login.
//
//	go run ./examples/console [-addr 127.0.0.1:8082] [-db keystile-console.db] [-close-account] [-sample-usage]
//
// Open http://127.0.0.1:8082/ and sign in as alice (owner), bob (member) or
// carol (read-only): the console is at /console/. Owners create, rotate,
// disable, enable, revoke and reveal keys, edit allowed origins and the
// key lifetime policy, create environments, rename a key and set its
// limits (in the key's view, which its prefix links to), and revoke every
// key of one owner; members do the same with the keys of the environments
// that are not production (staging, development) and reveal publishable
// keys, but change no production key and no account setting; read-only
// users see the keys (also an owner's, and those expiring soon), their
// limits and usage, and no action. With -close-account,
// owners may also close the account, after typing its id ("default"):
// every key is revoked for good.
//
// The example serves no API that keys are used with, so nothing counts
// usage; -sample-usage records made-up counts for the last 30 days of the
// production environment's keys, to show the usage charts.
//
// The login is a demonstration only: it trusts a cookie that names the
// user, with no password. A real service mounts the console behind its own
// session middleware (see newHandler), and its Actor func turns the
// signed-in user into an apikey.Actor.
//
// Keys live in memory and are lost when the program stops, unless -db
// names a SQLite file (or a postgres:// URL). The production, staging and
// development environments are bootstrapped on the first start; their
// first keys are not printed: rotate one in the console to see a key.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/middleware/console"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/memory"
)

// store is what the console needs of a store: keys and settings, and the
// audit log.
type store interface {
	apikey.Store
	storage.AuditLog
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	db := flag.String("db", "", "SQLite file or postgres:// URL; empty keeps keys in memory")
	closeAccount := flag.Bool("close-account", false, "let owners close the account (after typing its id)")
	sampleUsage := flag.Bool("sample-usage", false, "record made-up usage of the production keys for the last 30 days")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *db, *closeAccount, *sampleUsage); err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, db string, closeAccount, sampleUsage bool) error {
	var s store = memory.New()
	if db != "" {
		sql, err := exampledb.Open(ctx, db)
		if err != nil {
			return err
		}
		defer sql.DB().Close()
		s = sql
	}
	h, err := newHandler(ctx, s, closeAccount)
	if err != nil {
		return err
	}
	if sampleUsage {
		if err := recordSampleUsage(ctx, s, time.Now()); err != nil {
			return err
		}
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	slog.Info("serving the console", "url", "http://"+addr+"/")
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// recordSampleUsage records made-up usage for every live key of the
// production environment, hour by hour over the 30 days before now: a
// daily rhythm of admitted requests, and some refused ones in the busiest
// hours. The store must keep usage (apikey.UsageRecorder).
func recordSampleUsage(ctx context.Context, s store, now time.Time) error {
	rec, ok := s.(apikey.UsageRecorder)
	if !ok {
		return errors.New("-sample-usage: the store keeps no usage")
	}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s})
	if err != nil {
		return err
	}
	list, err := m.List(ctx, bootstrapActor, apikey.Production, apikey.Page{})
	if err != nil {
		return err
	}
	end := now.UTC().Truncate(time.Hour)
	var counts []apikey.UsageCount
	for k, v := range list.Keys {
		if v.Status == apikey.Revoked || v.Status == apikey.Expired {
			continue
		}
		for h := range 30 * 24 {
			hour := end.Add(-time.Duration(h) * time.Hour)
			// Busiest at 14:00 UTC, quietest at 02:00.
			load := 1 + math.Cos(2*math.Pi*float64(hour.Hour()-14)/24)
			admitted := 1 + int64(load*40) + int64((h*7+k*13)%11) // at least one an hour
			count := func(outcome string, n int64) {
				if n > 0 {
					counts = append(counts, apikey.UsageCount{Account: v.Account, Environment: v.Environment,
						KeyID: v.ID, Hour: hour, Outcome: outcome, Count: n})
				}
			}
			count("admitted", admitted)
			if load > 1.6 {
				count("rate_limited", int64((load-1.6)*30))
			}
			if h%97 == 5 {
				count("quota_exhausted", 3)
			}
		}
	}
	return rec.RecordUsage(ctx, counts)
}

// serviceName and accountName are what the page calls the demonstration's
// service and its one account.
const (
	serviceName = "Acme Payments"
	accountName = "Globex Corporation"
)

// scopeCatalogue is the scopes the demonstration's API would check.
var scopeCatalogue = []console.Scope{
	{Name: "customers:read", Description: "Look up customers and their payment methods"},
	{Name: "customers:write", Description: "Create, change and delete customers"},
	{Name: "invoices:read", Description: "List and download invoices"},
	{Name: "invoices:write", Description: "Create, send and void invoices"},
	{Name: "reports:read", Description: "Download monthly reports"},
}

// users are the demonstration's accounts, by the value of the session
// cookie.
var users = map[string]apikey.Actor{
	"alice": {ID: "alice", Role: apikey.Owner},
	"bob":   {ID: "bob", Role: apikey.Member},
	"carol": {ID: "carol", Role: apikey.ReadOnly},
}

// sessionCookie names the signed-in user. SameSite=Lax is what a real
// service's session cookie would use; it does not stop requests from
// another port of the same host (the same site), which is why the console
// checks the origin of every change itself.
const sessionCookie = "demo_session"

type actorKey struct{}

// bootstrapActor sets up the environments.
var bootstrapActor = apikey.Actor{ID: "console-example", Role: apikey.Owner}

// newHandler bootstraps the environments that s does not have yet and
// returns the example's handler: the login page at /, the console at
// /console/ behind the login. closeAccount lets owners close the account.
func newHandler(ctx context.Context, s store, closeAccount bool) (http.Handler, error) {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s})
	if err != nil {
		return nil, err
	}
	for _, env := range []string{apikey.Production, apikey.Staging, apikey.Development} {
		if _, err := m.Bootstrap(ctx, bootstrapActor, env); err != nil && !errors.Is(err, apikey.ErrAlreadyBootstrapped) {
			return nil, err
		}
	}
	c, err := console.New(console.Options{
		Manager: m,
		Audit:   s,
		Actor: func(r *http.Request) (apikey.Actor, error) {
			a, ok := r.Context().Value(actorKey{}).(apikey.Actor)
			if !ok {
				return apikey.Actor{}, errors.New("not signed in")
			}
			return a, nil
		},
		// The demonstration has one account: its users name none.
		SingleAccount: true,
		CloseAccount:  closeAccount,
		// What the page calls the service and the account, and the scopes
		// its API checks, which the page offers to choose from.
		ServiceName: serviceName,
		AccountName: func(*http.Request, string) string { return accountName },
		Scopes:      scopeCatalogue,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", loginPage)
	mux.HandleFunc("GET /login", login)
	mux.Handle("/console/", requireLogin(http.StripPrefix("/console", c)))
	return mux, nil
}

// requireLogin is the stand-in for a service's session middleware: it puts
// the signed-in user in the request's context, and sends everyone else to
// the login page.
func requireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a apikey.Actor
		ok := false
		if c, err := r.Cookie(sessionCookie); err == nil {
			a, ok = users[c.Value]
		}
		if !ok {
			if r.Method == http.MethodGet && r.URL.Path == "/console/" {
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, a)))
	})
}

// login signs in as ?as=alice|bob|carol, or signs out for any other
// value, and goes to the console.
func login(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("as")
	if _, ok := users[name]; !ok {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: name, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in: keystile console example</title></head>
<body>
<main>
<h1>keystile console example</h1>
<p>A stand-in for your service's login: pick a user. The console is at <a href="/console/">/console/</a>.</p>
<ul>
{{range .}}<li><a href="/login?as={{.ID}}">Sign in as {{.ID}} ({{.Role}})</a></li>
{{end}}</ul>
<p><a href="/login?as=">Sign out</a></p>
</main>
</body>
</html>
`))

func loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	_ = loginTemplate.Execute(w, []apikey.Actor{users["alice"], users["bob"], users["carol"]})
}
