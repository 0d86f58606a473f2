package apikey

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNextPurgeBatch(t *testing.T) {
	tests := []struct {
		name string
		size int
		took time.Duration
		want int
	}{
		{"a fast batch doubles", 100, purgeSlice / 4, 200},
		{"a batch on target keeps its size", 100, purgeSlice, 100},
		{"a slow batch shrinks to the pace's size", 400, 4 * purgeSlice, 100},
		{"growth stops at PurgeBatch", PurgeBatch, time.Microsecond, PurgeBatch},
		{"shrinking stops at minPurgeBatch", minPurgeBatch, time.Second, minPurgeBatch},
		{"an unmeasurably fast batch doubles", 40, 0, 80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, nextPurgeBatch(tt.size, tt.took))
		})
	}
}
