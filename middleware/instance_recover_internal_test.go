package middleware

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// panickingInstances is a memory store whose storage.InstanceLog methods
// panic with a value that holds a key.
type panickingInstances struct {
	*memory.Store
	key string
}

func (s panickingInstances) ReportInstance(context.Context, apikey.InstanceReport) error {
	panic(s.key)
}
func (s panickingInstances) Instances(context.Context) ([]apikey.Instance, time.Time, error) {
	panic(s.key)
}
func (s panickingInstances) RemoveInstance(context.Context, string) error { panic(s.key) }
func (s panickingInstances) ForgetInstances(context.Context, time.Duration) (int, error) {
	panic(s.key)
}

// TestInstanceLogAdapterRecovers: each storage.InstanceLog method of the
// recovering adapter turns a panic into an error wrapping errPanicked,
// with the key in the panic value cut to its prefix (TestInstanceReports
// runs a Validator over a panicking log).
func TestInstanceLogAdapterRecovers(t *testing.T) {
	key, err := apikey.GenerateKey(apikey.Server)
	require.NoError(t, err)
	s := panickingInstances{memory.New(), key.Reveal()}
	store := newSafeStore(s)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"ReportInstance":  func() error { return store.ReportInstance(ctx, apikey.InstanceReport{}) },
		"Instances":       func() error { _, _, err := store.Instances(ctx); return err },
		"RemoveInstance":  func() error { return store.RemoveInstance(ctx, "x") },
		"ForgetInstances": func() error { _, err := store.ForgetInstances(ctx, time.Hour); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.ErrorIs(t, err, errPanicked)
			assert.NotContains(t, err.Error(), key.Reveal()[apikey.PrefixLength:])
		})
	}

}
