package storage

import "github.com/keystile/keystile/apikey"

// OwnerIndex is an optional Store capability: the keys of an account
// issued to one owner, a page at a time, by index; see apikey.OwnerIndex.
type OwnerIndex = apikey.OwnerIndex

// OwnerQuery selects a page of an owner's keys; see apikey.OwnerQuery.
type OwnerQuery = apikey.OwnerQuery

// ExpiryIndex is an optional Store capability: the keys of an account that
// are not revoked and expire within a window, soonest first, by index; see
// apikey.ExpiryIndex.
type ExpiryIndex = apikey.ExpiryIndex

// ExpiryQuery selects a page of expiring keys; see apikey.ExpiryQuery.
type ExpiryQuery = apikey.ExpiryQuery

// KeyPurger is an optional Store capability: it deletes keys revoked or
// expired before a time, in batches; see apikey.KeyPurger.
type KeyPurger = apikey.KeyPurger

// PurgedKey names a deleted key; see apikey.PurgedKey.
type PurgedKey = apikey.PurgedKey
