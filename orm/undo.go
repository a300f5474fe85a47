package orm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// undo reverses one change the session made to an object or entry, so a
// failed commit or savepoint can put the session back exactly as it was.
type undo struct {
	kind undoKind
	e    *identity.Entry
	col  *mapper.Column // undoSetCol
	old  any            // undoSetCol: the field's value; undoSnap: the snapshot
	// seq orders the two logs' records against each other: a savepoint's
	// rollback undoes both, newest first (a Refresh after a flush must be
	// undone before that flush, or the flush's old snapshot is lost).
	seq uint64
}

type undoKind uint8

const (
	// Flush effects, in flushLog.
	undoInsert        undoKind = iota // the entry was inserted and entered the map
	undoSetCol                        // the flush wrote a field (generated key, version, foreign key)
	undoSnap                          // the entry's snapshot was replaced
	undoDeleteDB                      // the entry's DELETE ran
	undoDetach                        // a bulk DELETE detached the entry (old: its state)
	undoLinks                         // a flush replaced an m2m link snapshot (old: a linkUndo)
	undoOrphan                        // delete-orphan marked the entry deleted
	undoOrphanDropped                 // delete-orphan's cascade dropped the pending entry
	undoDisplace                      // an insert took the key of the entry, deleted in this transaction
	undoUpsert                        // Upsert tracked the entry and wrote its fields (old: their values; see upsert.go)
	// Intents, in intentLog (recorded only inside a savepoint).
	undoAdd         // Add made the entry pending
	undoDropPending // Delete dropped a pending entry
	undoMarkDelete  // Delete marked the entry
	undoUndelete    // Add cancelled a delete mark
	undoAttach      // Delete attached an untracked object by key
	undoRefresh     // Refresh replaced the snapshot (old) and the values
)

// broken records an internal error met where none can be returned: an
// identity transition the session's own bookkeeping should never ask for
// (see identity.TransitionError). Rather than go on with an identity map it
// cannot trust, the session refuses further statements until Rollback,
// which detaches everything.
func (s *Session) broken(err error) {
	if err != nil {
		s.lost = errors.Join(s.lost, fmt.Errorf("orm: internal error, the session's state is not to be trusted; call Rollback (%w)", err))
	}
}

func (s *Session) logFlush(u undo) {
	s.undoSeq++
	u.seq = s.undoSeq
	s.flushLog = append(s.flushLog, u)
}

// logIntent records an Add or Delete; only a savepoint can undo those, so
// outside one nothing is kept.
func (s *Session) logIntent(u undo) {
	if len(s.sps) > 0 {
		s.undoSeq++
		u.seq = s.undoSeq
		s.intentLog = append(s.intentLog, u)
	}
}

// setCol writes a field during a flush, recording its old value.
func (s *Session) setCol(e *identity.Entry, c *mapper.Column, v any) error {
	old := e.Table().Acc.Value(e.Obj(), c)
	if err := e.Table().Acc.Set(e.Obj(), c, v); err != nil {
		return fmt.Errorf("orm: %s.%s: %w", e.Table().Name, c.Name, err)
	}
	s.logFlush(undo{kind: undoSetCol, e: e, col: c, old: old})
	return nil
}

// undoFlushes reverses the flush effects recorded after mark, newest first.
func (s *Session) undoFlushes(mark int) {
	reinsert := false
	for i := len(s.flushLog) - 1; i >= mark; i-- {
		reinsert = s.undoFlush(s.flushLog[i]) || reinsert
	}
	s.flushLog = s.flushLog[:mark]
	if reinsert {
		s.sortPending()
	}
}

func (s *Session) sortPending() {
	slices.SortFunc(s.pending, func(a, b *identity.Entry) int { return cmp.Compare(a.Seq(), b.Seq()) })
}

// undoFlush reverses one flush effect; it reports whether it put an entry
// back among the pending ones (which must then be sorted again).
func (s *Session) undoFlush(u undo) (reinsert bool) {
	e := u.e
	switch u.kind {
	case undoInsert:
		st, err := s.idmap.Uninsert(e)
		s.broken(err)
		switch st {
		case identity.Transient:
			// Inserted and then deleted in the work rolled back: the
			// two cancel out, and the object is transient again.
			s.deletes = slices.DeleteFunc(s.deletes, func(d *identity.Entry) bool { return d == e })
			return false
		case identity.Pending:
		default:
			return false // expunged or bulk-deleted since: it stays out
		}
		s.pending = append(s.pending, e)
		s.trackPending(e.Obj(), e)
		reinsert = true
	case undoSetCol:
		_ = e.Table().Acc.Set(e.Obj(), u.col, u.old) // the value came from this field: it fits
	case undoSnap:
		s.broken(e.RestoreSnapshot(u.old))
	case undoDeleteDB:
		s.broken(e.Unflush())
	case undoLinks:
		s.restoreLinks(u.old.(linkUndo))
	case undoOrphan:
		// The flush, not the caller, marked it: it is persistent again.
		if e.State() == identity.Deleted {
			s.broken(e.Undelete())
			s.deletes = slices.DeleteFunc(s.deletes, func(d *identity.Entry) bool { return d == e })
		}
	case undoOrphanDropped:
		if e.State() == identity.Transient {
			s.broken(e.Repend())
			s.pending = append(s.pending, e)
			s.trackPending(e.Obj(), e)
			reinsert = true
		}
	case undoDisplace:
		// The new object that took e's key is out of the map again
		// (its undoInsert came later in the log, so it ran first).
		s.broken(s.idmap.Reinstate(e))
	case undoUpsert:
		s.undoUpsert(e, u.old)
	case undoDetach:
		// A bulk DELETE detached the entry; its row is back.
		s.broken(s.idmap.Reattach(e, u.old.(identity.State)))
		if e.State() == identity.Deleted {
			s.deletes = append(s.deletes, e)
		}
	}
	return reinsert
}

// undoBoth reverses the flush effects and intents recorded after the
// marks, newest first across the two logs: a savepoint's rollback.
func (s *Session) undoBoth(flushMark, intentMark int) {
	reinsert := false
	for f, i := len(s.flushLog)-1, len(s.intentLog)-1; f >= flushMark || i >= intentMark; {
		if i >= intentMark && (f < flushMark || s.intentLog[i].seq > s.flushLog[f].seq) {
			s.undoIntent(s.intentLog[i])
			i--
		} else {
			reinsert = s.undoFlush(s.flushLog[f]) || reinsert
			f--
		}
	}
	s.flushLog, s.intentLog = s.flushLog[:flushMark], s.intentLog[:intentMark]
	if reinsert {
		s.sortPending()
	}
}

// undoIntent reverses one Add, Delete or Refresh.
func (s *Session) undoIntent(u undo) {
	e := u.e
	switch u.kind {
	case undoAdd:
		if s.pendingByObj[e.Obj()] == e {
			s.broken(s.dropPending(e))
		}
		s.release(e)
	case undoDropPending:
		s.broken(e.Repend())
		s.pending = append(s.pending, e)
		s.trackPending(e.Obj(), e)
		slices.SortFunc(s.pending, func(a, b *identity.Entry) int { return cmp.Compare(a.Seq(), b.Seq()) })
	case undoMarkDelete:
		if e.State() == identity.Deleted {
			s.broken(e.Undelete())
		}
		s.deletes = slices.DeleteFunc(s.deletes, func(d *identity.Entry) bool { return d == e })
	case undoUndelete:
		// Unless Expunge let it go since: it stays detached.
		if e.State() != identity.Detached {
			s.broken(e.MarkDeleted())
			s.deletes = append(s.deletes, e)
		}
	case undoAttach:
		s.idmap.Detach(e)
	case undoRefresh:
		s.broken(e.RestoreSnapshot(u.old)) // rollbackToLocked then restores the values from it
	}
}

// savepoint is an open SAVEPOINT and the log positions at its start.
type savepoint struct {
	name       string
	flushMark  int
	intentMark int
}

// Savepoint runs fn in a nested transaction. Pending changes are flushed
// first. If fn returns an error (or panics), the database rolls back to the
// savepoint and so does the session: objects added inside fn are dropped,
// deletions marked inside are unmarked, inserts and updates flushed inside
// are undone in memory, and tracked objects changed inside get their
// values from before the savepoint back. The error (or panic) is passed
// on. If fn succeeds, its changes are flushed and the savepoint released.
//
// fn runs on the caller's goroutine and uses the same session.
func (s *Session) Savepoint(ctx context.Context, fn func() error) (err error) {
	sp, err := s.openSavepoint(ctx)
	if err != nil {
		return err
	}

	panicked := true
	defer func() {
		if !panicked {
			return
		}
		// Roll back to the savepoint, then let the panic continue.
		if s.busy.CompareAndSwap(false, true) {
			s.rollbackToLocked(context.WithoutCancel(ctx), sp)
			s.leave()
		}
	}()
	ferr := fn()
	panicked = false

	if err := s.enter(); err != nil {
		return errors.Join(ferr, err) // fn's own error first: it says what happened
	}
	defer s.leave()
	if len(s.sps) == 0 || s.sps[len(s.sps)-1] != sp {
		// fn rolled back or committed the whole session: nothing to end.
		return ferr
	}
	if ferr == nil {
		if ferr = s.flushLocked(ctx, false); ferr == nil {
			s.sps = s.sps[:len(s.sps)-1]
			if err := s.savepointExec(ctx, s.e.caps.ReleaseSavepoint+sp.name); err != nil {
				return fmt.Errorf("orm: release savepoint: %w", err)
			}
			return nil
		}
		if len(s.sps) == 0 || s.sps[len(s.sps)-1] != sp {
			return ferr // the failed flush already rolled back
		}
	}
	if err := s.rollbackToLocked(ctx, sp); err != nil {
		return errors.Join(ferr, err)
	}
	return ferr
}

// openSavepoint flushes, opens the transaction if needed and sets a
// SAVEPOINT. The deferred leave keeps the session usable even if a flush
// panics (a Valuer of the user's, say).
func (s *Session) openSavepoint(ctx context.Context) (savepoint, error) {
	if err := s.enter(); err != nil {
		return savepoint{}, err
	}
	defer s.leave()
	if err := s.flushLocked(ctx, false); err != nil {
		return savepoint{}, err
	}
	if err := s.begin(ctx, true); err != nil {
		return savepoint{}, err
	}
	sp := savepoint{name: fmt.Sprintf("tally_sp%d", len(s.sps)+1), flushMark: len(s.flushLog), intentMark: len(s.intentLog)}
	if err := s.savepointExec(ctx, s.e.caps.Savepoint+sp.name); err != nil {
		return savepoint{}, fmt.Errorf("orm: savepoint: %w", err)
	}
	s.sps = append(s.sps, sp)
	return sp, nil
}

// rollbackToLocked rolls the database and the session back to sp and ends it.
func (s *Session) rollbackToLocked(ctx context.Context, sp savepoint) error {
	for len(s.sps) > 0 && s.sps[len(s.sps)-1] != sp {
		s.sps = s.sps[:len(s.sps)-1]
	}
	if len(s.sps) == 0 {
		return nil
	}
	s.sps = s.sps[:len(s.sps)-1]
	if err := s.savepointExec(ctx, s.e.caps.RollbackToSavepoint+sp.name); err != nil {
		s.loseTx(ctx, err)
		return s.lost
	}
	s.undoBoth(sp.flushMark, sp.intentMark)
	// Everything was flushed when the savepoint began, so any tracked object
	// that differs from its snapshot was changed inside it: put it back.
	s.idmap.Each(func(e *identity.Entry) bool {
		if e.State() == identity.Persistent {
			if s.cols = e.Table().Acc.Changed(e.Obj(), e.Snap(), s.cols[:0]); len(s.cols) > 0 {
				e.Table().Acc.Restore(e.Obj(), e.Snap())
			}
		}
		return true
	})
	return nil
}

// savepointExec runs a SAVEPOINT statement, reported with Op OpSavepoint.
func (s *Session) savepointExec(ctx context.Context, stmt string) error {
	if err := s.begin(ctx, true); err != nil {
		return err
	}
	s.stats.Statements++
	s.stats.Execs++
	_, err := s.e.execOp(ctx, s.tx, OpSavepoint, stmt, nil)
	return err
}

// loseTx handles a transaction the database ended on its own, seen when a
// savepoint cannot be rolled back to (MySQL rolls the whole transaction
// back on a deadlock). The session rolls back too, undoes what its
// flushes did in memory, and refuses further statements until Rollback.
func (s *Session) loseTx(ctx context.Context, cause error) {
	_ = s.endTx(context.WithoutCancel(ctx), false)
	s.stats.Rollbacks++
	s.undoFlushes(0)
	// Nothing of the transaction committed, so running the whole work
	// again is safe: the error is retryable, and Do retries it.
	s.lost = fmt.Errorf("orm: the database rolled back the whole transaction (%w); call Rollback and start the work again (%w)", cause, ErrRetryable)
}
