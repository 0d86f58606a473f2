// Package problem is keystile's vocabulary of refusals and the RFC 9457
// problem documents (application/problem+json) that answer them. The
// middleware, the management API and the console declare their refusals as
// Reasons of this package and answer them with Write, so that a client
// branches on one set of stable codes whichever handler refused it.
//
// A Reason is an error sentinel: declare it once in a package variable
// with New (or Unauthorized for a 401, which names its challenge) and check
// it with errors.Is. A Refusal is a Reason with the parts that belong to
// one request: a detail, a Retry-After and the underlying cause. Of,
// Detail and RetryAfter read them from any error that wraps a Refusal;
// For builds the problem document and Write sends it.
//
// Nothing in a problem document comes from the cause of a refusal: a
// storage error's text may be logged (it is part of Refusal.Error) but is
// never sent to a client. A detail is sent; whoever writes one must keep
// secrets (a full key, or its secret part) out of it.
//
// Every function is safe for concurrent use; a Reason never changes after
// New.
package problem
