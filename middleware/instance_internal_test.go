package middleware

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/keystile/keystile/storage/memory"
)

// TestInstanceApplied: a revision that moves is handed over with at most
// one signal waiting; the same revision again signals nothing; a lower one
// (a feed restarted after a gap) replaces it; a nil instance ignores it.
func TestInstanceApplied(t *testing.T) {
	tests := []struct {
		name    string
		revs    []int64
		drain   bool // take the waiting signal before the revisions
		want    int64
		signals int
	}{
		{"the first", []int64{5}, false, 5, 1},
		{"coalesced", []int64{5, 6, 9}, false, 9, 1},
		{"unchanged", []int64{9}, true, 9, 0},
		{"lower, after a gap", []int64{2}, true, 2, 1},
	}
	in := newInstance(memory.New(), time.Minute, func(error) {})
	assert.Equal(t, int64(-1), in.revision.Load(), "nothing applied yet")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.drain {
				select {
				case <-in.changed:
				default:
				}
			}
			for _, rev := range tt.revs {
				in.applied(rev)
			}
			assert.Equal(t, tt.want, in.revision.Load())
			assert.Len(t, in.changed, tt.signals)
		})
	}
	var none *instance
	assert.NotPanics(t, func() { none.applied(1) })
}
