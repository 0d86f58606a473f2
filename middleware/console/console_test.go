package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/console"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/memory"
)

var (
	owner    = apikey.Actor{ID: "alice", Role: apikey.Owner}
	member   = apikey.Actor{ID: "bob", Role: apikey.Member}
	readOnly = apikey.Actor{ID: "carol", Role: apikey.ReadOnly}
)

// fixture is a console over a memory store with a bootstrapped production
// environment and one extra server key, served by a test server whose
// "login" is the X-Test-User header (a role name).
type fixture struct {
	m       *apikey.Manager
	store   *memory.Store
	srv     *httptest.Server
	extra   apikey.Issued
	actorFn func(*http.Request) (apikey.Actor, error)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, console.Options{})
}

// newFixtureWith is newFixture with the options of opts besides Manager,
// Audit, Actor and SingleAccount.
func newFixtureWith(t *testing.T, opts console.Options) *fixture {
	t.Helper()
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	f := &fixture{m: m, store: store}
	f.extra, err = m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Name: "worker", Scopes: []string{"customers:write"}})
	require.NoError(t, err)
	f.actorFn = func(r *http.Request) (apikey.Actor, error) {
		for _, a := range []apikey.Actor{owner, member, readOnly} {
			if r.Header.Get("X-Test-User") == string(a.Role) {
				return a, nil
			}
		}
		return apikey.Actor{}, errors.New("not signed in")
	}
	opts.Manager, opts.Audit, opts.SingleAccount = m, store, true
	opts.Actor = func(r *http.Request) (apikey.Actor, error) { return f.actorFn(r) }
	c, err := console.New(opts)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", c))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// request is one request to the console, as a browser on some origin or a
// non-browser client would send it.
type request struct {
	method, path, body string
	role               apikey.Role
	origin             string // Origin header, if set
	fetchSite          string // Sec-Fetch-Site header, if set
}

func (f *fixture) do(t *testing.T, req request) (*http.Response, []byte) {
	t.Helper()
	r, err := http.NewRequest(req.method, f.srv.URL+"/console"+req.path, strings.NewReader(req.body))
	require.NoError(t, err)
	if req.role != "" {
		r.Header.Set("X-Test-User", string(req.role))
	}
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if req.origin != "" {
		r.Header.Set("Origin", req.origin)
	}
	if req.fetchSite != "" {
		r.Header.Set("Sec-Fetch-Site", req.fetchSite)
	}
	res, err := f.srv.Client().Do(r)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

// sameOrigin is what a browser sends with the page's own requests.
func (f *fixture) sameOrigin(method, path, body string, role apikey.Role) request {
	return request{method: method, path: path, body: body, role: role, origin: f.srv.URL, fetchSite: "same-origin"}
}

func problemCode(t *testing.T, body []byte) string {
	t.Helper()
	var p problem.Problem
	require.NoError(t, json.Unmarshal(body, &p), string(body))
	return p.Code
}

func (f *fixture) status(t *testing.T, id string) apikey.Status {
	t.Helper()
	v, err := f.m.Get(context.Background(), owner, id)
	require.NoError(t, err)
	return v.Status
}

// assertSecurityHeaders checks the headers every console response carries.
func assertSecurityHeaders(t *testing.T, res *http.Response, what string) {
	t.Helper()
	h := res.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"} {
		assert.Contains(t, csp, want, what)
	}
	assert.NotContains(t, csp, "unsafe-inline", what)
	assert.NotContains(t, csp, "unsafe-eval", what)
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), what)
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"), what)
	assert.Equal(t, "no-store", h.Get("Cache-Control"), what)
	assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"), what)
}

func TestNewValidates(t *testing.T) {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: memory.New()})
	require.NoError(t, err)
	actor := func(*http.Request) (apikey.Actor, error) { return owner, nil }
	for name, opts := range map[string]console.Options{
		"no manager":         {Actor: actor},
		"no actor":           {Manager: m},
		"negative policy":    {Manager: m, Actor: actor, Policy: apikey.GracePolicy{Name: "x", Max: -1}},
		"bad trusted origin": {Manager: m, Actor: actor, TrustedOrigins: []string{"admin.example.com"}},
		"bad scope":          {Manager: m, Actor: actor, Scopes: []console.Scope{{Name: "invoices"}}},
		"full access scope":  {Manager: m, Actor: actor, Scopes: []console.Scope{{Name: "*"}}},
		"scope twice":        {Manager: m, Actor: actor, Scopes: []console.Scope{{Name: "invoices:read"}, {Name: "invoices:read"}}},
	} {
		_, err := console.New(opts)
		assert.Error(t, err, name)
	}
	_, err = console.New(console.Options{Manager: m, Actor: actor, TrustedOrigins: []string{"https://admin.example.com"}})
	assert.NoError(t, err)
}

func TestPageAndAssets(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		path        string
		contentType string
		contains    []string
	}{
		{"/", "text/html; charset=utf-8", []string{`<script src="app.js" defer></script>`, `<link rel="stylesheet" href="style.css">`, `<label for="environment">`,
			`<section id="key-view"`, `<template id="tpl-limits">`, `<label for="limit-rate-requests">`, `<label for="limit-ips">`,
			`<label for="rename-name">`, `<label for="lifetime-default">`, `<label for="lifetime-max">`, `<label for="environment-name">`, `<dl id="lifetime"`,
			`<section id="suspended"`, `<section id="expiring"`, `<section id="owner-view"`, `<label for="owner-search-input">`}},
		{"/app.js", "text/javascript; charset=utf-8", []string{`"use strict"`, "api/environments", "navigator.clipboard.writeText", "res.full_key",
			"document.createElementNS(svgNS, tag)", "/limits`", "/usage?", "err.status === 501", "/name`", "/lifetime`", `api("POST", "api/environments"`,
			"imported — rotate to a keystile key", "beyond_lifetime", "/disable`", "/enable`", "account_suspended", "api/keys/expiring?within=", "/revoke`"}},
		{"/style.css", "text/css; charset=utf-8", []string{":focus-visible"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := f.do(t, request{method: "GET", path: tt.path}) // no login needed: the files hold no data
			require.Equal(t, http.StatusOK, res.StatusCode)
			assert.Equal(t, tt.contentType, res.Header.Get("Content-Type"))
			assertSecurityHeaders(t, res, tt.path)
			for _, want := range tt.contains {
				assert.Contains(t, string(body), want)
			}
			// Nothing is loaded from elsewhere: no absolute URL at all.
			assert.NotRegexp(t, `(src|href)=["']?(https?:)?//`, string(body))
			assert.NotRegexp(t, `fetch\(["'\x60]https?:`, string(body))
		})
	}

	t.Run("no inline script or style", func(t *testing.T) {
		_, page := f.do(t, request{method: "GET", path: "/"})
		for _, m := range regexp.MustCompile(`(?s)<script[^>]*>(.*?)</script>`).FindAllStringSubmatch(string(page), -1) {
			assert.Empty(t, strings.TrimSpace(m[1]), "inline script")
		}
		assert.NotContains(t, string(page), "<style")
		assert.NotRegexp(t, `\son[a-z]+=`, string(page), "inline event handler")
		assert.NotRegexp(t, `\sstyle=`, string(page), "inline style")
	})

	t.Run("the script writes no HTML and no inline style", func(t *testing.T) {
		// Values reach the page as text (textContent, value, setAttribute
		// of a named attribute); the charts are SVG elements whose look
		// comes from the style sheet.
		_, script := f.do(t, request{method: "GET", path: "/app.js"})
		for _, sink := range []string{"innerHTML", "outerHTML =", "insertAdjacentHTML", "document.write", "DOMParser", "eval(", "new Function", ".style.", `"style"`, "cssText"} {
			assert.NotContains(t, string(script), sink)
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, path := range []string{"/index.html", "/static/app.js", "/nothing"} {
			res, body := f.do(t, request{method: "GET", path: path})
			assert.Equal(t, http.StatusNotFound, res.StatusCode, path)
			assert.Equal(t, "no_such_route", problemCode(t, body), path)
			assertSecurityHeaders(t, res, path)
		}
	})
}

func TestSession(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		role       apikey.Role
		actor      apikey.Actor
		actions    []apikey.Action
		production []apikey.Action
	}{
		{apikey.Owner, owner,
			[]apikey.Action{"create", "rotate", "change_grace", "revoke", "set_scopes", "set_origins", "reveal", "set_limits", "rename", "set_lifetime", "bootstrap", "disable", "enable", "revoke_owner",
				"create_endpoint", "update_endpoint", "rotate_endpoint_secret", "delete_endpoint", "replay_dead_letters"},
			[]apikey.Action{"create", "rotate", "change_grace", "revoke", "set_scopes", "set_origins", "reveal", "set_limits", "rename", "set_lifetime", "bootstrap", "disable", "enable", "revoke_owner",
				"create_endpoint", "update_endpoint", "rotate_endpoint_secret", "delete_endpoint", "replay_dead_letters"}},
		{apikey.Member, member,
			[]apikey.Action{"create", "rotate", "change_grace", "revoke", "set_scopes", "reveal", "set_limits", "rename", "disable", "enable"},
			[]apikey.Action{"reveal"}},
		{apikey.ReadOnly, readOnly, []apikey.Action{}, []apikey.Action{}},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			res, body := f.do(t, request{method: "GET", path: "/session", role: tt.role})
			require.Equal(t, http.StatusOK, res.StatusCode, string(body))
			assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
			assertSecurityHeaders(t, res, "session")
			var s console.Session
			require.NoError(t, json.Unmarshal(body, &s))
			assert.Equal(t, tt.actor, s.Actor)
			assert.Equal(t, tt.actions, s.Actions, "outside production")
			assert.Equal(t, tt.production, s.ProductionActions, "in production")
			assert.Equal(t, []console.Grace{
				{Label: "Now", Grace: "0s"}, {Label: "1 hour", Grace: "1h"}, {Label: "24 hours", Grace: "24h"},
				{Label: "3 days", Grace: "72h"}, {Label: "7 days", Grace: "168h"},
			}, s.Graces)
			assert.Equal(t, "console", s.Policy.Name)
			assert.Equal(t, "168h", s.Policy.Max)
			assert.True(t, s.Audit)
			assert.False(t, s.RevealServerKeys, "server keys are shown once unless the Manager seals them")
			assert.Contains(t, string(body), `"actor":{"id":"`+tt.actor.ID+`","role":"`+string(tt.role)+`"}`)
			assert.Equal(t, apikey.DefaultAccount, s.Account, "SingleAccount")
			assert.False(t, s.CloseAccount, "closing the account is off by default")
			assert.Empty(t, s.ServiceName)
			assert.Equal(t, apikey.DefaultAccount, s.AccountName, "the account's id without Options.AccountName")
			assert.Contains(t, string(body), `"scopes":[]`, "no catalogue: the page takes typed scopes")
		})
	}

	t.Run("not signed in", func(t *testing.T) {
		res, body := f.do(t, request{method: "GET", path: "/session"})
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Equal(t, "role_not_allowed", problemCode(t, body))
		res, body = f.do(t, request{method: "GET", path: "/api/environments"})
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Equal(t, "role_not_allowed", problemCode(t, body))
		res, body = f.do(t, request{method: "GET", path: "/api/openapi.json"})
		assert.Equal(t, http.StatusOK, res.StatusCode, "the API's document is the same for everyone")
		assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
		assert.Contains(t, string(body), `"openapi": "3.1.0"`)
		assertSecurityHeaders(t, res, "/api/openapi.json")
	})

	t.Run("a refusal of package middleware keeps its status", func(t *testing.T) {
		f.actorFn = func(*http.Request) (apikey.Actor, error) {
			return apikey.Actor{}, problem.Refuse(middleware.ErrMissingKey, "sign in first")
		}
		res, body := f.do(t, request{method: "GET", path: "/session"})
		assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
		assert.Equal(t, middleware.ErrMissingKey.Code(), problemCode(t, body))
	})

	t.Run("no valid role", func(t *testing.T) {
		f.actorFn = func(*http.Request) (apikey.Actor, error) { return apikey.Actor{ID: "mallory", Role: "admin"}, nil }
		res, body := f.do(t, request{method: "GET", path: "/session"})
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Equal(t, "role_not_allowed", problemCode(t, body))
		res, _ = f.do(t, f.sameOrigin("POST", "/api/keys/"+f.extra.View.ID+"/revoke", "", ""))
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Equal(t, apikey.Active, f.status(t, f.extra.View.ID))
	})
}

// TestServiceNameAccountNameScopes: what the service says of itself, its
// account and its scopes reaches the page through the session.
func TestServiceNameAccountNameScopes(t *testing.T) {
	catalogue := []console.Scope{
		{Name: "invoices:read", Description: "Read invoices"},
		{Name: "invoices:write", Description: "Create and void invoices"},
	}
	tests := []struct {
		name        string
		accountName func(*http.Request, string) string
		want        string
	}{
		{"display name", func(r *http.Request, account string) string {
			if r.Header.Get("X-Test-User") == "" || account != apikey.DefaultAccount {
				return "wrong request"
			}
			return "Globex Corporation"
		}, "Globex Corporation"},
		{"empty answer shows the id", func(*http.Request, string) string { return "" }, apikey.DefaultAccount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixtureWith(t, console.Options{ServiceName: "Acme Payments", AccountName: tt.accountName, Scopes: catalogue})
			res, body := f.do(t, request{method: "GET", path: "/session", role: apikey.ReadOnly})
			require.Equal(t, http.StatusOK, res.StatusCode, string(body))
			var s console.Session
			require.NoError(t, json.Unmarshal(body, &s))
			assert.Equal(t, "Acme Payments", s.ServiceName)
			assert.Equal(t, tt.want, s.AccountName)
			assert.Equal(t, apikey.DefaultAccount, s.Account, "the id is still the account's id")
			assert.Equal(t, catalogue, s.Scopes)
		})
	}
}

func TestPolicyLimitsGraceChoices(t *testing.T) {
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: memory.New(), Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	c, err := console.New(console.Options{
		Manager: m,
		Actor:   func(*http.Request) (apikey.Actor, error) { return owner, nil },
		Policy:  apikey.GracePolicy{Name: "strict", Max: 24 * time.Hour},
		// SingleAccount: the actor names no account.
		SingleAccount: true,
		// RevealServerKeys: for a Manager with a Sealer.
		RevealServerKeys: true,
	})
	require.NoError(t, err)
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("GET", "/session", nil))
	var s console.Session
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &s))
	assert.Equal(t, []console.Grace{{Label: "Now", Grace: "0s"}, {Label: "1 hour", Grace: "1h"}, {Label: "24 hours", Grace: "24h"}}, s.Graces)
	assert.Equal(t, "24h", s.Policy.Max)
	assert.False(t, s.Audit)
	assert.True(t, s.RevealServerKeys)
}

// TestCrossOriginRequestsAreRefused: a state-changing request that a
// browser sends from another origin is refused before it reaches the API,
// whatever cookie it carries, and changes nothing; the page's own requests
// and non-browser clients pass.
func TestCrossOriginRequestsAreRefused(t *testing.T) {
	f := newFixture(t)
	id := f.extra.View.ID
	revoke := "/api/keys/" + id + "/revoke"

	refused := []struct {
		name string
		req  request
	}{
		{"cross-site", request{method: "POST", path: revoke, role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"same-site, another origin", request{method: "POST", path: revoke, role: apikey.Owner, origin: "http://127.0.0.1:1", fetchSite: "same-site"}},
		{"Origin only, another host", request{method: "POST", path: revoke, role: apikey.Owner, origin: "https://evil.example"}},
		{"rotate", request{method: "POST", path: "/api/keys/" + id + "/rotate", body: `{"grace":"0s"}`, role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"create", request{method: "POST", path: "/api/environments/production/keys", body: `{"type":"client"}`, role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"origins", request{method: "PUT", path: "/api/environments/production/origins", body: `{"allowed_origins":["*"]}`, role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"reveal", request{method: "POST", path: "/api/keys/" + id + "/reveal", role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"rename", request{method: "PUT", path: "/api/keys/" + id + "/name", body: `{"name":"x"}`, role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"lifetime", request{method: "PUT", path: "/api/environments/production/lifetime", body: `{"max_lifetime_seconds":3600}`, role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"environment", request{method: "POST", path: "/api/environments", body: `{"environment":"sandbox"}`, role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"disable", request{method: "POST", path: "/api/keys/" + id + "/disable", role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
		{"revoke an owner's keys", request{method: "POST", path: "/api/owners/user_42/revoke", role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"}},
	}
	before, err := f.m.List(context.Background(), owner, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			res, body := f.do(t, tt.req)
			assert.Equal(t, http.StatusForbidden, res.StatusCode, string(body))
			assert.Equal(t, "cross_origin_refused", problemCode(t, body))
			assert.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
			assertSecurityHeaders(t, res, tt.name)
			assert.NotContains(t, string(body), "server-"+id[:4], "no key in a refusal")
		})
	}
	after, err := f.m.List(context.Background(), owner, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing changed")
	s, err := f.m.Settings(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	assert.Empty(t, s.AllowedOrigins)
	assert.True(t, s.Lifetime.IsZero())
	_, err = f.m.Settings(context.Background(), owner, "sandbox")
	assert.ErrorIs(t, err, apikey.ErrUnknownEnvironment, "no environment was created")

	t.Run("cross-origin GET reads, as any GET", func(t *testing.T) {
		res, _ := f.do(t, request{method: "GET", path: "/api/environments/production/keys", role: apikey.Owner, origin: "https://evil.example", fetchSite: "cross-site"})
		assert.Equal(t, http.StatusOK, res.StatusCode, "the browser does not let the other page read it (no CORS headers)")
		assert.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))
	})

	t.Run("same origin", func(t *testing.T) {
		res, body := f.do(t, f.sameOrigin("POST", revoke, "", apikey.Owner))
		require.Equal(t, http.StatusOK, res.StatusCode, string(body))
		assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
		assertSecurityHeaders(t, res, "revoke")
		assert.Equal(t, apikey.Revoked, f.status(t, id))
	})

	t.Run("not a browser", func(t *testing.T) {
		res, body := f.do(t, request{method: "PUT", path: "/api/environments/production/origins", body: `{"allowed_origins":["https://app.example.com"]}`, role: apikey.Owner})
		require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	})
}

func TestTrustedOrigins(t *testing.T) {
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	_, err = m.Bootstrap(context.Background(), owner, apikey.Production)
	require.NoError(t, err)
	c, err := console.New(console.Options{
		Manager:        m,
		Actor:          func(*http.Request) (apikey.Actor, error) { return owner, nil },
		TrustedOrigins: []string{"https://admin.example.com"},
		SingleAccount:  true,
	})
	require.NoError(t, err)
	for origin, want := range map[string]int{"https://admin.example.com": http.StatusOK, "https://evil.example": http.StatusForbidden} {
		r := httptest.NewRequest("PUT", "/api/environments/production/origins", strings.NewReader(`{"allowed_origins":[]}`))
		r.Header.Set("Origin", origin)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		assert.Equal(t, want, w.Code, origin)
	}
}

// TestOnlyOwnersChangeKeys: members and read-only users can list keys and
// settings through the console's API, and every change they try in the
// production environment, or to account settings, is 403 and changes
// nothing (members change keys of other environments: see
// TestMemberManagesStaging).
func TestOnlyOwnersChangeKeys(t *testing.T) {
	f := newFixture(t)
	id := f.extra.View.ID
	changes := []struct{ method, path, body string }{
		{"POST", "/api/environments/production/keys", `{"type":"server","scopes":["*"]}`},
		{"POST", "/api/environments/production/keys/server/rotate", `{"grace":"1h"}`},
		{"POST", "/api/keys/" + id + "/rotate", `{"grace":"1h"}`},
		{"PUT", "/api/keys/" + id + "/grace", `{"grace":"1h"}`},
		{"POST", "/api/keys/" + id + "/revoke", ``},
		{"PUT", "/api/keys/" + id + "/scopes", `{"scopes":["*"]}`},
		{"POST", "/api/keys/" + id + "/reveal", ``},
		{"PUT", "/api/environments/production/origins", `{"allowed_origins":["*"]}`},
		{"PUT", "/api/keys/" + id + "/limits", `{"rate":{"requests":10,"window_seconds":60}}`},
		{"PUT", "/api/keys/" + id + "/limits", `{}`},
		{"PUT", "/api/keys/" + id + "/name", `{"name":"renamed"}`},
		{"PUT", "/api/environments/production/lifetime", `{"max_lifetime_seconds":86400}`},
		{"POST", "/api/environments", `{"environment":"sandbox"}`},
		{"POST", "/api/keys/" + id + "/disable", ``},
		{"POST", "/api/keys/" + id + "/enable", ``},
		{"POST", "/api/owners/user_42/revoke", ``},
	}
	before, err := f.m.List(context.Background(), owner, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	for _, role := range []apikey.Role{apikey.Member, apikey.ReadOnly} {
		t.Run(string(role), func(t *testing.T) {
			for _, path := range []string{"/api/environments", "/api/environments/production/keys", "/api/keys/" + id, "/api/environments/production/origins", "/api/audit",
				"/api/keys/expiring?within=168h", "/api/owners/user_42/keys"} {
				res, body := f.do(t, f.sameOrigin("GET", path, "", role))
				assert.Equal(t, http.StatusOK, res.StatusCode, "%s: %s", path, body)
			}
			for _, c := range changes {
				res, body := f.do(t, f.sameOrigin(c.method, c.path, c.body, role))
				assert.Equal(t, http.StatusForbidden, res.StatusCode, "%s %s: %s", c.method, c.path, body)
				assert.Equal(t, "role_not_allowed", problemCode(t, body), "%s %s", c.method, c.path)
				assert.Equal(t, "application/problem+json", res.Header.Get("Content-Type"), "the console's API answers problem+json")
				assert.NotContains(t, string(body), `"full_key"`)
			}
		})
	}
	after, err := f.m.List(context.Background(), owner, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing changed")
}

// TestOwnerFlow: what the page does for an owner, through the console's
// API: create, rotate with a console grace, change the grace, revoke,
// reveal a publishable key, set origins; and a grace beyond the console
// policy is refused.
func TestOwnerFlow(t *testing.T) {
	f := newFixture(t)
	post := func(method, path, body string) (int, map[string]any) {
		res, b := f.do(t, f.sameOrigin(method, path, body, apikey.Owner))
		var out map[string]any
		require.NoError(t, json.Unmarshal(b, &out), string(b))
		assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
		return res.StatusCode, out
	}
	status, created := post("POST", "/api/environments/production/keys", `{"type":"server","name":"billing","scopes":["invoices:write"]}`)
	require.Equal(t, http.StatusCreated, status, "%v", created)
	key, err := apikey.ParseKey(created["full_key"].(string))
	require.NoError(t, err, "the full key, shown once")
	prefix := key.Prefix()

	status, problem := post("POST", "/api/keys/"+prefix+"/rotate", `{"grace":"169h"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Equal(t, "grace_out_of_range", problem["code"], "the console policy allows 7 days at most")
	status, problem = post("POST", "/api/keys/"+prefix+"/rotate", `{}`)
	assert.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Equal(t, "grace_required", problem["code"])

	status, rotated := post("POST", "/api/keys/"+prefix+"/rotate", `{"grace":"1h"}`)
	require.Equal(t, http.StatusCreated, status, "%v", rotated)
	assert.Equal(t, apikey.Expiring, f.status(t, key.ID()))
	status, changed := post("PUT", "/api/keys/"+prefix+"/grace", `{"grace":"72h"}`)
	require.Equal(t, http.StatusOK, status, "%v", changed)
	assert.Equal(t, "expiring", changed["status"])
	status, revoked := post("POST", "/api/keys/"+prefix+"/revoke", ``)
	require.Equal(t, http.StatusOK, status, "%v", revoked)
	assert.Equal(t, apikey.Revoked, f.status(t, key.ID()))

	views, err := f.m.List(context.Background(), owner, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	for _, v := range views.Keys {
		if v.Type == apikey.Client {
			status, revealed := post("POST", "/api/keys/"+v.Prefix+"/reveal", ``)
			require.Equal(t, http.StatusOK, status, "%v", revealed)
			assert.True(t, strings.HasPrefix(revealed["full_key"].(string), v.Prefix))
		}
	}
	status, settings := post("PUT", "/api/environments/production/origins", `{"allowed_origins":["https://app.example.com"]}`)
	require.Equal(t, http.StatusOK, status, "%v", settings)
	assert.Equal(t, []any{"https://app.example.com"}, settings["allowed_origins"])

	_, audit := f.do(t, f.sameOrigin("GET", "/api/audit?limit=50", "", apikey.ReadOnly))
	var log struct{ Events []apikey.Event }
	require.NoError(t, json.Unmarshal(audit, &log))
	require.NotEmpty(t, log.Events)
	for _, e := range log.Events {
		if e.Action != apikey.ActionBootstrap && e.KeyID != f.extra.View.ID {
			want := owner
			want.Account = apikey.DefaultAccount // the account the actor acted in
			assert.Equal(t, want, e.Actor, "changes are audited with the console's actor: %+v", e)
		}
	}
}

// TestLimitsAndUsage: what the key view reads and sends through the
// console's API. An owner sets and removes a key's limits, an invalid one
// is refused with a detail that names the field; every role reads the
// key's usage, in pages; a store that keeps no usage answers 501.
func TestLimitsAndUsage(t *testing.T) {
	f := newFixture(t)
	prefix := f.extra.View.Prefix
	do := func(method, path, body string, role apikey.Role) (int, map[string]any) {
		t.Helper()
		res, b := f.do(t, f.sameOrigin(method, path, body, role))
		var out map[string]any
		require.NoError(t, json.Unmarshal(b, &out), string(b))
		return res.StatusCode, out
	}

	t.Run("set, refuse and remove limits", func(t *testing.T) {
		path := "/api/keys/" + prefix + "/limits"
		status, view := do("PUT", path, `{"rate":{"requests":100,"window_seconds":60,"burst":20},`+
			`"quota":{"limit":10000,"refill":10000,"period":"month"},"allowed_ips":["10.0.0.0/8"]}`, apikey.Owner)
		require.Equal(t, http.StatusOK, status, "%v", view)
		assert.Equal(t, map[string]any{
			"rate":        map[string]any{"requests": 100.0, "window_seconds": 60.0, "burst": 20.0},
			"quota":       map[string]any{"limit": 10000.0, "refill": 10000.0, "period": "month"},
			"allowed_ips": []any{"10.0.0.0/8"},
		}, view["limits"], "the view carries the limits the page shows")

		for _, tt := range []struct{ body, field string }{
			{`{"rate":{"requests":0,"window_seconds":60}}`, "rate.requests"},
			{`{"rate":{"requests":10,"window_seconds":0}}`, "rate.window_seconds"},
			{`{"quota":{"limit":10,"refill":20,"period":"day"}}`, "quota.refill"},
			{`{"allowed_ips":["10.0.0.0/8","not an address"]}`, "allowed_ips[1]"},
		} {
			status, p := do("PUT", path, tt.body, apikey.Owner)
			assert.Equal(t, http.StatusUnprocessableEntity, status, tt.body)
			assert.Equal(t, "invalid_limits", p["code"], tt.body)
			assert.Contains(t, p["detail"], tt.field+" ", "the page shows the detail next to the field it names")
		}
		v, err := f.m.Get(context.Background(), owner, prefix)
		require.NoError(t, err)
		assert.Equal(t, 100, v.Limits.Rate.Requests, "a refused change changes nothing")

		status, view = do("PUT", path, `{}`, apikey.Owner)
		require.Equal(t, http.StatusOK, status, "%v", view)
		assert.NotContains(t, view, "limits", "{} removes every limit")
	})

	t.Run("every role reads usage in pages", func(t *testing.T) {
		hour := time.Now().UTC().Truncate(time.Hour)
		var counts []apikey.UsageCount
		for i := range 3 {
			for _, outcome := range []string{"admitted", "rate_limited"} {
				counts = append(counts, apikey.UsageCount{Account: apikey.DefaultAccount, Environment: apikey.Production,
					KeyID: f.extra.View.ID, Hour: hour.Add(-time.Duration(i) * time.Hour), Outcome: outcome, Count: int64(10 + i)})
			}
		}
		require.NoError(t, f.store.RecordUsage(context.Background(), counts))
		from := hour.Add(-29 * 24 * time.Hour).Format(time.RFC3339)
		to := time.Now().UTC().Format(time.RFC3339)
		for _, role := range []apikey.Role{apikey.Owner, apikey.Member, apikey.ReadOnly} {
			var got []any
			after := ""
			for pages := 0; pages < 10; pages++ {
				status, list := do("GET", "/api/keys/"+prefix+"/usage?from="+from+"&to="+to+"&limit=4"+after, "", role)
				require.Equal(t, http.StatusOK, status, "%s: %v", role, list)
				got = append(got, list["counts"].([]any)...)
				next, _ := list["next"].(string)
				if next == "" {
					break
				}
				after = "&after=" + next
			}
			assert.Len(t, got, 6, "%s reads every count, page by page", role)
		}
	})

	t.Run("a store that keeps no usage", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: noUsage{f.store}})
		require.NoError(t, err)
		c, err := console.New(console.Options{Manager: m, SingleAccount: true,
			Actor: func(*http.Request) (apikey.Actor, error) { return readOnly, nil }})
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", "/api/keys/"+prefix+"/usage?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z", nil))
		assert.Equal(t, http.StatusNotImplemented, rec.Code, rec.Body.String())
		assert.Equal(t, "usage_unavailable", problemCode(t, rec.Body.Bytes()), "the page says so in words")
	})
}

// noUsage is a store that keeps no usage: the apikey.Store of a memory
// store, without its UsageRecorder.
type noUsage struct{ apikey.Store }

// TestActorNamesOneAccount: an actor that names no account is refused
// unless the service chose SingleAccount, and one acting across accounts
// always is; an actor of an account sees and changes only that account.
func TestActorNamesOneAccount(t *testing.T) {
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	ctx := context.Background()
	for _, account := range []string{apikey.DefaultAccount, "acme"} {
		_, err = m.Bootstrap(ctx, apikey.Actor{ID: "setup", Role: apikey.Owner, Account: account}, apikey.Production)
		require.NoError(t, err)
	}
	for _, tt := range []struct {
		name    string
		single  bool
		actor   apikey.Actor
		status  int
		account string // the session's, or words of the refusal's detail
	}{
		{"no account", false, owner, 403, "SingleAccount"},
		{"no account, single account", true, owner, 200, apikey.DefaultAccount},
		{"an account", false, apikey.Actor{ID: "alice", Role: apikey.Owner, Account: "acme"}, 200, "acme"},
		{"any account", false, apikey.Actor{ID: "alice", Role: apikey.Owner, Account: apikey.AnyAccount}, 403, `"*"`},
		{"any account, single account", true, apikey.Actor{ID: "alice", Role: apikey.Owner, Account: apikey.AnyAccount}, 403, `"*"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := console.New(console.Options{Manager: m, Audit: store, SingleAccount: tt.single,
				Actor: func(*http.Request) (apikey.Actor, error) { return tt.actor, nil }})
			require.NoError(t, err)
			for _, path := range []string{"/session", "/api/environments/production/keys", "/api/audit"} {
				w := httptest.NewRecorder()
				c.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				require.Equal(t, tt.status, w.Code, "%s: %s", path, w.Body)
				if tt.status != 200 {
					var p problem.Problem
					require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
					assert.Equal(t, "role_not_allowed", p.Code)
					assert.Contains(t, p.Detail, tt.account)
					continue
				}
				switch path {
				case "/session":
					var s console.Session
					require.NoError(t, json.Unmarshal(w.Body.Bytes(), &s))
					assert.Equal(t, tt.account, s.Account)
				case "/api/environments/production/keys":
					var list apikey.KeyList
					require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
					require.NotEmpty(t, list.Keys)
					for _, k := range list.Keys {
						assert.Equal(t, tt.account, k.Account)
					}
				}
			}
		})
	}
}

// TestCloseAccount: the console offers and serves closing the account only
// where the service enables it, to owners, and the API closes it only for a
// request that names the account again, as the page's typed confirmation
// sends it.
func TestCloseAccount(t *testing.T) {
	closeRequest := func(f *fixture, body string) request {
		return f.sameOrigin("POST", "/api/account/close", body, apikey.Owner)
	}
	serverKey := func(t *testing.T, f *fixture) apikey.Status { return f.status(t, f.extra.View.ID) }

	t.Run("off by default", func(t *testing.T) {
		f := newFixture(t)
		res, body := f.do(t, closeRequest(f, `{"confirm":"default"}`))
		assert.Equal(t, http.StatusForbidden, res.StatusCode, string(body))
		assert.Equal(t, "role_not_allowed", problemCode(t, body))
		assert.Contains(t, string(body), "CloseAccounts")
		assert.Equal(t, apikey.Active, serverKey(t, f), "nothing was revoked")
	})

	t.Run("enabled", func(t *testing.T) {
		f := newFixtureWith(t, console.Options{CloseAccount: true})
		for role, offered := range map[apikey.Role]bool{apikey.Owner: true, apikey.Member: false, apikey.ReadOnly: false} {
			res, body := f.do(t, request{method: "GET", path: "/session", role: role})
			require.Equal(t, http.StatusOK, res.StatusCode)
			var s console.Session
			require.NoError(t, json.Unmarshal(body, &s))
			assert.Equal(t, offered, s.CloseAccount, role)
			assert.Equal(t, apikey.DefaultAccount, s.Account)
		}
		res, body := f.do(t, f.sameOrigin("POST", "/api/account/close", `{"confirm":"default"}`, apikey.Member))
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "members close nothing: %s", body)
		for _, unconfirmed := range []string{``, `{}`, `{"confirm":""}`, `{"confirm":"Default"}`, `{"confirm":"acme"}`} {
			res, body := f.do(t, closeRequest(f, unconfirmed))
			assert.Equal(t, http.StatusUnprocessableEntity, res.StatusCode, "%q: %s", unconfirmed, body)
			assert.Equal(t, "confirmation_required", problemCode(t, body), unconfirmed)
		}
		assert.Equal(t, apikey.Active, serverKey(t, f), "nothing was revoked")

		res, body = f.do(t, request{method: "POST", path: "/api/account/close", body: `{"confirm":"default"}`, role: apikey.Owner,
			origin: "https://evil.example", fetchSite: "cross-site"})
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "another site cannot close it: %s", body)
		assert.Equal(t, apikey.Active, serverKey(t, f))

		res, body = f.do(t, closeRequest(f, `{"confirm":"default"}`))
		require.Equal(t, http.StatusOK, res.StatusCode, string(body))
		assert.JSONEq(t, `{"account":"default","revoked":3}`, string(body))
		assert.Equal(t, apikey.Revoked, serverKey(t, f))
	})

	t.Run("the page asks for the typed account", func(t *testing.T) {
		// The page's behaviour is run in Chromium by examples/console; here
		// the page holds the dialog, its button starts disabled, and the
		// script sends the typed value only when it is the account's.
		f := newFixtureWith(t, console.Options{CloseAccount: true})
		_, page := f.do(t, request{method: "GET", path: "/"})
		dialog := regexp.MustCompile(`(?s)<template id="tpl-close-account">.*?</template>`).Find(page)
		require.NotNil(t, dialog)
		assert.Regexp(t, `<input id="close-account-confirm"[^>]* required`, string(dialog))
		assert.Regexp(t, `<button type="submit" class="danger" disabled>`, string(dialog))
		_, script := f.do(t, request{method: "GET", path: "/app.js"})
		assert.Contains(t, string(script), `const confirmed = () => input.value === account;`)
		assert.Contains(t, string(script), `if (!confirmed()) throw new Error(`)
		assert.Contains(t, string(script), `api("POST", "api/account/close", { confirm: input.value })`)
		assert.Contains(t, string(script), `tool($("account-tools"), !!state.session.close_account, "close-account"`)
	})
}

// TestLifecycle: what the page sends for names, lifetime policies, new
// environments and imported keys, through the console's API, and what it
// reads back: each refusal names its field or limit.
func TestLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.extra.View.ID
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		res, b := f.do(t, f.sameOrigin(method, path, body, apikey.Owner))
		var out map[string]any
		require.NoError(t, json.Unmarshal(b, &out), string(b))
		return res.StatusCode, out
	}
	operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
	imported, err := f.m.Import(ctx, operator, apikey.ImportRequest{Account: apikey.DefaultAccount, Environment: apikey.Production, Type: apikey.Server,
		Key: apikey.NewOpaque("sk_live_0123456789abcdef"), Name: "legacy", Scopes: []string{"*"}})
	require.NoError(t, err)
	var defaultKey string
	keys, err := f.m.List(ctx, owner, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	for _, v := range keys.Keys {
		if v.Default && v.Type == apikey.Server {
			defaultKey = v.Prefix
		}
	}
	require.NotEmpty(t, defaultKey)

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string   // the problem's code, for a refusal
		detail                   []string // words the refusal's detail holds
		check                    func(t *testing.T, out map[string]any)
	}{
		{name: "rename", method: "PUT", path: "/api/keys/" + id + "/name", body: `{"name":"billing worker"}`, status: http.StatusOK,
			check: func(t *testing.T, out map[string]any) {
				assert.Equal(t, "billing worker", out["name"])
				v, err := f.m.Get(ctx, owner, id)
				require.NoError(t, err)
				assert.Equal(t, "billing worker", v.Name)
			}},
		{name: "name too long", method: "PUT", path: "/api/keys/" + id + "/name", body: `{"name":"` + strings.Repeat("é", 101) + `"}`,
			status: http.StatusUnprocessableEntity, code: "invalid_name", detail: []string{"name", "200 bytes"}},
		{name: "name removed", method: "PUT", path: "/api/keys/" + id + "/name", body: `{"name":""}`, status: http.StatusOK,
			check: func(t *testing.T, out map[string]any) { assert.NotContains(t, out, "name") }},
		{name: "lifetime beyond its bounds", method: "PUT", path: "/api/environments/production/lifetime", body: `{"default_expiry_seconds":-1}`,
			status: http.StatusUnprocessableEntity, code: "invalid_lifetime", detail: []string{"default_expiry_seconds"}},
		{name: "default expiry beyond the maximum", method: "PUT", path: "/api/environments/production/lifetime",
			body:   `{"default_expiry_seconds":172800,"max_lifetime_seconds":86400}`,
			status: http.StatusUnprocessableEntity, code: "invalid_lifetime", detail: []string{"default_expiry_seconds", "max_lifetime_seconds"}},
		{name: "lifetime", method: "PUT", path: "/api/environments/production/lifetime", body: `{"default_expiry_seconds":3600,"max_lifetime_seconds":86400}`,
			status: http.StatusOK, check: func(t *testing.T, out map[string]any) {
				assert.Equal(t, map[string]any{"default_expiry_seconds": 3600.0, "max_lifetime_seconds": 86400.0}, out["lifetime"])
			}},
		{name: "the page reads the policy", method: "GET", path: "/api/environments", status: http.StatusOK,
			check: func(t *testing.T, out map[string]any) {
				envs := out["environments"].([]any)
				require.Len(t, envs, 1)
				assert.Equal(t, map[string]any{"default_expiry_seconds": 3600.0, "max_lifetime_seconds": 86400.0}, envs[0].(map[string]any)["lifetime"])
			}},
		{name: "a key beyond the maximum lifetime", method: "POST", path: "/api/environments/production/keys", body: `{"type":"client","expires_in":"48h"}`,
			status: http.StatusUnprocessableEntity, code: "beyond_lifetime", detail: []string{"24h", "max_lifetime_seconds 86400"}},
		{name: "a key with the default expiry", method: "POST", path: "/api/environments/production/keys", body: `{"type":"client"}`,
			status: http.StatusCreated, check: func(t *testing.T, out map[string]any) {
				view := out["view"].(map[string]any)
				expires, err := time.Parse(time.RFC3339Nano, view["expires_at"].(string))
				require.NoError(t, err)
				assert.WithinDuration(t, time.Now().Add(time.Hour), expires, time.Minute)
			}},
		{name: "policy removed", method: "PUT", path: "/api/environments/production/lifetime", body: `{}`, status: http.StatusOK,
			check: func(t *testing.T, out map[string]any) { assert.NotContains(t, out, "lifetime") }},
		{name: "create an environment", method: "POST", path: "/api/environments", body: `{"environment":"sandbox"}`, status: http.StatusCreated,
			check: func(t *testing.T, out map[string]any) {
				assert.Equal(t, "sandbox", out["environment"])
				issued := out["issued"].([]any)
				require.Len(t, issued, 2, "its default server and publishable keys")
				for i, typ := range []string{"server", "client"} {
					k := issued[i].(map[string]any)
					key, err := apikey.ParseKey(k["full_key"].(string))
					require.NoError(t, err, "the full key, shown once")
					view := k["view"].(map[string]any)
					assert.Equal(t, typ, view["type"])
					assert.Equal(t, key.Prefix(), view["prefix"])
					assert.Equal(t, true, view["default"])
					assert.Equal(t, "sandbox", view["environment"])
				}
			}},
		{name: "an environment that exists", method: "POST", path: "/api/environments", body: `{"environment":"sandbox"}`,
			status: http.StatusConflict, code: "already_bootstrapped"},
		{name: "an invalid environment name", method: "POST", path: "/api/environments", body: `{"environment":"Sand Box"}`,
			status: http.StatusUnprocessableEntity, code: "invalid_environment", detail: []string{"[a-z0-9_-]"}},
		{name: "disable", method: "POST", path: "/api/keys/" + id + "/disable", status: http.StatusOK,
			check: func(t *testing.T, out map[string]any) {
				assert.Equal(t, "disabled", out["status"])
				assert.NotEmpty(t, out["disabled_at"])
				assert.Equal(t, apikey.Disabled, f.status(t, id))
			}},
		{name: "enable", method: "POST", path: "/api/keys/" + id + "/enable", status: http.StatusOK,
			check: func(t *testing.T, out map[string]any) {
				assert.Equal(t, "active", out["status"])
				assert.NotContains(t, out, "disabled_at")
			}},
		{name: "a default key is rotated before it is disabled", method: "POST", path: "/api/keys/" + defaultKey + "/disable",
			status: http.StatusConflict, code: "rotate_first", detail: []string{"rotate it first"}},
		{name: "an owner imports nothing through the console: importing is the service's act", method: "POST", path: "/api/keys/import",
			body:   `{"account":"default","environment":"production","type":"client","key":"pk_live_` + strings.Repeat("Q", 32) + `"}`,
			status: http.StatusForbidden, code: "role_not_allowed", detail: []string{"operators only"}},
		{name: "an imported key is marked", method: "GET", path: "/api/keys/" + imported.Prefix, status: http.StatusOK,
			check: func(t *testing.T, out map[string]any) { assert.Equal(t, true, out["imported"]) }},
		{name: "rotating an imported key issues a keystile key", method: "POST", path: "/api/keys/" + imported.Prefix + "/rotate", body: `{"grace":"24h"}`,
			status: http.StatusCreated, check: func(t *testing.T, out map[string]any) {
				key, err := apikey.ParseKey(out["full_key"].(string))
				require.NoError(t, err)
				view := out["view"].(map[string]any)
				assert.NotContains(t, view, "imported")
				assert.Equal(t, "legacy", view["name"])
				assert.Equal(t, key.Prefix(), view["prefix"])
				old, err := f.m.Get(ctx, owner, imported.ID)
				require.NoError(t, err)
				assert.Equal(t, apikey.Expiring, old.Status)
				assert.True(t, old.Imported)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := do(tt.method, tt.path, tt.body)
			require.Equal(t, tt.status, status, "%v", out)
			if tt.code != "" {
				assert.Equal(t, tt.code, out["code"])
				for _, word := range tt.detail {
					assert.Contains(t, out["detail"], word)
				}
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
}

// TestSuspendedAccount: the environments that the page reads carry the
// suspension, which it shows; while suspended, changes are refused with
// account_suspended and revocation still works.
func TestSuspendedAccount(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	operator := apikey.Actor{ID: "ops", Role: apikey.Owner, Account: apikey.AnyAccount}
	require.NoError(t, f.m.SuspendAccount(ctx, operator, apikey.DefaultAccount))
	id := f.extra.View.ID

	res, body := f.do(t, f.sameOrigin("GET", "/api/environments", "", apikey.ReadOnly))
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	var list apikey.EnvironmentList
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Environments, 1)
	assert.False(t, list.Environments[0].SuspendedAt.IsZero(), "the page reads suspended_at")

	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/api/keys/" + id + "/name", `{"name":"x"}`},
		{"POST", "/api/keys/" + id + "/disable", ``},
		{"PUT", "/api/environments/production/lifetime", `{"max_lifetime_seconds":86400}`},
		{"POST", "/api/environments/production/keys", `{"type":"client"}`},
	} {
		res, body := f.do(t, f.sameOrigin(c.method, c.path, c.body, apikey.Owner))
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "%s %s: %s", c.method, c.path, body)
		assert.Equal(t, "account_suspended", problemCode(t, body), "%s %s", c.method, c.path)
	}
	res, body = f.do(t, f.sameOrigin("POST", "/api/keys/"+id+"/revoke", "", apikey.Owner))
	require.Equal(t, http.StatusOK, res.StatusCode, "revocation works while suspended: %s", body)
	assert.Equal(t, apikey.Revoked, f.status(t, id))

	require.NoError(t, f.m.ResumeAccount(ctx, operator, apikey.DefaultAccount))
	_, body = f.do(t, f.sameOrigin("GET", "/api/environments", "", apikey.ReadOnly))
	assert.NotContains(t, string(body), "suspended_at")
}

// TestExpiringAndOwners: what the page reads for its expiring-soon list
// and an owner's keys, and the revocation of every key of an owner.
func TestExpiringAndOwners(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.m.Bootstrap(ctx, owner, apikey.Staging)
	require.NoError(t, err)
	now := time.Now()
	create := func(env, who string, expires time.Time) apikey.View {
		k, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: env, Type: apikey.Server, Owner: who, Scopes: []string{"reports:read"}, ExpiresAt: expires})
		require.NoError(t, err)
		return k.View
	}
	soon := create(apikey.Production, "user_42", now.Add(2*time.Hour))
	later := create(apikey.Staging, "user_42", now.Add(72*time.Hour))
	create(apikey.Staging, "user_42", time.Time{})
	other := create(apikey.Production, "user_7", now.Add(30*24*time.Hour))
	get := func(path string) map[string]any {
		t.Helper()
		res, body := f.do(t, f.sameOrigin("GET", path, "", apikey.ReadOnly))
		require.Equal(t, http.StatusOK, res.StatusCode, string(body))
		var out map[string]any
		require.NoError(t, json.Unmarshal(body, &out))
		return out
	}
	prefixes := func(out map[string]any) []string {
		var p []string
		for _, k := range out["keys"].([]any) {
			p = append(p, k.(map[string]any)["prefix"].(string))
		}
		return p
	}

	assert.Equal(t, []string{soon.Prefix, later.Prefix}, prefixes(get("/api/keys/expiring?within=168h&limit=20")),
		"every environment's keys that expire within 7 days, soonest first")
	assert.Len(t, prefixes(get("/api/owners/user_42/keys")), 3, "in every environment")

	res, body := f.do(t, f.sameOrigin("POST", "/api/owners/user_42/revoke", "", apikey.Owner))
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	var revoked struct {
		Revoked         int      `json:"revoked"`
		SkippedDefaults []string `json:"skipped_defaults"`
	}
	require.NoError(t, json.Unmarshal(body, &revoked))
	assert.Equal(t, 3, revoked.Revoked)
	assert.Empty(t, revoked.SkippedDefaults)
	for _, k := range get("/api/owners/user_42/keys")["keys"].([]any) {
		assert.Equal(t, "revoked", k.(map[string]any)["status"])
	}
	assert.Equal(t, apikey.Active, f.status(t, other.ID), "another owner's key is untouched")
	assert.Empty(t, get("/api/keys/expiring?within=168h")["keys"], "revoked keys do not expire")
}

// TestMemberManagesStaging: through the console's API a member creates,
// renames and revokes keys of an environment that is not production and
// reveals a publishable key of production; the environments say which is
// production.
func TestMemberManagesStaging(t *testing.T) {
	f := newFixture(t)
	_, err := f.m.Bootstrap(context.Background(), owner, apikey.Staging)
	require.NoError(t, err)
	res, body := f.do(t, f.sameOrigin("POST", "/api/environments/staging/keys", `{"type":"server","scopes":["orders:read"]}`, apikey.Member))
	require.Equal(t, http.StatusCreated, res.StatusCode, string(body))
	var created struct {
		View apikey.View `json:"view"`
	}
	require.NoError(t, json.Unmarshal(body, &created))
	id := created.View.ID
	res, body = f.do(t, f.sameOrigin("PUT", "/api/keys/"+id+"/name", `{"name":"ci"}`, apikey.Member))
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	res, body = f.do(t, f.sameOrigin("POST", "/api/keys/"+id+"/revoke", ``, apikey.Member))
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	assert.Equal(t, apikey.Revoked, f.status(t, id))

	list, err := f.m.List(context.Background(), owner, apikey.Production, apikey.Page{})
	require.NoError(t, err)
	for _, k := range list.Keys {
		if k.Type == apikey.Client {
			res, body = f.do(t, f.sameOrigin("POST", "/api/keys/"+k.ID+"/reveal", ``, apikey.Member))
			require.Equal(t, http.StatusOK, res.StatusCode, problemCode(t, body))
			var revealed struct {
				FullKey string `json:"full_key"`
			}
			require.NoError(t, json.Unmarshal(body, &revealed))
			assert.True(t, strings.HasPrefix(revealed.FullKey, "client-"+k.ID), "the publishable key, in full")
		}
	}

	res, body = f.do(t, f.sameOrigin("GET", "/api/environments", "", apikey.Member))
	require.Equal(t, http.StatusOK, res.StatusCode)
	var envs struct {
		Environments []struct {
			Environment string `json:"environment"`
			Production  bool   `json:"production"`
		} `json:"environments"`
	}
	require.NoError(t, json.Unmarshal(body, &envs))
	got := map[string]bool{}
	for _, e := range envs.Environments {
		got[e.Environment] = e.Production
	}
	assert.Equal(t, map[string]bool{apikey.Production: true, apikey.Staging: false}, got)
}
