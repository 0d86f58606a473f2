package middleware

import (
	"net/http"

	"github.com/rs/cors"

	"github.com/keystile/keystile/middleware/internal/envsettings"
)

// HeaderKeyExpires is the response header that a key in its grace period
// (rotated out, still working) adds: its expiry in RFC 3339, as in
// "Keystile-Key-Expires: 2026-03-01T12:00:00Z". Browsers may read it: it is
// exposed to cross-origin scripts.
const HeaderKeyExpires = "Keystile-Key-Expires"

// CORS returns next (a whole router) wrapped with the CORS layer of the
// Validator's keys. It answers preflights itself, without a key, for the
// origins that some environment allows for its publishable keys (every
// origin with Options.AllowServerKeyFromBrowser), with the methods of
// Options.AllowedMethods and the key's headers; a preflight never reaches
// next. To an actual request from an admitted origin it adds the CORS
// response headers (HeaderKeyExpires exposed), and every response varies
// on Origin. The routes' Authenticate, Handler and Require still check
// each request's key against its own environment's origins. Wrap the
// router itself, as in http.ListenAndServe(addr, v.CORS(mux)): routers
// that match on the method answer a preflight's OPTIONS before any route
// middleware runs.
//
// CORS panics if next is nil.
func (v *Validator) CORS(next http.Handler) http.Handler {
	if next == nil {
		panic("middleware: CORS: nil handler")
	}
	h := v.cors.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			addVary(w.Header(), v.vary) // the answer would differ with a key header allowed or not
		}
		h.ServeHTTP(w, r)
	})
}

// newCORS returns the rs/cors handler of the Validator: preflights answered
// for the origins that some environment, in any account, allows (every
// origin with AllowServerKeyFromBrowser), X-API-Key and Content-Type (and
// Authorization with AllowBearer) allowed, HeaderKeyExpires exposed.
func newCORS(cfg config, settings *envsettings.Table) *cors.Cors {
	headers := []string{HeaderAPIKey, "Content-Type"}
	if cfg.AllowBearer {
		headers = append(headers, "Authorization")
	}
	return cors.New(cors.Options{
		AllowOriginRequestFunc: func(_ *http.Request, origin string) bool {
			return origin != "" && (cfg.AllowServerKeyFromBrowser || settings.AnyAllows(origin))
		},
		AllowedMethods: cfg.AllowedMethods,
		AllowedHeaders: headers,
		ExposedHeaders: []string{HeaderKeyExpires},
		MaxAge:         int(cfg.PreflightMaxAge.Seconds()),
	})
}
