// Package storetest is the conformance suite for keystile stores. Every
// backend, ours or yours, runs it from a test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Config{
//			New: func(tb testing.TB) apikey.Store { return memory.New() },
//		})
//	}
//
// The suite checks each rule of the apikey.Store contract (lookups by
// index, pages in a total order, compare-and-set writes, one default key
// per account, environment and type), the optional capabilities of package
// storage when the store has them, the isolation of accounts, and the
// lifecycle invariants under concurrent writers. It is the only package of
// keystile's storage that imports testify; import it from tests only.
//
// Orders are byte orders: key ids, account ids and environment names
// compare as Go's strings.Compare does (in SQL, COLLATE "C"), so that every
// backend pages the same way.
package storetest

import (
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

// Run runs the whole suite, each test as a subtest of t.
func Run(t *testing.T, c Config) {
	if c.New == nil {
		t.Fatal("storetest: Config.New is required")
	}
	tests := []struct {
		name string
		run  func(*testing.T, Config)
	}{
		// The contract of apikey.Store, one rule at a time (cases.go).
		{"NotFound", testNotFound},
		{"RoundTrip", testRoundTrip},
		{"DefaultKey", testDefaultKey},
		{"DuplicateID", testDuplicateID},
		{"StaleRevision", testStaleRevision},
		{"AtomicChange", testAtomicChange},
		{"OneDefaultPerType", testOneDefaultPerType},
		{"Settings", testSettings},
		{"SettingsLifetime", testSettingsLifetime},
		{"LastUsedKeptOnUpdate", testLastUsedKeptOnUpdate},
		{"ContextCanceled", testContextCanceled},
		// Pages (pages.go).
		{"KeysPaging", testKeysPaging},
		{"EnvironmentsPaging", testEnvironmentsPaging},
		{"AccountsPaging", testAccountsPaging},
		{"AuditLog", testAuditLog},
		{"AuditLogPerAccount", testAuditLogPerAccount},
		// storage.EventStream and TimedEventLog, when the store has them
		// (stream.go).
		{"EventStream", testEventStream},
		{"EventStreamConcurrent", testEventStreamConcurrent},
		{"EventStreamLifecycle", testEventStreamLifecycle},
		{"TimedEvents", testTimedEvents},
		{"TimedEventsRacingScanners", testTimedEventsRacingScanners},
		{"DeliveryLease", testDeliveryLease},
		{"DeliveryLeaseRace", testDeliveryLeaseRace},
		// Optional capabilities (cases.go).
		{"LastUsedRecorder", testLastUsedRecorder},
		{"ChangeFeed", testChangeFeed},
		// storage.QuotaLedger, when the store has it (quota.go).
		{"QuotaLeaseUntilEmpty", testQuotaLeaseUntilEmpty},
		{"QuotaRefill", testQuotaRefill},
		{"QuotaReturn", testQuotaReturn},
		{"QuotaReturnOtherGeneration", testQuotaReturnOtherGeneration},
		{"QuotaReturnHuge", testQuotaReturnHuge},
		{"QuotaKeepsSpentOnChange", testQuotaKeepsSpentOnChange},
		{"QuotaUnknownAndUnlimited", testQuotaUnknownAndUnlimited},
		{"QuotaConcurrentLeases", testQuotaConcurrentLeases},
		{"QuotaConcurrentRefill", testQuotaConcurrentRefill},
		{"QuotaRotationSharesBalance", testQuotaRotationSharesBalance},
		{"QuotaOwnerSharesBalance", testQuotaOwnerSharesBalance},
		{"QuotaOwnerBalanceOutlivesRemoval", testQuotaOwnerBalanceOutlivesRemoval},
		{"QuotaExhaustedEvents", testQuotaExhaustedEvents}, // quota_events.go
		// storage.UsageRecorder, when the store has it (usage.go).
		{"Usage", testUsage},
		{"UsagePaging", testUsagePaging},
		{"UsagePrune", testUsagePrune},
		{"UsageConcurrent", testUsageConcurrent},
		// storage.OwnerIndex, ExpiryIndex and KeyPurger, when the store
		// has them, and the Manager's calls on them (owners.go).
		{"OwnerKeys", testOwnerKeys},
		{"ExpiringKeys", testExpiringKeys},
		{"PurgeKeys", testPurgeKeys},
		{"PurgeKeepsLineageQuota", testPurgeKeepsLineageQuota},
		{"PurgeConcurrent", testPurgeConcurrent},
		{"ManagerOwners", testManagerOwners},
		{"ManagerOwnerLimitsConcurrent", testManagerOwnerLimitsConcurrent},
		{"ManagerRevokeOwnerRace", testManagerRevokeOwnerRace},
		// Accounts, through the store and through a Manager (accounts.go).
		{"AccountIsolation", testAccountIsolation},
		{"ManagerIsolation", testManagerIsolation},
		{"AnyAccount", testAnyAccount},
		{"OwnerAndMetadata", testOwnerAndMetadata},
		{"CloseAccount", testCloseAccount},
		{"OpenAccount", testOpenAccount},
		{"ClosedAccountRefusesChanges", testClosedAccountRefusesChanges},
		{"DisableAndSuspend", testDisableAndSuspend},
		// The lifecycle, alone and under concurrent writers (lifecycle.go).
		{"Lifecycle", testLifecycle},
		{"ConcurrentBootstrap", testConcurrentBootstrap},
		{"ConcurrentRotateRevoke", testConcurrentRotateRevoke},
		{"ConcurrentSettings", testConcurrentSettings},
		{"ConcurrentRotateAccounts", testConcurrentRotateAccounts},
		{"ConcurrentCloseAccount", testConcurrentCloseAccount},
		{"ConcurrentLifetime", testConcurrentLifetime},
		{"ConcurrentSuspendAccount", testConcurrentSuspendAccount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
	}
}
