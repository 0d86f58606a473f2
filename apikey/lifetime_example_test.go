package apikey_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage/memory"
)

// ExampleManager_SetLifetimePolicy gives production's keys a default
// expiry of 30 days and a maximum lifetime of a year: a key created
// without an expiry gets the default, one asked for beyond the maximum is
// refused with an error that names it. Default keys keep no expiry.
func ExampleManager_SetLifetimePolicy() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New(), Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: func() time.Time { return now }})
	defaults, _ := m.Bootstrap(ctx, owner, apikey.Production)

	s, err := m.SetLifetimePolicy(ctx, owner, apikey.Production, apikey.LifetimePolicy{
		DefaultExpiry: 30 * 24 * time.Hour, MaxLifetime: 365 * 24 * time.Hour,
	})
	fmt.Println(err, s.Lifetime)
	k, _ := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client})
	fmt.Println(k.View.ExpiresAt.Format(time.DateOnly))
	_, err = m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Client,
		ExpiresAt: now.AddDate(2, 0, 0)})
	fmt.Println(errors.Is(err, apikey.ErrBeyondLifetime))
	fmt.Println(defaults[0].View.ExpiresAt.IsZero())

	_, err = m.SetLifetimePolicy(ctx, owner, apikey.Production, apikey.LifetimePolicy{DefaultExpiry: 48 * time.Hour, MaxLifetime: 24 * time.Hour})
	fmt.Println(err)
	// Output:
	// <nil> default expiry 720h; max lifetime 8760h
	// 2026-03-31
	// true
	// true
	// apikey: invalid lifetime policy: default_expiry_seconds must be at most max_lifetime_seconds (86400)
}

// ExampleManager_Rename renames a key; the change is audited.
func ExampleManager_Rename() {
	ctx, owner := context.Background(), apikey.Actor{ID: "alice", Role: apikey.Owner}
	m, _ := apikey.NewManager(apikey.ManagerOptions{Store: memory.New(), Hasher: apikey.Argon2id{Params: apikey.TestParams},
		OnEvent: func(e apikey.Event) {
			if e.Action == apikey.ActionRename {
				fmt.Println(e.Action, e.Detail)
			}
		}})
	keys, _ := m.Bootstrap(ctx, owner, apikey.Production)
	view, err := m.Rename(ctx, owner, keys[0].View.Prefix, "main backend")
	fmt.Println(err, view.Name)
	// Output:
	// rename name "main backend"
	// <nil> main backend
}
