package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage"
	"github.com/keystile/keystile/storage/memory"
)

// status serves one request with key through v and returns its status.
func status(v *middleware.Validator, key apikey.Key) int {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(middleware.HeaderAPIKey, key.Reveal())
	w := httptest.NewRecorder()
	v.Handler(okHandler).ServeHTTP(w, r)
	return w.Code
}

// TestInstancesConfirmRevocation: two Validators following one store's
// feed report what they applied; a revocation made with no Invalidate is
// confirmed by both, and both refuse the key; a closed Validator leaves
// the log and no longer counts.
func TestInstancesConfirmRevocation(t *testing.T) {
	store := memory.New()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	extra, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	require.NoError(t, err)

	var validators []*middleware.Validator
	for range 2 {
		v, err := middleware.New(middleware.Options{Store: store, Hasher: newHasher(apikey.TestParams), FeedInterval: 10 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { _ = v.Close() })
		validators = append(validators, v)
		require.Equal(t, http.StatusOK, status(v, extra.Key), "cached before the revocation")
	}
	require.Eventually(t, func() bool {
		list, _, err := store.Instances(ctx)
		return err == nil && len(list) == 2
	}, 5*time.Second, time.Millisecond, "both report")
	list, _, err := store.Instances(ctx)
	require.NoError(t, err)
	for _, in := range list {
		assert.Len(t, in.ID, 32, "a random id")
		assert.True(t, strings.HasSuffix(in.Label, ":"+strconv.Itoa(os.Getpid())), "host:pid label %q", in.Label)
	}

	_, err = m.Revoke(ctx, owner, extra.View.ID)
	require.NoError(t, err)
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := m.WaitPropagated(wait, owner, extra.View.ID)
	require.NoError(t, err)
	assert.True(t, p.Confirmed)
	assert.Equal(t, 2, p.Applied)
	assert.Equal(t, 2, p.Live)
	assert.Equal(t, apikey.Revoked, p.Status)
	for i, v := range validators {
		assert.Equal(t, http.StatusUnauthorized, status(v, extra.Key), "validator %d refuses the confirmed revocation", i)
	}

	require.NoError(t, validators[0].Close())
	p, err = m.Propagation(ctx, owner, extra.View.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, p.Live, "a closed Validator leaves")
	assert.Equal(t, 0, p.Stopped)
	assert.True(t, p.Confirmed)
}

// instanceStore is a store with an InstanceLog of its own.
type instanceStore struct {
	apikey.Store
	storage.InstanceLog
}

// panickingLog is a memory store whose instance reports panic.
type panickingLog struct{ *memory.Store }

func (panickingLog) ReportInstance(context.Context, apikey.InstanceReport) error {
	panic("instance log")
}

// TestInstanceReports: a Validator reports only while it follows a change
// feed, and a failing InstanceLog is reported, never a crash.
func TestInstanceReports(t *testing.T) {
	tests := map[string]struct {
		store   func(*memory.Store) apikey.Store
		reports int    // instances stored once a follower of mem has reported
		err     string // in an error reported to OnBackgroundError
	}{
		"with a feed":    {store: func(s *memory.Store) apikey.Store { return s }, reports: 2},
		"without a feed": {store: func(s *memory.Store) apikey.Store { return instanceStore{withoutFeed(s), s} }, reports: 1},
		"panicking log": {store: func(s *memory.Store) apikey.Store { return panickingLog{s} },
			reports: 1, err: "reporting this instance: the store panicked"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			mem := memory.New()
			var mu sync.Mutex
			var errs []string
			v, err := middleware.New(middleware.Options{Store: tt.store(mem), Hasher: newHasher(apikey.TestParams),
				FeedInterval: 10 * time.Millisecond, OnBackgroundError: func(err error) {
					mu.Lock()
					defer mu.Unlock()
					errs = append(errs, err.Error())
				}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })
			// A second Validator, on mem itself, whose report is written
			// after the first one's start.
			witness, err := middleware.New(middleware.Options{Store: mem, Hasher: newHasher(apikey.TestParams), FeedInterval: 10 * time.Millisecond})
			require.NoError(t, err)
			t.Cleanup(func() { _ = witness.Close() })
			ctx := context.Background()
			require.Eventually(t, func() bool {
				list, _, err := mem.Instances(ctx)
				return err == nil && len(list) >= tt.reports
			}, 5*time.Second, time.Millisecond)
			if tt.err != "" {
				require.Eventually(t, func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(errs) > 0
				}, 5*time.Second, time.Millisecond)
				mu.Lock()
				assert.Contains(t, errs[0], tt.err)
				mu.Unlock()
			}
			require.NoError(t, witness.Close())
			list, _, err := mem.Instances(ctx)
			require.NoError(t, err)
			assert.Len(t, list, tt.reports-1, "the witness left")
		})
	}
}

// failingReports is a memory store whose instance reports fail, as a
// read-only replica's would.
type failingReports struct{ *memory.Store }

func (failingReports) ReportInstance(context.Context, apikey.InstanceReport) error {
	return errors.New("read-only transaction")
}

// TestInstanceFirstReport: New writes the Validator's first report before
// it returns, so that it is counted before it serves anything from its
// cache; a Validator whose reports fail serves nothing from its cache
// (every request reads the store) yet admits the key, and reports the
// failure.
func TestInstanceFirstReport(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		fail bool
		hits bool // the second request is served from the cache
	}{
		"reported":     {hits: true},
		"cannot write": {fail: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			mem := memory.New()
			m, err := apikey.NewManager(apikey.ManagerOptions{Store: mem, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
			require.NoError(t, err)
			keys, err := m.Bootstrap(ctx, owner, apikey.Production)
			require.NoError(t, err)
			var store apikey.Store = mem
			if tt.fail {
				store = failingReports{mem}
			}
			var mu sync.Mutex
			var errs []string
			v, err := middleware.New(middleware.Options{Store: store, Hasher: newHasher(apikey.TestParams),
				OnBackgroundError: func(err error) {
					mu.Lock()
					defer mu.Unlock()
					errs = append(errs, err.Error())
				}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })
			list, _, err := mem.Instances(ctx)
			require.NoError(t, err)
			if tt.fail {
				assert.Empty(t, list)
				mu.Lock()
				assert.NotEmpty(t, errs, "the failed report is reported")
				mu.Unlock()
			} else {
				assert.Len(t, list, 1, "reported when New returns")
			}
			for range 2 {
				assert.Equal(t, http.StatusOK, status(v, keys[0].Key))
			}
			assert.Equal(t, tt.hits, v.Stats().CacheHits > 0, "served from the cache: %+v", v.Stats())
		})
	}
}
