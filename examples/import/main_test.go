package main

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// TestRun runs the demo: two keys imported, one revoked skipped, the old
// key admitted as imported, rotated, admitted in its grace with its
// expiry, and the new keystile key admitted. No full key is printed.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, "", ""))
	lines := regexp.MustCompile(`(?m)^.*$`).FindAllString(out.String(), -1)
	require.GreaterOrEqual(t, len(lines), 5, out.String())
	assert.Equal(t, "imported 2 keys, 0 imported before, 1 revoked skipped", lines[0])
	assert.Regexp(t, `^old key: 200 server-[0-9A-Za-z]{12} owner=cus_1001 imported=true$`, lines[1])
	assert.Regexp(t, `^rotated server-[0-9A-Za-z]{12} into server-[0-9A-Za-z]{12} `, lines[2])
	assert.Regexp(t, `^old key, in its grace: 200 server-[0-9A-Za-z]{12} owner=cus_1001 imported=true \(expires .+\)$`, lines[3])
	assert.Regexp(t, `^new key: 200 server-[0-9A-Za-z]{12} owner=cus_1001 imported=false$`, lines[4])
	assert.NotContains(t, out.String(), "sk_live_")
	assert.False(t, apikey.KeyRegexp.MatchString(out.String()), "no keystile key printed in full")
}

// TestMigrateTwice: a second run over the same databases imports nothing
// again, and the keys keep their owner, scopes and old id.
func TestMigrateTwice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	legacyPath, dsn := filepath.Join(dir, "legacy.db"), filepath.Join(dir, "keystile.db")
	key, err := createDemoTable(ctx, legacyPath)
	require.NoError(t, err)
	require.True(t, LegacyFormat.Match(key), "the demo's keys have the declared format")

	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, legacyPath, dsn))
	assert.Equal(t, "imported 2 keys, 0 imported before, 1 revoked skipped\n", out.String())
	out.Reset()
	require.NoError(t, run(ctx, &out, legacyPath, dsn))
	assert.Equal(t, "imported 0 keys, 2 imported before, 1 revoked skipped\n", out.String())

	store, err := exampledb.OpenFor(ctx, dsn, exampledb.ReadOnly)
	require.NoError(t, err)
	defer store.DB().Close()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store})
	require.NoError(t, err)
	list, err := m.List(ctx, actor, apikey.Production, apikey.Page{Limit: 10})
	require.NoError(t, err)
	byOwner := map[string]apikey.View{}
	for _, v := range list.Keys {
		if v.Imported {
			byOwner[v.Owner] = v
		}
	}
	require.Len(t, byOwner, 2)
	assert.Equal(t, []string{"*"}, byOwner["cus_1001"].Scopes)
	assert.Equal(t, []string{"invoices:read"}, byOwner["cus_1002"].Scopes)
	assert.Equal(t, "key_2", byOwner["cus_1002"].Metadata["legacy_id"])
	assert.Equal(t, apikey.ImportedID(apikey.ImportDigest(key)), byOwner["cus_1001"].ID)
}

// TestMigrateRefusesABadDigest: a row whose digest is not hex stops the
// migration and names the row, never the value.
func TestMigrateRefusesABadDigest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	legacyPath := filepath.Join(dir, "legacy.db")
	_, err := createDemoTable(ctx, legacyPath)
	require.NoError(t, err)
	db, err := sql.Open("sqlite", legacyPath)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO api_keys VALUES ('key_0', 'cus_9', 'sk_live_notadigest', '', 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	err = run(ctx, &bytes.Buffer{}, legacyPath, filepath.Join(dir, "keystile.db"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `api_keys row "key_0"`)
	assert.NotContains(t, err.Error(), "notadigest")
}
