// Package sqlite connects Tally to SQLite through modernc.org/sqlite, a
// pure-Go SQLite (no cgo). Import it for its side effect, which registers
// the "sqlite" (alias "sqlite3") [dialect.Driver]:
//
//	import _ "github.com/tallyorm/tally/dialect/sqlite"
//
// It owns what Tally knows of this driver: the pragmas Tally relies on
// (WAL, a busy timeout, foreign keys, immediate write transactions), the
// per-connection statement cache, and the classification of SQLite's result
// codes. The SQL dialect itself is [dialect.SQLite].
package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tallyorm/tally/dialect"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

func init() {
	dialect.Register(&dialect.Driver{
		Name:           "sqlite",
		Aliases:        []string{"sqlite3"},
		Dialect:        dialect.SQLite,
		Open:           open,
		Connector:      connector,
		Classify:       classify,
		ServerError:    serverError,
		ConnectionHint: connectionHint,
	})
}

// open opens a pool for dsn with Tally's pragmas, whose connections keep
// o.SQLiteStatementCache statements compiled; it does not connect.
func open(dsn string, o dialect.OpenOptions) (*sql.DB, string, error) {
	c, err := connector(dsn, o)
	if err != nil {
		return nil, "", err
	}
	return sql.OpenDB(c), "", nil
}

// connector returns open's connector; SQLite makes no network
// connections, so o.Dial is not used.
func connector(dsn string, o dialect.OpenOptions) (driver.Connector, error) {
	drv, err := registeredDriver()
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	return &stmtCacheConnector{drv: drv, dsn: DSN(dsn), size: max(o.SQLiteStatementCache, 0)}, nil
}

// registeredDriver returns the driver registered as "sqlite", with whatever
// functions and hooks the application registered on it.
func registeredDriver() (driver.Driver, error) {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.Driver(), nil
}

// DSN returns dsn with the pragmas Tally relies on added, unless dsn sets
// them:
//   - WAL, so readers never block the writer nor each other;
//   - busy_timeout, so a writer waits for the lock instead of failing at once;
//   - foreign_keys, off by default in SQLite, on in every other database;
//   - _txlock=immediate: a write transaction takes the write lock at BEGIN,
//     so it cannot fail halfway when it later upgrades a read lock. A
//     session begins read-only work with a plain (deferred) BEGIN instead;
//     see [dialect.BeginDeferredOrImmediate].
//
// ":memory:" becomes a named shared-cache memory database, one per call:
// every pooled connection would otherwise open its own empty database.
func DSN(dsn string) string {
	if dsn == ":memory:" || dsn == "file::memory:" {
		dsn = fmt.Sprintf("file:tally-mem-%d?mode=memory&cache=shared", memSeq.Add(1))
	}
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	path, query, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return dsn // let the driver report it
	}
	has := func(pragma string) bool {
		for _, p := range q["_pragma"] {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), pragma) {
				return true
			}
		}
		return false
	}
	if !has("journal_mode") {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	if !has("busy_timeout") {
		q.Add("_pragma", "busy_timeout(10000)")
	}
	if !has("foreign_keys") {
		q.Add("_pragma", "foreign_keys(1)")
	}
	if !has("synchronous") {
		// NORMAL is durable across application crashes in WAL mode and
		// saves an fsync per commit; only a power loss can drop the last
		// transactions.
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	if q.Get("_time_format") == "" {
		// The driver's default, time.Time.String(), does not parse back
		// with a numeric zone and does not sort as text; SQLite's own
		// format in UTC does both.
		q.Set("_time_format", "sqlite")
	}
	if q.Get("_timezone") == "" {
		q.Set("_timezone", "UTC")
	}
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

var memSeq atomic.Int64

// codeError is the part of modernc.org/sqlite's *Error that classification
// needs; matching the method keeps classification testable with codes a
// test cannot easily provoke.
type codeError interface {
	error
	Code() int
}

// SQLite result codes; modernc.org/sqlite turns on extended result codes,
// whose low byte is the primary code.
const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteReadOnly   = 8
	sqliteIOErr      = 10
	sqliteFull       = 13
	sqliteCantOpen   = 14
	sqliteConstraint = 19

	sqliteConstraintForeignKey = sqliteConstraint | 3<<8  // 787
	sqliteConstraintPrimaryKey = sqliteConstraint | 6<<8  // 1555
	sqliteConstraintUnique     = sqliteConstraint | 8<<8  // 2067
	sqliteConstraintRowID      = sqliteConstraint | 10<<8 // 2579: a rowid is not unique
)

// classify sorts SQLite's result codes.
func classify(err error) dialect.Class {
	se, ok := errors.AsType[codeError](err)
	if !ok {
		return dialect.ClassOther
	}
	switch code := se.Code(); code {
	case sqliteConstraintUnique, sqliteConstraintPrimaryKey, sqliteConstraintRowID:
		return dialect.ClassUnique
	case sqliteConstraintForeignKey:
		return dialect.ClassForeignKey
	default:
		// BUSY: another connection holds the lock (BUSY_SNAPSHOT: a WAL
		// reader's snapshot went stale); LOCKED: a conflict within one
		// connection or shared cache. Both clear on a new attempt.
		switch code & 0xff {
		case sqliteBusy, sqliteLocked:
			return dialect.ClassRetryable
		case sqliteReadOnly, sqliteIOErr, sqliteFull, sqliteCantOpen:
			// The database file cannot be written or opened: SQLite's
			// equivalent of a server that cannot be reached. The statement
			// (or COMMIT) failed and SQLite said so, so nothing of it is
			// kept; a later request succeeds once the disk is fixed.
			return dialect.ClassConnection
		}
	}
	return dialect.ClassOther
}

// serverError recognises an error SQLite returned.
func serverError(err error) (string, bool) {
	if se, ok := errors.AsType[codeError](err); ok {
		return "sqlite code " + strconv.Itoa(se.Code()), true
	}
	return "", false
}

// connectionHint names what to fix when SQLite cannot write or open the
// database file.
func connectionHint(err error) string {
	se, ok := errors.AsType[codeError](err)
	if !ok {
		return ""
	}
	switch se.Code() & 0xff {
	case sqliteFull:
		return "database unavailable for writing: the disk (or its quota) is full; free space and retry"
	case sqliteReadOnly:
		return "database unavailable for writing: the database file or its directory is read-only (permissions, a read-only mount)"
	case sqliteIOErr:
		return "database unavailable: the operating system reported an I/O error on the database file"
	case sqliteCantOpen:
		return "database unavailable: the database file cannot be opened (its directory is missing, read-only or not accessible)"
	}
	return ""
}
