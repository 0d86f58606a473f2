package integration_test

import (
	"testing"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/faulttest"
	"github.com/keystile/keystile/storage/sqlstore"
)

// faultBackend opens b's stores for the fault and leak suites, which
// package middleware runs over the memory store.
func faultBackend(b backend) faulttest.Backend {
	return faulttest.Backend{
		Name:     b.name,
		Postgres: b.dialect == sqlstore.Postgres,
		Open: func(t *testing.T) (apikey.Store, func() apikey.Store) {
			dsn := b.fresh(t)
			open := func() apikey.Store {
				s := b.store(t, dsn, sqlstore.Options{})
				// A bounded pool that keeps the connections that the
				// PostgreSQL fault "connections killed by the database"
				// kills.
				s.DB().SetMaxOpenConns(8)
				s.DB().SetMaxIdleConns(8)
				return s
			}
			return open(), open
		},
	}
}

func TestStorageFaults(t *testing.T) {
	faulttest.StorageFaults(t, faultBackend(sqliteBackend), faultBackend(postgresBackend))
}

func TestSecretsNeverLeak(t *testing.T) {
	faulttest.SecretsNeverLeak(t, faultBackend(sqliteBackend), faultBackend(postgresBackend))
}
