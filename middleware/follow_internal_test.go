package middleware

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/keystile/keystile/apikey"
)

// TestFeedUpdateNeverRestoresAnOlderState: a feed page read before this
// process revoked a key (and evicted it through Invalidate) carries the
// key's older record; applying it afterwards must not serve the key again.
func TestFeedUpdateNeverRestoresAnOlderState(t *testing.T) {
	ks, err := newKeySet(1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(Options{Store: ks.store, Hasher: apikey.Argon2id{Params: apikey.TestParams}, FeedInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h, r := v.Handler(noop), benchRequest(ks.keys[0])
	if code := serveOnce(h, r).Code; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	key, err := apikey.ParseKey(ks.keys[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The feed page is read: the key's record, not revoked yet.
	token := v.cache.Token()
	old, err := ks.store.Key(ctx, key.ID())
	if err != nil {
		t.Fatal(err)
	}
	// This process revokes the key before the page is applied.
	revoked := old
	revoked.RevokedAt = time.Now()
	if err := ks.store.Apply(ctx, apikey.Change{Update: []apikey.Record{revoked}}); err != nil {
		t.Fatal(err)
	}
	v.Invalidate(apikey.Event{Action: apikey.ActionRevoke, Environment: apikey.Production, KeyID: key.ID()})
	if code := serveOnce(h, r).Code; code != http.StatusUnauthorized { // cached again, revoked
		t.Fatalf("after the revocation: %d, want 401", code)
	}
	v.follower.apply(key.ID(), &old, token, time.Now())
	if code := serveOnce(h, r).Code; code != http.StatusUnauthorized {
		t.Fatalf("after the older record was applied: %d, want 401", code)
	}

}
