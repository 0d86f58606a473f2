package middleware

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestIdentityLayout: the fields of Identity that every cached request
// reads lie within its first 64 bytes, and Identity's size is a multiple
// of 64, so that the allocator's size class keeps them in one cache line
// (docs/benchmarks.md, Memory layout); a rate-limited request reads its
// bucket and its rate from one more line; and the request counters lie a
// line away from the Validator's fields that every request reads.
func TestIdentityLayout(t *testing.T) {
	var id Identity
	hot := map[string]uintptr{
		"limited":     unsafe.Offsetof(id.limited) + unsafe.Sizeof(id.limited),
		"allowlisted": unsafe.Offsetof(id.allowlisted) + unsafe.Sizeof(id.allowlisted),
		"expires":     unsafe.Offsetof(id.expires) + unsafe.Sizeof(id.expires),
		"tracked":     unsafe.Offsetof(id.tracked) + unsafe.Sizeof(id.tracked),
		"ended":       unsafe.Offsetof(id.ended) + unsafe.Sizeof(id.ended),
		"usage":       unsafe.Offsetof(id.usage) + unsafe.Sizeof(id.usage),
		"Type":        unsafe.Offsetof(id.Type) + unsafe.Sizeof(id.Type),
		"Account":     unsafe.Offsetof(id.Account) + unsafe.Sizeof(id.Account),
		"Environment": unsafe.Offsetof(id.Environment) + unsafe.Sizeof(id.Environment),
	}
	for name, end := range hot {
		assert.LessOrEqual(t, end, uintptr(64), name)
	}
	rateEnd := unsafe.Offsetof(id.Limits) + unsafe.Offsetof(id.Limits.Rate) + unsafe.Sizeof(id.Limits.Rate)
	assert.Equal(t, unsafe.Offsetof(id.rateBucket)/64, (rateEnd-1)/64, "rateBucket and Limits.Rate on one line")
	assert.Zero(t, unsafe.Sizeof(id)%64, "Identity's size")
	var v Validator
	assert.GreaterOrEqual(t, unsafe.Offsetof(v.stats)+unsafe.Offsetof(v.stats.hits)-(unsafe.Offsetof(v.cors)+unsafe.Sizeof(v.cors)),
		uintptr(64), "a line between the read fields and the first counter")
}
