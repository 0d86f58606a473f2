package middleware

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/problem"
)

// Policy is what a route demands of a valid key. The zero Policy accepts
// any server key and no publishable key.
type Policy struct {
	// Types lists the key types the route accepts. Empty accepts server
	// keys only: a route admits publishable keys only when it names
	// apikey.Client.
	Types []apikey.KeyType
	// Scope is the scope the key must hold (see Identity.HasScope). Empty
	// requires no scope.
	Scope string
	// Environments lists the environments whose keys the route accepts, in
	// any account; empty accepts every environment.
	Environments []string
	// Cost is how many uses of the key's quota (apikey.Quota) a request of
	// the route spends, 1 to MaxCost; 0 means 1. Under a guard that
	// authenticated the request further out, which spent one use, the
	// route spends Cost - 1 more.
	Cost int
}

// Validate checks the key types, the scope and the environment names.
func (p Policy) Validate() error {
	for _, t := range p.Types {
		if !t.Valid() {
			return fmt.Errorf("middleware: policy: %w", apikey.ErrInvalidKeyType)
		}
	}
	if p.Scope != "" {
		if err := apikey.ValidateScope(p.Scope); err != nil {
			return fmt.Errorf("middleware: policy: %w", err)
		}
	}
	for _, e := range p.Environments {
		if err := apikey.ValidateEnvironment(e); err != nil {
			return fmt.Errorf("middleware: policy: %w", err)
		}
	}
	if p.Cost < 0 || p.Cost > MaxCost {
		return fmt.Errorf("middleware: policy: Cost must be 0 to %d", MaxCost)
	}
	return nil
}

// cost returns the quota uses a request of the route spends.
func (p *Policy) cost() int {
	if p == nil || p.Cost == 0 {
		return 1
	}
	return p.Cost
}

// allows checks a valid key's identity against the policy. A refusal's
// detail names the policy.
func (p Policy) allows(id *Identity) error {
	if !slices.Contains(p.types(), id.Type) {
		return problem.Refuse(ErrKeyType, "policy "+p.String()+" does not accept "+string(id.Type)+" keys")
	}
	if p.Scope != "" && !id.HasScope(p.Scope) { // every key holds the empty scope
		return problem.Refuse(ErrScope, "policy "+p.String()+" requires scope "+p.Scope)
	}
	if len(p.Environments) > 0 && !slices.Contains(p.Environments, id.Environment) {
		return problem.Refuse(ErrEnvironment, "policy "+p.String()+" does not accept keys of environment "+id.Environment)
	}
	return nil
}

var serverOnly = []apikey.KeyType{apikey.Server} // the types of a Policy that names none

// types returns the key types p accepts.
func (p Policy) types() []apikey.KeyType {
	if len(p.Types) == 0 {
		return serverOnly
	}
	return p.Types
}

// String describes the policy, as in "{types: server, client; scope:
// orders:read; environments: production}".
func (p Policy) String() string {
	var types []string
	for _, t := range p.types() {
		types = append(types, string(t))
	}
	s := "{types: " + strings.Join(types, ", ")
	if p.Scope != "" {
		s += "; scope: " + p.Scope
	}
	if len(p.Environments) > 0 {
		s += "; environments: " + strings.Join(p.Environments, ", ")
	}
	if p.Cost > 1 {
		s += "; cost: " + strconv.Itoa(p.Cost)
	}
	return s + "}"
}
