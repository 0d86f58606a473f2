// Package storetest is the conformance suite for keystile stores. Every
// backend, ours or yours, runs it from a test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Config{
//			New:     func(tb testing.TB) apikey.Store { return mystore.New() },
//			Require: storetest.ChangeFeed | storetest.AuditLog, // what mystore implements
//		})
//	}
//
// The suite checks each rule of the apikey.Store contract (lookups by
// index, pages in a total order, compare-and-set writes, one default key
// per account, environment and type), the optional interfaces of package
// storage that the store implements, the isolation of accounts, and the
// lifecycle invariants under concurrent writers. It is the only package of
// keystile's storage that imports testify; import it from tests only.
//
// # Optional interfaces
//
// Each case names the optional interfaces it needs (Capabilities). Run
// finds once, by type assertion on a store from Config.New, which of them
// the store implements, runs the cases it can, and leaves out the others
// without registering them: no case is ever skipped, and the test log
// names the cases left out. Config.Require turns a left-out interface
// into a failure: list there every interface the store implements, so
// that a method lost by accident (a changed signature, a wrapper that
// hides it) fails the suite instead of silently running fewer cases.
// storage/memory and storage/sqlstore require All.
//
// Orders are byte orders: key ids, account ids and environment names
// compare as Go's strings.Compare does (in SQL, COLLATE "C"), so that every
// backend pages the same way.
package storetest

import (
	"strings"
	"testing"

	"github.com/keystile/keystile/apikey"
)

// Config tells the suite how to make stores.
type Config struct {
	// New returns a fresh, empty store. Each subtest calls it once. Required.
	New func(tb testing.TB) apikey.Store
	// Peer, if set, returns another handle on the same data as s, such as a
	// second connection pool on the same database, standing in for another
	// process. Concurrency tests spread their writers over several peers.
	// Nil means all writers share s.
	Peer func(tb testing.TB, s apikey.Store) apikey.Store
	// Require names the optional interfaces of package storage that the
	// store must implement; Run and the benchmarks fail, naming each, if
	// the store lacks one. A backend requires every interface it
	// implements, so that one lost by accident fails the suite instead of
	// leaving its cases out. Zero requires none.
	Require Capabilities
}

func (c Config) peers(tb testing.TB, s apikey.Store, n int) []apikey.Store {
	out := []apikey.Store{s}
	for len(out) < n {
		if c.Peer == nil {
			out = append(out, s)
		} else {
			out = append(out, c.Peer(tb, s))
		}
	}
	return out
}

// Run runs the suite, each case as a subtest of t.
//
// Run makes one store with c.New and finds by type assertion which
// optional interfaces of package storage it implements; it then runs the
// cases of apikey.Store and of those interfaces, and leaves out the cases
// of the interfaces the store lacks (it logs which, once). No case is
// skipped. Every store that c.New returns must have the same interfaces.
// A store that lacks an interface of c.Require fails the test.
func Run(t *testing.T, c Config) {
	t.Helper()
	if c.New == nil {
		t.Fatal("storetest: Config.New is required")
	}
	s := c.New(t)
	has := capabilitiesOf(s)
	requireCapabilities(t, s, c.Require)
	var leftOut []string
	for _, tt := range cases {
		if lack := tt.needs &^ has; lack != 0 {
			leftOut = append(leftOut, tt.name+" (needs "+lack.String()+")")
			continue
		}
		t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
	}
	if len(leftOut) > 0 {
		t.Logf("storetest: the store has %v; left out %d cases of the interfaces it lacks: %s",
			has, len(leftOut), strings.Join(leftOut, ", "))
	}
}

// cases is the suite: each case with the optional interfaces it needs
// (zero: apikey.Store alone).
var cases = []struct {
	name  string
	needs Capabilities
	run   func(*testing.T, Config)
}{
	// The contract of apikey.Store, one rule at a time (cases.go).
	{"NotFound", 0, testNotFound},
	{"RoundTrip", 0, testRoundTrip},
	{"DefaultKey", 0, testDefaultKey},
	{"DuplicateID", 0, testDuplicateID},
	{"StaleRevision", 0, testStaleRevision},
	{"AtomicChange", 0, testAtomicChange},
	{"OneDefaultPerType", 0, testOneDefaultPerType},
	{"Settings", 0, testSettings},
	{"SettingsLifetime", 0, testSettingsLifetime},
	{"LastUsedKeptOnUpdate", 0, testLastUsedKeptOnUpdate},
	{"ContextCanceled", 0, testContextCanceled},
	// Pages (pages.go).
	{"KeysPaging", 0, testKeysPaging},
	{"EnvironmentsPaging", 0, testEnvironmentsPaging},
	{"AccountsPaging", 0, testAccountsPaging},
	{"AuditLog", AuditLog, testAuditLog},
	{"AuditLogPerAccount", AuditLog, testAuditLogPerAccount},
	// The event stream, timed events and deliveries (stream.go, delivery.go).
	{"EventStream", EventStream, testEventStream},
	{"EventStreamConcurrent", EventStream, testEventStreamConcurrent},
	{"EventStreamLifecycle", EventStream, testEventStreamLifecycle},
	{"TimedEvents", TimedEventLog | EventStream, testTimedEvents},
	{"TimedEventsRacingScanners", TimedEventLog | EventStream, testTimedEventsRacingScanners},
	{"DeliveryLease", DeliveryLog, testDeliveryLease},
	{"DeliveryLeaseRace", DeliveryLog, testDeliveryLeaseRace},
	// Last-used times and the change feed (cases.go).
	{"LastUsedRecorder", LastUsedRecorder, testLastUsedRecorder},
	{"ChangeFeed", ChangeFeed, testChangeFeed},
	// Quotas (quota.go).
	{"QuotaLeaseUntilEmpty", QuotaLedger, testQuotaLeaseUntilEmpty},
	{"QuotaRefill", QuotaLedger, testQuotaRefill},
	{"QuotaReturn", QuotaLedger, testQuotaReturn},
	{"QuotaReturnOtherGeneration", QuotaLedger, testQuotaReturnOtherGeneration},
	{"QuotaReturnOtherPeriod", QuotaLedger, testQuotaReturnOtherPeriod},
	{"QuotaLoweredRefill", QuotaLedger, testQuotaLoweredRefill},
	{"QuotaOwnerReturnAcrossChange", QuotaLedger, testQuotaOwnerReturnAcrossChange},
	{"QuotaReturnHuge", QuotaLedger, testQuotaReturnHuge},
	{"QuotaKeepsSpentOnChange", QuotaLedger, testQuotaKeepsSpentOnChange},
	{"QuotaChangeSequence", QuotaLedger, testQuotaChangeSequence},
	{"QuotaExhaustedEvents", QuotaLedger | EventStream, testQuotaExhaustedEvents},
	{"QuotaUnknownAndUnlimited", QuotaLedger, testQuotaUnknownAndUnlimited},
	{"QuotaConcurrentLeases", QuotaLedger, testQuotaConcurrentLeases},
	{"QuotaConcurrentRefill", QuotaLedger, testQuotaConcurrentRefill},
	{"QuotaRotationSharesBalance", QuotaLedger, testQuotaRotationSharesBalance},
	{"QuotaOwnerSharesBalance", QuotaLedger, testQuotaOwnerSharesBalance},
	{"QuotaOwnerBalanceOutlivesRemoval", QuotaLedger, testQuotaOwnerBalanceOutlivesRemoval},
	// Usage counts (usage.go).
	{"Usage", UsageRecorder, testUsage},
	{"UsagePaging", UsageRecorder, testUsagePaging},
	{"UsagePrune", UsageRecorder, testUsagePrune},
	{"UsageConcurrent", UsageRecorder, testUsageConcurrent},
	// Owners, expiry and purging, through the store and through a Manager
	// (owners.go, ownerlimits.go).
	{"OwnerKeys", OwnerIndex, testOwnerKeys},
	{"ExpiringKeys", ExpiryIndex, testExpiringKeys},
	{"PurgeKeys", KeyPurger, testPurgeKeys},
	{"PurgeKeepsLineageQuota", KeyPurger | QuotaLedger, testPurgeKeepsLineageQuota},
	{"PurgeConcurrent", KeyPurger, testPurgeConcurrent},
	{"ManagerOwners", OwnerIndex, testManagerOwners},
	{"ManagerOwnerLimitsConcurrent", OwnerIndex, testManagerOwnerLimitsConcurrent},
	{"ManagerRevokeOwnerRace", OwnerIndex, testManagerRevokeOwnerRace},
	// The callers of rotated-out keys (callers.go).
	{"CallerLog", CallerLog, testCallerLog},
	{"CallerLogBound", CallerLog, testCallerLogBound},
	{"CallerLogConcurrent", CallerLog, testCallerLogConcurrent},
	{"ManagerCallers", CallerLog, testManagerCallers},
	{"PurgeDeletesCallers", CallerLog | KeyPurger, testPurgeDeletesCallers},
	{"CallersCleanUserAgents", CallerLog, testCallersCleanUserAgents},
	// The running validators and what they applied (instances.go).
	{"InstanceLog", InstanceLog, testInstanceLog},
	{"InstanceLogConcurrent", InstanceLog, testInstanceLogConcurrent},
	{"ManagerPropagation", InstanceLog | ChangeFeed, testManagerPropagation},
	{"Endpoints", EndpointStore | EventStream, testEndpoints},
	{"EndpointsBounded", EndpointStore, testEndpointsBounded},
	{"EndpointDeleteForgetsDelivery", EndpointStore | DeliveryLog, testEndpointDeleteForgetsDelivery},
	{"EndpointsManager", EndpointStore | AuditLog, testEndpointsManager},
	{"AccountEventsAfter", EndpointStore | EventStream, testAccountEventsAfter},
	{"ReplayLog", ReplayLog | DeliveryLog | EventStream, testReplayLog},
	{"DeadLetterIndex", ReplayLog | DeliveryLog, testDeadLetterIndex},
	{"DeadLetterPages", ReplayLog | DeliveryLog, testDeadLetterPages},
	{"DeadLetterType", ReplayLog | DeliveryLog, testDeadLetterType},
	{"ReplayingIndex", ReplayLog | DeliveryLog, testReplayingIndex},
	// Accounts, through the store and through a Manager (accounts.go).
	{"AccountIsolation", 0, testAccountIsolation},
	{"ManagerIsolation", 0, testManagerIsolation},
	{"AnyAccount", 0, testAnyAccount},
	{"OwnerAndMetadata", 0, testOwnerAndMetadata},
	{"CloseAccount", 0, testCloseAccount},
	{"OpenAccount", 0, testOpenAccount},
	{"ClosedAccountRefusesChanges", 0, testClosedAccountRefusesChanges},
	{"DisableAndSuspend", 0, testDisableAndSuspend},
	// The lifecycle, alone and under concurrent writers (lifecycle.go).
	{"Lifecycle", 0, testLifecycle},
	{"ConcurrentBootstrap", 0, testConcurrentBootstrap},
	{"ConcurrentRotateRevoke", 0, testConcurrentRotateRevoke},
	{"ConcurrentSettings", 0, testConcurrentSettings},
	{"ConcurrentRotateAccounts", 0, testConcurrentRotateAccounts},
	{"ConcurrentCloseAccount", 0, testConcurrentCloseAccount},
	{"ConcurrentLifetime", 0, testConcurrentLifetime},
	{"ConcurrentSuspendAccount", 0, testConcurrentSuspendAccount},
}
