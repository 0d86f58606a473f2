package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
)

// The refusals of the management API. Each is a *problem.Reason, a
// sentinel error (check it with errors.Is, or find it with problem.Of in
// an Options.ErrorHandler) with a stable code that clients may branch on
// and the HTTP status of its problem response. Reasons lists them all, and
// the OpenAPI document (GET /openapi.json) names the same codes.
//
// A caller authenticated by a key can also be refused by the middleware in
// front of the API, and by KeyScopes, with the reasons of package
// middleware (401 missing_key, 403 insufficient_scope, ...).
var (
	// ReasonInvalidRequest (400, "invalid_request"): the request is
	// malformed: a body that is not one JSON object of the route's fields,
	// a field of the wrong type (the detail names the field, never its
	// value), expires_in and expires_at together, a ?limit= out of range,
	// a ?from= or ?to= that is not an RFC 3339 time, or an import with
	// neither or both of digest and key, or a key that cannot be imported
	// (apikey.ErrInvalidImport).
	ReasonInvalidRequest = problem.New("invalid_request", http.StatusBadRequest, "invalid request")
	// ReasonTooLarge (413, "request_too_large"): the body is larger than
	// Options.MaxBodyBytes.
	ReasonTooLarge = problem.New("request_too_large", http.StatusRequestEntityTooLarge, "request body too large")
	// ReasonForbidden (403, "role_not_allowed"): the caller's role may not
	// do this (apikey.ErrForbidden); a key would hand out a scope it does
	// not hold; a rotated-out key would change something; a caller that is
	// not an operator used an account route; or Authorize failed with an
	// error that is not a refusal.
	ReasonForbidden = problem.New("role_not_allowed", http.StatusForbidden, "caller may not do this")
	// ReasonNotFound (404, "not_found"): no such key, environment or
	// account for this caller (apikey.ErrNotFound). A key of another
	// account, or of an environment the caller is confined out of, is not
	// found either.
	ReasonNotFound = problem.New("not_found", http.StatusNotFound, "not found")
	// ReasonNoRoute (404, "no_such_route"): no route has this method and
	// path.
	ReasonNoRoute = problem.New("no_such_route", http.StatusNotFound, "no such route")
	// ReasonNoAudit (501, "audit_unavailable"): GET /audit, and
	// Options.Audit is nil.
	ReasonNoAudit = problem.New("audit_unavailable", http.StatusNotImplemented, "this store keeps no audit log")
	// ReasonUnavailable (503, "storage_unavailable"): storage failed. The
	// response carries Retry-After and no detail (fail closed).
	ReasonUnavailable = problem.New("storage_unavailable", http.StatusServiceUnavailable, "storage unavailable")

	// ReasonInvalidKeyID (422, "invalid_key_id"): the {id} of the path is
	// neither a key id nor a displayable prefix, such as a full key
	// (apikey.ErrInvalidKeyID). It is never echoed.
	ReasonInvalidKeyID = problem.New("invalid_key_id", http.StatusUnprocessableEntity, "not a key id or a displayable prefix")
	// ReasonUnknownEnvironment (404, "unknown_environment"): the
	// environment was never bootstrapped in the caller's account
	// (apikey.ErrUnknownEnvironment).
	ReasonUnknownEnvironment = problem.New("unknown_environment", http.StatusNotFound, "unknown environment")
	// ReasonInvalidEnvironment (422, "invalid_environment"): the
	// environment name is not 1-32 characters of [a-z0-9_-] starting with
	// a letter (apikey.ErrInvalidEnvironment).
	ReasonInvalidEnvironment = problem.New("invalid_environment", http.StatusUnprocessableEntity, "invalid environment name")
	// ReasonInvalidKeyType (422, "invalid_key_type"): a key type other
	// than "server" or "client" (apikey.ErrInvalidKeyType).
	ReasonInvalidKeyType = problem.New("invalid_key_type", http.StatusUnprocessableEntity, "invalid key type")
	// ReasonInvalidScope (422, "invalid_scope"): a scope that is not "*" or
	// resource:read or resource:write, scopes for a publishable key, or a
	// default key's scopes to be changed (apikey.ErrInvalidScope).
	ReasonInvalidScope = problem.New("invalid_scope", http.StatusUnprocessableEntity, "invalid scope")
	// ReasonScopesRequired (422, "scopes_required"): a server key was to
	// get no scopes; full access is asked for with "*"
	// (apikey.ErrScopesRequired).
	ReasonScopesRequired = problem.New("scopes_required", http.StatusUnprocessableEntity, `scopes required; give "*" for full access`)
	// ReasonInvalidOrigin (422, "invalid_origin"): an allowed origin is not
	// an exact origin, a subdomain wildcard, a localhost origin or "*"
	// (apikey.ErrInvalidOrigin).
	ReasonInvalidOrigin = problem.New("invalid_origin", http.StatusUnprocessableEntity, "invalid origin")
	// ReasonInvalidName (422, "invalid_name"): a key name longer than 200
	// bytes (apikey.ErrInvalidName).
	ReasonInvalidName = problem.New("invalid_name", http.StatusUnprocessableEntity, "key name too long")
	// ReasonInvalidExpiry (422, "invalid_expiry"): an expiry that is not in
	// the future (apikey.ErrInvalidExpiry).
	ReasonInvalidExpiry = problem.New("invalid_expiry", http.StatusUnprocessableEntity, "invalid expiry")
	// ReasonGraceOutOfRange (422, "grace_out_of_range"): a grace period
	// that is negative or beyond Options.Policy (apikey.ErrGraceOutOfRange).
	ReasonGraceOutOfRange = problem.New("grace_out_of_range", http.StatusUnprocessableEntity, "grace period out of range")
	// ReasonGraceRequired (422, "grace_required"): a rotation or grace
	// change without a grace; "0s" ends the old key at once
	// (apikey.ErrGraceRequired). The detail names the policy's maximum.
	ReasonGraceRequired = problem.New("grace_required", http.StatusUnprocessableEntity, "grace period required")
	// ReasonRotateFirst (409, "rotate_first"): a default key cannot be
	// revoked or disabled; rotate it, then revoke or disable the old key
	// (apikey.ErrDefaultKeyNotRevocable, apikey.ErrDefaultKeyNotDisableable).
	ReasonRotateFirst = problem.New("rotate_first", http.StatusConflict, "default key; rotate it first")
	// ReasonAlreadyRevoked (409, "already_revoked"): the key was revoked
	// before (apikey.ErrAlreadyRevoked).
	ReasonAlreadyRevoked = problem.New("already_revoked", http.StatusConflict, "key already revoked")
	// ReasonAlreadyRotated (409, "already_rotated"): the key was rotated
	// before; rotate its replacement (apikey.ErrAlreadyRotated).
	ReasonAlreadyRotated = problem.New("already_rotated", http.StatusConflict, "key already rotated")
	// ReasonNotRotated (409, "not_rotated"): the grace of a key that was
	// never rotated was to be changed (apikey.ErrNotRotated).
	ReasonNotRotated = problem.New("not_rotated", http.StatusConflict, "key was not rotated")
	// ReasonKeyExpired (409, "key_expired"): the action needs a key that
	// has not expired (apikey.ErrKeyExpired).
	ReasonKeyExpired = problem.New("key_expired", http.StatusConflict, "key expired")
	// ReasonNotRevealable (409, "not_revealable"): the full key cannot be
	// shown again: server keys are stored only as hashes unless the
	// Manager has a Sealer (apikey.ErrNotRevealable).
	ReasonNotRevealable = problem.New("not_revealable", http.StatusConflict, "key cannot be revealed")
	// ReasonInvalidAccount (422, "invalid_account"): an account id that is
	// not 1-64 characters of [A-Za-z0-9._:@-] (apikey.ErrInvalidAccount).
	ReasonInvalidAccount = problem.New("invalid_account", http.StatusUnprocessableEntity, "invalid account")
	// ReasonAccountClosed (409, "account_closed"): the account was closed:
	// it takes no new keys and no changes (apikey.ErrAccountClosed).
	ReasonAccountClosed = problem.New("account_closed", http.StatusConflict, "account closed")
	// ReasonInvalidMetadata (422, "invalid_metadata"): an owner or
	// metadata out of bounds, or holding something shaped like a key
	// (apikey.ErrInvalidMetadata).
	ReasonInvalidMetadata = problem.New("invalid_metadata", http.StatusUnprocessableEntity, "invalid owner or metadata")
	// ReasonInvalidCursor (422, "invalid_cursor"): an after or before
	// cursor that no page returned (apikey.ErrInvalidCursor).
	ReasonInvalidCursor = problem.New("invalid_cursor", http.StatusUnprocessableEntity, "invalid page cursor")
	// ReasonConflict (409, "conflict"): the change lost a race with
	// another writer and was not applied, or, for an owner's revocation,
	// keys were still being issued to the owner after its last write (the
	// writes before it stand); try again (apikey.ErrConflict).
	ReasonConflict = problem.New("conflict", http.StatusConflict, "concurrent change; try again")
	// ReasonConfirmationRequired (422, "confirmation_required"): a request
	// to close an account does not name the account again in its body,
	// {"confirm": "<account id>"}, or names another one.
	ReasonConfirmationRequired = problem.New("confirmation_required", http.StatusUnprocessableEntity, "confirmation required")
	// ReasonInvalidLimits (422, "invalid_limits"): a rate limit, quota or
	// address allowlist out of range, such as a negative rate, a window that
	// is not a whole number of seconds, a refill beyond the quota, a range
	// that is not CIDR, or an allowlist on a publishable key
	// (apikey.ErrInvalidLimits). The detail names the field within the
	// limits ("rate.window_seconds", "allowed_ips[2]"), never its value.
	ReasonInvalidLimits = problem.New("invalid_limits", http.StatusUnprocessableEntity, "invalid limits")
	// ReasonInvalidTimeRange (422, "invalid_time_range"): a usage request
	// whose from or to is missing, whose from is not before its to, or
	// whose range is longer than MaxUsageRange (apikey.ErrInvalidTimeRange).
	ReasonInvalidTimeRange = problem.New("invalid_time_range", http.StatusUnprocessableEntity, "invalid time range")
	// ReasonNoUsage (501, "usage_unavailable"): a usage route, and the
	// Manager's store keeps no usage (it is not an apikey.UsageRecorder).
	ReasonNoUsage = problem.New("usage_unavailable", http.StatusNotImplemented, "this store keeps no usage")
	// ReasonInvalidLifetime (422, "invalid_lifetime"): a lifetime policy
	// out of range: a negative duration, one longer than ten years, a
	// default expiry longer than the maximum lifetime, or a number that is
	// not whole seconds (apikey.ErrInvalidLifetime). The detail names the
	// field, never its value.
	ReasonInvalidLifetime = problem.New("invalid_lifetime", http.StatusUnprocessableEntity, "invalid lifetime policy")
	// ReasonBeyondLifetime (422, "beyond_lifetime"): a key would live
	// longer than its environment's maximum lifetime: an expiry asked for
	// at creation, or the grace of a rotation or a grace change
	// (apikey.ErrBeyondLifetime). The detail names the maximum and the
	// latest expiry it allows.
	ReasonBeyondLifetime = problem.New("beyond_lifetime", http.StatusUnprocessableEntity, "beyond the environment's maximum key lifetime")
	// ReasonAlreadyBootstrapped (409, "already_bootstrapped"): the
	// environment to create exists already, with its default keys
	// (apikey.ErrAlreadyBootstrapped); keyctl answers the same code.
	ReasonAlreadyBootstrapped = problem.New("already_bootstrapped", http.StatusConflict, "environment exists")
	// ReasonAccountSuspended (403, "account_suspended"): the account is
	// suspended (apikey.ErrAccountSuspended): its keys and settings take no
	// change, revocation aside, until an operator resumes it; they can
	// still be read. Package middleware refuses the account's keys with the
	// same code and status.
	ReasonAccountSuspended = problem.New("account_suspended", http.StatusForbidden, "account suspended")
	// ReasonTooManyKeys (422, "too_many_keys"): the request would act on
	// more keys than one call may (apikey.ErrTooManyKeys), such as an
	// owner with more than apikey.MaxOwnerRevocation keys to revoke. The
	// detail names the bound.
	ReasonTooManyKeys = problem.New("too_many_keys", http.StatusUnprocessableEntity, "too many keys for one call")
	// ReasonNoIndex (501, "index_unavailable"): an owner or expiring-keys
	// route, and the Manager's store cannot answer it by index (it is not
	// an apikey.OwnerIndex or apikey.ExpiryIndex).
	ReasonNoIndex = problem.New("index_unavailable", http.StatusNotImplemented, "this store cannot list these keys")
	// ReasonNoCallers (501, "callers_unavailable"): GET
	// /keys/{id}/callers, and the Manager's store keeps no callers (it is
	// not an apikey.CallerLog).
	ReasonNoCallers = problem.New("callers_unavailable", http.StatusNotImplemented, "this store keeps no callers")
	// ReasonStillInUse (409, "still_in_use"): POST
	// /keys/{id}/end-grace-if-silent, and a caller used the key within the
	// silence asked for (apikey.ErrNotSilent). The detail says when it was
	// last seen.
	ReasonStillInUse = problem.New("still_in_use", http.StatusConflict, "key rotated out is still in use")
	// ReasonNoInstances (501, "instances_unavailable"): GET
	// /keys/{id}/propagation, and the Manager's store keeps no validator
	// instances (it is not a storage.InstanceLog).
	ReasonNoInstances = problem.New("instances_unavailable", http.StatusNotImplemented, "this store keeps no validator instances")
	// ReasonSilenceOutOfRange (422, "silence_out_of_range"): POST
	// /keys/{id}/end-grace-if-silent with a silent_for shorter than 10
	// minutes or longer than a year (apikey.ErrSilenceOutOfRange).
	ReasonSilenceOutOfRange = problem.New("silence_out_of_range", http.StatusUnprocessableEntity, "silence out of range")
	// ReasonSilenceRequired (422, "silence_required"): POST
	// /keys/{id}/end-grace-if-silent without a silent_for: the silence is
	// never picked for the caller.
	ReasonSilenceRequired = problem.New("silence_required", http.StatusUnprocessableEntity, "silence required")
	// ReasonInvalidEndpoint (422, "invalid_endpoint"): a webhook
	// endpoint's URL, action filter, environment filter, id or secret
	// overlap is not valid (apikey.ErrInvalidEndpoint). The detail names
	// the field ("url", "actions", "environment", "id", "overlap").
	ReasonInvalidEndpoint = problem.New("invalid_endpoint", http.StatusUnprocessableEntity, "invalid webhook endpoint")
	// ReasonTooManyEndpoints (422, "too_many_endpoints"): the account has
	// apikey.MaxEndpoints webhook endpoints (apikey.ErrTooManyEndpoints).
	ReasonTooManyEndpoints = problem.New("too_many_endpoints", http.StatusUnprocessableEntity, "too many webhook endpoints")
	// ReasonNoEndpoints (501, "endpoints_unavailable"): a webhook route,
	// and the Manager's store keeps no webhook endpoints or dead letters
	// (it is not an apikey.EndpointStore, or not an apikey.DeliveryLog and
	// apikey.ReplayLog).
	ReasonNoEndpoints = problem.New("endpoints_unavailable", http.StatusNotImplemented, "this store keeps no webhook endpoints")
)

// reasons are the API's refusals, in the order of the declarations above.
var reasons = []*problem.Reason{
	ReasonInvalidRequest, ReasonTooLarge, ReasonForbidden, ReasonNotFound, ReasonNoRoute, ReasonNoAudit, ReasonUnavailable,
	ReasonInvalidKeyID, ReasonUnknownEnvironment, ReasonInvalidEnvironment, ReasonInvalidKeyType, ReasonInvalidScope,
	ReasonScopesRequired, ReasonInvalidOrigin, ReasonInvalidName, ReasonInvalidExpiry, ReasonGraceOutOfRange,
	ReasonGraceRequired, ReasonRotateFirst, ReasonAlreadyRevoked, ReasonAlreadyRotated, ReasonNotRotated,
	ReasonKeyExpired, ReasonNotRevealable, ReasonInvalidAccount, ReasonAccountClosed, ReasonInvalidMetadata,
	ReasonInvalidCursor, ReasonConflict, ReasonConfirmationRequired, ReasonInvalidLimits, ReasonInvalidTimeRange,
	ReasonNoUsage, ReasonInvalidLifetime, ReasonBeyondLifetime, ReasonAlreadyBootstrapped,
	ReasonAccountSuspended,
	ReasonTooManyKeys, ReasonNoIndex, ReasonNoCallers, ReasonStillInUse, ReasonSilenceOutOfRange, ReasonSilenceRequired,
	ReasonNoInstances, ReasonInvalidEndpoint, ReasonTooManyEndpoints, ReasonNoEndpoints,
}

// Reasons returns every refusal of the management API, each once: the
// codes its problem responses carry (besides those of package middleware,
// from the middleware in front of it or from Authorize). The slice is new
// on every call.
func Reasons() []*problem.Reason { return slices.Clone(reasons) }

// ruleReasons gives each lifecycle error of package apikey its refusal:
// 422 for a request that can never succeed as written, 409 for one that the
// key's current state forbids.
var ruleReasons = []struct {
	err    error
	reason *problem.Reason
}{
	{apikey.ErrForbidden, ReasonForbidden},
	{apikey.ErrNotFound, ReasonNotFound},
	{apikey.ErrInvalidKeyID, ReasonInvalidKeyID},
	{apikey.ErrUnknownEnvironment, ReasonUnknownEnvironment},
	{apikey.ErrInvalidEnvironment, ReasonInvalidEnvironment},
	{apikey.ErrInvalidKeyType, ReasonInvalidKeyType},
	{apikey.ErrInvalidScope, ReasonInvalidScope},
	{apikey.ErrScopesRequired, ReasonScopesRequired},
	{apikey.ErrInvalidOrigin, ReasonInvalidOrigin},
	{apikey.ErrInvalidName, ReasonInvalidName},
	{apikey.ErrInvalidExpiry, ReasonInvalidExpiry},
	{apikey.ErrGraceOutOfRange, ReasonGraceOutOfRange},
	{apikey.ErrGraceRequired, ReasonGraceRequired},
	{apikey.ErrDefaultKeyNotRevocable, ReasonRotateFirst},
	{apikey.ErrAlreadyRevoked, ReasonAlreadyRevoked},
	{apikey.ErrAlreadyRotated, ReasonAlreadyRotated},
	{apikey.ErrNotRotated, ReasonNotRotated},
	{apikey.ErrNotSilent, ReasonStillInUse},
	{apikey.ErrSilenceOutOfRange, ReasonSilenceOutOfRange},
	{apikey.ErrKeyExpired, ReasonKeyExpired},
	{apikey.ErrNotRevealable, ReasonNotRevealable},
	{apikey.ErrInvalidAccount, ReasonInvalidAccount},
	{apikey.ErrAccountClosed, ReasonAccountClosed},
	{apikey.ErrInvalidMetadata, ReasonInvalidMetadata},
	{apikey.ErrInvalidCursor, ReasonInvalidCursor},
	{apikey.ErrConflict, ReasonConflict},
	{apikey.ErrInvalidLimits, ReasonInvalidLimits},
	{apikey.ErrInvalidTimeRange, ReasonInvalidTimeRange},
	{apikey.ErrInvalidLifetime, ReasonInvalidLifetime},
	{apikey.ErrBeyondLifetime, ReasonBeyondLifetime},
	{apikey.ErrAlreadyBootstrapped, ReasonAlreadyBootstrapped},
	{apikey.ErrInvalidImport, ReasonInvalidRequest},
	{apikey.ErrAccountSuspended, ReasonAccountSuspended},
	{apikey.ErrDefaultKeyNotDisableable, ReasonRotateFirst},
	{apikey.ErrTooManyKeys, ReasonTooManyKeys},
	{apikey.ErrInvalidEndpoint, ReasonInvalidEndpoint},
	{apikey.ErrTooManyEndpoints, ReasonTooManyEndpoints},
}

var (
	errNoRoute     = problem.Refuse(ReasonNoRoute, "")
	errNoAudit     = problem.Refuse(ReasonNoAudit, "")
	errNoUsage     = problem.Refuse(ReasonNoUsage, "")
	errNoCallers   = problem.Refuse(ReasonNoCallers, "")
	errNoIndex     = problem.Refuse(ReasonNoIndex, "")
	errNoInstances = problem.Refuse(ReasonNoInstances, "")
	errTooLarge    = problem.Refuse(ReasonTooLarge, "")

	errCloseOff    = problem.Refuse(ReasonForbidden, "closing accounts is off: the service enables it with admin.Options.CloseAccounts")
	errUnconfirmed = problem.Refuse(ReasonConfirmationRequired, `to close the account, send {"confirm": "<the account's id>"}`)
)

// graceRequired refuses a grace change that names no grace, as the Manager
// refuses such a rotation.
func graceRequired(p apikey.GracePolicy) error {
	max := p.Max.String()
	if p.Max%time.Hour == 0 {
		max = fmt.Sprintf("%dh", p.Max/time.Hour) // as the Manager writes it
	}
	return fmt.Errorf("%w (%s policy: %s)", apikey.ErrGraceRequired, p.Name, max)
}

func invalid(detail string) error  { return problem.Refuse(ReasonInvalidRequest, detail) }
func notFound(detail string) error { return problem.Refuse(ReasonNotFound, detail) }

// forbidden turns an Authorize error into a refusal: an error with a
// problem.Reason keeps it, anything else is 403.
func forbidden(err error) error {
	if problem.Of(err) != nil {
		return err
	}
	return problem.Refuse(ReasonForbidden, "")
}

// writeError answers err with Options.ErrorHandler, as a refusal. Errors of
// package apikey carry no secret, so their text becomes the detail; any
// other error is a storage failure, answered 503 without detail (fail
// closed).
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if problem.Of(err) == nil {
		err = classify(err)
	}
	a.opts.ErrorHandler(w, r, err)
}

func classify(err error) error {
	for _, rr := range ruleReasons {
		if errors.Is(err, rr.err) {
			return &refusal{problem.Refuse(rr.reason, err.Error()), err}
		}
	}
	if apikey.IsRequestError(err) { // a rule without a code of its own yet
		return &refusal{problem.Refuse(ReasonInvalidRequest, err.Error()), err}
	}
	return &refusal{problem.Refuse(ReasonUnavailable, ""), err}
}

// refusal is a problem.Refusal with its cause, an error of
// package apikey or of storage, for an ErrorHandler's errors.Is and logs.
// Its text is the refusal's alone: never a storage error's.
type refusal struct {
	refused error
	cause   error
}

func (e *refusal) Error() string   { return e.refused.Error() }
func (e *refusal) Unwrap() []error { return []error{e.refused, e.cause} }
