package middleware

import (
	"net/http"

	"github.com/rs/cors"

	"github.com/keystile/keystile/middleware/internal/envsettings"
)

// HeaderKeyExpires is the response header that a key in its grace period
// adds: its expiry in RFC 3339, exposed to cross-origin scripts.
const HeaderKeyExpires = "Keystile-Key-Expires"

// CORS returns next (a whole router, as in v.CORS(mux)) wrapped with the
// CORS layer of the Validator's keys. It answers preflights itself for the
// origins that some environment allows (every origin with
// Options.AllowServerKeyFromBrowser); a preflight never reaches next. To
// an actual request from an admitted origin it adds the CORS headers. The
// routes still check each key against its own environment's origins.
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

// newCORS returns the rs/cors handler of the Validator.
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
