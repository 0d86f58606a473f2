package admin

import (
	"errors"
	"net/http"

	"github.com/keystile/keystile/apikey"
)

// ownerLimitsAnswer is the answer of the owner limits routes.
type ownerLimitsAnswer struct {
	Owner string `json:"owner"`
	// Limits are the limits the owner's keys share; {} for none.
	Limits apikey.Limits `json:"limits"`
	// Keys is how many keys carry them (PUT only).
	Keys *int `json:"keys,omitempty"`
}

// ownerLimits answers GET /owners/{owner}/limits: the rate limit and
// quota shared by the owner's keys, {} for none. A caller confined to an
// environment is refused, as on the other owner routes.
func (a *API) ownerLimits(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedOwner
	}
	owner := r.PathValue("owner")
	l, err := a.opts.Manager.OwnerLimits(r.Context(), c.actor(), owner)
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoIndex
	}
	return http.StatusOK, ownerLimitsAnswer{Owner: owner, Limits: l}, err
}

// setOwnerLimits answers PUT /owners/{owner}/limits: {"rate", "quota"}
// shared by every key of the owner ({} removes them), written on all of
// them in one atomic write. Owners only, never a key.
func (a *API) setOwnerLimits(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedOwner
	}
	var body limitsBody
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	limits, err := body.limits()
	if err != nil {
		return 0, nil, err
	}
	owner := r.PathValue("owner")
	n, err := a.opts.Manager.SetOwnerLimits(r.Context(), c.actor(), owner, limits)
	if errors.Is(err, errors.ErrUnsupported) {
		return 0, nil, errNoIndex
	}
	if err != nil {
		return 0, nil, err
	}
	saved, err := apikey.ValidateOwnerLimits(limits) // as stored: the Manager accepted it
	return http.StatusOK, ownerLimitsAnswer{Owner: owner, Limits: saved, Keys: &n}, err
}
