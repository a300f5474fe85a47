package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Classification looks through wrapping (errors.AsType, errors.Is), so an
// error the ORM has annotated classifies as the driver's error did. It
// allocates nothing and is nil-safe.

// classifyMySQL classifies errors of github.com/go-sql-driver/mysql.
// Numbers are from the MySQL server error reference; MariaDB uses the same.
func classifyMySQL(err error) Class {
	if err == nil {
		return ClassOther
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		switch me.Number {
		case 1062, // ER_DUP_ENTRY
			1586: // ER_DUP_ENTRY_WITH_KEY_NAME
			return ClassUnique
		case 1451, // ER_ROW_IS_REFERENCED_2: deleting a referenced parent
			1452, // ER_NO_REFERENCED_ROW_2: child without a parent
			1216, // ER_NO_REFERENCED_ROW (before the _2 variants)
			1217: // ER_ROW_IS_REFERENCED
			return ClassForeignKey
		case 1213, // ER_LOCK_DEADLOCK
			1205, // ER_LOCK_WAIT_TIMEOUT
			3572: // ER_LOCK_NOWAIT: FOR UPDATE NOWAIT, as PostgreSQL's 55P03
			return ClassRetryable
		}
		return ClassOther
	}
	return classifyConnection(err)
}

// classifyPostgres classifies errors of github.com/jackc/pgx/v5 by SQLSTATE.
func classifyPostgres(err error) Class {
	if err == nil {
		return ClassOther
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch code := pe.Code; code {
		case "23505": // unique_violation
			return ClassUnique
		case "23503": // foreign_key_violation
			return ClassForeignKey
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03": // lock_not_available
			return ClassRetryable
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03": // cannot_connect_now
			return ClassConnection
		default:
			if len(code) == 5 && code[:2] == "08" { // class 08: connection exception
				return ClassConnection
			}
		}
		return ClassOther
	}
	return classifyConnection(err)
}

// sqliteError is the part of modernc.org/sqlite's *Error that
// classification needs. Matching the method rather than the type keeps that
// driver, 60 MB of translated C that registers itself as "sqlite" on import,
// out of every program that uses another database.
type sqliteError interface {
	error
	Code() int
}

// SQLite result codes; modernc.org/sqlite turns on extended result codes,
// whose low byte is the primary code.
const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteConstraint = 19

	sqliteConstraintForeignKey = sqliteConstraint | 3<<8  // 787
	sqliteConstraintPrimaryKey = sqliteConstraint | 6<<8  // 1555
	sqliteConstraintUnique     = sqliteConstraint | 8<<8  // 2067
	sqliteConstraintRowID      = sqliteConstraint | 10<<8 // 2579: a rowid is not unique
)

// classifySQLite classifies errors of modernc.org/sqlite.
func classifySQLite(err error) Class {
	if err == nil {
		return ClassOther
	}
	if se, ok := errors.AsType[sqliteError](err); ok {
		switch code := se.Code(); code {
		case sqliteConstraintUnique, sqliteConstraintPrimaryKey, sqliteConstraintRowID:
			return ClassUnique
		case sqliteConstraintForeignKey:
			return ClassForeignKey
		default:
			// BUSY: another connection holds the lock (BUSY_SNAPSHOT: a
			// WAL reader's snapshot went stale); LOCKED: a conflict within
			// one connection or shared cache. Both clear on a new attempt.
			if p := code & 0xff; p == sqliteBusy || p == sqliteLocked {
				return ClassRetryable
			}
		}
		return ClassOther
	}
	return classifyConnection(err)
}

// classifyConnection recognises, for every driver, an error that means the
// connection is broken or could not be made.
func classifyConnection(err error) Class {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The caller gave up: not the connection's fault, and not to be
		// retried. (context.DeadlineExceeded is also a net.Error.)
		return ClassOther
	case errors.Is(err, driver.ErrBadConn),
		errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, pgconn.ErrConnClosed): // pgx, after its socket failed mid-statement
		return ClassConnection
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return ClassConnection
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return ClassConnection // whatever the cause, no connection was made
	}
	return ClassOther
}
