package orm

import (
	"context"
	"errors"
	"slices"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// In a pipelined commit, consecutive updates of one table that change the
// same columns go as one statement, which the server runs far faster than
// as many statements (one parse, one plan, one index walk):
//
//	UPDATE t SET c = CASE WHEN id = ? THEN ? WHEN id = ? THEN ? ... ELSE c END,
//	             v = v + 1
//	WHERE id IN (?, ?, ...) AND v = CASE WHEN id = ? THEN ? ... ELSE v END
//
// A run is batched only when its objects' integer keys rise, and the
// statement locks its rows in key order (ORDER BY on MySQL; on
// PostgreSQL, whose UPDATE has none, a locking subquery read in key
// order): the order in which the one-per-object statements would lock
// them. Users order their work to avoid deadlocks between transactions
// that touch the same rows, and a single statement would otherwise lock
// in whatever order the server visits the rows (PostgreSQL's bitmap scans
// go in physical order, which every update changes).
//
// The ELSE branch gives the CASE its column's type, so PostgreSQL types
// the parameters as the plain UPDATE's, with no cast. The statement must
// affect exactly as many rows as it has objects (BatchStmt.Rows), checked
// at the server like a single update's version check: a mismatch fails
// the round trip before COMMIT, and the commit runs again the usual way,
// one UPDATE per object in order, which names the stale object — and
// which is also the answer to the one thing a single statement does
// differently: a unique constraint is checked row by row in the order the
// server visits them, so values that move along a chain of rows (a to b,
// b to c) can collide in one statement where the ordered statements pass.

// SQLite runs the same batched UPDATE in its ordinary (not pipelined)
// flush, for tables without a version column: in process, one statement
// instead of several saves each one's Go and VDBE start-up. It visits the
// rows of an IN on the integer key in key order, checking unique
// constraints row by row as the ordered statements would, and it rolls
// back only the failing statement (written UPDATE OR ABORT, whatever
// conflict clause the schema declares), so the transaction goes on:
// a unique or foreign-key violation, or a row count that is not exactly
// the number of objects (a row gone), is answered by the one-per-object
// UPDATEs, which name the missing object with ErrStaleData or fail as
// before. Without a version column they write the same values again, so
// running them after a partial batch changes nothing. Tables with one
// are not batched here: a stale row found after the batch had bumped the
// others' versions would make the ordered UPDATEs blame the wrong object.
// The one difference left is SQLite's: foreign keys are checked at the
// end of a statement, so a run whose intermediate states break a
// self-referencing key passes batched where ordered statements fail.

// maxBatchedUpdate bounds the objects of one batched UPDATE: each CASE
// has a branch per object, which the server tries in turn for each row.
const maxBatchedUpdate = 200

// updates writes ups, the changed objects of t, in order: where
// batchesUpdates says so, a run of two or more that set the same columns
// is one batched UPDATE; otherwise one UPDATE per object.
func (s *Session) updates(ctx context.Context, t *mapper.Table, ups []update) error {
	for i := 0; i < len(ups); {
		j := i + 1
		if s.batchesUpdates(t) && batchableUpdate(ups[i].cols) {
			limit := min(maxBatchedUpdate, s.e.dialect.MaxParams()/batchUpdateParams(t, ups[i].cols))
			prev := snapKey(t, ups[i])
			for j < len(ups) && j-i < limit && slices.Equal(ups[j].cols, ups[i].cols) {
				k := snapKey(t, ups[j])
				if k <= prev {
					break
				}
				prev = k
				j++
			}
		}
		var err error
		if j-i > 1 {
			err = s.updateBatch(ctx, t, ups[i:j])
		} else {
			err = s.update(ctx, ups[i])
		}
		if err != nil {
			return err
		}
		i = j
	}
	return nil
}

// batchesUpdates reports whether the flush sends runs of t's updates as
// one statement: in a pipelined commit, or on SQLite (see above) outside
// a single-statement commit, which has room for one statement only.
func (s *Session) batchesUpdates(t *mapper.Table) bool {
	if !t.IntKey() {
		return false
	}
	if s.rec != nil {
		return true
	}
	return s.e.dialect.Name() == "sqlite" && t.Version == nil && !s.alone.armed
}

// updateEach writes ups one UPDATE per object, in order.
func (s *Session) updateEach(ctx context.Context, ups []update) error {
	for _, u := range ups {
		if err := s.update(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// snapKey is the integer key of u's object as last loaded or flushed.
func snapKey(t *mapper.Table, u update) int64 {
	k, _ := keyval.Int64(t.Acc.Value(u.e.Snap(), t.PK[0]))
	return k
}

// batchableUpdate reports whether an object whose changed columns are
// cols can be part of a batched UPDATE: it writes at least one column and
// does not change its key (update reports that, one object at a time).
func batchableUpdate(cols []*mapper.Column) bool {
	set := false
	for _, c := range cols {
		if c.PK {
			return false
		}
		set = set || updateSet(c)
	}
	return set
}

// batchUpdateParams is how many parameters one object takes in a batched
// UPDATE of cols, at most (a dialect with positional placeholders repeats
// the key in every CASE): its key in IN, and a key and a value in each
// CASE.
func batchUpdateParams(t *mapper.Table, cols []*mapper.Column) int {
	per := 1
	for _, c := range cols {
		if updateSet(c) {
			per += 2
		}
	}
	if t.Version != nil {
		per += 2
	}
	return per
}

// updateBatch writes ups, two or more objects of t (whose key is one
// integer column, see updates) that changed the same columns, as one
// UPDATE that must match every one of them.
func (s *Session) updateBatch(ctx context.Context, t *mapper.Table, ups []update) error {
	d := s.e.dialect
	var set []*mapper.Column
	for _, c := range ups[0].cols {
		if updateSet(c) {
			set = append(set, c)
		}
	}
	// vals holds each object's key, new column values and old version;
	// row i's start at i*width.
	width := 1 + len(set)
	if t.Version != nil {
		width++
	}
	vals := make([]any, 0, len(ups)*width)
	olds := make([]int64, len(ups))
	for i, u := range ups {
		e := u.e
		vals = append(vals, t.Acc.Value(e.Snap(), t.PK[0]))
		for _, c := range set {
			vals = append(vals, t.Acc.Value(e.Obj(), c))
		}
		if v := t.Version; v != nil {
			olds[i], _ = keyval.Int64(t.Acc.Value(e.Snap(), v))
			vals = append(vals, olds[i])
		}
	}
	pk := d.Quote(t.PK[0].Name)
	b := batchSQL{d: d, pk: pk, vals: vals, numbered: string(d.AppendPlaceholder(nil, 2)) != "?"}
	b.sql = append(b.sql, "UPDATE "...)
	if s.rec == nil {
		b.sql = append(b.sql, "OR ABORT "...) // SQLite (see above)
	}
	b.sql = append(b.sql, d.Quote(t.Name)...)
	b.sql = append(b.sql, " SET "...)
	for k, c := range set {
		if k > 0 {
			b.sql = append(b.sql, ", "...)
		}
		b.sql = append(b.sql, d.Quote(c.Name)...)
		b.sql = append(b.sql, " = "...)
		b.caseOf(len(ups), width, 1+k, c)
	}
	if v := t.Version; v != nil {
		q := d.Quote(v.Name)
		b.sql = append(b.sql, ", "...)
		b.sql = append(b.sql, q...)
		b.sql = append(b.sql, " = "...)
		b.sql = append(b.sql, q...)
		b.sql = append(b.sql, " + 1"...)
	}
	b.sql = append(b.sql, " WHERE "...)
	if d.Name() == "postgres" {
		// Lock the rows in key order first (see above).
		b.sql = append(b.sql, pk...)
		b.sql = append(b.sql, " = ANY(ARRAY(SELECT "...)
		b.sql = append(b.sql, pk...)
		b.sql = append(b.sql, " FROM "...)
		b.sql = append(b.sql, d.Quote(t.Name)...)
		b.sql = append(b.sql, " WHERE "...)
		b.keyIn(len(ups), width)
		b.sql = append(b.sql, " ORDER BY "...)
		b.sql = append(b.sql, pk...)
		b.sql = append(b.sql, " FOR UPDATE))"...)
	} else {
		b.keyIn(len(ups), width)
	}
	if v := t.Version; v != nil {
		b.sql = append(b.sql, " AND "...)
		b.sql = append(b.sql, d.Quote(v.Name)...)
		b.sql = append(b.sql, " = "...)
		b.caseOf(len(ups), width, width-1, v)
	}
	if d.Name() == "mysql" {
		b.sql = append(b.sql, " ORDER BY "...)
		b.sql = append(b.sql, pk...)
	}
	args := b.vals
	if !b.numbered {
		args = b.args
	}
	res, err := s.exec(ctx, string(b.sql), args)
	if s.rec == nil {
		// SQLite, in process: the statement has run (see above).
		if err != nil {
			if errors.Is(err, ErrUniqueViolation) || errors.Is(err, ErrForeignKeyViolation) {
				return s.updateEach(ctx, ups)
			}
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != int64(len(ups)) {
			return s.updateEach(ctx, ups)
		}
	} else {
		if err != nil {
			return err
		}
		pr, ok := res.(*plannedResult)
		if !ok {
			return errors.New("orm: internal error: a batched UPDATE outside a pipelined commit")
		}
		pr.checked, pr.want = true, int64(len(ups))
	}
	for i, u := range ups {
		if v := t.Version; v != nil {
			if err := s.setCol(u.e, v, olds[i]+1); err != nil {
				return err
			}
		}
		if err := s.resnapshot(u.e); err != nil {
			return err
		}
	}
	return nil
}

// batchSQL builds a batched statement over vals, the values of its rows,
// each row's key first: with numbered placeholders ($1) a value is
// written once and referred to by number wherever it is used; with
// positional ones (?) each use is a placeholder of its own and the value
// goes into args again.
type batchSQL struct {
	d        dialect.Dialect
	pk       string // the key column, quoted
	sql      []byte
	vals     []any
	numbered bool
	args     []any // the positional arguments, in the order of their placeholders
}

// ph appends the placeholder of vals[i].
func (b *batchSQL) ph(i int) {
	if b.numbered {
		b.sql = b.d.AppendPlaceholder(b.sql, i+1)
		return
	}
	b.sql = append(b.sql, '?')
	b.args = append(b.args, b.vals[i])
}

// caseOf appends CASE WHEN pk = <row i's key> THEN <row i's value at
// off> ... ELSE col END for n rows of width values.
func (b *batchSQL) caseOf(n, width, off int, col *mapper.Column) {
	b.sql = append(b.sql, "CASE"...)
	for i := range n {
		b.sql = append(b.sql, " WHEN "...)
		b.sql = append(b.sql, b.pk...)
		b.sql = append(b.sql, " = "...)
		b.ph(i * width)
		b.sql = append(b.sql, " THEN "...)
		b.ph(i*width + off)
	}
	b.sql = append(b.sql, " ELSE "...)
	b.sql = append(b.sql, b.d.Quote(col.Name)...)
	b.sql = append(b.sql, " END"...)
}

// keyIn appends "pk IN (?, ...)" for the keys of n rows of width values.
func (b *batchSQL) keyIn(n, width int) {
	b.sql = append(b.sql, b.pk...)
	b.sql = append(b.sql, " IN ("...)
	for i := range n {
		if i > 0 {
			b.sql = append(b.sql, ", "...)
		}
		b.ph(i * width)
	}
	b.sql = append(b.sql, ')')
}
