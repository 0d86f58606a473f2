package middleware

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/internal/keycache"
	"github.com/keystile/keystile/middleware/problem"
)

// check authenticates r unless outer holds its Identity (verifiedBy), then
// authorizes it under p if not nil and calls the hooks. It returns the
// shared Identity.
func (v *Validator) check(r *http.Request, p *Policy, outer *Identity) (*Identity, error) {
	if outer != nil {
		if p == nil {
			return outer, nil
		}
		return outer, v.rejected(r, outer.Prefix, p.allows(outer))
	}
	prefix, id, err := v.authenticate(r, p)
	if err != nil {
		return nil, v.rejected(r, prefix, err)
	}
	if v.cfg.OnAuthenticated != nil {
		v.cfg.OnAuthenticated(r.Context(), attempt(r, prefix), id.clone())
	}
	return id, nil
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

// authenticate runs the checks in order (docs/design.md). It returns the
// key's displayable prefix once the key is known to be well-formed.
func (v *Validator) authenticate(r *http.Request, p *Policy) (prefix string, _ *Identity, _ error) {
	if v.tasks.ctx.Err() != nil {
		return "", nil, problem.Refuse(ErrUnavailable, "the validator is closed")
	}
	raw, err := keyFromRequest(r, v.cfg.AllowBearer)
	if err != nil {
		return "", nil, err
	}
	now := v.cfg.Now()
	e, prefix, err := v.resolve(r.Context(), raw, now)
	if err != nil {
		return prefix, nil, err
	}
	if e.Fail != nil {
		return prefix, nil, e.Fail
	}
	id := e.Value
	if !id.ExpiresAt.IsZero() || !e.RevokedAt.IsZero() {
		switch (apikey.Record{ExpiresAt: id.ExpiresAt, RevokedAt: e.RevokedAt}).Status(now) {
		case apikey.Revoked:
			return prefix, nil, ErrRevokedKey
		case apikey.Expired:
			return prefix, nil, ErrExpiredKey
		}
	}
	if v.settings.Closed(id.Account, id.Environment) {
		return prefix, nil, problem.Refuse(ErrRevokedKey, "the key's account was closed")
	}
	if id.Type == apikey.Server && fromBrowser(r.Header) && !v.cfg.AllowServerKeyFromBrowser {
		return prefix, nil, ErrServerKeyFromBrowser
	}
	if p != nil {
		if err := p.allows(id); err != nil {
			return prefix, nil, err
		}
	}
	// A publishable key is checked against the Origin alone
	// (docs/security.md, Browsers).
	if origin := r.Header["Origin"]; id.Type == apikey.Client && len(origin) > 0 {
		switch allowed, known := v.settings.Allows(id.Account, id.Environment, origin[0]); {
		case !known: // the table queued a reload
			return prefix, nil, problem.Refuse(ErrUnavailable, "allowed origins of environment "+id.Environment+" not loaded yet")
		case !allowed:
			return prefix, nil, problem.Refuse(ErrOrigin, "origin not allowed for keys of environment "+id.Environment)
		}
	}
	v.cache.Touch(e, now)
	return prefix, id, nil
}

// resolve returns the cache entry of the presented key string raw, and its
// displayable prefix once known to be well-formed. A hit needs no parsing.
func (v *Validator) resolve(ctx context.Context, raw string, now time.Time) (*entry, string, error) {
	var k keycache.Key
	if len(raw) == apikey.KeyLength { // any other length is malformed: ParseKey says why
		k = keycache.KeyOf(raw)
		if e := v.cache.Get(k, now); e != nil {
			v.stats.hits.add(k)
			return e, raw[:apikey.PrefixLength], nil
		}
	}
	key, err := apikey.ParseKey(raw)
	if err != nil {
		return nil, "", &problem.Refusal{Reason: ErrMalformedKey, Cause: err}
	}
	v.stats.misses.add(k)
	e, err := v.verifier.verify(ctx, key, k)
	return e, key.Prefix(), err
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

// secretLike matches most or all of the "_<secret>" part of a key.
var secretLike = regexp.MustCompile(`_[0-9A-Za-z]{20,}`)

// redactKeys cuts every key in s down to its displayable prefix.
func redactKeys(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	return secretLike.ReplaceAllString(s, "_[redacted]")
}
