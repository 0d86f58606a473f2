package storetest

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// Capabilities is a set of the optional interfaces of package storage,
// one bit each; combine them with |. The zero value is the empty set: a
// store with apikey.Store alone.
type Capabilities uint

// The optional interfaces of package storage that the suite tests.
const (
	ChangeFeed Capabilities = 1 << iota
	LastUsedRecorder
	AuditLog
	EventStream
	TimedEventLog
	DeliveryLog
	QuotaLedger
	UsageRecorder
	OwnerIndex
	ExpiryIndex
	KeyPurger
	CallerLog
	InstanceLog
	EndpointStore
	ReplayLog

	// All is every optional interface the suite tests: what storage/memory
	// and storage/sqlstore implement.
	All Capabilities = 1<<iota - 1
)

// capabilities names the interface of each bit, in the order of the
// constants, and tells whether a store implements it.
var capabilities = []struct {
	name string
	has  func(apikey.Store) bool
}{
	{"storage.ChangeFeed", is[storage.ChangeFeed]},
	{"storage.LastUsedRecorder", is[storage.LastUsedRecorder]},
	{"storage.AuditLog", is[storage.AuditLog]},
	{"storage.EventStream", is[storage.EventStream]},
	{"storage.TimedEventLog", is[storage.TimedEventLog]},
	{"storage.DeliveryLog", is[storage.DeliveryLog]},
	{"storage.QuotaLedger", is[storage.QuotaLedger]},
	{"storage.UsageRecorder", is[storage.UsageRecorder]},
	{"storage.OwnerIndex", is[storage.OwnerIndex]},
	{"storage.ExpiryIndex", is[storage.ExpiryIndex]},
	{"storage.KeyPurger", is[storage.KeyPurger]},
	{"storage.CallerLog", is[storage.CallerLog]},
	{"storage.InstanceLog", is[storage.InstanceLog]},
	{"storage.EndpointStore", is[storage.EndpointStore]},
	{"storage.ReplayLog", is[storage.ReplayLog]},
}

func is[T any](s apikey.Store) bool {
	_, ok := s.(T)
	return ok
}

// String names the interfaces of c, such as
// "storage.ChangeFeed|storage.AuditLog", in the order of the constants;
// "none" for the empty set.
func (c Capabilities) String() string {
	var names []string
	for i, capability := range capabilities {
		if c&(1<<i) != 0 {
			names = append(names, capability.name)
		}
	}
	if rest := c &^ All; rest != 0 {
		names = append(names, fmt.Sprintf("Capabilities(%#x)", uint(rest)))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// capabilitiesOf returns the optional interfaces that s implements.
func capabilitiesOf(s apikey.Store) Capabilities {
	var has Capabilities
	for i, capability := range capabilities {
		if capability.has(s) {
			has |= 1 << i
		}
	}
	return has
}

// missing returns the capabilities of required that s does not implement.
func missing(s apikey.Store, required Capabilities) Capabilities {
	return required &^ capabilitiesOf(s)
}

// requireCapabilities fails tb, naming each, if s lacks an interface of
// required.
func requireCapabilities(tb testing.TB, s apikey.Store, required Capabilities) {
	tb.Helper()
	if lack := missing(s, required); lack != 0 {
		tb.Errorf("storetest: the store lacks %v, which Config.Require names", lack)
	}
}

// as returns s as the optional interface T. Run registers a case only when
// the store it made has the interfaces the case needs, so a store without
// T here means Config.New returned stores of different capabilities: the
// case fails.
func as[T any](t testing.TB, s apikey.Store) T {
	t.Helper()
	v, ok := s.(T)
	if !ok {
		t.Fatalf("storetest: the store lacks %s, which this case needs; Config.New must return stores of the same capabilities",
			reflect.TypeFor[T]())
	}
	return v
}
