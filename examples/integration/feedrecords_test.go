package integration_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/pgtest"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestChangesCarryKeyRecords: a page of 2,500 key entries (2,400 distinct keys,
// some twice: three queries of padded id lists) carries every key's current
// record, on both engines.
func TestChangesCarryKeyRecords(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.dialect == sqlstore.Postgres {
				pgtest.DSN(t)
			}
			s := b.store(t, b.fresh(t), sqlstore.Options{})
			ctx := context.Background()
			start, err := s.Revision(ctx)
			require.NoError(t, err)
			now := time.Now().UTC().Truncate(time.Microsecond)
			var recs []apikey.Record
			for i := range 2400 {
				recs = append(recs, apikey.Record{ID: fmt.Sprintf("rv%010d", i), Account: apikey.DefaultAccount, Type: apikey.Server,
					Environment: apikey.Production, CreatedAt: now, Hash: apikey.NewOpaque(fmt.Sprintf("h%d", i))})
			}
			for i := 0; i < len(recs); i += 500 {
				require.NoError(t, s.Apply(ctx, apikey.Change{Insert: recs[i:min(i+500, len(recs))]}))
			}
			var upd []apikey.Record
			for i := range 100 {
				r, err := s.Key(ctx, recs[i].ID)
				require.NoError(t, err)
				r.Owner = "changed"
				upd = append(upd, r)
			}
			require.NoError(t, s.Apply(ctx, apikey.Change{Update: upd}))
			page, _, err := s.Changes(ctx, start, 5000)
			require.NoError(t, err)
			require.Len(t, page, 2500)
			for _, c := range page {
				require.NotNil(t, c.Key, c.KeyID)
				require.Equal(t, c.KeyID, c.Key.ID)
				cur, err := s.Key(ctx, c.KeyID)
				require.NoError(t, err)
				require.Equal(t, cur.Revision, c.Key.Revision)
				require.Equal(t, cur.Owner, c.Key.Owner)
			}
		})
	}
}
