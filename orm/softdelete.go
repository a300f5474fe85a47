package orm

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// This file holds soft delete: a model with a db:"...,softdelete" column
// keeps its rows when deleted, with the column set to the time of the
// deletion, and reads skip them (see "Soft delete" in the package
// documentation).

// WithDeleted makes the query see soft-deleted rows too: reads return
// them, Count counts them, and UpdateAll changes them. On a model without
// a softdelete column it changes nothing.
func (q *Q[T]) WithDeleted() *Q[T] {
	c := q.clone()
	c.withDeleted = true
	return c
}

// HardDeleteAll deletes every matching row for good, in one statement,
// where DeleteAll on a model with a softdelete column only marks them
// deleted. Like DeleteAll it needs a Where (or AllRows), detaches the
// tracked objects it deletes, and flushes pending changes first; it
// matches soft-deleted rows too only with WithDeleted.
func (q *Q[T]) HardDeleteAll(ctx context.Context) (int64, error) {
	c := q.clone()
	c.hardDelete = true
	return c.DeleteAll(ctx)
}

// HardDelete marks objects for deletion like Delete, but the flush
// deletes their rows for good even when the model has a softdelete
// column, whose Delete only sets that column. Cascades follow Delete's
// rules (and their children are soft-deleted if their own model is).
func (s *Session) HardDelete(objs ...any) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	for _, obj := range objs {
		if err := s.deleteLocked(obj); err != nil {
			return err
		}
		t, _ := s.tableOf(obj) // deleteLocked checked it
		if e := s.lookup(t, obj); e != nil && e.State() == identity.Deleted && t.SoftDelete != nil {
			if s.hardDeletes == nil {
				s.hardDeletes = map[*identity.Entry]bool{}
			}
			s.hardDeletes[e] = true
		}
	}
	return nil
}

// hardDeleted returns obj's entry when it carries a HardDelete mark but
// is not deleted now: a savepoint rolled the delete back, not the mark. A
// Delete of it then drops the mark, so that this delete is the soft one the
// caller asked for. (A mark whose delete still stands is kept: Delete of
// an object already deleted changes nothing.)
func (s *Session) hardDeleted(obj any) *identity.Entry {
	if len(s.hardDeletes) == 0 {
		return nil
	}
	t, err := s.tableOf(obj)
	if err != nil {
		return nil
	}
	if e := s.lookup(t, obj); e != nil && s.hardDeletes[e] && e.State() != identity.Deleted {
		return e
	}
	return nil
}

// keepsRow reports whether the deleted entry e is soft-deleted: its row
// stays, and so do its many-to-many join rows, so that a row brought back
// (deleted_at set to NULL again) has its links.
func (s *Session) keepsRow(e *identity.Entry) bool {
	return e.Table().SoftDelete != nil && !s.hardDeletes[e]
}

// filters returns the query's conditions, with the one that skips
// soft-deleted rows added unless WithDeleted asked for them.
func (q *Q[T]) filters() []string {
	if q.t == nil || q.t.SoftDelete == nil || q.withDeleted {
		return q.where
	}
	// Qualified by the table: a projection may join another table that
	// has a column of the same name.
	d := q.s.e.dialect
	return append(q.where[:len(q.where):len(q.where)], liveCond(d, d.Quote(q.t.Name)+".", q.t))
}

// liveCond is the condition a row that is not soft-deleted meets, its
// column qualified with qual (a quoted table name and a dot, or "").
func liveCond(d dialect.Dialect, qual string, t *mapper.Table) string {
	return qual + d.Quote(t.SoftDelete.Name) + " IS NULL"
}

// appendLive appends " AND <t's softdelete column> IS NULL" for a model
// with one, so that the rows a Load reads skip soft-deleted ones.
func appendLive(b []byte, d dialect.Dialect, qual string, t *mapper.Table) []byte {
	if t.SoftDelete == nil {
		return b
	}
	return append(append(b, " AND "...), liveCond(d, qual, t)...)
}

// deleteAllStmt is DeleteAll's statement and its arguments: a DELETE, or
// on a model with a softdelete column (and not HardDeleteAll) an UPDATE
// that sets it on the matching rows not deleted yet, bumping the version
// as UpdateAll does. The second condition list is the one that selects
// the affected rows, for the tracked objects to detach.
func (q *Q[T]) deleteAllStmt() (string, []any, []string) {
	d, t := q.s.e.dialect, q.t
	where := q.filters()
	if t.SoftDelete == nil || q.hardDelete {
		return deleteAllSQL(d, t.Name, where), q.args, where
	}
	if q.withDeleted {
		// A row deleted already keeps the time of its deletion.
		where = append(q.where[:len(q.where):len(q.where)], liveCond(d, d.Quote(t.Name)+".", t))
	}
	args := append([]any{stampNow()}, q.args...)
	return updateAllSQL(d, t, []string{t.SoftDelete.Name}, where), args, where
}

// softDeleted reports whether obj's softdelete column is set.
func softDeleted(t *mapper.Table, obj any) bool {
	if t.SoftDelete == nil {
		return false
	}
	switch v := t.Acc.Value(obj, t.SoftDelete).(type) {
	case nil:
		return false
	case sql.NullTime:
		return v.Valid
	case *time.Time:
		return v != nil
	}
	return true
}

// softDelete sends the soft deletes among ents, rows of a model with a
// softdelete column, and returns those HardDelete asked to delete for
// good. Each row gets the column set to now, where it is not set already;
// with a version column, one statement per row checks and bumps the
// version (no row matched is a *StaleDataError, as for a DELETE), else
// the rows go in batches by key. The objects get the time (and version)
// too, logged like every flush write, and are deleted objects from then
// on: detached at commit.
func (s *Session) softDelete(ctx context.Context, t *mapper.Table, ents []*identity.Entry) ([]*identity.Entry, error) {
	var hard, soft []*identity.Entry
	for _, e := range ents {
		if !s.keepsRow(e) {
			hard = append(hard, e)
		} else {
			soft = append(soft, e)
		}
	}
	d, sd := s.e.dialect, t.SoftDelete
	at := stampNow() // bound as it is; each object gets a value of its own
	done := func(e *identity.Entry) error {
		// A row read soft-deleted already (WithDeleted) keeps the time of
		// its first deletion, and so does its object.
		if !softDeleted(t, e.Snap()) {
			if err := s.setCol(e, sd, timeValue(sd, at)); err != nil {
				return err
			}
		}
		return s.markDeleted(e)
	}
	if v := t.Version; v != nil {
		q := s.e.stmts.get(stmtKey{t, "softdelete-version", 1}, func() string { return softDeleteSQL(d, t, 1) })
		for _, e := range soft {
			old, _ := keyval.Int64(t.Acc.Value(e.Snap(), v))
			args := append([]any{at, old + 1}, keyValues(t, e.Snap())...)
			res, err := s.exec(ctx, q, append(args, old))
			if err != nil {
				return nil, err
			}
			if rows, err := res.RowsAffected(); err == nil && rows == 0 {
				return nil, &StaleDataError{Op: "UPDATE", Table: t.Name, Key: keyValues(t, e.Snap())}
			}
			if err := s.setCol(e, v, old+1); err != nil {
				return nil, err
			}
			if err := done(e); err != nil {
				return nil, err
			}
		}
		return hard, nil
	}
	per := softDeleteBatch(d, t)
	for len(soft) > 0 {
		n := min(per, len(soft))
		batch := soft[:n]
		soft = soft[n:]
		q := s.e.stmts.get(stmtKey{t, "softdelete-in", n}, func() string { return softDeleteSQL(d, t, n) })
		args := make([]any, 1, 1+n*len(t.PK))
		args[0] = at
		for _, e := range batch {
			args = append(args, keyValues(t, e.Snap())...)
		}
		// As for a DELETE, a row deleted (softly or not) by someone else
		// already is not an error: it is gone, as asked.
		if _, err := s.exec(ctx, q, args); err != nil {
			return nil, err
		}
		for _, e := range batch {
			if err := done(e); err != nil {
				return nil, err
			}
		}
	}
	return hard, nil
}

// softDeleteBatch is how many rows of t (which has no version column)
// one soft delete's UPDATE ... IN takes: one parameter fewer than a
// DELETE's batch, the time. For softDelete and flushSize alike.
func softDeleteBatch(d dialect.Dialect, t *mapper.Table) int {
	return max(min((d.MaxParams()-1)/len(t.PK), deleteBatch(d, t)), 1)
}

// softDeleteSQL builds the soft delete of n rows of t. With a version
// column (n is 1): UPDATE t SET sd = COALESCE(sd, ?), v = ? WHERE pk = ?
// AND v = ?; else UPDATE t SET sd = ? WHERE pk IN (...) AND sd IS NULL
// (row values for a composite key). A row soft-deleted already keeps the
// time of its first deletion. The version check alone says whether the
// row is as read: a condition sd IS NULL there made the delete of a row
// read soft-deleted (WithDeleted) match nothing, a false ErrStaleData.
func softDeleteSQL(d dialect.Dialect, t *mapper.Table, n int) string {
	b := append([]byte("UPDATE "), d.Quote(t.Name)...)
	b = append(b, " SET "...)
	b = append(b, d.Quote(t.SoftDelete.Name)...)
	b = append(b, " = "...)
	if v := t.Version; v != nil {
		b = append(b, "COALESCE("...)
		b = append(b, d.Quote(t.SoftDelete.Name)...)
		b = append(b, ", "...)
		b = d.AppendPlaceholder(b, 1)
		b = append(b, "), "...)
		b = append(b, d.Quote(v.Name)...)
		b = append(b, " = "...)
		b = d.AppendPlaceholder(b, 2)
		b = append(b, " WHERE "...)
		b = appendKeyWhere(b, d, t, 3)
		b = append(b, " AND "...)
		b = append(b, d.Quote(v.Name)...)
		b = append(b, " = "...)
		b = d.AppendPlaceholder(b, 3+len(t.PK))
		return string(b)
	}
	b = d.AppendPlaceholder(b, 1)
	b = append(b, " WHERE "...)
	b = appendKeyIn(b, d, t, 2, n)
	return string(appendLive(b, d, "", t))
}

// notFoundSoftDeleted is Get's answer for a row or tracked object whose
// softdelete column is set.
func notFoundSoftDeleted(t *mapper.Table, key []any) error {
	return fmt.Errorf("%w: %s with key %v is soft-deleted", ErrNotFound, t.Name, key)
}
