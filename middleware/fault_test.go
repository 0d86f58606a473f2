package middleware_test

import (
	"testing"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/internal/faulttest"
	"github.com/keystile/keystile/storage/memory"
)

// The fault and leak suites run here over the memory store, and over SQLite
// and PostgreSQL in the examples module (examples/integration), which has
// the drivers.

var memoryBackend = faulttest.Backend{
	Name: "memory",
	Open: func(*testing.T) (apikey.Store, func() apikey.Store) {
		s := memory.New()
		return s, func() apikey.Store { return s }
	},
}

func TestStorageFaults(t *testing.T) { faulttest.StorageFaults(t, memoryBackend) }

func TestSecretsNeverLeak(t *testing.T) { faulttest.SecretsNeverLeak(t, memoryBackend) }
