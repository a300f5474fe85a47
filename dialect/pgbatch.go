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
}

// Batcher is an optional interface of a Dialect whose driver can send a
// transaction's statements in one round trip. The core finds it by type
// assertion, as database/sql finds a driver's optional interfaces.
type Batcher interface {
	// BeginBatch sends BEGIN and stmts on c as one round trip and returns
	// the rows each statement affected, in order. It stops at the first
	// statement that fails; the transaction is then open and aborted, and
	// the caller rolls it back. On success the transaction is open on c
	// for the caller to COMMIT. ok is false, and nothing is sent, when c's
	// driver connection cannot batch (it is not pgx's, or is wrapped).
	BeginBatch(ctx context.Context, c *sql.Conn, stmts []BatchStmt) (rows []int64, ok bool, err error)
}

var _ Batcher = postgresDialect{}

// BeginBatch sends BEGIN and stmts through the Batch function of the
// registered postgres Driver (dialect/postgres, which knows pgx); without
// that package, or on a connection that is not pgx's, ok is false and
// nothing is sent.
func (postgresDialect) BeginBatch(ctx context.Context, c *sql.Conn, stmts []BatchStmt) (rows []int64, ok bool, err error) {
	d := registered("postgres")
	if d == nil || d.Batch == nil {
		return nil, false, nil
	}
	return d.Batch(ctx, c, stmts)
}
