package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage"
)

// keyResponse answers create, rotate and reveal: the full key, shown once,
// and its public view, as keyctl prints them.
type keyResponse struct {
	FullKey string      `json:"full_key"`
	View    apikey.View `json:"view"`
}

func issued(k apikey.Issued) keyResponse {
	return keyResponse{FullKey: k.Key.Reveal(), View: k.View}
}

// environmentList is a page of environments as the API answers it.
type environmentList struct {
	Environments []environmentView `json:"environments"`
	Next         string            `json:"next,omitempty"`
}

func (a *API) environments(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		s, err := a.opts.Manager.Settings(r.Context(), c.actor(), c.Environment)
		return http.StatusOK, environmentList{Environments: []environmentView{a.settings(s)}}, err
	}
	page, err := pageOf(r)
	if err != nil {
		return 0, nil, err
	}
	list, err := a.opts.Manager.Environments(r.Context(), c.actor(), page)
	out := environmentList{Environments: make([]environmentView, 0, len(list.Environments)), Next: list.Next}
	for _, s := range list.Environments {
		out.Environments = append(out.Environments, a.settings(s))
	}
	return http.StatusOK, out, err
}

func (a *API) listKeys(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	page, err := pageOf(r)
	if err != nil {
		return 0, nil, err
	}
	list, err := a.opts.Manager.List(r.Context(), c.actor(), env, page)
	if list.Keys == nil {
		list.Keys = []apikey.View{}
	}
	return http.StatusOK, list, err
}

type createRequest struct {
	Type      apikey.KeyType    `json:"type"`
	Name      string            `json:"name"`
	Owner     string            `json:"owner"`
	Metadata  map[string]string `json:"metadata"`
	Scopes    []string          `json:"scopes"`
	ExpiresIn *duration         `json:"expires_in"`
	ExpiresAt *time.Time        `json:"expires_at"`
	Limits    *limitsBody       `json:"limits"`
}

// expiry returns the expiry asked for, zero for none. A given expires_in
// must be positive and a given expires_at in the future (the Manager
// checks that): neither is ever read as "no expiry".
func (req createRequest) expiry(now time.Time) (time.Time, error) {
	switch {
	case req.ExpiresIn != nil && req.ExpiresAt != nil:
		return time.Time{}, invalid("give expires_in or expires_at, not both")
	case req.ExpiresIn != nil && *req.ExpiresIn <= 0:
		return time.Time{}, fmt.Errorf("%w: expires_in must be positive; leave it out for a key without expiry", apikey.ErrInvalidExpiry)
	case req.ExpiresIn != nil:
		return now.Add(time.Duration(*req.ExpiresIn)), nil
	case req.ExpiresAt != nil && !req.ExpiresAt.After(now):
		return time.Time{}, fmt.Errorf("%w: expires_at must be in the future; leave it out for a key without expiry", apikey.ErrInvalidExpiry)
	case req.ExpiresAt != nil:
		return *req.ExpiresAt, nil
	}
	return time.Time{}, nil
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
	expires, err := req.expiry(a.opts.Manager.Now())
	if err != nil {
		return 0, nil, err
	}
	var limits apikey.Limits
	if req.Limits != nil {
		if limits, err = req.Limits.limits(); err != nil {
			return 0, nil, err
		}
	}
	k, err := a.opts.Manager.Create(r.Context(), c.actor(), apikey.CreateRequest{
		Environment: env, Type: req.Type, Name: req.Name, Owner: req.Owner, Metadata: req.Metadata,
		Scopes: req.Scopes, ExpiresAt: expires, Limits: limits,
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
	req := body.rotation(a.opts.Policy)
	req.Environment, req.Type = env, typ
	k, err := a.opts.Manager.Rotate(r.Context(), c.actor(), req)
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
	var body graceRequest
	if err := decodeOptional(r, &body); err != nil { // an empty body is refused for its missing grace
		return 0, nil, err
	}
	req := body.rotation(a.opts.Policy)
	req.KeyID = view.ID
	k, err := a.opts.Manager.Rotate(r.Context(), c.actor(), req)
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
	view, err = a.opts.Manager.ChangeGrace(r.Context(), c.actor(), view.ID, time.Duration(*req.Grace), a.opts.Policy)
	return http.StatusOK, view, err
}

func (a *API) revokeKey(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	view, err = a.opts.Manager.Revoke(r.Context(), c.actor(), view.ID)
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
	view, err = a.opts.Manager.SetScopes(r.Context(), c.actor(), view.ID, req.Scopes)
	return http.StatusOK, view, err
}

type ownerRequest struct {
	Owner *string `json:"owner"`
}

func (a *API) setOwner(r *http.Request, c Caller) (int, any, error) {
	var req ownerRequest
	return setKeyField(a, r, c, &req, &req.Owner, `"owner" is required ("" names nobody)`, a.opts.Manager.SetOwner)
}

type metadataRequest struct {
	Metadata *map[string]string `json:"metadata"`
}

func (a *API) setMetadata(r *http.Request, c Caller) (int, any, error) {
	var req metadataRequest
	return setKeyField(a, r, c, &req, &req.Metadata, `"metadata" is required ({} removes it)`, a.opts.Manager.SetMetadata)
}

// setKeyField answers a PUT that replaces one field of the key of the path:
// it finds the key as a.key does (a key the caller may not see is 404;
// that and any other failure to find it come before the body is read),
// decodes the body into req with decode (so an empty body or a member req
// has no field for is 400), and refuses with invalid(missing) when *field,
// a pointer field of req, is nil after decoding (the member is absent or
// null). Otherwise it answers 200 with the view that set returns for the
// caller's actor, the key's id and the value, or set's error.
func setKeyField[T any](a *API, r *http.Request, c Caller, req any, field **T, missing string,
	set func(ctx context.Context, actor apikey.Actor, keyID string, value T) (apikey.View, error)) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	if err := decode(r, req); err != nil {
		return 0, nil, err
	}
	if *field == nil {
		return 0, nil, invalid(missing)
	}
	view, err = set(r.Context(), c.actor(), view.ID, **field)
	return http.StatusOK, view, err
}

func (a *API) revealKey(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	k, err := a.opts.Manager.Reveal(r.Context(), c.actor(), view.ID)
	return http.StatusOK, keyResponse{FullKey: k.Reveal(), View: view}, err
}

func (a *API) getOrigins(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	s, err := a.opts.Manager.Settings(r.Context(), c.actor(), env)
	return http.StatusOK, a.settings(s), err
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
	s, err := a.opts.Manager.SetAllowedOrigins(r.Context(), c.actor(), env, req.AllowedOrigins)
	return http.StatusOK, a.settings(s), err
}

// environmentView is an environment's settings as the API answers them, with
// whether it is a production environment of its account
// (apikey.ManagerOptions.Production), where members change no key.
type environmentView struct {
	apikey.Settings
	Production bool `json:"production"`
}

// settings returns s as the API answers it: allowed_origins is a list,
// empty rather than null, and production is set.
func (a *API) settings(s apikey.Settings) environmentView {
	if s.AllowedOrigins == nil {
		s.AllowedOrigins = []string{}
	}
	return environmentView{Settings: s, Production: a.opts.Manager.Production(s.Account, s.Environment)}
}

// auditPage is a page of audit events, newest first. Next is the seq of
// the last event, to pass as ?before= (or ?after=) for the next page.
type auditPage struct {
	Events []apikey.Event `json:"events"`
	Next   string         `json:"next,omitempty"`
}

func (a *API) audit(r *http.Request, c Caller) (int, any, error) {
	if a.opts.Audit == nil {
		return 0, nil, errNoAudit
	}
	if err := c.Actor.Role.Permits(apikey.ActionView, apikey.Target{}); err != nil {
		return 0, nil, err // says what was refused and why
	}
	if err := apikey.ValidateAccount(c.account()); err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	env := q.Get("environment")
	if c.Environment != "" {
		if env != "" && env != c.Environment {
			return 0, nil, notFound("no such environment")
		}
		env = c.Environment
	}
	limit, err := limitOf(r)
	if err != nil {
		return 0, nil, err
	}
	before, err := seqCursor(q.Get("before"), q.Get("after"))
	if err != nil {
		return 0, nil, err
	}
	events, err := a.opts.Audit.Events(r.Context(), storage.EventQuery{
		Account: c.account(), Environment: env, Before: before, Limit: limit + 1,
	})
	if err != nil {
		return 0, nil, err
	}
	out := auditPage{Events: events}
	if out.Events == nil {
		out.Events = []apikey.Event{}
	}
	if len(events) > limit {
		out.Events = events[:limit]
		out.Next = strconv.FormatInt(events[limit-1].Seq, 10)
	}
	return http.StatusOK, out, nil
}

// seqCursor reads the audit log's cursor, given as before or after (the
// same: the seq of the last event of the previous page).
func seqCursor(before, after string) (int64, error) {
	switch {
	case before == "":
		before = after
	case after != "" && after != before:
		return 0, fmt.Errorf("%w: give before or after, not both", apikey.ErrInvalidCursor)
	}
	if before == "" {
		return 0, nil
	}
	seq, err := strconv.ParseInt(before, 10, 64)
	if err != nil || seq < 1 {
		return 0, fmt.Errorf("%w: use the next cursor of the previous page", apikey.ErrInvalidCursor)
	}
	return seq, nil
}

// accountResponse answers an account's closing.
type accountResponse struct {
	Account string `json:"account"`
	Revoked int    `json:"revoked"`
}

// closeRequest confirms the closing of an account by naming it again.
type closeRequest struct {
	Confirm string `json:"confirm"`
}

// confirmClose reads the body of a route that closes account: it must be
// enabled (Options.CloseAccounts), for a role that may close accounts
// (checked again by the Manager), and confirmed.
func (a *API) confirmClose(r *http.Request, c Caller, account string) error {
	if !a.opts.CloseAccounts {
		return errCloseOff
	}
	if err := c.Actor.Role.Permits(apikey.ActionClose, apikey.Target{}); err != nil {
		return err // says what was refused and why
	}
	var req closeRequest
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	if req.Confirm != account {
		return errUnconfirmed
	}
	return nil
}

// closeOwnAccount closes the caller's own account. A caller confined to an
// environment (a key) may not: closing reaches every environment.
func (a *API) closeOwnAccount(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, problem.Refuse(ReasonForbidden, "a caller confined to an environment cannot close its account")
	}
	account := c.account()
	if err := a.confirmClose(r, c, account); err != nil {
		return 0, nil, err
	}
	n, err := a.opts.Manager.CloseAccount(r.Context(), c.actor(), account)
	return http.StatusOK, accountResponse{Account: account, Revoked: n}, err
}

func (a *API) accounts(r *http.Request, c Caller) (int, any, error) {
	actor, err := c.operator()
	if err != nil {
		return 0, nil, err
	}
	page, err := pageOf(r)
	if err != nil {
		return 0, nil, err
	}
	list, err := a.opts.Manager.Accounts(r.Context(), actor, page)
	if list.Accounts == nil {
		list.Accounts = []string{}
	}
	return http.StatusOK, list, err
}

func (a *API) closeAccount(r *http.Request, c Caller) (int, any, error) {
	actor, err := c.operator()
	if err != nil {
		return 0, nil, err
	}
	account := r.PathValue("account")
	if err := a.confirmClose(r, c, account); err != nil {
		return 0, nil, err
	}
	n, err := a.opts.Manager.CloseAccount(r.Context(), actor, account)
	return http.StatusOK, accountResponse{Account: account, Revoked: n}, err
}

// pageOf reads ?after= and ?limit= of a list.
func pageOf(r *http.Request) (apikey.Page, error) {
	limit, err := limitOf(r)
	if err != nil {
		return apikey.Page{}, err
	}
	return apikey.Page{After: r.URL.Query().Get("after"), Limit: limit}, nil
}

// limitOf reads ?limit=: 1 to apikey.MaxPageSize, apikey.DefaultPageSize
// when absent.
func limitOf(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return apikey.DefaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > apikey.MaxPageSize {
		return 0, invalid("limit must be 1.." + strconv.Itoa(apikey.MaxPageSize))
	}
	return n, nil
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
	view, err := a.opts.Manager.Get(r.Context(), c.actor(), r.PathValue("id"))
	if errors.Is(err, apikey.ErrNotFound) || err == nil && c.Environment != "" && view.Environment != c.Environment {
		return apikey.View{}, notFound("no such key")
	}
	return view, err
}
