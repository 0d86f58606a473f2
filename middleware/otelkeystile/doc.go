// Package otelkeystile connects a keystile Validator to OpenTelemetry: a
// span per request that the Validator authenticates (Tracing) and its
// Stats as metrics (RegisterMetrics). It is a module of its own, so that
// the library's module graph holds no OpenTelemetry package.
//
// # Spans
//
// Tracing returns the hook of middleware.Options.OnVerification. Each
// request that the Validator authenticates (not one it authenticated
// further out) becomes one span named "keystile.verify", a child of the
// span in the request's context (such as otelhttp's server span), timed
// from the start of the check to its outcome. Its attributes:
//
//	keystile.key.prefix    the key's displayable prefix (type and key id), if well-formed
//	keystile.account       the key's account, once it verified
//	keystile.environment   the key's environment, once it verified
//	keystile.cache         "hit" or "miss", for a well-formed key
//	keystile.store_read    the key was read from the store
//	keystile.argon2        its hash was checked with argon2
//	keystile.shared        the verification served concurrent requests too (only when true)
//	keystile.outcome       "admitted" or "refused"
//	keystile.refusal       the refusal's code, such as "invalid_key" (only when refused)
//
// A refusal whose status is 5xx (the store failed, the request gave up
// waiting) sets the span's status to Error, with the code as its
// description. A refusal is otherwise not an error of the service.
//
// No attribute, status or name holds a secret: the hook only ever sees
// middleware.Verification, which holds none, and records its codes, never
// an error's text (a store's error may name its database).
//
// The span is made after the check, with its start and end times: the
// store's own spans (of an instrumented database driver) are siblings of
// it under the request's span, not its children. Its attributes are set
// once it is sampled: a sampler sees the span's name and parent, not its
// attributes, and a span sampled out costs no attribute.
//
// # Metrics
//
// RegisterMetrics observes middleware.Stats when the MeterProvider
// collects: one Stats call per collection, nothing on the request path.
package otelkeystile
