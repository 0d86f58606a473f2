package envsettings

import "github.com/keystile/keystile/apikey"

// originIndex counts, for each normalised allowed-origin entry, the
// environments that allow it (closed environments aside), so that a
// preflight is answered by looking up the few entries that could admit its
// origin (apikey.RequestOrigin.Candidates) instead of scanning every
// environment. An environment counts each of its distinct entries once, so
// that replacing its settings removes exactly what it added. The zero
// value is empty; the Table's lock guards it.
type originIndex struct {
	count map[apikey.Origin]int32
}

// add counts the entries of s (d = 1), or removes them (d = -1).
func (x *originIndex) add(s *settings, d int32) {
	if s == nil || s.closed || s.missing {
		return
	}
	for o := range s.origins.All() {
		if d > 0 {
			x.count[o]++ // one map operation: a full load adds every entry
		} else if n := x.count[o] - 1; n > 0 {
			x.count[o] = n
		} else {
			delete(x.count, o)
		}
	}
}

// allows reports whether some counted entry admits r.
func (x *originIndex) allows(r apikey.RequestOrigin) bool {
	if len(x.count) == 0 {
		return false
	}
	for o := range r.Candidates() {
		if x.count[o] > 0 && o.Admits(r) {
			return true
		}
	}
	return false
}
