package faultstore

import (
	"context"

	"github.com/keystile/keystile/apikey"
)

// The operations of apikey.Hasher, and OpOutdated of a hasher that tells
// without hashing whether a hash is outdated: the operations of a Hasher.
const (
	OpHash     Op = "Hash"
	OpVerify   Op = "Verify"
	OpOutdated Op = "Outdated"
)

// HasherOps lists every operation of a Hasher.
var HasherOps = []Op{OpHash, OpVerify, OpOutdated}

// Hasher is an apikey.Hasher wrapper with hooks: it counts, blocks, fails,
// rewrites or panics in the calls of a test's choosing. Create it with
// NewHasher. Its hooks receive context.Background(), since a hasher takes
// no context, and the secret in Call.Secret. A hook's error replaces the
// call's error: Verify then reports no match.
//
// *Hasher has the Outdated method of apikey.Argon2id, passed to the inner
// hasher; an inner hasher without one makes it fail with an error wrapping
// errors.ErrUnsupported. Code that finds the method by type assertion
// should get Exact().
//
// A Hasher is safe for concurrent use; hooks may be added while calls run.
type Hasher struct {
	inner    apikey.Hasher
	outdated apikey.OutdatedChecker // nil if the inner hasher has no Outdated method
	hooks    *hooks
}

var (
	_ apikey.Hasher          = (*Hasher)(nil)
	_ apikey.OutdatedChecker = (*Hasher)(nil)
)

// NewHasher returns a wrapper of inner with no hook: every call goes
// through unchanged.
func NewHasher(inner apikey.Hasher) *Hasher {
	h := &Hasher{inner: inner, hooks: newHooks(HasherOps)}
	h.outdated, _ = inner.(apikey.OutdatedChecker)
	return h
}

// Exact returns h as an apikey.Hasher that has an Outdated method exactly
// when the inner hasher has one.
func (h *Hasher) Exact() apikey.Hasher {
	if h.outdated != nil {
		return h
	}
	return struct{ apikey.Hasher }{h}
}

// Inner returns the wrapped hasher.
func (h *Hasher) Inner() apikey.Hasher { return h.inner }

// Before adds hook to the given operations (to all if none is given);
// see Store.Before.
func (h *Hasher) Before(hook BeforeHook, ops ...Op) { h.hooks.addBefore(hook, ops) }

// After adds hook to the given operations (to all if none is given); see
// Store.After.
func (h *Hasher) After(hook AfterHook, ops ...Op) { h.hooks.addAfter(hook, ops) }

// Clear removes the hooks of the given operations (of all if none is
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

// Outdated reports whether encoded was made with parameters weaker than
// the inner hasher's, as the inner hasher's Outdated method does.
func (h *Hasher) Outdated(encoded string) (bool, error) {
	if h.outdated == nil {
		return false, unsupported(OpOutdated)
	}
	c := &Call{Op: OpOutdated, Encoded: encoded}
	h.hooks.do(context.Background(), c, func() { c.Outdated, c.Err = h.outdated.Outdated(c.Encoded) })
	return c.Outdated, c.Err
}
