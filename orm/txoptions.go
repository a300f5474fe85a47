package orm

import (
	"database/sql"
	"errors"
	"fmt"
)

// This file holds the transaction options of a session: its isolation
// level and read-only mode, and the refusal of writes in a read-only
// session.

// ErrReadOnly is returned when a read-only session (WithReadOnly) is
// asked to write: a Flush or Commit with changes to send, Exec, UpdateAll,
// DeleteAll, Upsert, or a ForUpdate query. No SQL is sent; a refused
// Commit leaves the session as it was, its changes still unsaved.
var ErrReadOnly = errors.New("orm: read-only session cannot write")

// WithIsolation sets the isolation level of the session's transaction,
// one of database/sql's: sql.LevelReadCommitted, sql.LevelRepeatableRead
// or sql.LevelSerializable (and sql.LevelReadUncommitted on MySQL).
//
// REPEATABLE READ and SERIALIZABLE only mean something for a transaction
// that holds the session's reads, so with either the session's first
// statement, read or write, begins the transaction, as WithSnapshot does:
// every read sees one snapshot (PostgreSQL, MySQL/MariaDB), and on
// PostgreSQL SERIALIZABLE also fails a transaction whose reads another
// committed transaction has made stale (a serialization failure,
// ErrRetryable, which Engine.Do retries). With READ COMMITTED or READ
// UNCOMMITTED transactions still begin when they are needed (see
// Session): a read in autocommit already sees committed data, so an
// early BEGIN would buy nothing. With any level, writes always run in a
// transaction at that level: Commit does not send a single statement
// alone in autocommit, nor pipeline BEGIN on PostgreSQL, either of which
// would run at the server's default level.
//
// SQLite's transactions are always serializable, stronger than any level
// asked; there the option makes the session's reads one deferred
// transaction from the first statement (for REPEATABLE READ and up) and
// sends no level. A level the database does not have (sql.LevelSnapshot,
// sql.LevelLinearizable on the servers) fails the first statement with an
// error before BEGIN is sent. WithSnapshot with a lower level gives
// REPEATABLE READ.
func WithIsolation(level sql.IsolationLevel) SessionOption {
	return func(s *Session) { s.isolation = level }
}

// Isolation makes the sessions Do creates use level (WithIsolation).
func Isolation(level sql.IsolationLevel) DoOption {
	return func(c *doConfig) { c.sessionOpts = append(c.sessionOpts, WithIsolation(level)) }
}

// WithReadOnly makes a session that only reads. Every write is refused
// with ErrReadOnly before any SQL is sent (see ErrReadOnly); autoflush is
// off, since there is nothing it could send, so changing a loaded object
// in memory is harmless until Flush or Commit, which refuse it.
//
// Its reads run in autocommit like any session's; when it does begin a
// transaction (WithIsolation, WithSnapshot, Savepoint) the transaction is
// read-only: BEGIN READ ONLY on PostgreSQL, START TRANSACTION READ ONLY
// on MySQL/MariaDB, and on SQLite a deferred BEGIN that never takes the
// write lock, so a concurrent writer is never blocked by it (in WAL mode,
// the engine's default).
func WithReadOnly() SessionOption {
	return func(s *Session) { s.readOnly, s.autoflush = true, false }
}

// ReadOnly makes the sessions Do creates read-only (WithReadOnly).
func ReadOnly() DoOption {
	return func(c *doConfig) { c.sessionOpts = append(c.sessionOpts, WithReadOnly()) }
}

// readsInTx reports whether the session's reads run in its transaction
// from the first statement on: a snapshot session, or an isolation level
// that is about what a transaction's reads see.
func (s *Session) readsInTx() bool {
	return s.snapshot || s.isolation >= sql.LevelRepeatableRead
}

// txOptions are the options of the transaction begin opens; write says
// whether its first statement writes. nil is the database's default.
func (s *Session) txOptions(write bool) (*sql.TxOptions, error) {
	var o sql.TxOptions
	if s.e.deferredReads() {
		// SQLite: modernc's driver issues a plain (deferred) BEGIN for
		// ReadOnly and BEGIN IMMEDIATE (our DSN's _txlock) otherwise;
		// SQLite itself does not restrict a deferred transaction to reads,
		// so a read-only session refuses writes before sending them. No
		// level is sent: every SQLite transaction is serializable.
		o.ReadOnly = s.readOnly || !write && !s.immediate
	} else {
		o.ReadOnly = s.readOnly
		o.Isolation = s.isolation
		if s.snapshot && o.Isolation < sql.LevelRepeatableRead {
			// Explicit even on MySQL, whose default it is: a server set to
			// READ COMMITTED would otherwise give no snapshot at all.
			o.Isolation = sql.LevelRepeatableRead
		}
		switch o.Isolation {
		case sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable:
		default:
			return nil, fmt.Errorf("orm: isolation level %v is not supported on %s; use sql.LevelReadCommitted, sql.LevelRepeatableRead or sql.LevelSerializable", o.Isolation, s.e.dialect.Name())
		}
	}
	if o == (sql.TxOptions{}) {
		return nil, nil
	}
	return &o, nil
}

// refuseWrite is the error of a write asked of a read-only session.
func refuseWrite(what string) error {
	return fmt.Errorf("%w: %s", ErrReadOnly, what)
}

// refuseFlush refuses a Flush or Commit of a read-only session that has
// something to write; nil when it has nothing, so a read-only Do's
// closing Commit still succeeds.
func (s *Session) refuseFlush() error {
	if !s.readOnly || s.flushSize() == 0 {
		return nil
	}
	return refuseWrite("the session has pending, changed or deleted objects")
}
