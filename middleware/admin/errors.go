package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// The refusals of the management API. Each is a sentinel of package
// middleware (check it with errors.Is, or find it with middleware.ReasonOf
// in an Options.ErrorHandler) with a stable code that clients may branch on
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
	// value), expires_in and expires_at together, or a limit out of range.
	ReasonInvalidRequest = middleware.NewReason("invalid_request", http.StatusBadRequest, "invalid request")
	// ReasonTooLarge (413, "request_too_large"): the body is larger than
	// Options.MaxBodyBytes.
	ReasonTooLarge = middleware.NewReason("request_too_large", http.StatusRequestEntityTooLarge, "request body too large")
	// ReasonForbidden (403, "role_not_allowed"): the caller's role may not
	// do this (apikey.ErrForbidden); a key would hand out a scope it does
	// not hold; a rotated-out key would change something; a caller that is
	// not an operator used an account route; or Authorize failed with an
	// error that is not a refusal.
	ReasonForbidden = middleware.NewReason("role_not_allowed", http.StatusForbidden, "caller may not do this")
	// ReasonNotFound (404, "not_found"): no such key, environment or
	// account for this caller (apikey.ErrNotFound). A key of another
	// account, or of an environment the caller is confined out of, is not
	// found either.
	ReasonNotFound = middleware.NewReason("not_found", http.StatusNotFound, "not found")
	// ReasonNoRoute (404, "no_such_route"): no route has this method and
	// path.
	ReasonNoRoute = middleware.NewReason("no_such_route", http.StatusNotFound, "no such route")
	// ReasonNoAudit (501, "audit_unavailable"): GET /audit, and
	// Options.Audit is nil.
	ReasonNoAudit = middleware.NewReason("audit_unavailable", http.StatusNotImplemented, "this store keeps no audit log")
	// ReasonUnavailable (503, "storage_unavailable"): storage failed. The
	// response carries Retry-After and no detail (fail closed).
	ReasonUnavailable = middleware.NewReason("storage_unavailable", http.StatusServiceUnavailable, "storage unavailable")

	// ReasonInvalidKeyID (422, "invalid_key_id"): the {id} of the path is
	// neither a key id nor a displayable prefix, such as a full key
	// (apikey.ErrInvalidKeyID). It is never echoed.
	ReasonInvalidKeyID = middleware.NewReason("invalid_key_id", http.StatusUnprocessableEntity, "not a key id or a displayable prefix")
	// ReasonUnknownEnvironment (404, "unknown_environment"): the
	// environment was never bootstrapped in the caller's account
	// (apikey.ErrUnknownEnvironment).
	ReasonUnknownEnvironment = middleware.NewReason("unknown_environment", http.StatusNotFound, "unknown environment")
	// ReasonInvalidEnvironment (422, "invalid_environment"): the
	// environment name is not 1-32 characters of [a-z0-9_-] starting with
	// a letter (apikey.ErrInvalidEnvironment).
	ReasonInvalidEnvironment = middleware.NewReason("invalid_environment", http.StatusUnprocessableEntity, "invalid environment name")
	// ReasonInvalidKeyType (422, "invalid_key_type"): a key type other
	// than "server" or "client" (apikey.ErrInvalidKeyType).
	ReasonInvalidKeyType = middleware.NewReason("invalid_key_type", http.StatusUnprocessableEntity, "invalid key type")
	// ReasonInvalidScope (422, "invalid_scope"): a scope that is not "*" or
	// resource:read or resource:write, scopes for a publishable key, or a
	// default key's scopes to be changed (apikey.ErrInvalidScope).
	ReasonInvalidScope = middleware.NewReason("invalid_scope", http.StatusUnprocessableEntity, "invalid scope")
	// ReasonScopesRequired (422, "scopes_required"): a server key was to
	// get no scopes; full access is asked for with "*"
	// (apikey.ErrScopesRequired).
	ReasonScopesRequired = middleware.NewReason("scopes_required", http.StatusUnprocessableEntity, `scopes required; give "*" for full access`)
	// ReasonInvalidOrigin (422, "invalid_origin"): an allowed origin is not
	// an exact origin, a subdomain wildcard, a localhost origin or "*"
	// (apikey.ErrInvalidOrigin).
	ReasonInvalidOrigin = middleware.NewReason("invalid_origin", http.StatusUnprocessableEntity, "invalid origin")
	// ReasonInvalidName (422, "invalid_name"): a key name longer than 200
	// bytes (apikey.ErrInvalidName).
	ReasonInvalidName = middleware.NewReason("invalid_name", http.StatusUnprocessableEntity, "key name too long")
	// ReasonInvalidExpiry (422, "invalid_expiry"): an expiry that is not in
	// the future (apikey.ErrInvalidExpiry).
	ReasonInvalidExpiry = middleware.NewReason("invalid_expiry", http.StatusUnprocessableEntity, "invalid expiry")
	// ReasonGraceOutOfRange (422, "grace_out_of_range"): a grace period
	// that is negative or beyond Options.Policy (apikey.ErrGraceOutOfRange).
	ReasonGraceOutOfRange = middleware.NewReason("grace_out_of_range", http.StatusUnprocessableEntity, "grace period out of range")
	// ReasonGraceRequired (422, "grace_required"): a rotation or grace
	// change without a grace; "0s" ends the old key at once
	// (apikey.ErrGraceRequired). The detail names the policy's maximum.
	ReasonGraceRequired = middleware.NewReason("grace_required", http.StatusUnprocessableEntity, "grace period required")
	// ReasonRotateFirst (409, "rotate_first"): a default key cannot be
	// revoked; rotate it, then revoke the old key
	// (apikey.ErrDefaultKeyNotRevocable).
	ReasonRotateFirst = middleware.NewReason("rotate_first", http.StatusConflict, "default key; rotate it first")
	// ReasonAlreadyRevoked (409, "already_revoked"): the key was revoked
	// before (apikey.ErrAlreadyRevoked).
	ReasonAlreadyRevoked = middleware.NewReason("already_revoked", http.StatusConflict, "key already revoked")
	// ReasonAlreadyRotated (409, "already_rotated"): the key was rotated
	// before; rotate its replacement (apikey.ErrAlreadyRotated).
	ReasonAlreadyRotated = middleware.NewReason("already_rotated", http.StatusConflict, "key already rotated")
	// ReasonNotRotated (409, "not_rotated"): the grace of a key that was
	// never rotated was to be changed (apikey.ErrNotRotated).
	ReasonNotRotated = middleware.NewReason("not_rotated", http.StatusConflict, "key was not rotated")
	// ReasonKeyExpired (409, "key_expired"): the action needs a key that
	// has not expired (apikey.ErrKeyExpired).
	ReasonKeyExpired = middleware.NewReason("key_expired", http.StatusConflict, "key expired")
	// ReasonNotRevealable (409, "not_revealable"): the full key cannot be
	// shown again: server keys are stored only as hashes unless the
	// Manager has a Sealer (apikey.ErrNotRevealable).
	ReasonNotRevealable = middleware.NewReason("not_revealable", http.StatusConflict, "key cannot be revealed")
	// ReasonInvalidAccount (422, "invalid_account"): an account id that is
	// not 1-64 characters of [A-Za-z0-9._:@-] (apikey.ErrInvalidAccount).
	ReasonInvalidAccount = middleware.NewReason("invalid_account", http.StatusUnprocessableEntity, "invalid account")
	// ReasonAccountClosed (409, "account_closed"): the account was closed:
	// it takes no new keys and no changes (apikey.ErrAccountClosed).
	ReasonAccountClosed = middleware.NewReason("account_closed", http.StatusConflict, "account closed")
	// ReasonInvalidMetadata (422, "invalid_metadata"): an owner or
	// metadata out of bounds, or holding something shaped like a key
	// (apikey.ErrInvalidMetadata).
	ReasonInvalidMetadata = middleware.NewReason("invalid_metadata", http.StatusUnprocessableEntity, "invalid owner or metadata")
	// ReasonInvalidCursor (422, "invalid_cursor"): an after or before
	// cursor that no page returned (apikey.ErrInvalidCursor).
	ReasonInvalidCursor = middleware.NewReason("invalid_cursor", http.StatusUnprocessableEntity, "invalid page cursor")
	// ReasonConflict (409, "conflict"): the change lost a race with
	// another writer and was not applied; try again (apikey.ErrConflict).
	ReasonConflict = middleware.NewReason("conflict", http.StatusConflict, "concurrent change; try again")
)

// reasons are the API's refusals, in the order of the declarations above.
var reasons = []*middleware.Reason{
	ReasonInvalidRequest, ReasonTooLarge, ReasonForbidden, ReasonNotFound, ReasonNoRoute, ReasonNoAudit, ReasonUnavailable,
	ReasonInvalidKeyID, ReasonUnknownEnvironment, ReasonInvalidEnvironment, ReasonInvalidKeyType, ReasonInvalidScope,
	ReasonScopesRequired, ReasonInvalidOrigin, ReasonInvalidName, ReasonInvalidExpiry, ReasonGraceOutOfRange,
	ReasonGraceRequired, ReasonRotateFirst, ReasonAlreadyRevoked, ReasonAlreadyRotated, ReasonNotRotated,
	ReasonKeyExpired, ReasonNotRevealable, ReasonInvalidAccount, ReasonAccountClosed, ReasonInvalidMetadata,
	ReasonInvalidCursor, ReasonConflict,
}

// Reasons returns every refusal of the management API, each once: the
// codes its problem responses carry (besides those of package middleware,
// from the middleware in front of it or from Authorize). The slice is new
// on every call.
func Reasons() []*middleware.Reason { return slices.Clone(reasons) }

// ruleReasons gives each lifecycle error of package apikey its refusal:
// 422 for a request that can never succeed as written, 409 for one that the
// key's current state forbids.
var ruleReasons = []struct {
	err    error
	reason *middleware.Reason
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
	{apikey.ErrKeyExpired, ReasonKeyExpired},
	{apikey.ErrNotRevealable, ReasonNotRevealable},
	{apikey.ErrInvalidAccount, ReasonInvalidAccount},
	{apikey.ErrAccountClosed, ReasonAccountClosed},
	{apikey.ErrInvalidMetadata, ReasonInvalidMetadata},
	{apikey.ErrInvalidCursor, ReasonInvalidCursor},
	{apikey.ErrConflict, ReasonConflict},
}

var (
	errNoRoute  = middleware.Refuse(ReasonNoRoute, "")
	errNoAudit  = middleware.Refuse(ReasonNoAudit, "")
	errTooLarge = middleware.Refuse(ReasonTooLarge, "")
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

func invalid(detail string) error  { return middleware.Refuse(ReasonInvalidRequest, detail) }
func notFound(detail string) error { return middleware.Refuse(ReasonNotFound, detail) }

// forbidden turns an Authorize error into a refusal: refusals of package
// middleware keep their reason, anything else is 403.
func forbidden(err error) error {
	if middleware.ReasonOf(err) != nil {
		return err
	}
	return middleware.Refuse(ReasonForbidden, "")
}

// writeError answers err with Options.ErrorHandler, as a refusal. Errors of
// package apikey carry no secret, so their text becomes the detail; any
// other error is a storage failure, answered 503 without detail (fail
// closed).
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if middleware.ReasonOf(err) == nil {
		err = classify(err)
	}
	a.opts.ErrorHandler(w, r, err)
}

func classify(err error) error {
	for _, rr := range ruleReasons {
		if errors.Is(err, rr.err) {
			return &refusal{middleware.Refuse(rr.reason, err.Error()), err}
		}
	}
	if apikey.IsRequestError(err) { // a rule without a code of its own yet
		return &refusal{middleware.Refuse(ReasonInvalidRequest, err.Error()), err}
	}
	return &refusal{middleware.Refuse(ReasonUnavailable, ""), err}
}

// refusal is a refusal of package middleware with its cause, an error of
// package apikey or of storage, for an ErrorHandler's errors.Is and logs.
// Its text is the refusal's alone: never a storage error's.
type refusal struct {
	refused error
	cause   error
}

func (e *refusal) Error() string   { return e.refused.Error() }
func (e *refusal) Unwrap() []error { return []error{e.refused, e.cause} }
