package apikey

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Page sizes of the Manager's lists.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Page selects one page of a list: at most Limit items (zero means
// DefaultPageSize; at most MaxPageSize) after the cursor After, which is
// empty for the first page and else the Next of the previous page. Pages
// are read by index: a page costs the same in an environment of a million
// keys as in one of ten.
type Page struct {
	After string
	Limit int
}

func (p Page) limit() (int, error) {
	switch {
	case p.Limit == 0:
		return DefaultPageSize, nil
	case p.Limit < 0 || p.Limit > MaxPageSize:
		return 0, fmt.Errorf("%w: a page holds 1 to %d items", ErrInvalidCursor, MaxPageSize)
	}
	return p.Limit, nil
}

// KeyPosition is a place in an environment's keys, which are ordered by
// creation time, then id: a page holds the keys after it.
type KeyPosition struct {
	CreatedAt time.Time
	ID        string
}

// KeyQuery selects a page of an account's environment's keys (Store.Keys).
type KeyQuery struct {
	Account, Environment string
	// After is the last key of the previous page; the zero KeyPosition
	// starts at the first key.
	After KeyPosition
	// Limit is the most keys to return, at least 1.
	Limit int
}

// EnvironmentPosition is a place in the list of environments, ordered by
// account, then name.
type EnvironmentPosition struct {
	Account, Environment string
}

// EnvironmentQuery selects a page of environments' settings
// (Store.Environments).
type EnvironmentQuery struct {
	// Account, if set, selects that account's environments; empty selects
	// every account's.
	Account string
	// After is the last environment of the previous page; the zero value
	// starts at the first.
	After EnvironmentPosition
	// Limit is the most environments to return, at least 1.
	Limit int
}

// KeyList is a page of keys. Next is the cursor of the next page, empty on
// the last one.
type KeyList struct {
	Keys []View `json:"keys"`
	Next string `json:"next,omitempty"`
}

// keyPage returns the page of keys that recs, read with a Limit of
// limit+1, holds: the public views at now of its first limit records and,
// when recs holds more, Next, the cursor that next returns for the last
// record of the page (empty on the last page).
func keyPage(recs []Record, limit int, now time.Time, next func(last Record) string) KeyList {
	out := KeyList{Keys: make([]View, 0, min(len(recs), limit))}
	for i, k := range recs {
		if i == limit {
			out.Next = next(recs[limit-1])
			break
		}
		out.Keys = append(out.Keys, k.View(now))
	}
	return out
}

// EnvironmentList is a page of an account's environments.
type EnvironmentList struct {
	Environments []Settings `json:"environments"`
	Next         string     `json:"next,omitempty"`
}

// AccountList is a page of account ids.
type AccountList struct {
	Accounts []string `json:"accounts"`
	Next     string   `json:"next,omitempty"`
}

// Cursors are opaque to callers: base64 (URL alphabet) of a position in
// text. They carry no secret and grant nothing: every list still reads
// only what the actor may see.
var cursorEncoding = base64.RawURLEncoding

func keyCursor(p KeyPosition) string {
	return cursorEncoding.EncodeToString([]byte(strconv.FormatInt(p.CreatedAt.UnixMicro(), 10) + "." + p.ID))
}

func parseKeyCursor(s string) (KeyPosition, error) {
	if s == "" {
		return KeyPosition{}, nil
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) > 64 {
		return KeyPosition{}, errBadCursor
	}
	micros, id, ok := strings.Cut(string(b), ".")
	t, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || len(id) != IDLength {
		return KeyPosition{}, errBadCursor
	}
	return KeyPosition{CreatedAt: time.UnixMicro(t).UTC(), ID: id}, nil
}

func nameCursor(name string) string { return cursorEncoding.EncodeToString([]byte(name)) }

func parseNameCursor(s string, valid func(string) error) (string, error) {
	if s == "" {
		return "", nil
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || valid(string(b)) != nil {
		return "", errBadCursor
	}
	return string(b), nil
}

var errBadCursor = fmt.Errorf("%w: use the next cursor of the previous page", ErrInvalidCursor)
