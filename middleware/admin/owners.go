package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
)

// The routes of keys by owner and of expiring keys.
//
// An owner's keys span the account's environments, so the owner routes
// refuse a caller confined to one environment (403 role_not_allowed), a
// key-authenticated caller included: listing or revoking them would reach
// past its environment.

// errConfinedOwner refuses the owner routes to a caller confined to an
// environment.
var errConfinedOwner = problem.Refuse(ReasonForbidden,
	"an owner's keys span the account's environments: a caller confined to one environment cannot list or revoke them")

// ownerKeys answers GET /owners/{owner}/keys: a page of the owner's keys
// in every environment of the account, by key id.
func (a *API) ownerKeys(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedOwner
	}
	page, err := pageOf(r)
	if err != nil {
		return 0, nil, err
	}
	list, err := a.opts.Manager.OwnerKeys(r.Context(), c.actor(), r.PathValue("owner"), page)
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoIndex
	}
	if list.Keys == nil {
		list.Keys = []apikey.View{}
	}
	return http.StatusOK, list, err
}

// revokeOwner answers POST /owners/{owner}/revoke: every key of the owner
// revoked (apikey.Manager.RevokeOwner: atomic writes, repeated while keys
// are issued to the owner meanwhile), default keys skipped and listed. No
// body is read.
func (a *API) revokeOwner(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedOwner
	}
	res, err := a.opts.Manager.RevokeOwner(r.Context(), c.actor(), r.PathValue("owner"))
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoIndex
	}
	return http.StatusOK, res, err
}

// expiringKeys answers GET /keys/expiring?within=&environment=: a page of
// the keys that stop working within the window, soonest first. A caller
// confined to an environment sees that environment's only.
func (a *API) expiringKeys(r *http.Request, c Caller) (int, any, error) {
	q := r.URL.Query()
	within, err := time.ParseDuration(q.Get("within"))
	if err != nil {
		return 0, nil, invalid(`within: want a duration such as "72h"`)
	}
	env := q.Get("environment")
	if c.Environment != "" {
		if env != "" && env != c.Environment {
			return 0, nil, notFound("no such environment")
		}
		env = c.Environment
	}
	page, err := pageOf(r)
	if err != nil {
		return 0, nil, err
	}
	list, err := a.opts.Manager.Expiring(r.Context(), c.actor(), apikey.ExpiringRequest{Environment: env, Within: within}, page)
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoIndex
	}
	if list.Keys == nil {
		list.Keys = []apikey.View{}
	}
	return http.StatusOK, list, err
}
