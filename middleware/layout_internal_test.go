package middleware

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestIdentityLayout: the fields of Identity that every cached request
// reads lie within its first two 64-byte cache lines (docs/benchmarks.md,
// Memory layout), and the request counters lie a line away from the
// Validator's fields that every request reads.
func TestIdentityLayout(t *testing.T) {
	var id Identity
	hot := map[string]uintptr{
		"limited": unsafe.Offsetof(id.limited), "allowlisted": unsafe.Offsetof(id.allowlisted),
		"expires": unsafe.Offsetof(id.expires), "usage": unsafe.Offsetof(id.usage),
		"callers": unsafe.Offsetof(id.callers), "Type": unsafe.Offsetof(id.Type),
		"Account": unsafe.Offsetof(id.Account), "Environment": unsafe.Offsetof(id.Environment),
	}
	for name, off := range hot {
		assert.Less(t, off, uintptr(128), name)
	}
	var v Validator
	assert.GreaterOrEqual(t, unsafe.Offsetof(v.stats)+unsafe.Offsetof(v.stats.hits)-(unsafe.Offsetof(v.cors)+unsafe.Sizeof(v.cors)),
		uintptr(64), "a line between the read fields and the first counter")
}
