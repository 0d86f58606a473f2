// Command browser serves a small web page, on its own origin, that calls the
// example API (examples/server) from the browser with a publishable key.
//
//	go run ./examples/server -allow-origin development=http://127.0.0.1:8081
//	go run ./examples/browser [-api http://127.0.0.1:8080] [-addr 127.0.0.1:8081]
//
// Then open http://127.0.0.1:8081/#key=client-... with the development
// publishable key that the server printed, or paste the key in the page.
// The page calls GET /v1/whoami with the key in the X-API-Key header and
// shows the answer: the key's environment, the API's refusal (such as 403
// origin_not_allowed or server_key_from_browser), or that the browser
// blocked the call because the API did not allow the page's origin.
package main

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "base URL of the example API")
	addr := flag.String("addr", "127.0.0.1:8081", "listen address of the page")
	flag.Parse()
	h, err := newHandler(*api)
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(2)
	}
	slog.Info("serving the page", "url", "http://"+*addr+"/", "api", *api)
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(1)
	}
}

// newHandler returns the page's handler: index.html at "/", which names the
// API at api (an http or https origin, without a path), and its script and
// style sheet.
func newHandler(api string) (http.Handler, error) {
	origin, err := apiOrigin(api)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.ParseFS(static, "static/index.html")
	if err != nil {
		return nil, err
	}
	var page bytes.Buffer
	if err := tmpl.Execute(&page, struct{ API string }{origin}); err != nil {
		return nil, err
	}
	assets, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	// The page may load only its own files and talk only to the API.
	csp := "default-src 'self'; connect-src " + origin + "; base-uri 'none'; form-action 'none'"

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page.Bytes())
	})
	files := http.FileServerFS(assets)
	mux.Handle("GET /app.js", files)
	mux.Handle("GET /style.css", files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	}), nil
}

// apiOrigin checks that api is an http or https URL without a path, query
// or fragment, and returns it as an origin.
func apiOrigin(api string) (string, error) {
	u, err := url.Parse(api)
	switch {
	case err != nil:
		return "", fmt.Errorf("-api: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return "", errors.New("-api: want an http or https URL such as http://127.0.0.1:8080")
	case strings.TrimSuffix(u.Path, "/") != "", u.RawQuery != "", u.Fragment != "", u.User != nil:
		return "", errors.New("-api: want the API's base URL only, such as http://127.0.0.1:8080")
	}
	return u.Scheme + "://" + u.Host, nil
}
