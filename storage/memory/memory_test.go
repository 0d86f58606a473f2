package memory_test

import (
	"testing"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
	"github.com/keystile/keystile/storage/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New:     func(testing.TB) apikey.Store { return memory.New() },
		Require: storetest.All,
	})
}
