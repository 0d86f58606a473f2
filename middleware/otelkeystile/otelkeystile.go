package otelkeystile

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/middleware/problem"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/keystile/keystile/middleware/otelkeystile"

// SpanName is the name of the span of a verification.
const SpanName = "keystile.verify"

// The attribute keys of the span.
const (
	AttrKeyPrefix   = attribute.Key("keystile.key.prefix")
	AttrAccount     = attribute.Key("keystile.account")
	AttrEnvironment = attribute.Key("keystile.environment")
	AttrCache       = attribute.Key("keystile.cache")
	AttrStoreRead   = attribute.Key("keystile.store_read")
	AttrArgon2      = attribute.Key("keystile.argon2")
	AttrShared      = attribute.Key("keystile.shared")
	AttrOutcome     = attribute.Key("keystile.outcome")
	AttrRefusal     = attribute.Key("keystile.refusal")
)

// Tracing returns a middleware.Options.OnVerification hook that records
// a span per verification with a tracer of tp (see the package
// documentation). A nil tp means the global TracerProvider
// (otel.GetTracerProvider) at the time of the call.
func Tracing(tp trace.TracerProvider) func(context.Context, middleware.Verification) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	tracer := tp.Tracer(ScopeName)
	internal := trace.WithSpanKind(trace.SpanKindInternal)
	return func(ctx context.Context, v middleware.Verification) {
		_, span := tracer.Start(ctx, SpanName, trace.WithTimestamp(v.Start), internal)
		if !span.IsRecording() { // sampled out: no attributes to build
			span.End()
			return
		}
		code, status := "", 0
		if v.Err != nil {
			code, status = refusal(v.Err)
		}
		var buf [9]attribute.KeyValue
		span.SetAttributes(attributes(buf[:0], v, code)...)
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, code)
		}
		span.End(trace.WithTimestamp(v.End))
	}
}

// attributes appends to kv the span attributes of v, whose refusal (if
// any) has code.
func attributes(kv []attribute.KeyValue, v middleware.Verification, code string) []attribute.KeyValue {
	if v.Prefix != "" {
		cache := "miss"
		if v.Cached {
			cache = "hit"
		}
		kv = append(kv, AttrKeyPrefix.String(v.Prefix), AttrCache.String(cache))
	}
	if v.Account != "" {
		kv = append(kv, AttrAccount.String(v.Account))
	}
	if v.Environment != "" {
		kv = append(kv, AttrEnvironment.String(v.Environment))
	}
	kv = append(kv, AttrStoreRead.Bool(v.StoreRead), AttrArgon2.Bool(v.Hashed))
	if v.Shared {
		kv = append(kv, AttrShared.Bool(true))
	}
	if v.Err == nil {
		return append(kv, AttrOutcome.String("admitted"))
	}
	return append(kv, AttrOutcome.String("refused"), AttrRefusal.String(code))
}

// refusal returns the code and HTTP status of the refusal err, as
// problem.For reports them.
func refusal(err error) (code string, status int) {
	if r := problem.Of(err); r != nil {
		return r.Code(), r.Status()
	}
	return "internal_error", http.StatusInternalServerError
}
