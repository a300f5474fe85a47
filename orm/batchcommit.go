package orm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tallyorm/tally/dialect"
)

// This file holds the batched commit: on a dialect whose driver can send
// several statements in one round trip (dialect.Batcher: PostgreSQL on
// pgx), a commit of several statements that return no rows (updates,
// deletes, inserts without generated columns) plans its flush, then sends
// BEGIN and every statement as one round trip, checks their row counts and
// sends COMMIT: two round trips instead of two plus one per statement.

// batchRec records the statements of a flush planned for a batch instead
// of running them.
type batchRec struct {
	stmts   []dialect.BatchStmt
	results []*plannedResult
}

// plannedResult stands for a recorded statement's result until the batch
// runs. It answers one row affected; checked notes that the flush relied
// on that (a version check, a stale check), so a real count of zero
// undoes the batch.
type plannedResult struct{ checked bool }

func (r *plannedResult) LastInsertId() (int64, error) {
	return 0, errors.New("orm: internal error: LastInsertId of a batched statement")
}

func (r *plannedResult) RowsAffected() (int64, error) {
	r.checked = true
	return 1, nil
}

// batchCommits turns batched commits off when false: a test hook, so that
// benchmarks can measure a commit with and without the batch side by side.
var batchCommits = func() *atomic.Bool { var b atomic.Bool; b.Store(true); return &b }()

// errNotBatchable stops a planned flush that met a statement a batch
// cannot hold (one that returns rows): the commit runs unbatched.
var errNotBatchable = errors.New("orm: internal: statement returns rows; commit unbatched")

// record adds a statement to the batch being planned.
func (r *batchRec) record(args []any, query string) (*plannedResult, error) {
	args, err := valuerArgs(args)
	if err != nil {
		return nil, err
	}
	res := &plannedResult{}
	r.stmts = append(r.stmts, dialect.BatchStmt{SQL: query, Args: args})
	r.results = append(r.results, res)
	return res, nil
}

// commitBatch commits in one batch when it can. done is false when it
// did not (the dialect or connection cannot batch, the flush has an
// INSERT that returns generated keys, or the batch failed and was rolled
// back): nothing is committed then, the session is as before, and the
// caller commits the usual way, which also reports a failure precisely.
func (s *Session) commitBatch(ctx context.Context) (done bool, err error) {
	b, ok := s.e.dialect.(dialect.Batcher)
	if !ok || !batchCommits.Load() {
		return false, nil
	}
	for _, e := range s.pending {
		for _, c := range e.Table().Columns {
			if c.Auto {
				return false, nil // INSERT ... RETURNING: its rows are needed
			}
		}
	}
	s.rec = &batchRec{}
	err = s.flushLocked(ctx, false)
	rec := s.rec
	s.rec = nil
	if err != nil {
		// Nothing was sent; the flush restored the session.
		return !errors.Is(err, errNotBatchable), err
	}
	if len(rec.stmts) == 0 {
		return true, nil
	}
	conn, err := s.e.db.Conn(ctx)
	if err != nil {
		s.undoFlushes(0)
		return true, fmt.Errorf("orm: take a connection: %w", classify(s.e.dialect, err))
	}
	defer conn.Close()
	obs := s.e.observe(OpBegin, "BEGIN", nil)
	rows, ok, err := b.BeginBatch(ctx, conn, rec.stmts)
	if !ok {
		s.undoFlushes(0)
		return false, nil
	}
	s.stats.Statements += 1 + len(rows)
	s.stats.Execs += len(rows)
	err = classify(s.e.dialect, err)
	if obs.e != nil {
		obs.done(ctx, -1, nil)
		for i, st := range rec.stmts {
			o := s.e.observe(OpExec, st.SQL, st.Args)
			o.start, o.pipelined = obs.start, true
			switch {
			case i < len(rows):
				o.done(ctx, rows[i], nil)
			case i == len(rows):
				o.done(ctx, -1, err)
			}
		}
	}
	stale := false
	for i, n := range rows {
		stale = stale || rec.results[i].checked && n == 0
	}
	if err != nil || stale {
		// Roll back and let the usual path run the work again in a
		// transaction of its own: it reports which statement failed and
		// why, or commits if the conflict has gone.
		s.batchEnd(ctx, conn, OpRollback)
		s.stats.Rollbacks++
		s.undoFlushes(0)
		return false, nil
	}
	if err := s.batchEnd(ctx, conn, OpCommit); err != nil {
		s.undoFlushes(0)
		s.flushLog = s.flushLog[:0]
		if !s.e.serverReply(err) {
			return true, s.e.commitLost(err, false)
		}
		return true, fmt.Errorf("orm: commit: %w", err)
	}
	s.committed()
	return true, nil
}

// batchEnd sends COMMIT or ROLLBACK (op) on the batch's connection. Like
// endTx's, it is not interrupted by ctx.
func (s *Session) batchEnd(ctx context.Context, conn *sql.Conn, op Op) error {
	s.stats.Statements++
	_, err := s.e.execOp(context.WithoutCancel(ctx), conn, op, stringsToUpper(op), nil)
	return err
}
