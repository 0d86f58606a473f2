package middleware_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

func TestForgeMakesWellFormedKeys(t *testing.T) {
	k, err := apikey.ParseKey(forge(apikey.Server, "AAAAAAAAAAAA", 'x'))
	require.NoError(t, err)
	require.Equal(t, "AAAAAAAAAAAA", k.ID())
}
