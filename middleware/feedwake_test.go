package middleware_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
)

// TestFeedWake: with a poll interval of an hour, a signal on FeedWake makes
// the Validator read the change feed at once: a revocation made by another
// process (a Manager without Invalidate) is refused right after it.
func TestFeedWake(t *testing.T) {
	f := newFixture(t, nil)
	wake := make(chan struct{}, 1)
	other, err := middleware.New(middleware.Options{Store: f.store.Store, Hasher: f.hasher, Now: f.clock.Now,
		FeedInterval: time.Hour, FeedWake: wake})
	require.NoError(t, err)
	defer other.Close()
	h := other.Handler(okHandler)
	key := f.create(apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"}})
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code) // cached

	m, err := apikey.NewManager(apikey.ManagerOptions{Store: f.store.Store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, Now: f.clock.Now})
	require.NoError(t, err)
	_, err = m.Revoke(context.Background(), owner, key.ID())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, serve(h, request(key.Reveal())).Code, "no poll for an hour: still cached")
	wake <- struct{}{}
	require.Eventually(t, func() bool {
		return serve(h, request(key.Reveal())).Code == http.StatusUnauthorized
	}, 5*time.Second, time.Millisecond, "the wake read the feed")
}
