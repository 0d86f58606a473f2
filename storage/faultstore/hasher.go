package faultstore

import (
	"context"

	"github.com/keystile/keystile/apikey"
)

// The operations of apikey.Hasher, the operations of a Hasher.
const (
	OpHash   Op = "Hash"
	OpVerify Op = "Verify"
)

// HasherOps lists every operation of a Hasher.
var HasherOps = []Op{OpHash, OpVerify}

// Hasher is an apikey.Hasher wrapper with hooks: it counts, blocks, fails,
// rewrites or panics in the calls of a test's choosing. Create it with
// NewHasher. Its hooks receive context.Background(), since a hasher takes
// no context, and the secret in Call.Secret. A hook's error replaces the
// call's error: Verify then reports no match.
//
// A Hasher is safe for concurrent use; hooks may be added while calls run.
type Hasher struct {
	inner apikey.Hasher
	hooks *hooks
}

var _ apikey.Hasher = (*Hasher)(nil)

// NewHasher returns a wrapper of inner with no hook: every call goes
// through unchanged.
func NewHasher(inner apikey.Hasher) *Hasher {
	return &Hasher{inner: inner, hooks: newHooks(HasherOps)}
}

// Inner returns the wrapped hasher.
func (h *Hasher) Inner() apikey.Hasher { return h.inner }

// Before adds hook to the given operations (to both if none is given);
// see Store.Before.
func (h *Hasher) Before(hook BeforeHook, ops ...Op) { h.hooks.addBefore(hook, ops) }

// After adds hook to the given operations (to both if none is given); see
// Store.After.
func (h *Hasher) After(hook AfterHook, ops ...Op) { h.hooks.addAfter(hook, ops) }

// Clear removes the hooks of the given operations (of both if none is
// given).
func (h *Hasher) Clear(ops ...Op) { h.hooks.clear(ops) }

// Calls returns how many calls of op were made.
func (h *Hasher) Calls(op Op) int64 { return h.hooks.count(op) }

// Hash implements apikey.Hasher.
func (h *Hasher) Hash(secret []byte) (string, error) {
	c := &Call{Op: OpHash, Secret: secret}
	h.hooks.do(context.Background(), c, func() { c.Encoded, c.Err = h.inner.Hash(c.Secret) })
	return c.Encoded, c.Err
}

// Verify implements apikey.Hasher.
func (h *Hasher) Verify(secret []byte, encoded string) (match, outdated bool, err error) {
	c := &Call{Op: OpVerify, Secret: secret, Encoded: encoded}
	h.hooks.do(context.Background(), c, func() { c.Match, c.Outdated, c.Err = h.inner.Verify(c.Secret, c.Encoded) })
	return c.Match, c.Outdated, c.Err
}
