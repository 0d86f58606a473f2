package admin

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// The refusals of the management API. Each has a stable code; the status is
// the HTTP status of its problem response.
var (
	ReasonInvalidRequest = middleware.NewReason("invalid_request", http.StatusBadRequest, "invalid request")
	ReasonTooLarge       = middleware.NewReason("request_too_large", http.StatusRequestEntityTooLarge, "request body too large")
	ReasonForbidden      = middleware.NewReason("role_not_allowed", http.StatusForbidden, "caller may not do this")
	ReasonNotFound       = middleware.NewReason("not_found", http.StatusNotFound, "not found")
	ReasonNoRoute        = middleware.NewReason("no_such_route", http.StatusNotFound, "no such route")
	ReasonNoAudit        = middleware.NewReason("audit_unavailable", http.StatusNotImplemented, "this store keeps no audit log")
	ReasonUnavailable    = middleware.NewReason("storage_unavailable", http.StatusServiceUnavailable, "storage unavailable")
)

// ruleReasons gives each lifecycle error of package apikey its refusal:
// 422 for a request that can never succeed as written, 409 for one that the
// key's current state forbids.
var ruleReasons = []struct {
	err    error
	reason *middleware.Reason
}{
	{apikey.ErrForbidden, ReasonForbidden},
	{apikey.ErrNotFound, ReasonNotFound},
	{apikey.ErrInvalidKeyID, middleware.NewReason("invalid_key_id", http.StatusUnprocessableEntity, "not a key id or a displayable prefix")},
	{apikey.ErrUnknownEnvironment, middleware.NewReason("unknown_environment", http.StatusNotFound, "unknown environment")},
	{apikey.ErrInvalidEnvironment, middleware.NewReason("invalid_environment", http.StatusUnprocessableEntity, "invalid environment name")},
	{apikey.ErrInvalidKeyType, middleware.NewReason("invalid_key_type", http.StatusUnprocessableEntity, "invalid key type")},
	{apikey.ErrInvalidScope, middleware.NewReason("invalid_scope", http.StatusUnprocessableEntity, "invalid scope")},
	{apikey.ErrScopesRequired, middleware.NewReason("scopes_required", http.StatusUnprocessableEntity, `scopes required; give "*" for full access`)},
	{apikey.ErrInvalidOrigin, middleware.NewReason("invalid_origin", http.StatusUnprocessableEntity, "invalid origin")},
	{apikey.ErrInvalidName, middleware.NewReason("invalid_name", http.StatusUnprocessableEntity, "key name too long")},
	{apikey.ErrInvalidExpiry, middleware.NewReason("invalid_expiry", http.StatusUnprocessableEntity, "invalid expiry")},
	{apikey.ErrGraceOutOfRange, middleware.NewReason("grace_out_of_range", http.StatusUnprocessableEntity, "grace period out of range")},
	{apikey.ErrGraceRequired, middleware.NewReason("grace_required", http.StatusUnprocessableEntity, "grace period required")},
	{apikey.ErrDefaultKeyNotRevocable, middleware.NewReason("rotate_first", http.StatusConflict, "default key; rotate it first")},
	{apikey.ErrAlreadyRevoked, middleware.NewReason("already_revoked", http.StatusConflict, "key already revoked")},
	{apikey.ErrAlreadyRotated, middleware.NewReason("already_rotated", http.StatusConflict, "key already rotated")},
	{apikey.ErrNotRotated, middleware.NewReason("not_rotated", http.StatusConflict, "key was not rotated")},
	{apikey.ErrKeyExpired, middleware.NewReason("key_expired", http.StatusConflict, "key expired")},
	{apikey.ErrAlreadyBootstrapped, middleware.NewReason("already_bootstrapped", http.StatusConflict, "environment already bootstrapped")},
	{apikey.ErrNotRevealable, middleware.NewReason("not_revealable", http.StatusConflict, "key cannot be revealed")},
	{apikey.ErrInvalidAccount, middleware.NewReason("invalid_account", http.StatusUnprocessableEntity, "invalid account")},
	{apikey.ErrAccountClosed, middleware.NewReason("account_closed", http.StatusConflict, "account closed")},
	{apikey.ErrInvalidMetadata, middleware.NewReason("invalid_metadata", http.StatusUnprocessableEntity, "invalid owner or metadata")},
	{apikey.ErrInvalidCursor, middleware.NewReason("invalid_cursor", http.StatusUnprocessableEntity, "invalid page cursor")},
	{apikey.ErrConflict, middleware.NewReason("conflict", http.StatusConflict, "concurrent change; try again")},
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

// writeError writes the problem response for err. Errors of package apikey
// carry no secret, so their text becomes the detail; any other error is a
// storage failure, answered 503 without detail (fail closed).
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if middleware.ReasonOf(err) == nil {
		err = classify(err)
	}
	middleware.WriteProblem(w, r, err)
}

func classify(err error) error {
	for _, rr := range ruleReasons {
		if errors.Is(err, rr.err) {
			return middleware.Refuse(rr.reason, err.Error())
		}
	}
	if apikey.IsRequestError(err) { // a rule without a code of its own yet
		return middleware.Refuse(ReasonInvalidRequest, err.Error())
	}
	return middleware.Refuse(ReasonUnavailable, "")
}
