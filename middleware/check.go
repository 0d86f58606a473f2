package middleware

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/keystile/keystile/apikey"
)

// check authenticates r against a valid policy p and calls the hooks. The
// returned Identity is shared and immutable.
func (v *Validator) check(r *http.Request, p Policy) (*Identity, error) {
	prefix, id, err := v.authenticate(r, p)
	if err != nil {
		if v.cfg.OnRejected != nil {
			v.cfg.OnRejected(r.Context(), attempt(r, prefix), err)
		}
		return nil, err
	}
	if v.cfg.OnAuthenticated != nil {
		v.cfg.OnAuthenticated(r.Context(), attempt(r, prefix), id.clone())
	}
	return id, nil
}

// authenticate runs the checks in order: key present and well-formed
// (no I/O), cache or verification, status and expiry, leaked server key,
// policy, and the Origin of a publishable key. It returns the key's
// displayable prefix for the hooks ("" when the key is malformed).
//
// The cache is looked up with the exact presented string before it is
// parsed: only strings that parsed are ever cached, so a hit proves the
// string well-formed and skips ParseKey (BenchmarkCachedKeyCheck: 320 ns
// with it, 263 ns without). A miss parses before any I/O.
func (v *Validator) authenticate(r *http.Request, p Policy) (string, *Identity, error) {
	if v.closed.Load() {
		return "", nil, refuse(ErrUnavailable, "the validator is closed")
	}
	raw, err := keyFromRequest(r, v.cfg.AllowBearer)
	if err != nil {
		return "", nil, err
	}
	if len(raw) != apikey.KeyLength {
		_, err := apikey.ParseKey(raw) // for the precise cause
		return "", nil, &refusal{reason: ErrMalformedKey, cause: err}
	}
	now := v.cfg.Now()
	k := v.mac.sum(raw)
	e := v.cache.get(k, now)
	if e == nil {
		key, err := apikey.ParseKey(raw)
		if err != nil {
			return "", nil, &refusal{reason: ErrMalformedKey, cause: err}
		}
		if e, err = v.verify(r.Context(), key, k); err != nil {
			return key.Prefix(), nil, err
		}
	}
	prefix := raw[:apikey.PrefixLength] // the string parsed: it is a key
	if e.fail != nil {
		return prefix, nil, e.fail
	}
	switch e.life.Status(now) {
	case apikey.Revoked:
		return prefix, nil, ErrRevokedKey
	case apikey.Expired:
		return prefix, nil, ErrExpiredKey
	}
	id := e.ident
	origin := r.Header["Origin"]
	if id.Type == apikey.Server && len(origin) > 0 {
		if v.cfg.OnLeakedServerKey != nil {
			v.cfg.OnLeakedServerKey(r.Context(), attempt(r, prefix), id.clone())
		}
		if !v.cfg.AllowServerKeyFromBrowser {
			return prefix, nil, ErrServerKeyFromBrowser
		}
	}
	if err := p.allows(id); err != nil {
		return prefix, nil, err
	}
	if id.Type == apikey.Client && len(origin) > 0 {
		if err := v.checkOrigin(id.Environment, origin[0]); err != nil {
			return prefix, nil, err
		}
	}
	if id.Expiring && v.cfg.OnGrace != nil {
		v.cfg.OnGrace(r.Context(), attempt(r, prefix), id.clone())
	}
	v.cache.touch(e, now)
	return prefix, id, nil
}

// attempt describes r for the hooks: never the secret, only prefix, the
// displayable prefix of a well-formed key. A key that a client put in the
// path or the Origin header by mistake is cut down to its prefix there too.
func attempt(r *http.Request, prefix string) Attempt {
	a := Attempt{Method: r.Method, RemoteAddr: r.RemoteAddr, Prefix: prefix}
	if r.URL != nil {
		a.Path = redactKeys(r.URL.Path)
	}
	if o := r.Header["Origin"]; len(o) > 0 {
		a.Origin = redactKeys(o[0])
	}
	return a
}

// secretLike matches the "_<secret>" part of a key (20 characters or more:
// most of a secret), whole or cut, glued to other text or not.
var secretLike = regexp.MustCompile(`_[0-9A-Za-z]{20,}`)

// redactKeys cuts every key in s down to its displayable prefix (and
// anything that looks like the secret part of one).
func redactKeys(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	return secretLike.ReplaceAllString(s, "_[redacted]")
}
