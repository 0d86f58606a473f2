package middleware

import "time"

// Verification describes the authentication of one request to
// Options.OnVerification: when it started and ended, what it did and how
// it ended. It never holds a secret.
type Verification struct {
	// Start and End are when the check began and ended, read with
	// time.Now (whatever Options.Now), so that End.Sub(Start) is measured
	// on the monotonic clock.
	Start, End time.Time
	// Prefix is the displayable prefix of a well-formed key, or "" (see
	// Attempt.Prefix).
	Prefix string
	// Account and Environment are the key's once it verified, also when it
	// was refused after (expired, out of scope, rate limited); "" otherwise.
	Account, Environment string
	// Cached reports that the key's entry, valid or failed, was found in
	// the cache: no store read, no hash.
	Cached bool
	// StoreRead reports that the verification this request used read the
	// key from the store, successfully or not; Hashed that it ran argon2.
	// A key refused before (malformed, throttled, already known to be
	// wrong) has neither; an imported key is never hashed.
	StoreRead, Hashed bool
	// Shared reports that the verification served other requests for the
	// same key too (concurrent misses run one verification).
	Shared bool
	// Err is the refusal, nil if the key was admitted; problem.Of(Err) is
	// its reason and Code.
	Err error
}

// steps is what a check did, for Options.OnVerification.
type steps struct {
	cached, storeRead, hashed, shared bool
}

// add adds the steps of a verification to s.
func (s *steps) add(o steps) {
	s.storeRead = s.storeRead || o.storeRead
	s.hashed = s.hashed || o.hashed
	s.shared = s.shared || o.shared
}

// verification is the report of an authentication that began at start
// and returned prefix and err, having filled in vd.
func (vd *verdict) verification(start time.Time, prefix string, err error) Verification {
	rep := Verification{
		Start: start, End: time.Now(), Prefix: prefix, Err: err,
		Cached: vd.steps.cached, StoreRead: vd.steps.storeRead, Hashed: vd.steps.hashed, Shared: vd.steps.shared,
	}
	if vd.id != nil {
		rep.Account, rep.Environment = vd.id.Account, vd.id.Environment
	}
	return rep
}
