package postgres

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/tallyorm/tally/dialect"
)

// beginBatch sends BEGIN and stmts in one pgx batch: pgx pipelines the
// whole batch and syncs once, so it is one round trip once the statements
// are in the connection's statement cache.
func beginBatch(ctx context.Context, c *sql.Conn, stmts []dialect.BatchStmt) (rows []int64, ok bool, err error) {
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
