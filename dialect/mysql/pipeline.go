package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/tallyorm/tally/dialect"
)

// The MySQL protocol has no pipeline, but one COM_QUERY may carry several
// statements separated by semicolons (the connection's multiStatements
// flag, which Open sets): the server runs them in order and stops at the
// first that fails, so a commit's BEGIN, statements and COMMIT go in one
// round trip, as a pgx batch does on PostgreSQL and as EF Core's MySQL
// provider and Hibernate's rewriteBatchedStatements do. The arguments are
// bound by the driver's client-side interpolation (interpolateParams,
// which Open also sets), the only way the protocol lets a multi-statement
// query carry them.
//
// A statement's row count comes back as a result set of its own: each
// statement that returns no rows is followed by SELECT ROW_COUNT(), so
// the results are read in order as one sequence of result sets. A
// MustAffect statement is followed instead by a SELECT that fails when the
// count is zero, or not exactly BatchStmt.Rows (a scalar subquery with
// two rows, error 1242), so that the
// server stops there and never runs the COMMIT after it: a version check
// that matched no row commits nothing. Under clientFoundRows (which Open
// sets) ROW_COUNT() is the rows matched, not only changed.

const (
	rowCountSQL   = "SELECT ROW_COUNT()"
	mustAffectSQL = "SELECT (SELECT ROW_COUNT() UNION ALL SELECT 0 FROM DUAL WHERE ROW_COUNT()" // + " = 0)" or " <> n)"
)

// A Galera node gets no pipeline, and no prepared statements either.
// There a transaction can be rolled back between two statements of one
// query, by another node's write set (a brute-force abort), and the
// statements after it then run on their own, in autocommit: measured, the
// scale tests' transfers lost the UPDATE of one account while the other's
// and the journal row committed. And statements kept prepared failed now
// and then, after such aborts, with "Unknown trigger has an error in its
// body: 'Query was empty'" (1064). Each connection asks once
// (@@wsrep_on) and, on a node, sends each statement on its own, its
// values interpolated, as before.
const (
	clusterUnknown = iota
	clusterNo
	clusterYes
)

// galera reports whether c's server is a Galera node (wsrep_on), asking
// it the first time. MySQL without Galera has no such variable: an error
// means no.
func (c *watchConn) galera(ctx context.Context) bool {
	if c.cluster == clusterUnknown {
		c.cluster = clusterNo
		if q, ok := c.Conn.(driver.QueryerContext); ok {
			if rows, err := q.QueryContext(ctx, "SELECT @@wsrep_on", nil); err == nil {
				v := make([]driver.Value, 1)
				if rows.Next(v) == nil {
					switch on := v[0].(type) {
					case []byte:
						if string(on) == "1" || strings.EqualFold(string(on), "ON") {
							c.cluster = clusterYes
						}
					case int64:
						if on == 1 {
							c.cluster = clusterYes
						}
					}
				}
				rows.Close()
			}
		}
	}
	return c.cluster == clusterYes
}

// maxPipelineText bounds the text of one multi-statement query, its
// values interpolated, well under the server's default max_allowed_packet
// (16 MiB on MariaDB, 64 MiB on MySQL 8): a larger batch goes as several
// queries, in order, each stopping the rest when it fails. A batch with a
// statement that large on its own is not pipelined at all (see pipeline).
const maxPipelineText = 4 << 20

// stmtText bounds the text st takes in a query once the driver has
// interpolated its values: a string or []byte may double when escaped.
func stmtText(st dialect.BatchStmt) int {
	n := len(st.SQL) + len(mustAffectSQL) + 16
	for _, a := range st.Args {
		switch v := a.(type) {
		case string:
			n += 2*len(v) + 16
		case []byte:
			n += 2*len(v) + 16
		case nil, int64, int, bool, float64:
			n += 32
		default:
			n += argText(reflect.ValueOf(a))
		}
	}
	return n
}

// argText bounds the interpolated text of one argument of any other
// type: a named string or byte slice type, or a pointer to one.
func argText(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return argText(v.Elem())
		}
	case reflect.String:
		return 2*v.Len() + 16
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return 2*v.Len() + 16
		}
	}
	return 32
}

// pipeline sends stmts as multi-statement queries on c, in order, and
// returns the rows each affected (the rows a Row statement returned).
// BEGIN and COMMIT report 0. On a failure the rows of the statements
// before the failing one are returned with its error.
func pipeline(ctx context.Context, c *sql.Conn, stmts []dialect.BatchStmt) (rows []int64, ok bool, err error) {
	if err := c.Raw(func(dc any) error {
		// Inside Raw: database/sql lends the driver connection only here.
		wc, _ := dc.(*watchConn)
		ok = wc != nil && wc.multi && !wc.galera(ctx)
		return nil
	}); err != nil || !ok {
		return nil, false, err
	}
	// The packet of a query carries its values: a statement whose values
	// alone come near max_allowed_packet (a batched UPDATE of large
	// blobs) would make the server reject the query, or reset the
	// connection while COMMIT is being sent with it, an unknown outcome
	// for a commit that can never succeed this way. Such a batch is not
	// pipelined: the caller sends its statements one by one, as it would
	// without a pipeline.
	texts := make([]int, len(stmts))
	for i, st := range stmts {
		if texts[i] = stmtText(st); texts[i] >= maxPipelineText {
			return nil, false, nil
		}
	}
	rows = make([]int64, 0, len(stmts))
	var b strings.Builder
	var args []any
	for start := 0; start < len(stmts); {
		b.Reset()
		args = args[:0]
		end, text := start, 0
		for end < len(stmts) && (end == start || text+texts[end] < maxPipelineText) {
			st := stmts[end]
			text += texts[end]
			b.WriteString(st.SQL)
			b.WriteString(";\n")
			if st.Row == nil && !isTxControl(st) {
				if st.MustAffect {
					b.WriteString(mustAffectSQL)
					if st.Rows > 1 {
						// Exactly st.Rows: Tally's own count, not a value from the caller.
						b.WriteString(" <> ")
						b.WriteString(strconv.FormatInt(st.Rows, 10))
					} else {
						b.WriteString(" = 0")
					}
					b.WriteString(")")
				} else {
					b.WriteString(rowCountSQL)
				}
				b.WriteString(";\n")
			}
			args = append(args, st.Args...)
			end++
		}
		n, err := send(ctx, c, b.String(), args, stmts[start:end])
		rows = append(rows, n...)
		if err != nil {
			return rows, true, err
		}
		start = end
	}
	return rows, true, nil
}

// isTxControl reports whether st is BEGIN or COMMIT as the caller sends
// them: statements with no result of their own.
func isTxControl(st dialect.BatchStmt) bool {
	return st.Row == nil && (st.SQL == "BEGIN" || st.SQL == "COMMIT")
}

// send runs one multi-statement query for stmts and returns their row
// counts, reading the result sets in statement order: one per statement
// but BEGIN and COMMIT, which have none. On a failure it returns the
// counts of the statements before the one that failed.
func send(ctx context.Context, c *sql.Conn, q string, args []any, stmts []dialect.BatchStmt) ([]int64, error) {
	out := make([]int64, 0, len(stmts))
	// confirm counts the BEGIN and COMMIT statements before index i as
	// done: a result arriving for a later statement proves they ran.
	confirm := func(i int) {
		for len(out) < i {
			out = append(out, 0)
		}
	}
	rs, err := c.QueryContext(context.WithValue(ctx, asTextKey{}, true), q, args...)
	if err != nil {
		// The error is the first statement with a result's (or one before
		// it, which only BEGIN can be), or COMMIT's if there is none.
		for i, st := range stmts {
			if !isTxControl(st) {
				confirm(i)
				break
			}
		}
		return out, err
	}
	first := true
	for i, st := range stmts {
		if isTxControl(st) {
			continue
		}
		if !first && !rs.NextResultSet() {
			err = rs.Err()
			if err == nil {
				err = errors.New("mysql: a multi-statement query ended early")
			}
			rs.Close()
			confirm(i)
			return out, err
		}
		first = false
		n, err := readResult(rs, st)
		confirm(i)
		if err != nil {
			rs.Close()
			return out, err
		}
		out = append(out, n)
	}
	// A COMMIT after the last result set fails, if it does, here; its
	// index is the first one out does not count.
	for rs.NextResultSet() {
	}
	if err := rs.Err(); err != nil {
		rs.Close()
		return out, err
	}
	if err := rs.Close(); err != nil {
		return out, err
	}
	confirm(len(stmts))
	return out, nil
}

// readResult reads one statement's result set: its rows through st.Row,
// or the row count the SELECT after it returned.
func readResult(rs *sql.Rows, st dialect.BatchStmt) (int64, error) {
	var n int64
	if st.Row != nil {
		for rs.Next() {
			if err := st.Row(rs.Scan); err != nil {
				return n, err
			}
			n++
		}
		return n, rs.Err()
	}
	if !rs.Next() {
		if err := rs.Err(); err != nil {
			return 0, err
		}
		return 0, errors.New("mysql: no row count after a statement")
	}
	var raw sql.RawBytes
	if err := rs.Scan(&raw); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("mysql: row count %q: %w", raw, err)
	}
	for rs.Next() {
	}
	return n, rs.Err()
}
