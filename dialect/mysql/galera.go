package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MariaDB Galera (and Percona XtraDB Cluster) report their own failures
// through ordinary MySQL error numbers; classify sorts them so that Do
// retries exactly what committed nothing:
//
//   - 1213 ER_LOCK_DEADLOCK at COMMIT is a certification failure: another
//     node committed a conflicting write set first. It is the server's
//     reply to COMMIT, so this transaction certainly did not commit
//     anywhere, and it is retryable like any deadlock.
//   - 1047 ER_UNKNOWN_COM_ERROR, "WSREP has not yet prepared node for
//     application use": the node is joining, or has lost the primary
//     component. The server checks this before it runs a statement, COMMIT
//     included, and a transaction's write set leaves the node only while
//     COMMIT runs, so nothing was committed: retryable (the next attempt
//     may get a connection to another node).
//   - 3101 ER_TRANSACTION_ROLLBACK_DURING_COMMIT is MySQL Group
//     Replication's certification failure in multi-primary mode: the
//     plugin rolled the transaction back at COMMIT. Retryable, as 1213.
//   - 8002 (a SELECT FOR UPDATE transaction met a write conflict), 8005
//     and 9007 (write conflicts), 8022 (the commit failed and was rolled
//     back) and 8028 (the schema changed under the transaction) are
//     TiDB's, a MySQL-compatible distributed SQL engine. It sends them
//     having rolled the transaction back, and its documentation says the
//     whole transaction can safely run again. Retryable.
//   - 1180 ER_ERROR_DURING_COMMIT, "Got error 6 during COMMIT": replicating
//     the write set failed, typically because the node lost the cluster
//     while COMMIT ran. The write set may still have been delivered to the
//     rest of the cluster and committed there, so the outcome is unknown,
//     as when the connection is lost during COMMIT: it is classed as a
//     connection failure, which Tally reports at COMMIT as
//     orm.ErrCommitUnknown and never retries blindly.

// nodeReady reports whether the server on c accepts work: a Galera node
// must say wsrep_ready = ON. A server that is not a Galera node has no
// such status and is ready. The error of a node that is not ready wraps
// driver.ErrBadConn, so that the pool asks for another connection.
func nodeReady(ctx context.Context, c driver.Conn) error {
	q, ok := c.(driver.QueryerContext)
	if !ok {
		return nil
	}
	// SHOW is among the statements a Galera node answers while not ready.
	rows, err := q.QueryContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'", nil)
	if err != nil {
		return fmt.Errorf("mysql: asking whether the node is ready: %w", err)
	}
	defer rows.Close()
	vals := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(vals); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // not a Galera node
		}
		return fmt.Errorf("mysql: asking whether the node is ready: %w", err)
	}
	if len(vals) < 2 {
		return nil
	}
	v := fmt.Sprint(vals[1])
	if b, ok := vals[1].([]byte); ok {
		v = string(b)
	}
	if !strings.EqualFold(v, "ON") {
		return fmt.Errorf("mysql: the Galera node is not ready for work (wsrep_ready = %s: joining, or not in the primary component): %w", v, driver.ErrBadConn)
	}
	return nil
}
