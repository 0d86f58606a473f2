package sqlstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Dialect is the SQL dialect of the database behind a Store.
type Dialect int

// The supported dialects.
const (
	// SQLite is SQLite 3.35 or later (for RETURNING), through any
	// database/sql driver, such as modernc.org/sqlite (pure Go) or
	// github.com/mattn/go-sqlite3 (cgo).
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL 12 or later, through any database/sql driver,
	// such as github.com/jackc/pgx/v5/stdlib or github.com/lib/pq.
	Postgres
)

// String returns the dialect's name: "sqlite" or "postgres".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	default:
		return "Dialect(" + strconv.Itoa(int(d)) + ")"
	}
}

func (d Dialect) valid() bool { return d == SQLite || d == Postgres }

// rebind rewrites the '?' placeholders of query for the dialect: $1, $2...
// for PostgreSQL. The queries of this package hold no '?' elsewhere.
func (d Dialect) rebind(query string) string {
	if d != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// SQLite result codes and PostgreSQL SQLSTATEs that this package maps.
const (
	sqliteBusy             = 5    // SQLITE_BUSY
	sqliteLocked           = 6    // SQLITE_LOCKED
	sqliteConstraintPKey   = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	sqliteConstraintUnique = 2067 // SQLITE_CONSTRAINT_UNIQUE

	pgUniqueViolation      = "23505"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
)

// isConflict reports whether err is a unique-constraint violation, or a
// PostgreSQL serialization failure or deadlock (possible when the user runs
// transactions at a stricter isolation level than READ COMMITTED): a lost
// race, which the caller may retry. It knows the drivers' errors by the
// methods they export (pgx and lib/pq: SQLState() string; modernc.org/sqlite:
// Code() int) and, as a fallback, by their text (github.com/mattn/go-sqlite3
// exports neither method).
func isConflict(err error) bool {
	if state, ok := sqlState(err); ok {
		return state == pgUniqueViolation || state == pgSerializationFailure || state == pgDeadlockDetected
	}
	if code, ok := sqliteCode(err); ok {
		return code == sqliteConstraintUnique || code == sqliteConstraintPKey
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") ||
		strings.Contains(msg, "(SQLSTATE "+pgUniqueViolation+")")
}

// isSerializationFailure reports whether err is PostgreSQL's serialization
// failure or deadlock, which a stricter isolation level than READ
// COMMITTED produces on concurrent updates of one row.
func isSerializationFailure(err error) bool {
	if state, ok := sqlState(err); ok {
		return state == pgSerializationFailure || state == pgDeadlockDetected
	}
	msg := err.Error()
	return strings.Contains(msg, "(SQLSTATE "+pgSerializationFailure+")") ||
		strings.Contains(msg, "(SQLSTATE "+pgDeadlockDetected+")")
}

// isBusy reports whether err is SQLite's "database is locked": another
// connection held the write lock for longer than the busy timeout.
func isBusy(err error) bool {
	if code, ok := sqliteCode(err); ok {
		return code&0xff == sqliteBusy || code&0xff == sqliteLocked
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "database table is locked")
}

func sqlState(err error) (string, bool) {
	var e interface{ SQLState() string }
	if errors.As(err, &e) {
		return e.SQLState(), true
	}
	return "", false
}

func sqliteCode(err error) (int, bool) {
	var e interface{ Code() int }
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

// busyError explains an SQLite busy error; it stays a system error, because
// waiting longer is the operator's call (the busy timeout), not a retry's.
func busyError(err error) error {
	return fmt.Errorf("database is locked by another writer beyond the busy timeout "+
		"(set busy_timeout on every connection, see the package doc): %w", err)
}
