package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
)

// lifetimeBody is the body of PUT /environments/{env}/lifetime, the JSON
// form of apikey.LifetimePolicy that the environment's settings show: each
// duration in whole seconds, 0 or left out for none. {} removes the policy.
type lifetimeBody struct {
	DefaultExpirySeconds number `json:"default_expiry_seconds"`
	MaxLifetimeSeconds   number `json:"max_lifetime_seconds"`
}

// policy returns the apikey.LifetimePolicy that b asks for, or an error
// wrapping apikey.ErrInvalidLifetime that names the field of a number
// that is not an integer. The bounds are apikey.ValidateLifetime's, which
// the Manager checks; a number beyond them stays beyond them.
func (b lifetimeBody) policy() (apikey.LifetimePolicy, error) {
	defaultExpiry, err := b.DefaultExpirySeconds.lifetime("default_expiry_seconds")
	if err != nil {
		return apikey.LifetimePolicy{}, err
	}
	maxLifetime, err := b.MaxLifetimeSeconds.lifetime("max_lifetime_seconds")
	if err != nil {
		return apikey.LifetimePolicy{}, err
	}
	return apikey.LifetimePolicy{DefaultExpiry: defaultExpiry, MaxLifetime: maxLifetime}, nil
}

// lifetime returns n seconds as a duration of a lifetime policy for the
// field name: 0 when absent; out of apikey's range (negative, or longer
// than apikey.MaxKeyLifetime) when n is, never wrapped around into it.
func (n number) lifetime(name string) (time.Duration, error) {
	if n == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	tooLong := apikey.MaxKeyLifetime + time.Second
	switch {
	case errors.Is(err, strconv.ErrRange) && n[0] == '-':
		return -time.Second, nil
	case errors.Is(err, strconv.ErrRange):
		return tooLong, nil
	case err != nil:
		return 0, fmt.Errorf("%w: %s must be an integer (whole seconds, no fraction or exponent)", apikey.ErrInvalidLifetime, name)
	case v < 0:
		return -time.Second, nil
	case v > int64(apikey.MaxKeyLifetime/time.Second):
		return tooLong, nil
	}
	return time.Duration(v) * time.Second, nil
}

func (a *API) setLifetime(r *http.Request, c Caller) (int, any, error) {
	env, err := environment(r, c)
	if err != nil {
		return 0, nil, err
	}
	var body lifetimeBody
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	policy, err := body.policy()
	if err != nil {
		return 0, nil, err
	}
	s, err := a.opts.Manager.SetLifetimePolicy(r.Context(), c.actor(), env, policy)
	return http.StatusOK, a.settings(s), err
}

// nameRequest is the body of PUT /keys/{id}/name.
type nameRequest struct {
	Name *string `json:"name"`
}

func (a *API) renameKey(r *http.Request, c Caller) (int, any, error) {
	var req nameRequest
	return setKeyField(a, r, c, &req, &req.Name, `"name" is required ("" removes it)`, a.opts.Manager.Rename)
}

// environmentRequest is the body of POST /environments.
type environmentRequest struct {
	Environment *string `json:"environment"`
}

// environmentResponse answers POST /environments: the environment's name
// and its default keys, server then publishable, in full, shown this once.
type environmentResponse struct {
	Environment string        `json:"environment"`
	Issued      []keyResponse `json:"issued"`
}

// createEnvironment creates an environment with its default keys
// (apikey.Manager.Bootstrap). A caller confined to an environment (a key)
// may not: an environment is a boundary it does not cross.
func (a *API) createEnvironment(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, problem.Refuse(ReasonForbidden, "a caller confined to an environment cannot create environments")
	}
	var req environmentRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Environment == nil {
		return 0, nil, invalid(`"environment" is required`)
	}
	keys, err := a.opts.Manager.Bootstrap(r.Context(), c.actor(), *req.Environment)
	if err != nil {
		return 0, nil, err
	}
	out := environmentResponse{Environment: *req.Environment, Issued: make([]keyResponse, 0, len(keys))}
	for _, k := range keys {
		out.Issued = append(out.Issued, issued(k))
	}
	return http.StatusCreated, out, nil
}
