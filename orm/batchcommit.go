package orm

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the pipelined commit: on a dialect whose driver can
// send several statements in one round trip (dialect.Batcher: PostgreSQL
// on pgx), a commit of several statements queues its flush's statements
// instead of sending them one by one. The queue goes out, behind BEGIN,
// when the flush needs an answer it cannot go on without — the keys an
// INSERT ... RETURNING generates, which the identity map and the foreign
// keys of children need — and at the end, with COMMIT in the same round
// trip: a statement whose row count the flush checks (a version or stale
// check) is sent MustAffect, so the server fails the round trip, and
// skips COMMIT, when it matches no row. An INSERT ... RETURNING of a
// model without relations is queued too, its objects finished when its
// round trip returns (deferInsert), unless a later table needs its keys
// (drainFor sends the queue first); one of a model with relations closes
// a round trip of its own (insertReturningBatched), carrying everything
// queued before it. So a commit of updates, deletes and inserts is one
// round trip, plus one per table whose new keys another table needs.

// batchRec is a pipelined commit in progress: its connection, whether
// BEGIN went out, and the statements queued since the last round trip.
type batchRec struct {
	b      dialect.Batcher
	conn   *sql.Conn
	begun  bool
	failed bool // a round trip failed: the usual path runs the commit again
	// err and failedAt say what failed: failedAt is its index in the
	// round trip's tail (COMMIT, the RETURNING insert), -1 before it.
	err      error
	failedAt int
	stmts    []dialect.BatchStmt
	results  []*plannedResult
	inserts  []*deferredInsert // queued INSERTs whose objects wait for their keys
	buf      []dialect.BatchStmt
}

// plannedResult stands for a queued statement's result until its round
// trip. It answers one row affected; checked notes that the flush relied
// on that (a version check, a stale check), so a real count of zero
// undoes the batch.
type plannedResult struct {
	checked bool
	want    int64 // the exact count a batched UPDATE needs (BatchStmt.Rows)
}

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
// cannot hold (a read, a statement whose result must be known at once):
// the commit runs unbatched.
var errNotBatchable = errors.New("orm: internal: statement cannot be pipelined; commit unbatched")

// errBatchFailed stops a pipelined flush whose round trip failed or
// matched no row where one was needed: the transaction is rolled back and
// the usual path runs the commit again, which reports the failure
// precisely (or commits, if the conflict has gone).
var errBatchFailed = errors.New("orm: internal: pipelined round trip failed; commit unbatched")

// record queues a statement.
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

// commitBatch commits through the pipeline when it can. done is false
// when it did not (the dialect or connection cannot pipeline, the flush
// needed a read, or a round trip failed and the transaction was rolled
// back): nothing is committed then, the session is as before, and the
// caller commits the usual way, which also reports a failure precisely.
func (s *Session) commitBatch(ctx context.Context) (done bool, err error) {
	b, ok := s.e.dialect.(dialect.Batcher)
	if !ok || !batchCommits.Load() || s.needsLastInsertID() {
		return false, nil
	}
	s.primary = true // read-your-writes: see replicas.go
	conn, err := s.e.db.Conn(ctx)
	if err != nil {
		return true, fmt.Errorf("orm: take a connection: %w", classify(s.e.dialect, err))
	}
	rec := &batchRec{b: b, conn: conn}
	s.rec = rec
	defer func() {
		s.rec = nil
		s.endBatch(ctx, rec)
	}()
	err = s.flushLocked(ctx, false)
	if err != nil {
		// The flush restored the session; endBatch rolls back what went.
		if rec.failed || errors.Is(err, errNotBatchable) {
			return false, nil
		}
		return true, err
	}
	if !rec.begun && len(rec.stmts) == 0 {
		return true, nil // nothing to write
	}
	// COMMIT rides with the last statements: a checked one that matches
	// no row fails at the server (MustAffect), which skips COMMIT.
	_, err = s.sendBatch(ctx, []dialect.BatchStmt{{SQL: "COMMIT"}})
	switch {
	case err == nil:
		rec.begun = false
		s.committed()
		return true, nil
	case rec.failed && (errors.Is(rec.err, errNotBatchable) || errors.Is(rec.err, driver.ErrBadConn) ||
		rec.failedAt < 0 && s.e.serverReply(rec.err)):
		// Nothing was sent, or a statement before COMMIT failed with the
		// server's reply (the server skips the rest of the round trip):
		// nothing committed; the usual path runs it again.
		s.undoFlushes(0)
		return false, nil
	}
	// COMMIT went out in the same write as the statements: without the
	// server's reply to one of them, it may have committed.
	rec.begun = false // COMMIT was sent: the transaction is over, somehow
	return true, s.commitFailed(rec.err)
}

// needsLastInsertID reports whether the commit inserts a row whose
// generated key only LastInsertId can give (MySQL has no RETURNING): each
// such INSERT needs its own answer before the next, which a batch cannot
// carry, so the commit is sent the usual way.
func (s *Session) needsLastInsertID() bool {
	if s.e.dialect.Returning() {
		return false
	}
	for _, e := range s.pending {
		if ret, _ := insertShape(s.e, e.Table()); len(ret) > 0 {
			return true
		}
	}
	return false
}

// commitFailed undoes the flushes of a commit whose COMMIT failed with
// err and describes it: a server reply proves nothing committed; no reply
// leaves the outcome unknown.
func (s *Session) commitFailed(err error) error {
	s.undoFlushes(0)
	s.flushLog = s.flushLog[:0]
	if !s.e.serverReply(err) {
		return s.e.commitLost(err, false)
	}
	return fmt.Errorf("orm: commit: %w", err)
}

// endBatch rolls back a transaction the pipeline left open and gives the
// connection back; one whose ROLLBACK failed is discarded, never pooled
// inside a transaction.
func (s *Session) endBatch(ctx context.Context, rec *batchRec) {
	if rec.begun {
		s.stats.Rollbacks++
		if s.batchEnd(ctx, rec.conn, OpRollback) != nil {
			_ = rec.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	rec.conn.Close()
}

// sendBatch sends, in one round trip, BEGIN (the first time), the queued
// statements and tail, and returns the row counts of tail. A failure, or
// a queued statement checked for a row that matched none, marks the batch
// failed and returns errBatchFailed; rec.err and rec.failedAt then say
// what failed: failedAt is the index in tail, or -1 before it.
func (s *Session) sendBatch(ctx context.Context, tail []dialect.BatchStmt) ([]int64, error) {
	rec := s.rec
	if rec == nil {
		return nil, errors.New("orm: internal error: sendBatch outside a pipelined commit")
	}
	stmts := rec.buf[:0]
	if !rec.begun {
		stmts = append(stmts, dialect.BatchStmt{SQL: "BEGIN"})
	}
	head := len(stmts)
	stmts = append(stmts, rec.stmts...)
	for i, res := range rec.results {
		stmts[head+i].MustAffect, stmts[head+i].Rows = res.checked, res.want
	}
	stmts = append(stmts, tail...)
	rec.buf = stmts
	obs := s.e.observe(OpBegin, "", nil)
	rows, ok, err := rec.b.Pipeline(ctx, rec.conn, stmts)
	if !ok {
		rec.failed, rec.failedAt, rec.err = true, -1, errNotBatchable
		return nil, errBatchFailed
	}
	rec.begun = true
	err = classify(s.e.dialect, err)

	ran := len(rows)
	if err != nil {
		ran++
	}
	s.stats.Statements += ran
	for _, st := range stmts[:min(ran, len(stmts))] {
		if st.Row == nil && st.SQL != "BEGIN" && st.SQL != "COMMIT" {
			s.stats.Execs++
		}
	}
	s.reportBatch(ctx, obs, stmts, rows, err)
	stale := false
	for i, res := range rec.results {
		if j := head + i; j < len(rows) {
			stale = stale || res.checked && (rows[j] == 0 || res.want > 1 && rows[j] != res.want)
		}
	}
	rec.stmts, rec.results = rec.stmts[:0], rec.results[:0]
	clear(rec.buf)
	if err != nil || stale {
		rec.failed, rec.err, rec.failedAt = true, err, -1
		if t := len(stmts) - len(tail); err != nil && len(rows) >= t {
			rec.failedAt = len(rows) - t
		}
		return nil, errBatchFailed
	}
	if err := s.finishInserts(); err != nil {
		rec.failed, rec.err, rec.failedAt = true, err, len(tail)
		return nil, err
	}
	return rows[len(stmts)-len(tail):], nil
}

// reportBatch reports a round trip's statements to the hooks and the
// logger: the first as sent, the others as pipelined after it.
func (s *Session) reportBatch(ctx context.Context, obs observation, stmts []dialect.BatchStmt, rows []int64, err error) {
	if obs.e == nil {
		return
	}
	for i, st := range stmts {
		if i > len(rows) {
			return
		}
		op := OpExec
		switch {
		case st.SQL == "BEGIN":
			op = OpBegin
		case st.SQL == "COMMIT":
			op = OpCommit
		case st.Row != nil:
			op = OpQuery
		}
		o := s.e.observe(op, st.SQL, st.Args)
		o.start, o.pipelined = obs.start, i > 0
		if i < len(rows) {
			o.done(ctx, rows[i], nil)
		} else {
			o.done(ctx, -1, err)
		}
	}
}

// batchEnd sends COMMIT or ROLLBACK (op) on the batch's connection. Like
// endTx's, it is not interrupted by ctx.
func (s *Session) batchEnd(ctx context.Context, conn *sql.Conn, op Op) error {
	s.stats.Statements++
	// ctx governs the wait for COMMIT's reply, as in a transaction
	// (commitctx.go); ROLLBACK, and a COMMIT whose ctx has already
	// ended, run to the end.
	c := context.WithoutCancel(ctx)
	if op == OpCommit && ctx.Err() == nil {
		c = ctx
	}
	_, err := s.e.execOp(c, conn, op, stringsToUpper(op), nil)
	return classify(s.e.dialect, err)
}

// insertReturningBatched is insertReturning in a pipelined commit: the
// INSERT ... RETURNING closes a round trip, carrying the statements
// queued before it, and its generated columns are scanned into batch's
// objects, in VALUES order, as they arrive. The caller logged the undo
// of those columns.
func (s *Session) insertReturningBatched(ctx context.Context, t *mapper.Table, q string, args []any, batch []*identity.Entry, ret []*mapper.Column) error {
	args, err := valuerArgs(args)
	if err != nil {
		return err
	}
	i := 0
	row := s.returningRow(t, batch, ret, &i)
	s.stats.Queries++
	if _, err := s.sendBatch(ctx, []dialect.BatchStmt{{SQL: q, Args: args, Row: row}}); err != nil {
		return err
	}
	if i != len(batch) {
		s.rec.failed, s.rec.failedAt = true, -1
		return fmt.Errorf("orm: INSERT returned %d rows for %d objects", i, len(batch))
	}
	return nil
}

// returningRow returns the Row callback of a pipelined INSERT ...
// RETURNING: it scans each returned row's generated columns ret into the
// next of batch's objects, in VALUES order, counting them in *n, and
// refuses keys that do not rise (a row matched to the wrong object).
func (s *Session) returningRow(t *mapper.Table, batch []*identity.Entry, ret []*mapper.Column, n *int) func(scan func(dest ...any) error) error {
	var prev int64
	return func(scan func(dest ...any) error) error {
		if *n >= len(batch) {
			return errors.New("orm: INSERT returned more rows than it inserted")
		}
		obj := batch[*n].Obj()
		dest := s.dest[:0] // rows are scanned one at a time, inside the round trip
		for _, c := range ret {
			dest = append(dest, t.Acc.Addr(obj, c))
		}
		s.dest = dest
		if err := scan(dest...); err != nil {
			return err
		}
		if t.IntKey() && t.PK[0].Auto {
			k, _ := keyval.Int64(t.Acc.Value(obj, t.PK[0]))
			if *n > 0 && k <= prev {
				return fmt.Errorf("orm: INSERT ... RETURNING gave keys out of order (%d after %d)", k, prev)
			}
			prev = k
		}
		*n++
		return nil
	}
}

// deferredInsert is a multi-row INSERT ... RETURNING queued in the
// pipeline: its objects stay pending until its round trip returns their
// generated columns, then finish makes them persistent.
type deferredInsert struct {
	t     *mapper.Table
	batch []*identity.Entry
	n     int // rows scanned
}

// deferred returns how many pending objects wait for a queued INSERT.
func (r *batchRec) deferred() int {
	if r == nil {
		return 0
	}
	n := 0
	for _, d := range r.inserts {
		n += len(d.batch)
	}
	return n
}

// deferInsert queues the INSERT ... RETURNING of batch, a chunk of t's
// pending objects (t has no relations, so no has-many bookkeeping waits
// on it): the flush goes on without its keys, which only a later table
// referring to t needs (drainFor sends the queue first then).
func (s *Session) deferInsert(t *mapper.Table, q string, args []any, batch []*identity.Entry, ret []*mapper.Column) error {
	for _, e := range batch {
		for _, c := range ret {
			s.logFlush(undo{kind: undoSetCol, e: e, col: c, old: t.Acc.Value(e.Obj(), c)})
		}
	}
	args, err := valuerArgs(args)
	if err != nil {
		return err
	}
	d := &deferredInsert{t: t, batch: batch}
	row := s.returningRow(t, batch, ret, &d.n)
	s.stats.Queries++
	rec := s.rec
	rec.stmts = append(rec.stmts, dialect.BatchStmt{SQL: q, Args: args, Row: row})
	rec.results = append(rec.results, &plannedResult{})
	rec.inserts = append(rec.inserts, d)
	return nil
}

// finishInserts makes the objects of the inserts sent in the last round
// trip persistent, as insert does after its statement.
func (s *Session) finishInserts() error {
	rec := s.rec
	ins := rec.inserts
	rec.inserts = nil
	for _, d := range ins {
		if d.n != len(d.batch) {
			return fmt.Errorf("orm: INSERT returned %d rows for %d objects", d.n, len(d.batch))
		}
		t, batch := d.t, d.batch
		if bs, ok := t.Acc.(mapper.BatchSnapshotter); ok {
			bs.SnapshotBatch(len(batch), func(i int) any { return batch[i].Obj() }, func(i int, snap any) { _ = batch[i].SetSnapshot(snap) })
		}
		s.idmap.Reserve(t, len(batch))
		for _, e := range batch {
			if err := s.markInserted(e); err != nil {
				return err
			}
		}
	}
	if len(ins) > 0 {
		s.pending = slices.DeleteFunc(s.pending, func(p *identity.Entry) bool { return p.State() != identity.Pending })
	}
	return nil
}

// drainFor sends the queue before table t's foreign keys are set when a
// queued INSERT is of a table t refers to: t's rows need those keys.
func (s *Session) drainFor(ctx context.Context, t *mapper.Table, fks []mapper.ForeignKey) error {
	if s.rec == nil || len(s.rec.inserts) == 0 {
		return nil
	}
	for _, fk := range fks {
		if fk.Child != t {
			continue
		}
		for _, d := range s.rec.inserts {
			if d.t == fk.Parent {
				_, err := s.sendBatch(ctx, nil)
				return err
			}
		}
	}
	return nil
}

// drainForLinks sends the queue before the join rows are built when a
// queued INSERT is of the far side of an m2m relation: a model without
// relations of its own (the labels a book lists) has its INSERT deferred,
// and a join row needs the generated keys of both sides. Without this,
// the rows were built with key 0 — caught only by a foreign key on the
// join table, else committed. It returns the table of the INSERT sent.
func (s *Session) drainForLinks(ctx context.Context) (string, error) {
	if s.rec == nil || len(s.rec.inserts) == 0 {
		return "", nil
	}
	for _, t := range s.idmap.Tables() {
		for _, r := range t.Relations {
			if r.Join == nil {
				continue
			}
			for _, d := range s.rec.inserts {
				if d.t.Type == r.Target {
					_, err := s.sendBatch(ctx, nil)
					return d.t.Name, err
				}
			}
		}
	}
	return "", nil
}
