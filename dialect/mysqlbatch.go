package dialect

import (
	"context"
	"database/sql"
)

var _ Batcher = mysqlDialect{}

// Pipeline sends stmts through the Batch function of the registered mysql
// Driver (dialect/mysql), as one multi-statement query; on a connection
// that Open did not make with multiStatements and interpolateParams, or
// without that package, ok is false and nothing is sent.
func (mysqlDialect) Pipeline(ctx context.Context, c *sql.Conn, stmts []BatchStmt) (rows []int64, ok bool, err error) {
	d := registered("mysql")
	if d == nil || d.Batch == nil {
		return nil, false, nil
	}
	return d.Batch(ctx, c, stmts)
}
