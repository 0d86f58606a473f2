package storetest

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/memory"
)

// bare is a store with no optional interface.
type bare struct{ apikey.Store }

// feedAndLog implements storage.ChangeFeed and storage.AuditLog only.
type feedAndLog struct {
	apikey.Store
	storage.ChangeFeed
	storage.AuditLog
}

func TestMissing(t *testing.T) {
	mem := memory.New()
	hidden := faultstore.New(memory.New())
	hidden.Hide(faultstore.OpChanges)
	tests := []struct {
		name     string
		store    apikey.Store
		required Capabilities
		want     Capabilities
	}{
		{"memory has all", mem, All, 0},
		{"nothing required", bare{mem}, 0, 0},
		{"bare lacks all", bare{mem}, All, All},
		{"bare lacks one", bare{mem}, ChangeFeed, ChangeFeed},
		{"some present", feedAndLog{mem, mem, mem}, ChangeFeed | AuditLog, 0},
		{"some missing", feedAndLog{mem, mem, mem}, ChangeFeed | AuditLog | QuotaLedger | KeyPurger, QuotaLedger | KeyPurger},
		{"faultstore hiding the feed", hidden.Exact(), ChangeFeed | AuditLog, ChangeFeed},
		{"faultstore's interfaces", faultstore.New(mem).Exact(), All, EventStream | TimedEventLog | DeliveryLog | CallerLog | InstanceLog | EndpointStore | ReplayLog},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, missing(tt.store, tt.required), "%v", missing(tt.store, tt.required))
		})
	}
}

func TestCapabilitiesString(t *testing.T) {
	tests := []struct {
		c    Capabilities
		want string
	}{
		{0, "none"},
		{ChangeFeed, "storage.ChangeFeed"},
		{KeyPurger | ChangeFeed, "storage.ChangeFeed|storage.KeyPurger"},
		{TimedEventLog | EventStream, "storage.EventStream|storage.TimedEventLog"},
		{All + 1, "Capabilities(0x8000)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.c.String())
	}
	assert.Equal(t, All, Capabilities(1)<<len(capabilities)-1, "one entry of capabilities per constant")
}

// TestCasesNeedKnownCapabilities: every case's needs are capabilities the
// suite knows, and every capability has at least one case.
func TestCasesNeedKnownCapabilities(t *testing.T) {
	var covered Capabilities
	for _, tt := range cases {
		assert.Zero(t, tt.needs&^All, "%s needs %v", tt.name, tt.needs)
		covered |= tt.needs
	}
	assert.Equal(t, All, covered, "capabilities without a case: %v", All&^covered)
}
