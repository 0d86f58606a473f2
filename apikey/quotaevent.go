package apikey

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ActionQuotaExhausted: a quota balance (a key's, or an owner's:
// OwnerBalanceID) could not grant a lease in full, so that requests are
// refused until the next refill. The store's quota ledger writes it
// (storage.QuotaLedger), once per balance, quota and period, whatever the
// number of processes leasing; its actor is SystemActor. An owner's event
// names the account, the owner in Detail, and no environment or key.
const ActionQuotaExhausted Action = "quota_exhausted"

// QuotaExhaustedKind is the kind under which a store records that the
// ActionQuotaExhausted event of a balance was written for the quota of
// generation (storage.QuotaLease.Generation); stores record it with the
// period's index (QuotaPeriod.Index), so that each (balance, generation,
// period) has one event.
func QuotaExhaustedKind(generation int64) TimedKind {
	return TimedKind("quota_exhausted:" + strconv.FormatInt(generation, 10))
}

// OwnerOfBalanceID returns the account and owner of an OwnerBalanceID,
// and false for any other id.
func OwnerOfBalanceID(id string) (account, owner string, ok bool) {
	rest, ok := strings.CutPrefix(id, ownerBalancePrefix)
	if !ok {
		return "", "", false
	}
	account, owner, ok = strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	return account, owner, true
}

// QuotaExhaustedEvent returns the ActionQuotaExhausted event of balanceID
// under quota q, found empty at now: for an owner's balance, the owner's
// (key is ignored); for a key's, the event of key (its ID, Account,
// Environment and Type), the key that asked for the lease. Detail names
// the quota and, if it refills, when.
func QuotaExhaustedEvent(balanceID string, key Record, q Quota, now time.Time) Event {
	detail := "quota of " + uses(q.Limit) + " exhausted"
	if q.Refill > 0 && q.Period != "" {
		detail += fmt.Sprintf(", refills %d at %s", q.Refill, q.Period.Next(now).UTC().Format(time.RFC3339))
	}
	e := Event{Time: now, Actor: SystemActor, Action: ActionQuotaExhausted, Detail: detail}
	if account, owner, ok := OwnerOfBalanceID(balanceID); ok {
		e.Account, e.Detail = account, "owner "+owner+": "+detail
		return e
	}
	e.Account, e.Environment, e.KeyID, e.KeyType = key.Account, key.Environment, key.ID, key.Type
	return e
}

// uses returns n followed by "use" or "uses" as n calls for: "1 use",
// "0 uses", "2 uses".
func uses(n int64) string {
	if n == 1 {
		return strconv.FormatInt(n, 10) + " use"
	}
	return strconv.FormatInt(n, 10) + " uses"
}
