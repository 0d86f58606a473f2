package middleware

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUses(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 uses"},
		{1, "1 use"},
		{2, "2 uses"},
		{10, "10 uses"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, tc.want, uses(tc.n))
		})
	}
}
