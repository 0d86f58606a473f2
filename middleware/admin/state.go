package admin

import "net/http"

// The routes of the reversible switches: a key disabled and enabled, an
// account suspended and resumed. None reads a body.

// disableKey switches a key off (apikey.Manager.Disable): 200 with its
// view, also when it was disabled already.
func (a *API) disableKey(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	view, err = a.opts.Manager.Disable(r.Context(), c.actor(), view.ID)
	return http.StatusOK, view, err
}

// enableKey switches a disabled key on again (apikey.Manager.Enable): 200
// with its view, also when it was not disabled.
func (a *API) enableKey(r *http.Request, c Caller) (int, any, error) {
	view, err := a.key(r, c)
	if err != nil {
		return 0, nil, err
	}
	view, err = a.opts.Manager.Enable(r.Context(), c.actor(), view.ID)
	return http.StatusOK, view, err
}

// suspensionResponse answers the suspension routes: the account and
// whether it is suspended now.
type suspensionResponse struct {
	Account   string `json:"account"`
	Suspended bool   `json:"suspended"`
}

// suspendAccount suspends the {account} of the path, for an operator
// (apikey.Manager.SuspendAccount, which checks the owner role): 200, also
// when it was suspended already. Suspension is reversible, so no body
// confirms it, unlike closing.
func (a *API) suspendAccount(r *http.Request, c Caller) (int, any, error) {
	return a.setSuspended(r, c, true)
}

// resumeAccount resumes the {account} of the path, for an operator
// (apikey.Manager.ResumeAccount).
func (a *API) resumeAccount(r *http.Request, c Caller) (int, any, error) {
	return a.setSuspended(r, c, false)
}

func (a *API) setSuspended(r *http.Request, c Caller, suspend bool) (int, any, error) {
	actor, err := c.operator()
	if err != nil {
		return 0, nil, err
	}
	account := r.PathValue("account")
	do := a.opts.Manager.ResumeAccount
	if suspend {
		do = a.opts.Manager.SuspendAccount
	}
	if err := do(r.Context(), actor, account); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, suspensionResponse{Account: account, Suspended: suspend}, nil
}
