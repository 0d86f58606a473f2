package apikey

import "fmt"

// Role is what an actor may do with keys.
type Role string

// The three roles. Everyone may view keys' displayable prefixes and
// statuses; only owners may change keys or settings or reveal a full key.
const (
	Owner    Role = "owner"
	Member   Role = "member"
	ReadOnly Role = "read-only"
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r == Owner || r == Member || r == ReadOnly }

// Actor is who performs a lifecycle action: an id for the audit log and a
// role that decides what is allowed.
type Actor struct {
	ID   string `json:"id"`
	Role Role   `json:"role"`
	// Account is the account the actor acts in: the Manager finds nothing
	// outside it (a key of another account is ErrNotFound, as if it did not
	// exist). Empty means DefaultAccount; AnyAccount is an operator acting
	// across accounts, said explicitly.
	Account string `json:"account,omitempty"`
}

// InAccount returns the account the actor acts in: Account, or
// DefaultAccount when it is empty.
func (a Actor) InAccount() string {
	if a.Account == "" {
		return DefaultAccount
	}
	return a.Account
}

// Action names a lifecycle action, as recorded in audit events.
type Action string

// The lifecycle actions.
const (
	ActionBootstrap   Action = "bootstrap"
	ActionCreate      Action = "create"
	ActionRotate      Action = "rotate"
	ActionChangeGrace Action = "change_grace"
	ActionRevoke      Action = "revoke"
	ActionSetScopes   Action = "set_scopes"
	ActionSetOrigins  Action = "set_origins"
	ActionReveal      Action = "reveal"
	ActionSetOwner    Action = "set_owner"
	ActionSetMetadata Action = "set_metadata"
	ActionClose       Action = "close_account"
	ActionView        Action = "view"
)

// Allowed reports whether role r may perform action a.
func (r Role) Allowed(a Action) bool {
	if a == ActionView {
		return r.Valid()
	}
	return r == Owner
}

// authorize returns an error wrapping ErrForbidden unless the actor may
// perform the action.
func authorize(actor Actor, a Action) error {
	if !actor.Role.Valid() {
		return fmt.Errorf("%w: unknown role", ErrForbidden)
	}
	if actor.Account != AnyAccount {
		if err := ValidateAccount(actor.InAccount()); err != nil {
			return err
		}
	}
	if !actor.Role.Allowed(a) {
		return fmt.Errorf("%w: %s may not %s", ErrForbidden, actor.Role, a)
	}
	return nil
}
