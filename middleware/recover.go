package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// errPanicked marks the error that a panic of the store or hasher became.
var errPanicked = errors.New("panicked")

// recovered, deferred by the methods of safeStore, turns a panic into
// *err, with anything that looks like a key cut to its prefix.
func recovered(what string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("middleware: %s: the store %w: %s", what, errPanicked, redactKeys(fmt.Sprint(p)))
	}
}

// hasherRecovered, deferred by the methods of safeHasher, turns a panic
// into *err, keeping only the type of the panic value.
func hasherRecovered(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("middleware: the hasher %w (a %T)", errPanicked, p)
	}
}

// safeStore is the store as the Validator calls it: each method it uses
// turns a panic of a custom store into an error wrapping errPanicked.
type safeStore struct {
	apikey.Store
	feed      storage.ChangeFeed       // nil without one
	recorder  storage.LastUsedRecorder // nil without one
	usage     storage.UsageRecorder    // nil without one
	callers   storage.CallerLog        // nil without one
	instances storage.InstanceLog      // nil without one
	ledger    storage.QuotaLedger      // nil without one; package quota recovers its panics
}

func newSafeStore(s apikey.Store) *safeStore {
	feed, _ := s.(storage.ChangeFeed)
	recorder, _ := s.(storage.LastUsedRecorder)
	usage, _ := s.(storage.UsageRecorder)
	ledger, _ := s.(storage.QuotaLedger)
	callers, _ := s.(storage.CallerLog)
	instances, _ := s.(storage.InstanceLog)
	return &safeStore{Store: s, feed: feed, recorder: recorder, usage: usage, ledger: ledger, callers: callers,
		instances: instances}
}

func (s *safeStore) Key(ctx context.Context, id string) (_ apikey.Record, err error) {
	defer recovered("reading a key", &err)
	return s.Store.Key(ctx, id)
}

func (s *safeStore) Settings(ctx context.Context, account, environment string) (_ apikey.Settings, err error) {
	defer recovered("loading the settings of an environment", &err)
	return s.Store.Settings(ctx, account, environment)
}

func (s *safeStore) Environments(ctx context.Context, q apikey.EnvironmentQuery) (_ []apikey.Settings, err error) {
	defer recovered("loading environment settings", &err)
	return s.Store.Environments(ctx, q)
}

func (s *safeStore) Apply(ctx context.Context, c apikey.Change) (err error) {
	defer recovered("writing", &err)
	return s.Store.Apply(ctx, c)
}

func (s *safeStore) Revision(ctx context.Context) (_ int64, err error) {
	defer recovered("reading the change feed revision", &err)
	return s.feed.Revision(ctx)
}

func (s *safeStore) Changes(ctx context.Context, since int64, limit int) (_ []storage.Changed, _ int64, err error) {
	defer recovered("following the change feed", &err)
	return s.feed.Changes(ctx, since, limit)
}

func (s *safeStore) RecordLastUsed(ctx context.Context, used map[string]time.Time) (err error) {
	defer recovered("recording last-used times", &err)
	return s.recorder.RecordLastUsed(ctx, used)
}

func (s *safeStore) RecordUsage(ctx context.Context, counts []storage.UsageCount) (err error) {
	defer recovered("recording usage", &err)
	return s.usage.RecordUsage(ctx, counts)
}

func (s *safeStore) RecordCallers(ctx context.Context, reports []storage.KeyCallers) (err error) {
	defer recovered("recording callers", &err)
	return s.callers.RecordCallers(ctx, reports)
}

func (s *safeStore) ReportInstance(ctx context.Context, r apikey.InstanceReport) (err error) {
	defer recovered("reporting this instance", &err)
	return s.instances.ReportInstance(ctx, r)
}

func (s *safeStore) Instances(ctx context.Context) (_ []apikey.Instance, _ time.Time, err error) {
	defer recovered("reading the instances", &err)
	return s.instances.Instances(ctx)
}

func (s *safeStore) RemoveInstance(ctx context.Context, id string) (err error) {
	defer recovered("removing this instance", &err)
	return s.instances.RemoveInstance(ctx, id)
}

func (s *safeStore) ForgetInstances(ctx context.Context, age time.Duration) (_ int, err error) {
	defer recovered("forgetting stopped instances", &err)
	return s.instances.ForgetInstances(ctx, age)
}

func (s *safeStore) Usage(ctx context.Context, q storage.UsageQuery) (_ []storage.UsageCount, err error) {
	defer recovered("reading usage", &err)
	return s.usage.Usage(ctx, q)
}

func (s *safeStore) PruneUsage(ctx context.Context, before time.Time) (_ int64, err error) {
	defer recovered("deleting old usage", &err)
	return s.usage.PruneUsage(ctx, before)
}

// safeHasher is the Hasher the Validator calls. Since the hasher holds the
// secret, it keeps only the sentinel of an error (hasherError) and the type
// of a panic value (hasherRecovered).
type safeHasher struct{ h apikey.Hasher }

func (h safeHasher) Hash(secret []byte) (_ string, err error) {
	defer hasherRecovered(&err)
	hash, err := h.h.Hash(secret)
	return hash, hasherError(err)
}

func (h safeHasher) Verify(secret []byte, hash string) (match, outdated bool, err error) {
	defer hasherRecovered(&err)
	match, outdated, err = h.h.Verify(secret, hash)
	return match, outdated, hasherError(err)
}

// Outdated asks the hasher if it is an apikey.OutdatedChecker; otherwise
// it reports true, which lets Verify decide (apikey.UpgradeHash).
func (h safeHasher) Outdated(hash string) (outdated bool, err error) {
	c, ok := h.h.(apikey.OutdatedChecker)
	if !ok {
		return true, nil
	}
	defer hasherRecovered(&err)
	outdated, err = c.Outdated(hash)
	return outdated, hasherError(err)
}

// hasherError keeps the sentinel of a Hasher error and drops its text.
func hasherError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, apikey.ErrInvalidHash):
		return apikey.ErrInvalidHash
	case errors.Is(err, apikey.ErrInvalidParams):
		return apikey.ErrInvalidParams
	}
	return errors.New("middleware: the hasher failed")
}
