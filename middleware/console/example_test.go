package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/console"
	"github.com/keystile/keystile/storage/memory"
)

// user is who the service's own login says is signed in.
type user struct {
	email string
	role  apikey.Role // the user's role for API keys
}

type userKey struct{}

// requireLogin stands for the service's session middleware: it finds the
// signed-in user (here from a cookie; a real service checks its session
// store) and refuses everyone else.
func requireLogin(next http.Handler) http.Handler {
	users := map[string]user{"s3ss10n": {"alice@example.com", apikey.Owner}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u user
		ok := false
		if c, err := r.Cookie("session"); err == nil {
			u, ok = users[c.Value]
		}
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// Mount the console behind the service's login, under /console/.
func Example() {
	store := memory.New()
	manager, err := apikey.NewManager(apikey.ManagerOptions{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := manager.Bootstrap(context.Background(), apikey.Actor{ID: "setup", Role: apikey.Owner}, apikey.Production); err != nil {
		log.Fatal(err)
	}

	c, err := console.New(console.Options{
		Manager: manager,
		Audit:   store,
		// The actor is whoever the service's login found.
		Actor: func(r *http.Request) (apikey.Actor, error) {
			u, ok := r.Context().Value(userKey{}).(user)
			if !ok {
				return apikey.Actor{}, errors.New("not signed in")
			}
			return apikey.Actor{ID: u.email, Role: u.role}, nil
		},
		// The service has one account: its actors name none.
		SingleAccount: true,
		// Policy: zero, so apikey.ConsolePolicy (grace 0 to 7 days).
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", requireLogin(http.StripPrefix("/console", c)))

	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The page asks who is signed in, and what it may offer them.
	req, _ := http.NewRequest("GET", srv.URL+"/console/session", nil)
	req.AddCookie(&http.Cookie{Name: "session", Value: "s3ss10n"})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	var s console.Session
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Actor.ID, s.Actor.Role)
	fmt.Println(s.Actions)
	for _, g := range s.Graces {
		fmt.Printf("%s=%s ", g.Label, g.Grace)
	}
	fmt.Println()
	// Output:
	// alice@example.com owner
	// [create rotate change_grace revoke set_scopes set_origins reveal set_limits rename set_lifetime bootstrap disable enable revoke_owner create_endpoint update_endpoint rotate_endpoint_secret delete_endpoint replay_dead_letters]
	// Now=0s 1 hour=1h 24 hours=24h 3 days=72h 7 days=168h
}
