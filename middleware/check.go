package middleware

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/internal/envsettings"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/middleware/limit"
	"github.com/keystile/keystile/middleware/problem"
)

// verdict is what check learned about a request.
type verdict struct {
	id   *Identity // the verified key's shared Identity, also when refused after; nil if none
	now  time.Time // when the key was checked; zero if it was not
	rate limit.Decision
	// limited reports that rate holds the decision of a rate limit: the
	// key's own, or its owner's when ownerRate is set (the tighter of the
	// two, or the one that refused).
	limited, ownerRate bool
	steps              steps // what the check did, for Options.OnVerification
}

// rateLimit returns the rate limit whose decision vd.rate holds.
func (vd *verdict) rateLimit() apikey.RateLimit {
	if vd.ownerRate {
		return vd.id.OwnerLimits.Rate
	}
	return vd.id.Limits.Rate
}

// check authenticates r unless outer holds its Identity (verifiedBy), then
// authorizes it under p if not nil, enforces the key's limits and calls
// the hooks. It fills in vd.
func (v *Validator) check(r *http.Request, p *Policy, outer *Identity, vd *verdict) error {
	if outer != nil {
		vd.id = outer
		if p == nil {
			return nil
		}
		err := p.allows(outer)
		if err == nil && p.cost() > 1 && (!outer.Limits.Quota.IsZero() || outer.ownerBudget != "") {
			vd.now = v.now()
			err = v.limiter.spend(r.Context(), outer, p.cost()-1, p.cost(), vd.now)
		}
		return v.rejected(r, outer.Prefix, err)
	}
	var prefix string
	var err error
	if v.cfg.OnVerification != nil {
		start := time.Now() // the monotonic clock, whatever Options.Now
		prefix, err = v.authenticate(r, p, vd)
		v.cfg.OnVerification(r.Context(), vd.verification(start, prefix, err))
	} else {
		prefix, err = v.authenticate(r, p, vd)
	}
	if err != nil {
		return v.rejected(r, prefix, err)
	}
	if v.cfg.OnAuthenticated != nil {
		v.cfg.OnAuthenticated(r.Context(), attempt(r, prefix), vd.id.clone())
	}
	return nil
}

// rejected counts and reports the refusal err, if any, and returns it.
func (v *Validator) rejected(r *http.Request, prefix string, err error) error {
	if err != nil {
		v.stats.refused(err)
		if v.cfg.OnRejected != nil {
			v.cfg.OnRejected(r.Context(), attempt(r, prefix), err)
		}
	}
	return err
}

// authenticate runs the checks in order (docs/design.md) and fills in vd.
// It returns the key's displayable prefix once the key is known to be
// well-formed.
func (v *Validator) authenticate(r *http.Request, p *Policy, vd *verdict) (prefix string, _ error) {
	if v.tasks.ctx.Err() != nil {
		return "", problem.Refuse(ErrUnavailable, "the validator is closed")
	}
	raw, err := keyFromRequest(r, v.cfg.Keys.AllowBearer)
	if err != nil {
		return "", err
	}
	now := v.now()
	e, prefix, err := v.resolve(r.Context(), raw, now, &vd.steps)
	if err != nil {
		return prefix, err
	}
	if e.Fail != nil {
		return prefix, e.Fail
	}
	id := e.Value
	vd.id, vd.now = id, now
	// A key rotated out: who still calls it, whether a check below refuses
	// the request or not.
	if id.tracked {
		id.callers.See(v.limiter.clientIP.Addr(r), userAgent(r), now)
	}
	if id.expires || id.ended {
		switch (apikey.Record{ExpiresAt: id.ExpiresAt, RevokedAt: e.RevokedAt, DisabledAt: e.DisabledAt}).Status(now) {
		case apikey.Revoked:
			return prefix, ErrRevokedKey
		case apikey.Expired:
			return prefix, ErrExpiredKey
		case apikey.Disabled:
			return prefix, ErrDisabledKey
		}
	}
	switch v.settings.State(id.Account, id.Environment) {
	case envsettings.Closed:
		return prefix, problem.Refuse(ErrRevokedKey, "the key's account was closed")
	case envsettings.Suspended:
		return prefix, ErrAccountSuspended
	case envsettings.Unknown:
		return prefix, problem.Refuse(ErrUnavailable, "environment settings not loaded yet")
	}
	if id.Type == apikey.Server && fromBrowser(r.Header) && !v.cfg.AllowServerKeyFromBrowser {
		return prefix, ErrServerKeyFromBrowser
	}
	// A key used from outside its allowlist learns nothing of the routes.
	if id.allowlisted && !id.Limits.AllowsAddr(v.limiter.clientIP.Addr(r)) {
		return prefix, ErrAddressNotAllowed
	}
	if p != nil {
		if err := p.allows(id); err != nil {
			return prefix, err
		}
	}
	// A publishable key is checked against the Origin alone
	// (docs/security.md, Browsers).
	if origin := r.Header["Origin"]; id.Type == apikey.Client && len(origin) > 0 {
		switch allowed, known := v.settings.Allows(id.Account, id.Environment, origin[0]); {
		case !known: // the table queued a reload
			return prefix, problem.Refuse(ErrUnavailable, "allowed origins of environment "+id.Environment+" not loaded yet")
		case !allowed:
			return prefix, problem.Refuse(ErrOrigin, "origin not allowed for keys of environment "+id.Environment)
		}
	}
	if id.limited {
		if err := v.limiter.enforce(r.Context(), id, p.cost(), now, vd); err != nil {
			return prefix, err
		}
	}
	v.cache.Touch(e, now)
	return prefix, nil
}

// resolve returns the cache entry of the presented key string raw, and its
// displayable prefix once known to be well-formed (of an imported key
// that did not verify: its format's prefix). A hit needs no parsing. A
// string of a declared imported format (never a keystile key, see
// apikey.ImportFormat) costs one SHA-256 and, on a miss, the verification
// of every key, with a digest compare in place of argon2. It records what
// it did in st.
func (v *Validator) resolve(ctx context.Context, raw string, now time.Time, st *steps) (*entry, string, error) {
	var k keycache.Key
	if len(raw) == apikey.KeyLength { // any other length is imported or malformed: ParseKey says why
		k = keycache.KeyOf(raw)
		if e := v.cache.Get(k, now); e != nil {
			v.stats.hits.add(k)
			st.cached = true
			return e, raw[:apikey.PrefixLength], nil
		}
	}
	var p presented
	prefix, imported := v.cfg.Keys.match(raw)
	if imported {
		p, k = importedKey(raw)
		if e := v.cache.Get(k, now); e != nil {
			v.stats.hits.add(k)
			st.cached = true
			return e, importedPrefix(e, prefix), nil
		}
	} else {
		key, err := apikey.ParseKey(raw)
		if err != nil {
			return nil, "", &problem.Refusal{Reason: ErrMalformedKey, Cause: err}
		}
		p, prefix = presented{key: key, id: key.ID()}, key.Prefix()
	}
	v.stats.misses.add(k)
	e, err := v.verifier.verify(ctx, p, k, st)
	if err != nil {
		return nil, prefix, err
	}
	if imported {
		prefix = importedPrefix(e, prefix)
	}
	return e, prefix, nil
}

// importedKey returns the presented imported key string raw and its
// cache Key.
func importedKey(raw string) (presented, keycache.Key) {
	digest := apikey.ImportDigest(raw)
	id := apikey.ImportedID(digest)
	return presented{id: id, digest: digest, imported: true}, keycache.ImportedKeyOf(id, digest)
}

// importedPrefix returns the displayable prefix of the imported key of
// entry e: its key's, or formatPrefix when it did not verify.
func importedPrefix(e *entry, formatPrefix string) string {
	if e.Fail == nil {
		return e.Value.Prefix
	}
	return formatPrefix
}

// HeaderAPIKey is the header the key is read from, in any case.
const HeaderAPIKey = "X-API-Key"

// The headers a check reads, as net/http stores their names.
var (
	canonicalAPIKey    = http.CanonicalHeaderKey(HeaderAPIKey)
	canonicalFetchSite = http.CanonicalHeaderKey("Sec-Fetch-Site")
)

// keyFromRequest returns the presented key string, not yet parsed: from
// X-API-Key, or if bearer from "Authorization: Bearer". A request without
// a key gets ErrMissingKey, one that sends a key twice ErrMalformedKey.
func keyFromRequest(r *http.Request, bearer bool) (string, error) {
	values := r.Header[canonicalAPIKey]
	if len(values) > 1 {
		return "", problem.Refuse(ErrMalformedKey, "send exactly one "+HeaderAPIKey+" header")
	}
	key := ""
	if len(values) == 1 {
		key = strings.TrimSpace(values[0])
	}
	if auth := r.Header["Authorization"]; bearer && len(auth) > 0 {
		if len(auth) > 1 {
			return "", problem.Refuse(ErrMalformedKey, "send exactly one Authorization header")
		}
		// Another scheme may be meant for something else: it is ignored.
		scheme, token, ok := strings.Cut(strings.TrimSpace(auth[0]), " ")
		if token = strings.TrimSpace(token); ok && strings.EqualFold(scheme, "Bearer") && token != "" {
			if key != "" {
				return "", problem.Refuse(ErrMalformedKey, "send the key in "+HeaderAPIKey+" or Authorization, not both")
			}
			key = token
		}
	}
	if key == "" {
		return "", ErrMissingKey
	}
	return key, nil
}

// fromBrowser reports whether a web browser sent a request with headers h
// (docs/security.md, Browsers).
func fromBrowser(h http.Header) bool {
	return len(h["Origin"]) > 0 || len(h[canonicalFetchSite]) > 0
}

// fetchSite returns the request's Sec-Fetch-Site value for the hooks (see
// Attempt.FetchSite); another value is not repeated.
func fetchSite(h http.Header) string {
	values := h[canonicalFetchSite]
	if len(values) == 0 {
		return ""
	}
	switch v := strings.ToLower(strings.TrimSpace(values[0])); v {
	case "cross-site", "same-site", "same-origin", "none":
		return v
	}
	return "other"
}

// attempt describes r for the hooks, any key in it cut to its prefix.
func attempt(r *http.Request, prefix string) Attempt {
	a := Attempt{
		Method: r.Method, RemoteAddr: r.RemoteAddr, Prefix: prefix,
		Browser: fromBrowser(r.Header), FetchSite: fetchSite(r.Header),
	}
	if r.URL != nil {
		a.Path = redactKeys(r.URL.Path)
	}
	if o := r.Header["Origin"]; len(o) > 0 {
		a.Origin = redactKeys(o[0])
	}
	return a
}

// userAgent returns r's User-Agent, "" if none.
func userAgent(r *http.Request) string {
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		return ua[0]
	}
	return ""
}

// secretLike matches most or all of the "_<secret>" part of a key.
var secretLike = regexp.MustCompile(`_[0-9A-Za-z]{20,}`)

// redactKeys cuts every key in s down to its displayable prefix.
func redactKeys(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	return secretLike.ReplaceAllString(s, "_[redacted]")
}
