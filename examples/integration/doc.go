// Package integration holds keystile's tests that need a database driver:
// the SQLite and PostgreSQL store tests (the conformance suite, migrations,
// the change feed, propagation between processes), the fault and leak
// suites of internal/faulttest over both engines, and the benchmarks of a
// cold validation on each. They live in the examples module so that the
// library module requires no driver; the same suites run over the memory
// store in the library's own tests.
//
// The PostgreSQL tests use the server named by KEYSTILE_POSTGRES_DSN, a
// schema each (examples/internal/pgtest); without it they skip, or fail when
// CI=true. scripts/test.sh starts a throwaway server.
package integration
