package keycache

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestEntryLayout: what Get reads of an entry lies in its first 64 bytes,
// what a cached request reads besides in the next 64, and the entry takes
// 192 bytes.
func TestEntryLayout(t *testing.T) {
	var e Entry[*int]
	for name, end := range map[string]uintptr{
		"Value": unsafe.Offsetof(e.Value) + unsafe.Sizeof(e.Value), "Fail": unsafe.Offsetof(e.Fail) + unsafe.Sizeof(e.Fail),
		"Until": unsafe.Offsetof(e.Until) + unsafe.Sizeof(e.Until), "dead": unsafe.Offsetof(e.dead) + unsafe.Sizeof(e.dead),
		"touched": unsafe.Offsetof(e.touched) + unsafe.Sizeof(e.touched),
	} {
		assert.LessOrEqual(t, end, uintptr(64), name)
	}
	assert.LessOrEqual(t, unsafe.Offsetof(e.DisabledAt)+unsafe.Sizeof(e.DisabledAt), uintptr(128), "DisabledAt")
	assert.LessOrEqual(t, unsafe.Offsetof(e.RevokedAt)+unsafe.Sizeof(e.RevokedAt), uintptr(128), "RevokedAt")
	assert.LessOrEqual(t, unsafe.Sizeof(e), uintptr(192), "an entry outgrew its 192-byte size class")
}
