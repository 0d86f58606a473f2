package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keystile/keystile/apikey"
)

// keyResponse carries a full key, shown once, and its public view.
type keyResponse struct {
	Key  string      `json:"key"`
	View apikey.View `json:"view"`
}

func issued(k apikey.Issued) keyResponse {
	return keyResponse{Key: k.Key.Reveal(), View: k.View}
}

func (a *API) environments(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		s, err := a.opts.Manager.Settings(r.Context(), c.Actor, c.Environment)
		return http.StatusOK, map[string]any{"environments": []apikey.Settings{s}}, err
	}
	all, err := a.allSettings(r, c)
	return http.StatusOK, map[string]any{"environments": all}, err
}

func (a *API) listKeys(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	views, err := a.opts.Manager.List(r.Context(), c.Actor, env)
	return http.StatusOK, map[string]any{"keys": views}, err
}

type createRequest struct {
	Type      apikey.KeyType `json:"type"`
	Name      string         `json:"name"`
	Scopes    []string       `json:"scopes"`
	ExpiresIn duration       `json:"expires_in"`
	ExpiresAt time.Time      `json:"expires_at"`
}

func (a *API) createKey(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	var req createRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.ExpiresIn != 0 && !req.ExpiresAt.IsZero() {
		return 0, nil, invalid("give expires_in or expires_at, not both")
	}
	if req.Type == apikey.Server {
		scopes, err := apikey.ValidateScopes(apikey.Server, req.Scopes)
		if err != nil {
			return 0, nil, err
		}
		if err := c.mayHold(scopes); err != nil {
			return 0, nil, err
		}
	}
	expires := req.ExpiresAt
	if req.ExpiresIn != 0 {
		expires = a.opts.Manager.Now().Add(time.Duration(req.ExpiresIn))
	}
	k, err := a.opts.Manager.Create(r.Context(), c.Actor, apikey.CreateRequest{
		Environment: env, Type: req.Type, Name: req.Name, Scopes: req.Scopes, ExpiresAt: expires,
	})
	return http.StatusCreated, issued(k), err
}

// graceRequest carries a grace period. Grace is nil when the body, the
// field or its value is missing: never read as zero, which would end a key
// at once. An explicit "0s" does that.
type graceRequest struct {
	Grace *duration `json:"grace"`
}

// rotation returns the RotateRequest for the grace asked for, within
// policy. A missing grace leaves Grace zero and ExpireNow false, which the
// Manager refuses with apikey.ErrGraceRequired.
func (g graceRequest) rotation(policy apikey.GracePolicy) apikey.RotateRequest {
	req := apikey.RotateRequest{Policy: policy}
	if g.Grace != nil {
		req.Grace = time.Duration(*g.Grace)
		req.ExpireNow = req.Grace == 0
	}
	return req
}

func (a *API) rotateDefault(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	var body graceRequest
	if err := decodeOptional(r, &body); err != nil { // an empty body is refused for its missing grace
		return 0, nil, err
	}
	typ := apikey.KeyType(r.PathValue("type"))
	if typ == apikey.Server {
		if err := c.mayHold([]string{apikey.AllScopes}); err != nil { // default server keys hold every scope
			return 0, nil, err
		}
	}
	req := body.rotation(a.opts.Policy)
	req.Environment, req.Type = env, typ
	k, err := a.opts.Manager.Rotate(r.Context(), c.Actor, req)
	return http.StatusCreated, issued(k), err
}

func (a *API) getKey(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	return http.StatusOK, view, err
}

func (a *API) rotateKey(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	if err := c.mayHold(view.Scopes); err != nil { // the new key has the old one's scopes
		return 0, nil, err
	}
	var body graceRequest
	if err := decodeOptional(r, &body); err != nil { // an empty body is refused for its missing grace
		return 0, nil, err
	}
	req := body.rotation(a.opts.Policy)
	req.KeyID = view.ID
	k, err := a.opts.Manager.Rotate(r.Context(), c.Actor, req)
	return http.StatusCreated, issued(k), err
}

func (a *API) changeGrace(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	var req graceRequest
	if err := decodeOptional(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Grace == nil {
		return 0, nil, graceRequired(a.opts.Policy)
	}
	view, err = a.opts.Manager.ChangeGrace(r.Context(), c.Actor, view.ID, time.Duration(*req.Grace), a.opts.Policy)
	return http.StatusOK, view, err
}

func (a *API) revokeKey(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	view, err = a.opts.Manager.Revoke(r.Context(), c.Actor, view.ID)
	return http.StatusOK, view, err
}

type scopesRequest struct {
	Scopes []string `json:"scopes"`
}

func (a *API) setScopes(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	var req scopesRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	scopes, err := apikey.ValidateScopes(apikey.Server, req.Scopes)
	if err != nil {
		return 0, nil, err
	}
	if err := c.mayHold(scopes); err != nil {
		return 0, nil, err
	}
	view, err = a.opts.Manager.SetScopes(r.Context(), c.Actor, view.ID, req.Scopes)
	return http.StatusOK, view, err
}

func (a *API) revealKey(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	if err := c.mayHold(view.Scopes); err != nil {
		return 0, nil, err
	}
	k, err := a.opts.Manager.Reveal(r.Context(), c.Actor, view.ID)
	return http.StatusOK, keyResponse{Key: k.Reveal(), View: view}, err
}

func (a *API) getOrigins(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	s, err := a.opts.Manager.Settings(r.Context(), c.Actor, env)
	return http.StatusOK, s, err
}

type originsRequest struct {
	AllowedOrigins []string `json:"allowed_origins"`
}

func (a *API) setOrigins(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	var req originsRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	s, err := a.opts.Manager.SetAllowedOrigins(r.Context(), c.Actor, env, req.AllowedOrigins)
	return http.StatusOK, s, err
}

func (a *API) audit(r *http.Request, c Caller) (int, any, error) {
	if a.opts.Audit == nil {
		return 0, nil, errNoAudit
	}
	if !c.Actor.Role.Allowed(apikey.ActionView) {
		return 0, nil, forbidden(apikey.ErrForbidden)
	}
	env := r.URL.Query().Get("environment")
	if c.Environment != "" {
		if env != "" && env != c.Environment {
			return 0, nil, notFound("no such environment")
		}
		env = c.Environment
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return 0, nil, invalid("limit must be 1..1000")
		}
		limit = n
	}
	events, err := a.opts.Audit.Events(r.Context(), env, limit)
	return http.StatusOK, map[string]any{"events": events}, err
}

// environment returns the {env} of the path, if the caller may see it.
func environment(r *http.Request, c Caller) (string, error) {
	env := r.PathValue("env")
	if c.Environment != "" && env != c.Environment {
		return "", notFound("no such environment")
	}
	return env, nil
}

// key returns the view of the {id} of the path, if the caller may see it.
// The Manager reads {id} as a key id or a displayable prefix
// (apikey.ParseKeyID). A key that does not exist, a prefix of the other
// type and a key in an environment the caller may not see are refused
// alike.
func (a *API) key(r *http.Request, c Caller) (apikey.View, error) {
	view, err := a.opts.Manager.Get(r.Context(), c.Actor, r.PathValue("id"))
	if errors.Is(err, apikey.ErrNotFound) || err == nil && c.Environment != "" && view.Environment != c.Environment {
		return apikey.View{}, notFound("no such key")
	}
	return view, err
}

// allSettings lists every environment's settings for a caller that may view.
func (a *API) allSettings(r *http.Request, c Caller) ([]apikey.Settings, error) {
	envs, err := a.opts.Manager.Environments(r.Context(), c.Actor)
	if envs == nil {
		envs = []apikey.Settings{}
	}
	return envs, err
}
