package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tallyorm/tally/dialect"
)

// pipeline sends stmts in one pgx batch: pgx pipelines the whole batch
// and syncs once, so it is one round trip once the statements are in the
// connection's statement cache. Rows of a statement that returns them
// are handed to its Row function as they are read.
func pipeline(ctx context.Context, c *sql.Conn, stmts []dialect.BatchStmt) (rows []int64, ok bool, err error) {
	err = c.Raw(func(dc any) error {
		pc, is := dc.(interface{ Conn() *pgx.Conn })
		if !is {
			return nil
		}
		ok = true
		if st := stmts[0]; len(stmts) == 1 && st.Row != nil {
			// One statement: a plain query is the same round trip
			// without a batch's bookkeeping; a multi-row INSERT goes as
			// arrays where it can (unnest.go).
			if st.Cols > 0 {
				n, done, err := insertUnnest(ctx, pc.Conn(), st)
				if done {
					rows = []int64{n}
					return err
				}
			}
			n, err := query(ctx, pc.Conn(), st)
			rows = []int64{n}
			return err
		}
		b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(stmts))}
		for _, st := range stmts {
			q := st.SQL
			if st.MustAffect && st.Row == nil {
				q = mustAffectSQL(q, st.Rows)
			}
			b.Queue(q, st.Args...)
		}
		br := pc.Conn().SendBatch(ctx, b)
		rows = make([]int64, 0, len(stmts))
		for _, st := range stmts {
			n, err := result(br, st)
			if err != nil {
				br.Close()
				if pgconn.SafeToRetry(err) {
					// Nothing was sent: database/sql discards the
					// connection, and the caller knows nothing ran.
					return errors.Join(driver.ErrBadConn, err)
				}
				return err
			}
			rows = append(rows, n)
		}
		return br.Close()
	})
	return rows, ok, err
}

// query runs st, a statement that returns rows, on its own and hands its
// rows to st.Row, returning the rows it affected.
func query(ctx context.Context, c *pgx.Conn, st dialect.BatchStmt) (int64, error) {
	args := st.Args
	if st.DBScan {
		args = dbScanArgs(args) // see dbscan.go
	}
	rs, err := c.Query(ctx, st.SQL, args...)
	if err != nil {
		if pgconn.SafeToRetry(err) {
			// Nothing was sent, as in pipeline.
			return 0, errors.Join(driver.ErrBadConn, err)
		}
		return 0, err
	}
	return rowsTo(rs, st)
}

// rowsTo hands rs's rows to st.Row and returns the rows the statement
// affected.
func rowsTo(rs pgx.Rows, st dialect.BatchStmt) (int64, error) {
	scan := rs.Scan // once: a method value made in the loop allocates per row
	if st.DBScan {
		scan = newDBScanner(rs).scan // see dbscan.go
	}
	for rs.Next() {
		if err := st.Row(scan); err != nil {
			rs.Close()
			return 0, err
		}
	}
	rs.Close()
	return rs.CommandTag().RowsAffected(), rs.Err()
}

// result reads one statement's result from br: its row count, and its
// rows for a statement with a Row function.
func result(br pgx.BatchResults, st dialect.BatchStmt) (int64, error) {
	if st.MustAffect && st.Row == nil {
		var n int64
		err := br.QueryRow().Scan(&n)
		return n, err
	}
	if st.Row == nil {
		tag, err := br.Exec()
		return tag.RowsAffected(), err
	}
	rs, err := br.Query()
	if err != nil {
		return 0, err
	}
	return rowsTo(rs, st)
}

// mustAffectSQLs caches mustAffectSQL's statements: a flush sends the
// same few shapes again and again.
var mustAffectSQLs sync.Map

// mustAffectSQL wraps an UPDATE or DELETE so that it returns the rows it
// affected and fails (division by zero, SQLSTATE 22012) when that is
// none, or not exactly rows when rows is above 1: the server then aborts
// the transaction and skips the rest of the round trip, COMMIT included.
func mustAffectSQL(q string, rows int64) string {
	type key struct {
		q    string
		rows int64
	}
	k := key{q, max(rows, 1)}
	if v, ok := mustAffectSQLs.Load(k); ok {
		return v.(string)
	}
	check := "COUNT(*)"
	if k.rows > 1 {
		// rows is Tally's own count, not a value from the caller.
		check = "(COUNT(*) = " + strconv.FormatInt(k.rows, 10) + ")::int"
	}
	w := "WITH tally_affected AS (" + q + " RETURNING 1) SELECT COUNT(*) + 0 * (1 / " + check + ") FROM tally_affected"
	mustAffectSQLs.Store(k, w)
	return w
}
