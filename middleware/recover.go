package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

// errPanicked marks the error that a recovered panic of the store, its
// change feed, its last-used recorder or the hasher became.
var errPanicked = errors.New("panicked")

// recovered, deferred by every method of the adapters below, turns a panic
// into *err, with anything that looks like a key cut to its prefix.
func recovered(what string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("middleware: %s: the store %w: %s", what, errPanicked, redactKeys(fmt.Sprint(p)))
	}
}

// safeStore is the Store the Validator calls: a panic of a custom store
// becomes an error wrapping errPanicked, so that it cannot end the process.
type safeStore struct{ s apikey.Store }

var _ apikey.Store = safeStore{}

func (s safeStore) Key(ctx context.Context, id string) (_ apikey.Record, err error) {
	defer recovered("reading a key", &err)
	return s.s.Key(ctx, id)
}

func (s safeStore) DefaultKey(ctx context.Context, account, environment string, t apikey.KeyType) (_ apikey.Record, err error) {
	defer recovered("reading a default key", &err)
	return s.s.DefaultKey(ctx, account, environment, t)
}

func (s safeStore) Keys(ctx context.Context, q apikey.KeyQuery) (_ []apikey.Record, err error) {
	defer recovered("listing keys", &err)
	return s.s.Keys(ctx, q)
}

func (s safeStore) Settings(ctx context.Context, account, environment string) (_ apikey.Settings, err error) {
	defer recovered("loading the settings of an environment", &err)
	return s.s.Settings(ctx, account, environment)
}

func (s safeStore) Environments(ctx context.Context, q apikey.EnvironmentQuery) (_ []apikey.Settings, err error) {
	defer recovered("loading environment settings", &err)
	return s.s.Environments(ctx, q)
}

func (s safeStore) Accounts(ctx context.Context, after string, limit int) (_ []string, err error) {
	defer recovered("listing accounts", &err)
	return s.s.Accounts(ctx, after, limit)
}

func (s safeStore) Apply(ctx context.Context, c apikey.Change) (err error) {
	defer recovered("writing", &err)
	return s.s.Apply(ctx, c)
}

// safeFeed is the store's change feed, recovering as safeStore does.
type safeFeed struct{ f storage.ChangeFeed }

func (f safeFeed) Revision(ctx context.Context) (_ int64, err error) {
	defer recovered("reading the change feed revision", &err)
	return f.f.Revision(ctx)
}

func (f safeFeed) Changes(ctx context.Context, since int64, limit int) (_ []storage.Changed, _ int64, err error) {
	defer recovered("following the change feed", &err)
	return f.f.Changes(ctx, since, limit)
}

// safeRecorder is the store's last-used recorder, recovering as safeStore
// does.
type safeRecorder struct{ r storage.LastUsedRecorder }

func (r safeRecorder) RecordLastUsed(ctx context.Context, used map[string]time.Time) (err error) {
	defer recovered("recording last-used times", &err)
	return r.r.RecordLastUsed(ctx, used)
}

// safeHasher is the Hasher the Validator calls. The hasher holds the
// presented secret, and a custom one could put it in its errors or panic
// values in any form: only apikey.ErrInvalidHash or apikey.ErrInvalidParams
// is kept of an error, and only the type of a panic value, which becomes an
// error wrapping errPanicked.
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

// safeOutdated is safeHasher for a hasher that is an
// apikey.OutdatedChecker, which apikey.UpgradeHash asks without a Verify.
type safeOutdated struct {
	safeHasher
	c apikey.OutdatedChecker
}

func (h safeOutdated) Outdated(hash string) (outdated bool, err error) {
	defer hasherRecovered(&err)
	outdated, err = h.c.Outdated(hash)
	return outdated, hasherError(err)
}

// newSafeHasher wraps h in safeHasher, or in safeOutdated if h is an
// apikey.OutdatedChecker.
func newSafeHasher(h apikey.Hasher) apikey.Hasher {
	if c, ok := h.(apikey.OutdatedChecker); ok {
		return safeOutdated{safeHasher{h}, c}
	}
	return safeHasher{h}
}

func hasherRecovered(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("middleware: the hasher %w (a %T)", errPanicked, p)
	}
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
