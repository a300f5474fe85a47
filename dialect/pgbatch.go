package dialect

import (
	"context"
	"database/sql"
)

// BatchStmt is one statement of a batch: SQL in the dialect's placeholder
// syntax, and its arguments, already converted from driver.Valuer.
type BatchStmt struct {
	SQL  string
	Args []any
	// Row, when set, marks a statement that returns rows (INSERT ...
	// RETURNING): it is called for each row, in order, with a function
	// that scans the row into dest. An error it returns stops the batch.
	Row func(scan func(dest ...any) error) error
	// MustAffect marks a statement that returns no rows and must affect
	// at least one (a version check): the round trip fails at it, with
	// the server's error, when it affects none, so that a COMMIT later in
	// the same round trip does not run. Its row count is still returned.
	MustAffect bool
	// Rows, with MustAffect, is the exact number of rows the statement
	// must affect when it is above 1 (a batched UPDATE of that many
	// objects): any other count fails the round trip the same way.
	Rows int64
	// Cols, when not 0, marks SQL as Tally's multi-row INSERT ... VALUES
	// of Cols values per row, Args holding them row by row: Into is its
	// "INSERT INTO t (c1, ...)" and Returning its " RETURNING ..." clause
	// or "". A driver may send the same rows as another statement that
	// binds the same values (PostgreSQL: an array per column).
	Cols            int
	Into, Returning string
	// DBScan, with Row, makes the scan function convert every value as
	// database/sql's Rows.Scan would over the driver's database/sql
	// adapter, so that a read sent to the driver directly fills fields
	// exactly as the same read through database/sql does.
	DBScan bool
}

// Batcher is an optional interface of a Dialect whose driver can send
// several statements in one round trip. The core finds it by type
// assertion, as database/sql finds a driver's optional interfaces.
type Batcher interface {
	// Pipeline sends stmts on c as one round trip (BEGIN and COMMIT are
	// statements like the others) and returns the rows each affected, in
	// order. It stops at the first statement that fails, whose error it
	// returns: the statements after it did not run, and a transaction
	// begun by an earlier one is open and aborted, for the caller to roll
	// back. An error that matches driver.ErrBadConn was returned before
	// anything was sent. ok is false, and nothing is sent, when c's
	// driver connection cannot batch (it is not pgx's, or is wrapped).
	Pipeline(ctx context.Context, c *sql.Conn, stmts []BatchStmt) (rows []int64, ok bool, err error)
}

var _ Batcher = postgresDialect{}

// DirectReader is an optional interface of a Batcher whose Pipeline scans
// the rows of a lone read (BatchStmt.DBScan) more cheaply than
// database/sql does, converting values the same way: the core then sends
// reads in autocommit through Pipeline when every field it scans into is
// one DirectScan accepts.
type DirectReader interface {
	Batcher
	// DirectScan reports whether a DBScan read fills dest exactly as
	// database/sql's Rows.Scan would.
	DirectScan(dest any) bool
}

// DirectScan asks the registered postgres Driver (dialect/postgres, which
// knows pgx); without it, no read goes direct.
func (postgresDialect) DirectScan(dest any) bool {
	d := registered("postgres")
	return d != nil && d.DirectScan != nil && d.DirectScan(dest)
}

// Pipeline sends stmts through the Batch function of the registered
// postgres Driver (dialect/postgres, which knows pgx); without that
// package, or on a connection that is not pgx's, ok is false and nothing
// is sent.
func (postgresDialect) Pipeline(ctx context.Context, c *sql.Conn, stmts []BatchStmt) (rows []int64, ok bool, err error) {
	d := registered("postgres")
	if d == nil || d.Batch == nil {
		return nil, false, nil
	}
	return d.Batch(ctx, c, stmts)
}
