package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/examples/custom-store/jsonstore"
)

// TestRun runs the example twice in one account and once in another, on
// one file: the second run rotates again, the third bootstraps.
func TestRun(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keystile.json")
	require.NoError(t, run(ctx, path, "acme"))
	require.NoError(t, run(ctx, path, "acme"))
	require.NoError(t, run(ctx, path, "default"))
	assert.Error(t, run(ctx, path, "*"), "an operator acting across accounts cannot bootstrap")

	s, err := jsonstore.Open(path)
	require.NoError(t, err)
	accounts, err := s.Accounts(ctx, "", 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"acme", "default"}, accounts)
}
