package apikey_test

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
)

// TestScopeBounds: a key holds at most MaxScopes scopes of at most
// MaxScopeLength bytes; the refusals name the field and the bound.
func TestScopeBounds(t *testing.T) {
	resource := strings.Repeat("r", apikey.MaxScopeResourceLength)
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("r%d:read", i)
		}
		return out
	}
	tests := []struct {
		name   string
		scopes []string
		err    string // "" when accepted
	}{
		{"MaxScopes", many(apikey.MaxScopes), ""},
		{"one more", many(apikey.MaxScopes + 1), fmt.Sprintf("scopes: %d given, at most %d", apikey.MaxScopes+1, apikey.MaxScopes)},
		{"976 scopes", many(976), fmt.Sprintf("at most %d", apikey.MaxScopes)},
		{"the longest scope", []string{resource + ":write"}, ""},
		{"a longer resource", []string{resource + "r:read"}, fmt.Sprintf("resource: 1-%d", apikey.MaxScopeResourceLength)},
		{"a longer scope", []string{"ok:read", resource + "rr:write"}, fmt.Sprintf("scope 2 is longer than %d bytes", apikey.MaxScopeLength)},
		{"a huge scope", []string{strings.Repeat("a", 64<<10) + ":read"}, fmt.Sprintf("scope 1 is longer than %d bytes", apikey.MaxScopeLength)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := apikey.ValidateScopes(apikey.Server, tt.scopes)
			if tt.err == "" {
				require.NoError(t, err)
				assert.Len(t, got, len(tt.scopes))
				return
			}
			require.ErrorIs(t, err, apikey.ErrInvalidScope)
			assert.Contains(t, err.Error(), tt.err)
			assert.Less(t, len(err.Error()), 200, "the input is not repeated")
		})
	}
	assert.Equal(t, 70, apikey.MaxScopeLength)

	f := newFixture(t, apikey.ManagerOptions{})
	_, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: many(976)})
	require.ErrorIs(t, err, apikey.ErrInvalidScope, "Create")
	k, err := f.m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: many(1)})
	require.NoError(t, err)
	_, err = f.m.SetScopes(ctx, owner, k.View.ID, many(apikey.MaxScopes+1))
	require.ErrorIs(t, err, apikey.ErrInvalidScope, "SetScopes")
}

// maxRecord returns a key's record with every bounded field at its bound,
// with strings of its own, as a store returns it.
func maxRecord(i int) apikey.Record {
	fill := func(n int, c string) string { return strings.Repeat(c, n) }
	scopes := make([]string, apikey.MaxScopes)
	for j := range scopes {
		scopes[j] = fmt.Sprintf("%0*d:write", apikey.MaxScopeResourceLength, j)
	}
	metadata := make(map[string]string, apikey.MaxMetadataEntries)
	for j := range apikey.MaxMetadataEntries {
		metadata[fmt.Sprintf("m%0*d", apikey.MaxMetadataKeyLength-1, j)] = fill(apikey.MaxMetadataValueLen, "v")
	}
	return apikey.Record{
		ID: fmt.Sprintf("%012d", i), Account: fill(apikey.MaxAccountLength, "a"), Type: apikey.Server,
		Environment: fill(32, "e"), Name: fill(200, "n"), Owner: fill(apikey.MaxOwnerLength, "o"),
		Metadata: metadata, Scopes: scopes, CreatedAt: time.Now(), CreatedBy: fill(20, "c"),
		Hash: apikey.NewOpaque("$argon2id$v=19$m=19456,t=2,p=1$" + fill(22, "s") + "$" + fill(43, "h")),
	}
}

// TestHeapPerKeyAtTheBounds measures the heap that one key's record holds
// with every bounded field at its bound (name, owner, metadata, scopes):
// what a validation cache keeps per key, at most. Method: build 2,000 such
// records, each with strings of its own, and divide the growth of
// runtime.MemStats.HeapAlloc (after a GC on both sides) by their number.
func TestHeapPerKeyAtTheBounds(t *testing.T) {
	const n = 2000
	keep := make([]apikey.Record, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = maxRecord(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perKey := (after.HeapAlloc - before.HeapAlloc) / n

	// The part a copy of the scopes and metadata costs (what a request
	// that copies its identity allocates).
	runtime.GC()
	runtime.ReadMemStats(&before)
	copies := make([][]string, n)
	metadata := make([]map[string]string, n)
	for i := range copies {
		copies[i] = slices.Clone(keep[i].Scopes)
		metadata[i] = maps.Clone(keep[i].Metadata)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perCopy := (after.HeapAlloc - before.HeapAlloc) / n
	runtime.KeepAlive(copies)
	runtime.KeepAlive(metadata)
	runtime.KeepAlive(keep)

	t.Logf("heap per key record at the bounds: %d bytes; a copy of its scopes and metadata: %d bytes", perKey, perCopy)
	assert.Less(t, perKey, uint64(16<<10), "a key at the bounds stays under 16 KiB")
	assert.Less(t, perCopy, uint64(4<<10), "copying its scopes and metadata stays under 4 KiB")
}
