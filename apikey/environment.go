package apikey

import (
	"fmt"
	"time"
)

// The built-in environments. Any other valid name may be bootstrapped too.
const (
	Production  = "production"
	Staging     = "staging"
	Development = "development"
)

// BuiltinEnvironments lists the environments every installation starts with.
var BuiltinEnvironments = []string{Production, Staging, Development}

// ValidateEnvironment checks an environment name: 1 to 32 characters, a
// lower-case letter first, then lower-case letters, digits, '-' or '_'.
func ValidateEnvironment(name string) error {
	if len(name) == 0 || len(name) > 32 || name[0] < 'a' || name[0] > 'z' {
		return fmt.Errorf("%w: want 1-32 characters of [a-z0-9_-], starting with a letter", ErrInvalidEnvironment)
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: want 1-32 characters of [a-z0-9_-], starting with a letter", ErrInvalidEnvironment)
		}
	}
	return nil
}

// Settings are an environment's settings, stored beside its keys.
type Settings struct {
	// Account is the account the environment belongs to.
	Account string `json:"account"`
	// Environment names the environment, unique within its account.
	Environment string `json:"environment"`
	// AllowedOrigins lists the web origins that may use the environment's
	// publishable keys (see ParseOrigin for the forms). Empty admits no
	// browser origin; the entry "*" (AnyOrigin) admits every origin, a
	// development convenience.
	AllowedOrigins []string `json:"allowed_origins"`
	// Lifetime bounds the lifetime of the environment's non-default keys
	// (see LifetimePolicy); the zero policy, omitted in JSON, bounds
	// nothing.
	Lifetime LifetimePolicy `json:"lifetime,omitzero"`
	// UpdatedAt is when the settings last changed.
	UpdatedAt time.Time `json:"updated_at"`
	// ClosedAt is when the account was closed (Manager.CloseAccount); zero
	// while it is open. A closed environment takes no new keys.
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// SuspendedAt is when the account was suspended
	// (Manager.SuspendAccount); zero while it is not. The keys of a
	// suspended account are refused and its keys and settings do not
	// change, until Manager.ResumeAccount clears it.
	SuspendedAt time.Time `json:"suspended_at,omitzero"`
	// Revision is the store's version of these settings, used to detect
	// concurrent changes. Zero means not stored yet.
	Revision int64 `json:"-"`
}

// refusesChanges returns ErrAccountClosed for a closed environment,
// ErrAccountSuspended for a suspended one, else nil: closing is final, so
// it wins.
func (s Settings) refusesChanges() error {
	switch {
	case !s.ClosedAt.IsZero():
		return fmt.Errorf("%w: %s", ErrAccountClosed, s.Account)
	case !s.SuspendedAt.IsZero():
		return fmt.Errorf("%w: %s", ErrAccountSuspended, s.Account)
	}
	return nil
}

// Clone returns a deep copy of s.
func (s Settings) Clone() Settings {
	s.AllowedOrigins = cloneStrings(s.AllowedOrigins)
	return s
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}
