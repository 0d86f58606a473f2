package middleware

import (
	"strings"
	"sync"

	"github.com/keystile/keystile/apikey"
)

// originIndex answers CORS preflights: which allowed-origin entries, of
// environments of which names, admit an origin. A preflight carries no
// key, so it is answered for every account at once, in time that does not
// grow with the number of environments: the entries are counted by their
// normalised form ("https://app.example.com", "https://*.example.com",
// "*") and a preflight looks up the few forms that could admit its origin:
// "*", the origin itself, and a wildcard for each of its parent domains.
//
// Closed environments are not counted: their keys are refused anyway.
type originIndex struct {
	mu    sync.RWMutex
	total map[string]int32     // entry -> environments that allow it
	byEnv map[envPattern]int32 // (entry, environment name) -> environments
}

type envPattern struct{ pattern, environment string }

// anyOrigin is AnyOrigin parsed, to tell a well-formed origin (which "*"
// admits) from a malformed one (which nothing admits).
var anyOrigin, _ = apikey.ParseOrigin(apikey.AnyOrigin)

// grow makes room for n more entries (a full load, before it adds them).
func (x *originIndex) grow(n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.total == nil {
		x.total, x.byEnv = make(map[string]int32, n), make(map[envPattern]int32, n)
	}
}

// add counts the entries of an environment's settings.
func (x *originIndex) add(environment string, s *envSettings) {
	x.replace(environment, nil, s)
}

// replace swaps the counts of old for those of s (either may be nil).
func (x *originIndex) replace(environment string, old, s *envSettings) {
	if indexed(old) == 0 && indexed(s) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.total == nil {
		x.total, x.byEnv = map[string]int32{}, map[envPattern]int32{}
	}
	if old != nil && !old.closed {
		for _, p := range old.patterns {
			x.count(p, environment, -1)
		}
	}
	if s != nil && !s.closed {
		for _, p := range s.patterns {
			x.count(p, environment, 1)
		}
	}
}

func indexed(s *envSettings) int {
	if s == nil || s.closed {
		return 0
	}
	return len(s.patterns)
}

// count adds d (1 or -1) to the counts of an entry; x.mu is held.
func (x *originIndex) count(pattern, environment string, d int32) {
	k := envPattern{pattern, environment}
	if d > 0 { // one map operation each
		x.byEnv[k]++
		x.total[pattern]++
		return
	}
	if n := x.byEnv[k] - 1; n > 0 {
		x.byEnv[k] = n
	} else {
		delete(x.byEnv, k)
	}
	if n := x.total[pattern] - 1; n > 0 {
		x.total[pattern] = n
	} else {
		delete(x.total, pattern)
	}
}

// allows reports whether an environment whose name is one of environments
// (any name, if empty) allows origin, as apikey.Origin.Match decides.
func (x *originIndex) allows(origin string, environments []string) bool {
	if !anyOrigin.Match(origin) {
		return false // malformed: nothing admits it, not even "*"
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.total) == 0 {
		return false
	}
	if x.has(apikey.AnyOrigin, environments) {
		return true
	}
	o, err := apikey.ParseOrigin(origin)
	if strings.Contains(origin, "*") || err != nil {
		return false // "*" in a request's origin is not a pattern
	}
	norm := o.String()
	if x.has(norm, environments) {
		return true
	}
	// Wildcards: "https://a.b.example.com:8443" is admitted by
	// "https://*.b.example.com:8443" and "https://*.example.com:8443".
	scheme, hostport, _ := strings.Cut(norm, "://")
	if strings.HasPrefix(hostport, "[") {
		return false // an IPv6 address: no wildcard stands before one
	}
	host, port, _ := strings.Cut(hostport, ":")
	if port != "" {
		port = ":" + port
	}
	for i := strings.IndexByte(host, '.'); i >= 0; i = strings.IndexByte(host, '.') {
		host = host[i+1:]
		if !strings.Contains(host, ".") {
			break // a wildcard needs a domain of two labels or more
		}
		if x.has(scheme+"://*."+host+port, environments) {
			return true
		}
	}
	return false
}

// has reports whether an environment of one of the names allows the entry
// pattern; x.mu is held.
func (x *originIndex) has(pattern string, environments []string) bool {
	if len(environments) == 0 {
		return x.total[pattern] > 0
	}
	for _, env := range environments {
		if x.byEnv[envPattern{pattern, env}] > 0 {
			return true
		}
	}
	return false
}
