package sqlstore

import (
	"time"

	"github.com/keystile/keystile/apikey"
)

// lifetimeV8 is version 8, the same in both dialects: each environment's
// lifetime policy (apikey.Settings.Lifetime), in whole seconds, 0 for
// none. Existing environments get none; a constant default fills their
// rows without rewriting the table on PostgreSQL 11 and later, and is kept,
// since 0 is a valid value that means none.
var lifetimeV8 = []string{
	`ALTER TABLE keystile_settings ADD COLUMN default_expiry_seconds BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE keystile_settings ADD COLUMN max_lifetime_seconds BIGINT NOT NULL DEFAULT 0`,
}

// wholeSeconds stores a duration of a lifetime policy: whole seconds,
// rounded down.
func wholeSeconds(d time.Duration) int64 { return int64(d / time.Second) }

// seconds reads a duration of a lifetime policy, keeping a value too large
// for a time.Duration (written by hand) out of apikey's range rather than
// wrapped around into it.
func seconds(n int64) time.Duration {
	switch maxSeconds := int64(apikey.MaxKeyLifetime / time.Second); {
	case n > maxSeconds:
		return apikey.MaxKeyLifetime + time.Second
	case n < 0:
		return -time.Second
	}
	return time.Duration(n) * time.Second
}
