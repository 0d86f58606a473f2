package storetest_test

import (
	"testing"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
	"github.com/keystile/keystile/storage/storetest"
)

// The suite's benchmarks on the memory store, the baseline of every
// backend's (examples/integration runs them on SQLite and PostgreSQL).
var memoryConfig = storetest.Config{New: func(testing.TB) apikey.Store { return memory.New() }}

func BenchmarkColdLookup(b *testing.B) { storetest.BenchmarkColdLookup(b, memoryConfig) }

func BenchmarkLargeEnvironment(b *testing.B) { storetest.BenchmarkLargeEnvironment(b, memoryConfig) }

func BenchmarkLimits(b *testing.B) { storetest.BenchmarkLimits(b, memoryConfig) }
