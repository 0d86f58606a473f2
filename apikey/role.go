package apikey

import (
	"fmt"
	"slices"
	"time"
)

// Role is what an actor may do in its account (see Role.Permits).
type Role string

// The three roles. Everyone may view keys' displayable prefixes and
// statuses, settings, usage and the audit log.
//
//   - Owner may do everything.
//   - Member manages keys in the environments that are not production
//     (ManagerOptions.Production): creates, rotates, revokes, disables
//     and enables them, and changes their grace, scopes, limits, name,
//     owner and metadata. It reveals publishable keys in every
//     environment. It changes no key of a production environment, reveals
//     no server key and changes no account setting: allowed origins,
//     lifetime policy, owner limits, environments, the account itself.
//   - ReadOnly views.
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
	// Scopes, for an actor authenticated by a server key, are that key's
	// scopes: it creates, rotates, reveals and changes only keys whose
	// scopes it holds itself ("resource:write" holds "resource:read";
	// AllScopes is held only by AllScopes, and holds every scope; a
	// publishable key holds every read scope, so only AllScopes covers
	// it). Nil means the actor is not a key (a person), bound by its role
	// alone.
	// Not recorded in audit events.
	Scopes []string `json:"-"`
	// Expires, for an actor authenticated by a key with an expiry, is that
	// expiry: whatever it creates, rotates or reveals expires no later,
	// and it extends no key's expiry past it. Zero means no bound (a
	// person, or a key without expiry). Not recorded in audit events.
	Expires time.Time `json:"-"`
	// KeyID, for an actor authenticated by a key, is that key's id: of
	// usage (Manager.Usage) it reads its own key's only. Not recorded in
	// audit events.
	KeyID string `json:"-"`
	// Limits, for an actor authenticated by a key, are that key's limits:
	// every key it creates or rotates is bounded at least as tightly (see
	// Limits.Within), else ErrBeyondActor. The zero Limits bounds nothing.
	// Not recorded in audit events.
	Limits Limits `json:"-"`
}

// InAccount returns the account the actor acts in: Account, or
// DefaultAccount when it is empty.
func (a Actor) InAccount() string {
	if a.Account == "" {
		return DefaultAccount
	}
	return a.Account
}

// audited returns the actor as audit events record it: who, in which role
// and account, without the bounds of its key.
func (a Actor) audited() Actor {
	return Actor{ID: a.ID, Role: a.Role, Account: a.Account}
}

// holds reports whether the actor may hand out scope s: any scope for a
// person, else a scope its key holds (AllScopes only with AllScopes).
func (a Actor) holds(s string) bool {
	if a.Scopes == nil {
		return true
	}
	if s == AllScopes {
		return slices.Contains(a.Scopes, AllScopes)
	}
	return HasScope(a.Scopes, s)
}

// mayHold refuses, with ErrBeyondActor, scopes that the actor does not
// hold, naming the first.
func (a Actor) mayHold(scopes []string) error {
	for _, s := range scopes {
		if !a.holds(s) {
			return fmt.Errorf("%w: the acting key does not hold scope %s", ErrBeyondActor, s)
		}
	}
	return nil
}

// mayChange refuses a change to the key rec: with ErrAlreadyRevoked,
// naming its prefix, when it is revoked, and else as mayActOn does when it
// holds more than the actor.
func (a Actor) mayChange(rec *Record) error {
	if !rec.RevokedAt.IsZero() {
		return fmt.Errorf("%w: %s", ErrAlreadyRevoked, rec.Prefix())
	}
	return a.mayActOn(rec.Type, rec.Scopes)
}

// mayActOn refuses, with ErrBeyondActor, a key of type t with scopes that
// holds more than the actor: a publishable key holds every read scope,
// which only AllScopes covers.
func (a Actor) mayActOn(t KeyType, scopes []string) error {
	if t == Client && !a.holds(AllScopes) {
		return fmt.Errorf("%w: a publishable key reads every resource; the acting key does not hold scope %s", ErrBeyondActor, AllScopes)
	}
	return a.mayHold(scopes)
}

// mayLast refuses, with ErrBeyondActor, an expiry (zero: none) later than
// the actor's, naming the actor's.
func (a Actor) mayLast(expires time.Time) error {
	if a.Expires.IsZero() || (!expires.IsZero() && !expires.After(a.Expires)) {
		return nil
	}
	what := "no expiry"
	if !expires.IsZero() {
		what = "expiry " + expires.UTC().Format(time.RFC3339)
	}
	return fmt.Errorf("%w: the acting key expires at %s; %s is later", ErrBeyondActor,
		a.Expires.UTC().Format(time.RFC3339), what)
}

// mayCreateDefaults refuses a key-authenticated actor that does not hold
// what an environment's default keys hold: every scope, no expiry and no
// limits.
func (a Actor) mayCreateDefaults() error {
	if err := a.mayHold([]string{AllScopes}); err != nil {
		return err
	}
	if err := a.mayBound(Limits{}); err != nil {
		return err
	}
	return a.mayLast(time.Time{})
}

// mayBound refuses, with ErrBeyondActor, limits looser than the actor's
// (see Limits.Within), naming the first bound they lift.
func (a Actor) mayBound(l Limits) error {
	if a.Scopes == nil {
		return nil
	}
	if err := l.Within(a.Limits); err != nil {
		return fmt.Errorf("%w: the acting key is bounded tighter: %w", ErrBeyondActor, err)
	}
	return nil
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
	ActionSetLimits   Action = "set_limits"
	ActionClose       Action = "close_account"
	ActionImport      Action = "import"
	ActionView        Action = "view"
	ActionDisable     Action = "disable"
	ActionEnable      Action = "enable"
	ActionSuspend     Action = "suspend_account"
	ActionResume      Action = "resume_account"
	ActionSetLifetime Action = "set_lifetime"
	ActionRename      Action = "rename"
)

// Target is where an action acts, for Role.Permits: the environment and
// the type of the key acted on.
type Target struct {
	// Environment names the environment acted in, for error messages;
	// empty for an action on the account.
	Environment string
	// Production says whether Environment is a production environment of
	// its account (ManagerOptions.Production).
	Production bool
	// Type is the type of the key acted on; empty when the action acts on
	// no key.
	Type KeyType
}

// rule is who may perform an action.
type rule uint8

const (
	ruleOwners  rule = iota // owners only
	ruleView                // every role
	ruleKeys                // owners; members outside production
	ruleReveal              // owners; members for publishable keys
	ruleAccount             // owners only: an account setting
)

// permission is the rule of an action and the words that name it in a
// refusal.
type permission struct {
	rule rule
	what string
}

// permissions are the rules of the actions. An action that is not here is
// for owners only.
var permissions = map[Action]permission{
	ActionView:                 {ruleView, "view keys"},
	ActionCreate:               {ruleKeys, "create keys"},
	ActionRotate:               {ruleKeys, "rotate keys"},
	ActionChangeGrace:          {ruleKeys, "change the grace of keys"},
	ActionRevoke:               {ruleKeys, "revoke keys"},
	ActionSetScopes:            {ruleKeys, "change the scopes of keys"},
	ActionSetOwner:             {ruleKeys, "change the owner of keys"},
	ActionSetMetadata:          {ruleKeys, "change the metadata of keys"},
	ActionSetLimits:            {ruleKeys, "change the limits of keys"},
	ActionDisable:              {ruleKeys, "disable keys"},
	ActionEnable:               {ruleKeys, "enable keys"},
	ActionRename:               {ruleKeys, "rename keys"},
	ActionReveal:               {ruleReveal, "reveal keys"},
	ActionBootstrap:            {ruleAccount, "create environments"},
	ActionSetOrigins:           {ruleAccount, "change allowed origins"},
	ActionSetLifetime:          {ruleAccount, "change the lifetime policy"},
	ActionSetOwnerLimits:       {ruleAccount, "change owner limits"},
	ActionRevokeOwner:          {ruleOwners, "revoke every key of an owner"},
	ActionCreateEndpoint:       {ruleAccount, "change webhook endpoints"},
	ActionUpdateEndpoint:       {ruleAccount, "change webhook endpoints"},
	ActionRotateEndpointSecret: {ruleAccount, "change webhook endpoints"},
	ActionDeleteEndpoint:       {ruleAccount, "change webhook endpoints"},
	ActionReplay:               {ruleAccount, "replay webhook deliveries"},
	ActionClose:                {ruleOwners, "close the account"},
	ActionImport:               {ruleOwners, "import keys"},
	ActionSuspend:              {ruleOwners, "suspend accounts"},
	ActionResume:               {ruleOwners, "resume accounts"},
	ActionPurge:                {ruleOwners, "purge keys"},
}

// Permits returns nil if role r may perform action a on t, else an error
// wrapping ErrForbidden that names what was refused and why, such as
// `members may not rotate keys in production environment "production"`.
// Every role may view; owners may do everything; members may perform the
// key actions (create, rotate, change grace, revoke, set scopes, owner,
// metadata and limits, disable, enable, rename) where t is not
// production, and reveal where t is not a server key; read-only users
// only view. An unknown role may do nothing.
//
// Permits decides by role alone: the Manager also bounds an actor
// authenticated by a key (Actor.Scopes), and confines every actor to its
// account.
func (r Role) Permits(a Action, t Target) error {
	if !r.Valid() {
		return fmt.Errorf("%w: unknown role", ErrForbidden)
	}
	p, ok := permissions[a]
	if !ok {
		p = permission{ruleOwners, string(a)}
	}
	switch {
	case p.rule == ruleView || r == Owner:
		return nil
	case r == ReadOnly:
		return fmt.Errorf("%w: read-only users may not %s: they only view", ErrForbidden, p.what)
	case p.rule == ruleKeys && t.Production:
		return fmt.Errorf("%w: members may not %s in production environment %q: only owners change production keys",
			ErrForbidden, p.what, t.Environment)
	case p.rule == ruleKeys:
		return nil
	case p.rule == ruleReveal && t.Type == Server:
		return fmt.Errorf("%w: members may not reveal server keys: only owners copy a full server key", ErrForbidden)
	case p.rule == ruleReveal:
		return nil
	case p.rule == ruleAccount:
		return fmt.Errorf("%w: members may not %s: only owners change account settings", ErrForbidden, p.what)
	}
	return fmt.Errorf("%w: members may not %s: only owners may", ErrForbidden, p.what)
}

// Allowed reports whether role r may perform action a somewhere: in an
// environment that is not production, on a key of some type (see
// Permits, which decides for one environment and key type).
func (r Role) Allowed(a Action) bool { return r.Permits(a, Target{}) == nil }

// authorize returns an error wrapping ErrForbidden unless the actor's role
// may perform the action somewhere (Role.Allowed) and its account is
// valid. An action on a key or in an environment is checked again where
// it acts (Manager.permit).
func authorize(actor Actor, a Action) error {
	if err := actor.Role.Permits(a, Target{}); err != nil {
		return err
	}
	if actor.Account != AnyAccount {
		if err := ValidateAccount(actor.InAccount()); err != nil {
			return err
		}
	}
	return nil
}
