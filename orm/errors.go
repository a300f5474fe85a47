package orm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tallyorm/tally/dialect"
)

// Sentinel errors. Check them with errors.Is: the errors Tally returns wrap
// them together with the details (and the driver's own error, which stays
// reachable with errors.As).
var (
	// ErrNotFound is returned by Get, One and First when no row matches.
	ErrNotFound = errors.New("orm: not found")
	// ErrMultipleRows is returned by One when more than one row matches.
	ErrMultipleRows = errors.New("orm: more than one row")
	// ErrIdentityConflict is returned by Add when the session already tracks
	// a different object with the same primary key. Work with the tracked
	// one (Get returns it), copy the other object's values onto it with
	// Merge, or Expunge the tracked one first. A key whose object was
	// deleted in this session is free again once the DELETE is flushed.
	ErrIdentityConflict = errors.New("orm: another object with this primary key is already in the session")
	// ErrDetachedObject is returned by Add for an object the session does
	// not track whose database-generated (auto) key is set: one that was
	// expunged, kept from an earlier session, or decoded from a request
	// body. Inserting it would store its row twice (the key is generated
	// again), so Add refuses it and adds nothing; orm.Merge copies its
	// values onto the session's object for that key instead.
	ErrDetachedObject = errors.New("orm: object has a database-generated key but is not tracked by this session; use orm.Merge to save its changes")
	// ErrOtherSession is returned by Add when the object was
	// added to another session that still has it: an object belongs to
	// one session at a time, or its row would be stored twice. The other
	// session lets it go at Expunge, Rollback or Close, or when the
	// object's deletion commits.
	ErrOtherSession = errors.New("orm: object belongs to another session")
	// ErrConcurrentUse is returned when two goroutines call into one Session
	// at the same time. A Session belongs to one goroutine; give each
	// request its own (eng.Do or eng.Middleware do).
	ErrConcurrentUse = errors.New("orm: session used by two goroutines at once")
	// ErrStaleData is matched by a *StaleDataError: an UPDATE or DELETE with
	// a version check matched no row, because another transaction changed or
	// deleted it first. Reload and retry (eng.Do with RetryOnStale does).
	ErrStaleData = errors.New("orm: stale data")
	// ErrUniqueViolation matches a database error for a unique or primary
	// key constraint.
	ErrUniqueViolation = errors.New("orm: unique violation")
	// ErrForeignKeyViolation matches a database error for a foreign key.
	ErrForeignKeyViolation = errors.New("orm: foreign key violation")
	// ErrRetryable matches database errors after which the whole transaction
	// may succeed if run again: deadlock, lock wait timeout, serialization
	// failure, SQLite busy.
	ErrRetryable = errors.New("orm: retryable database error")
	// ErrConnection matches errors from a broken or unreachable connection.
	// When no connection could be made at all (the server is down,
	// restarting, unreachable, or did not answer within the connect
	// timeout), the message says "database unavailable": nothing was sent.
	// On SQLite it matches a database file that cannot be written or
	// opened: a full disk, a read-only file or mount, an I/O error.
	ErrConnection = errors.New("orm: connection error")
	// ErrStatementTimeout matches a database error for a statement the
	// server cancelled because it ran longer than the session's statement
	// timeout (MariaDB's max_statement_time, MySQL's max_execution_time,
	// PostgreSQL's statement_timeout). The transaction it ran in is rolled
	// back. Do does not retry it: the same work would most likely run as
	// long again, adding load to a server that is already slow. (A lock
	// wait timeout is ErrRetryable instead: the lock is usually free on
	// the next attempt.)
	ErrStatementTimeout = errors.New("orm: statement timeout")
	// ErrCommitUnknown is returned when COMMIT (or the one statement of a
	// single-statement commit) was sent and no reply came: the connection
	// was found lost then, whether it ended before the COMMIT reached the
	// server or while it ran, so the transaction may or may not have
	// committed. The error's message says what is known. It is never
	// retried automatically; check the data before doing the work again.
	ErrCommitUnknown = errors.New("orm: commit outcome unknown")
	// ErrSessionClosed is returned by any call on a closed Session.
	ErrSessionClosed = errors.New("orm: session is closed")
	// ErrNotTracked is returned when an operation needs an object the
	// session does not track (for example Refresh of a transient object).
	ErrNotTracked = errors.New("orm: object is not tracked by this session")
)

// DBError is a database error classified into one of the sentinels above.
// errors.Is(err, ErrUniqueViolation) and friends test its class; errors.As
// reaches the driver's error (*mysql.MySQLError, *pgconn.PgError,
// *sqlite.Error) through Unwrap.
type DBError struct {
	Class dialect.Class
	Err   error // the driver's error

	// hint names the likely causes of a connection error whose driver
	// message does not ("invalid connection").
	hint string
}

// Error is the driver's message, with the likely causes of a lost
// connection when the driver's message does not say them.
func (e *DBError) Error() string {
	if e.hint != "" {
		return e.Err.Error() + " (" + e.hint + ")"
	}
	return e.Err.Error()
}

// Unwrap returns the driver's error.
func (e *DBError) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's class.
func (e *DBError) Is(target error) bool {
	switch e.Class {
	case dialect.ClassUnique:
		return target == ErrUniqueViolation
	case dialect.ClassForeignKey:
		return target == ErrForeignKeyViolation
	case dialect.ClassRetryable:
		return target == ErrRetryable
	case dialect.ClassConnection:
		return target == ErrConnection
	case dialect.ClassTimeout:
		return target == ErrStatementTimeout
	}
	return false
}

// Retryable reports whether running the transaction again may succeed, the
// capability eng.Do consults (in the manner of pgx's SafeToRetry).
func (e *DBError) Retryable() bool { return e.Class == dialect.ClassRetryable }

// classify wraps a driver error into a *DBError when the dialect recognises
// its class; other errors (and nil) are returned as they are.
func classify(d dialect.Dialect, err error) error {
	if err == nil {
		return nil
	}
	var de *DBError
	if errors.As(err, &de) {
		return err
	}
	if c := d.Classify(err); c != dialect.ClassOther {
		de := &DBError{Class: c, Err: err}
		if c == dialect.ClassConnection {
			de.hint = dialect.ConnectionHint(d, err)
		}
		return de
	}
	return err
}

// StaleDataError reports an UPDATE or DELETE whose version check (or key)
// matched no row. It matches ErrStaleData.
type StaleDataError struct {
	Op    Op // OpUpdate, OpDelete, or OpMerge (Merge was given another version than the row's)
	Table string
	Key   []any // the primary-key values
}

// Error names the statement, table and key.
func (e *StaleDataError) Error() string {
	parts := make([]string, len(e.Key))
	for i, k := range e.Key {
		parts[i] = fmt.Sprint(k)
	}
	if e.Op == OpMerge {
		return fmt.Sprintf("orm: stale data: Merge of %s with key (%s): its version is not the row's; another transaction changed or deleted the row since it was read",
			e.Table, strings.Join(parts, ", "))
	}
	return fmt.Sprintf("orm: stale data: %s of %s with key (%s) matched no row; another transaction changed or deleted it",
		e.Op, e.Table, strings.Join(parts, ", "))
}

// Is makes errors.Is(err, ErrStaleData) true.
func (e *StaleDataError) Is(target error) bool { return target == ErrStaleData }

// FlushError reports a failed flush: which statement failed and whether it
// ran as an autoflush. It unwraps to the cause, so errors.Is(err,
// ErrUniqueViolation) still works.
type FlushError struct {
	Autoflush bool // the flush ran before a query or Get, not from Flush or Commit
	Op        Op   // OpInsert, OpUpdate, OpDelete; "" when the flush failed before sending a statement (cascades, ordering)
	Table     string
	Err       error
}

// Error says where the flush failed, and whether it was an autoflush.
func (e *FlushError) Error() string {
	where := "flush"
	if e.Autoflush {
		where = "autoflush (before a query; use orm.WithoutAutoflush() to defer it)"
	}
	if e.Op == "" {
		return fmt.Sprintf("orm: %s failed: %v", where, e.Err)
	}
	return fmt.Sprintf("orm: %s failed: %s %s: %v", where, e.Op, e.Table, e.Err)
}

// Unwrap returns the cause.
func (e *FlushError) Unwrap() error { return e.Err }
