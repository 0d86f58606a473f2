package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
)

// errConfinedEndpoints refuses the webhook routes to a caller confined to
// an environment: an endpoint receives the events of every environment of
// the account.
var errConfinedEndpoints = problem.Refuse(ReasonForbidden,
	"a webhook endpoint receives every environment's events: a caller confined to one environment cannot manage them")

var errNoEndpoints = problem.Refuse(ReasonNoEndpoints, "")

// endpointStoreError maps a store without endpoints (or replays) to 501.
func endpointStoreError(err error) error {
	if errors.Is(err, errors.ErrUnsupported) {
		return errNoEndpoints
	}
	return err
}

// endpointList is a page of webhook endpoints, never with a secret.
type endpointList struct {
	Endpoints []apikey.WebhookEndpoint `json:"endpoints"`
	Next      string                   `json:"next,omitempty"`
}

// endpointSecret answers the creation of an endpoint and the rotation of
// its secret: the signing secret, shown this once, and the endpoint.
type endpointSecret struct {
	Secret   string                 `json:"secret"`
	Endpoint apikey.WebhookEndpoint `json:"endpoint"`
}

// endpointBody is the body of POST /webhooks and PUT /webhooks/{id}: on
// PUT, each field given replaces the endpoint's, the others are kept.
type endpointBody struct {
	URL         *string          `json:"url"`
	Actions     *[]apikey.Action `json:"actions"`
	Environment *string          `json:"environment"`
	Enabled     *bool            `json:"enabled"`
}

func (a *API) listEndpoints(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedEndpoints
	}
	page, err := pageOf(r)
	if err != nil {
		return 0, nil, err
	}
	list, next, err := a.opts.Manager.Endpoints(r.Context(), c.actor(), page)
	if err != nil {
		return 0, nil, endpointStoreError(err)
	}
	if list == nil {
		list = []apikey.WebhookEndpoint{}
	}
	return http.StatusOK, endpointList{Endpoints: list, Next: next}, nil
}

func (a *API) createEndpoint(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedEndpoints
	}
	var body endpointBody
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	if body.URL == nil {
		return 0, nil, invalid("url is required")
	}
	req := apikey.EndpointRequest{URL: *body.URL}
	if body.Actions != nil {
		req.Actions = *body.Actions
	}
	if body.Environment != nil {
		req.Environment = *body.Environment
	}
	req.Disabled = body.Enabled != nil && !*body.Enabled
	issued, err := a.opts.Manager.CreateEndpoint(r.Context(), c.actor(), req)
	if err != nil {
		return 0, nil, endpointStoreError(err)
	}
	return http.StatusCreated, endpointSecret{Secret: issued.Secret.Reveal(), Endpoint: withoutSecrets(issued.Endpoint)}, nil
}

// withoutSecrets returns e without its stored secrets (JSON leaves them
// out; this keeps them out of memory that outlives the request).
func withoutSecrets(e apikey.WebhookEndpoint) apikey.WebhookEndpoint {
	e.Secret, e.PreviousSecret = apikey.Opaque{}, apikey.Opaque{}
	return e
}

func (a *API) getEndpoint(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedEndpoints
	}
	e, err := a.opts.Manager.Endpoint(r.Context(), c.actor(), r.PathValue("id"))
	return http.StatusOK, e, endpointStoreError(err)
}

func (a *API) updateEndpoint(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedEndpoints
	}
	var body endpointBody
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	e, err := a.opts.Manager.UpdateEndpoint(r.Context(), c.actor(), r.PathValue("id"), apikey.EndpointUpdate{
		URL: body.URL, Actions: body.Actions, Environment: body.Environment, Enabled: body.Enabled})
	return http.StatusOK, e, endpointStoreError(err)
}

// overlapRequest is the body of POST /webhooks/{id}/rotate-secret: how
// long the replaced secret keeps signing ("0s", or no body: not at all).
type overlapRequest struct {
	Overlap *duration `json:"overlap"`
}

func (a *API) rotateEndpointSecret(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedEndpoints
	}
	var body overlapRequest
	if err := decodeOptional(r, &body); err != nil {
		return 0, nil, err
	}
	var overlap time.Duration
	if body.Overlap != nil {
		overlap = time.Duration(*body.Overlap)
	}
	issued, err := a.opts.Manager.RotateEndpointSecret(r.Context(), c.actor(), r.PathValue("id"), overlap)
	if err != nil {
		return 0, nil, endpointStoreError(err)
	}
	return http.StatusOK, endpointSecret{Secret: issued.Secret.Reveal(), Endpoint: issued.Endpoint}, nil
}

// deleted answers DELETE /webhooks/{id}.
type deleted struct {
	Deleted string `json:"deleted"`
}

func (a *API) deleteEndpoint(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedEndpoints
	}
	id := r.PathValue("id")
	err := a.opts.Manager.DeleteEndpoint(r.Context(), c.actor(), id)
	return http.StatusOK, deleted{Deleted: id}, endpointStoreError(err)
}

// deadLetterList is a page of an endpoint's dead letters.
type deadLetterList struct {
	DeadLetters []apikey.DeadLetter `json:"dead_letters"`
	Next        string              `json:"next,omitempty"`
}

func (a *API) endpointDeadLetters(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedEndpoints
	}
	page, err := pageOf(r)
	if err != nil {
		return 0, nil, err
	}
	list, next, err := a.opts.Manager.EndpointDeadLetters(r.Context(), c.actor(), r.PathValue("id"), page)
	if err != nil {
		return 0, nil, endpointStoreError(err)
	}
	if list == nil {
		list = []apikey.DeadLetter{}
	}
	return http.StatusOK, deadLetterList{DeadLetters: list, Next: next}, nil
}

// replayRequest is the body of POST /webhooks/{id}/replay: the event id of
// one dead letter; no body, or no event_id, replays them all.
type replayRequest struct {
	EventID string `json:"event_id"`
}

// replayed answers POST /webhooks/{id}/replay.
type replayed struct {
	Replayed int `json:"replayed"`
}

func (a *API) replayEndpoint(r *http.Request, c Caller) (int, any, error) {
	if c.Environment != "" {
		return 0, nil, errConfinedEndpoints
	}
	var body replayRequest
	if err := decodeOptional(r, &body); err != nil {
		return 0, nil, err
	}
	n, err := a.opts.Manager.Replay(r.Context(), c.actor(), r.PathValue("id"), body.EventID)
	return http.StatusOK, replayed{Replayed: n}, endpointStoreError(err)
}
