package keycache_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/internal/keycache"
)

func TestImportedKeyOf(t *testing.T) {
	raw := "sk_live_" + strings.Repeat("a", 32)
	digest := apikey.ImportDigest(raw)
	id := apikey.ImportedID(digest)
	k := keycache.ImportedKeyOf(id, digest)
	assert.Equal(t, k, keycache.ImportedKeyOf(id, digest))
	other := apikey.ImportDigest(raw + "b")
	assert.NotEqual(t, k, keycache.ImportedKeyOf(apikey.ImportedID(other), other))
	assert.NotContains(t, k.String(), raw)
	// Never the Key of a keystile key with the same id.
	key, err := apikey.AssembleKey(apikey.Server, id, strings.Repeat("a", apikey.SecretLength))
	assert.NoError(t, err)
	assert.NotEqual(t, k, keycache.KeyOf(key.Reveal()))
	assert.Zero(t, testing.AllocsPerRun(100, func() { keycache.ImportedKeyOf(id, digest) }))
	assert.Panics(t, func() { keycache.ImportedKeyOf("short", digest) })
}
