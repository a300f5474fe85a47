package orm

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the session's autocommit paths: the snapshot option that
// makes a session begin at its first read, the write-side query that
// begins where a read would not, and the single-statement commit.

// WithSnapshot makes the session's reads agree with each other: its first
// statement, read or write, begins the transaction, REPEATABLE READ on
// MySQL/MariaDB and PostgreSQL (a deferred transaction on SQLite), so
// every read sees the one snapshot taken at the first of them. Without
// it, reads before the session's first write run in autocommit, each
// seeing the data committed when it runs (see Session).
//
// On PostgreSQL a REPEATABLE READ transaction that writes a row another
// transaction changed since its snapshot fails with a serialization
// failure (ErrRetryable), which Engine.Do retries.
func WithSnapshot() SessionOption { return func(s *Session) { s.snapshot = true } }

// Snapshot makes the sessions Do creates consistent-snapshot sessions
// (WithSnapshot).
func Snapshot() DoOption {
	return func(c *doConfig) { c.sessionOpts = append(c.sessionOpts, WithSnapshot()) }
}

// writeQuery runs a statement that writes and returns rows (INSERT ...
// RETURNING): in the transaction, opening it as a write would, or alone
// in a single-statement commit.
func (s *Session) writeQuery(ctx context.Context, query string, args []any) (*sql.Rows, observation, error) {
	if s.readOnly {
		return nil, observation{}, refuseWrite("a statement that writes")
	}
	if s.alone.armed && s.tx == nil {
		return s.queryAlone(ctx, query, args)
	}
	if s.rec != nil {
		return nil, observation{}, errNotBatchable
	}
	if err := s.begin(ctx, true); err != nil {
		return nil, observation{}, err
	}
	s.stats.Statements++
	s.stats.Queries++
	s.txWrite = true
	return s.e.query(ctx, s.tx, query, args)
}

// aloneCommit is the state of a single-statement commit: armed while its
// flush runs, the connection its statement runs on, and whether the
// statement may have reached the database.
type aloneCommit struct {
	armed bool
	conn  *sql.Conn
	sent  bool
}

// errAloneSecond guards the single-statement commit: flushSize never
// counts fewer statements than the flush sends, so this is not reached.
var errAloneSecond = errors.New("orm: internal error: a single-statement commit had a second statement to send")

// miscountFlushes makes Commit take every flush for a single statement:
// a test hook, so that the guard against a miscount can be seen at work.
var miscountFlushes atomic.Bool

// aloneSecondError describes err, a single-statement commit stopped by
// errAloneSecond: the statement sent alone has committed by itself.
func aloneSecondError(err error) error {
	return &commitUnknownError{
		msg: "orm: internal error: a commit counted as one statement had more to send; the first, sent alone in autocommit, has committed and the rest has not. The session was restored as before Commit, so it no longer matches the database: roll it back and read again",
		err: err,
	}
}

// commitAlone flushes with no transaction open, sending the flush's one
// statement (if any) in autocommit, and does a commit's bookkeeping. The
// session is restored as after any failed flush. Once the statement was
// sent, only an error the database returned for it (it did not run), a
// version mismatch (it matched no row) or driver.ErrBadConn (which a
// driver returns only when it sent nothing) proves that nothing committed;
// any other failure (a lost connection, a cancelled ctx, reading back
// generated keys) makes the error match ErrCommitUnknown.
func (s *Session) commitAlone(ctx context.Context) error {
	s.alone = aloneCommit{armed: true}
	err := s.flushLocked(ctx, false)
	a := s.alone
	s.alone = aloneCommit{}
	if a.conn != nil {
		a.conn.Close()
	}
	if err != nil {
		if errors.Is(err, errAloneSecond) {
			return aloneSecondError(err)
		}
		if a.sent && !s.e.serverReply(err) && !errors.Is(err, ErrStaleData) && !errors.Is(err, driver.ErrBadConn) {
			return s.e.commitLost(err, true)
		}
		return err
	}
	if !a.sent {
		return nil // nothing to write
	}
	s.committed()
	return nil
}

// aloneConn prepares the single statement: it converts the arguments and
// takes a connection from the pool, so that failures before anything is
// sent are known not to have committed.
func (s *Session) aloneConn(ctx context.Context, args []any) ([]any, error) {
	if s.alone.sent {
		return nil, errAloneSecond
	}
	args, err := valuerArgs(args)
	if err != nil {
		return nil, err
	}
	s.primary = true // read-your-writes: see replicas.go
	if s.alone.conn == nil {
		c, err := s.e.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("orm: take a connection: %w", classify(s.e.dialect, err))
		}
		s.alone.conn = c
	}
	s.alone.sent = true
	s.stats.Statements++
	return args, nil
}

// execAlone runs the single statement of a commit in autocommit.
func (s *Session) execAlone(ctx context.Context, query string, args []any) (sql.Result, error) {
	args, err := s.aloneConn(ctx, args)
	if err != nil {
		return nil, err
	}
	s.stats.Execs++
	return s.e.exec(ctx, s.alone.conn, query, args)
}

// queryAlone runs the single statement of a commit, one that returns rows
// (INSERT ... RETURNING), in autocommit.
func (s *Session) queryAlone(ctx context.Context, query string, args []any) (*sql.Rows, observation, error) {
	args, err := s.aloneConn(ctx, args)
	if err != nil {
		return nil, observation{}, err
	}
	s.stats.Queries++
	return s.e.query(ctx, s.alone.conn, query, args)
}

// flushSize returns how many statements the next flush would send, up to
// 2, meaning two or more. It never counts fewer than the flush sends:
// where it cannot tell cheaply (a per-row INSERT that must read generated
// columns back, an error the flush would report) it says 2. With
// relations it first does what the flush does before its statements:
// adds the new related objects and copies parent keys into foreign-key
// columns, which can make a tracked object dirty (or, when the parent is
// new, will make it dirty once the parent's INSERT gives it a key: a
// second statement). Both are logged like the flush's own work and done
// again, unchanged, by the flush. A statement with a Before hook counts
// as two when the session tracks other objects the hook could change.
func (s *Session) flushSize() int {
	rel := s.hasRelations()
	for _, e := range s.pending {
		rel = rel || len(e.Table().Relations) > 0
	}
	if rel {
		if s.cascadeLocked() != nil {
			return 2
		}
		p, err := s.flushOrder()
		if err != nil {
			return 2
		}
		waits := 0 // tracked objects whose UPDATE waits for a new parent's key
		for _, t := range p.order {
			w, err := s.syncForeignKeys(t)
			if err != nil {
				return 2
			}
			waits += w
		}
		if waits > 0 || s.rowOrderWork(&p) || s.mayWriteLinks(p.order) {
			return 2
		}
	}
	d := s.e.dialect
	n := 0
	// hooked: a BeforeInsert or BeforeUpdate hook runs before the
	// statement; others: the tracked objects it does not write.
	hooked, others := false, s.idmap.Len()
	// Pending inserts, by table, chunked as insert chunks them.
	var counted []*mapper.Table
	for _, p := range s.pending {
		t := p.Table()
		if containsTable(counted, t) {
			continue
		}
		counted = append(counted, t)
		hooked = hooked || hooksOf(t)&hookBeforeInsert != 0
		rows := 0
		for _, e := range s.pending {
			if e.Table() == t {
				rows++
			}
		}
		ret, chunk := insertShape(s.e, t)
		if len(ret) > 0 && !d.Returning() && !(len(ret) == 1 && ret[0].PK && len(t.PK) == 1) {
			return 2 // each row also needs a SELECT of its generated columns
		}
		if n += (rows + chunk - 1) / chunk; n > 1 {
			return 2
		}
	}
	// Deletes: one per row with a version column, else IN batches; on a
	// soft-delete model the soft deletes (UPDATEs) and the hard ones
	// (HardDelete's DELETEs) go in batches of their own.
	counted = counted[:0]
	for _, x := range s.deletes {
		if x.Flushed() {
			continue
		}
		t := x.Table()
		if t.Version != nil {
			n++
		} else if !containsTable(counted, t) {
			counted = append(counted, t)
			soft, hard := 0, 0
			for _, e := range s.deletes {
				if e.Table() == t && !e.Flushed() {
					if s.keepsRow(e) {
						soft++
					} else {
						hard++
					}
				}
			}
			sper, hper := softDeleteBatch(d, t), deleteBatch(d, t)
			n += (soft+sper-1)/sper + (hard+hper-1)/hper
		}
		if n > 1 {
			return 2
		}
	}
	// Updates: one per changed object.
	s.idmap.Each(func(e *identity.Entry) bool {
		if e.State() == identity.Persistent {
			if s.cols = e.Table().Acc.Changed(e.Obj(), e.Snap(), s.cols[:0]); len(s.cols) > 0 {
				n++
				others--
				hooked = hooked || hooksOf(e.Table())&hookBeforeUpdate != 0
			}
		}
		return n <= 1
	})
	if n == 1 && hooked && others > 0 {
		// A hook should change only its own object, but one that changes
		// another tracked object adds that object's UPDATE to the flush,
		// after the statement counted: sent alone, that one would have
		// committed by itself.
		return 2
	}
	return min(n, 2)
}

// mayWriteLinks reports whether the flush may write many-to-many join
// rows: a table with work in it declares a many-to-many relation. Which
// rows (if any) is known only as the flush compares the link snapshots,
// so the count errs on the side of more.
func (s *Session) mayWriteLinks(tables []*mapper.Table) bool {
	if !s.e.reg.HasM2M() {
		return false
	}
	for _, t := range tables {
		for _, r := range t.Relations {
			if r.Join != nil {
				return true
			}
		}
	}
	return false
}

func containsTable(ts []*mapper.Table, t *mapper.Table) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}
