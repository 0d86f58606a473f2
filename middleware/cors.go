package middleware

import (
	"net/http"
	"strings"

	"github.com/rs/cors"

	"github.com/keystile/keystile/apikey"
)

// HeaderKeyExpires is the response header that a key in its grace period
// (rotated out, still working) adds: its expiry in RFC 3339, as in
// "Keystile-Key-Expires: 2026-03-01T12:00:00Z". Browsers may read it: it is
// exposed to cross-origin scripts.
const HeaderKeyExpires = "Keystile-Key-Expires"

// checkOrigin checks the Origin of a request made with a publishable key of
// an account's environment. Settings not loaded yet, or an environment the
// table does not know yet, fail closed with ErrUnavailable and ask the
// background loop to load them.
func (ss *settingsState) checkOrigin(id *Identity, origin string) error {
	t := ss.table.Load()
	if t == nil {
		ss.requestFullReload()
		return refuse(ErrUnavailable, "allowed origins not loaded yet")
	}
	s := t.get(envKey{id.Account, id.Environment})
	if s == nil {
		ss.requestReload(envKey{id.Account, id.Environment})
	}
	if s == nil || s.missing {
		return refuse(ErrUnavailable, "allowed origins of environment "+id.Environment+" not loaded yet")
	}
	if !s.allows(origin) {
		return refuse(ErrOrigin, "origin not allowed for keys of environment "+id.Environment)
	}
	return nil
}

// preflightAllows reports whether a route with policy p answers a CORS
// preflight from origin: some environment, in any account, whose name p
// accepts allows origin for its publishable keys (an environment with no
// list allows none). The key is not known at preflight; the actual request
// is checked against its own account's environment. The answer comes from
// an index of the allowed origins (originIndex), in time that does not grow
// with the number of environments.
func (ss *settingsState) preflightAllows(p Policy, origin string, serverFromBrowser bool) bool {
	if origin == "" {
		return false // rs/cors asks for every request; most carry no Origin
	}
	if serverFromBrowser && p.acceptsType(apikey.Server) {
		return true
	}
	if !p.acceptsType(apikey.Client) {
		return false
	}
	t := ss.table.Load()
	if t == nil {
		return false
	}
	return t.index.allows(origin, p.Environments)
}

// CORS returns next (a whole router) wrapped so that it answers the CORS
// preflights of browsers for the origins that some environment allows for
// its publishable keys. Routers that match on the method
// (mux.Handle("GET /v1/products", ...), chi's Get, With and Group) answer
// a preflight's OPTIONS with 405 before any route middleware runs: wrap the
// router itself, as in http.ListenAndServe(addr, v.CORS(mux)). Every other
// request goes to next unchanged; the routes' Handler or Require add the
// CORS headers of the actual request and check its key, type, scope,
// environment and origin. A preflight carries no key, so its answer only
// lets the browser send the request that the route then validates.
func (v *Validator) CORS(next http.Handler) http.Handler {
	if next == nil {
		panic("middleware: CORS: nil handler")
	}
	c := newCORS(v.cfg, v.settings, Policy{Types: []apikey.KeyType{apikey.Server, apikey.Client}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPreflight(r) {
			addVary(w.Header(), v.vary[1:])
			c.HandlerFunc(w, r) // answers the preflight
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isPreflight reports whether r is a CORS preflight, as rs/cors decides.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// newCORS returns the rs/cors handler of a route with policy p: preflight
// answered for the origins preflightAllows, X-API-Key and Content-Type (and
// Authorization with AllowBearer) allowed, HeaderKeyExpires exposed, and
// "Vary: Origin" on every response.
func newCORS(cfg config, ss *settingsState, p Policy) *cors.Cors {
	headers := []string{HeaderAPIKey, "Content-Type"}
	if cfg.AllowBearer {
		headers = append(headers, "Authorization")
	}
	return cors.New(cors.Options{
		AllowOriginRequestFunc: func(_ *http.Request, origin string) bool {
			return ss.preflightAllows(p, origin, cfg.AllowServerKeyFromBrowser)
		},
		AllowedMethods: cfg.AllowedMethods,
		AllowedHeaders: headers,
		ExposedHeaders: []string{HeaderKeyExpires},
		MaxAge:         int(cfg.PreflightMaxAge.Seconds()),
	})
}

// varyHeaders returns the Vary values of every response of the
// middleware: Origin (CORS), then the headers a key is read from, so that a
// shared cache never serves the response to one key's request to another.
// The slice is shared by every response, so that adding it allocates
// nothing (see addVary).
func varyHeaders(bearer bool) []string {
	vary := []string{"Origin", HeaderAPIKey}
	if bearer {
		vary = append(vary, "Authorization")
	}
	return vary
}

// varyLine returns the values of varyHeaders as one header line, for the
// responses whose Vary the middleware writes alone: one line costs less
// to clone and write than one per value (BenchmarkCachedKey).
func varyLine(bearer bool) []string {
	return []string{strings.Join(varyHeaders(bearer), ", ")}
}

// addVary adds the shared values to h's Vary header. When h has no Vary yet
// it stores values itself, capped so that a later Add copies instead of
// writing into the shared array.
func addVary(h http.Header, values []string) {
	if vary, ok := h["Vary"]; ok {
		h["Vary"] = append(vary, values...)
	} else {
		h["Vary"] = values[:len(values):len(values)]
	}
}
