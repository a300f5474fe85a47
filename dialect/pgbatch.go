package dialect

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
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

// BeginBatch sends BEGIN and stmts in one pgx batch: pgx pipelines the
// whole batch and syncs once, so it is one round trip once the statements
// are in the connection's statement cache.
func (postgresDialect) BeginBatch(ctx context.Context, c *sql.Conn, stmts []BatchStmt) (rows []int64, ok bool, err error) {
	err = c.Raw(func(dc any) error {
		pc, is := dc.(interface{ Conn() *pgx.Conn })
		if !is {
			return nil
		}
		ok = true
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		for _, st := range stmts {
			b.Queue(st.SQL, st.Args...)
		}
		br := pc.Conn().SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		rows = make([]int64, 0, len(stmts))
		for range stmts {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return err
			}
			rows = append(rows, tag.RowsAffected())
		}
		return br.Close()
	})
	return rows, ok, err
}
