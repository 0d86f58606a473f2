package integration_test

import (
	"testing"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
	"github.com/keystile/keystile/storage/sqlstore"
	"github.com/keystile/keystile/storage/storetest"
)

// BenchmarkColdLookup compares a cold validation's storage and hash cost on
// the memory store (the baseline), SQLite and PostgreSQL.
func BenchmarkColdLookup(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		storetest.BenchmarkColdLookup(b, storetest.Config{New: func(testing.TB) apikey.Store { return memory.New() }})
	})
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			storetest.BenchmarkColdLookup(b, storetest.Config{New: func(tb testing.TB) apikey.Store {
				return be.store(tb, be.fresh(tb), sqlstore.Options{})
			}})
		})
	}
}
