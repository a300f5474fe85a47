package orm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// Conflict says what Upsert does with an object whose row exists already,
// built by [OnConflict]: OnConflict("email").DoUpdate("name", "age")
// overwrites those columns of the existing row, DoNothing keeps it. A
// Conflict is an immutable value; each method returns a new one.
type Conflict struct {
	target  []string
	update  []string
	all     bool // DoUpdate with no columns: every column the INSERT writes
	nothing bool
	err     error
}

// OnConflict names the unique key whose duplicates Upsert resolves: one
// or more columns of the model, a primary key or a unique index; none
// means the primary key. On MySQL/MariaDB the database resolves a
// duplicate of any unique key of the table (ON DUPLICATE KEY UPDATE has
// no target); the columns named here are still how Upsert finds each
// object's row afterwards, so name the key the objects' rows may collide
// on.
func OnConflict(cols ...string) Conflict {
	return Conflict{target: append([]string(nil), cols...)}
}

// DoUpdate makes a conflicting row take the object's values for cols; no
// cols means every column an INSERT writes except the conflict target.
// Columns that are part of the primary key, database-generated, read-only
// or the version column cannot be named; a version column is bumped.
func (c Conflict) DoUpdate(cols ...string) Conflict {
	if c.nothing && c.err == nil {
		c.err = errors.New("orm: Upsert: DoUpdate after DoNothing; choose one")
	}
	c.update = append([]string(nil), cols...)
	c.all = len(cols) == 0
	return c
}

// DoNothing keeps a conflicting row as it is; the object receives the
// row's values.
func (c Conflict) DoNothing() Conflict {
	if (c.all || len(c.update) > 0) && c.err == nil {
		c.err = errors.New("orm: Upsert: DoNothing after DoUpdate; choose one")
	}
	c.nothing = true
	return c
}

// ColumnError reports a column name that is not a column of the model,
// or one that cannot be used where it was named (Upsert's conflict target
// or update list, a projection's Select or OrderBy). Nothing is sent.
type ColumnError struct {
	Op     string // "Upsert", "Project", ...
	Table  string // the model's table, or the projection's type
	Name   string // the name as given
	Reason string
}

// Error names the call, the column and why it was refused.
func (e *ColumnError) Error() string {
	return fmt.Sprintf("orm: %s: %q %s (%s)", e.Op, e.Name, e.Reason, e.Table)
}

// Upsert inserts objs and resolves the rows that exist already — a
// duplicate of the conflict target — as c says: ON CONFLICT ... DO UPDATE
// / DO NOTHING on PostgreSQL and SQLite, ON DUPLICATE KEY UPDATE on
// MySQL/MariaDB. It is for bulk loading: objects of one table go in
// multi-row statements, as many rows each as the database's parameter
// limit allows (at most 1000), their values always bound.
//
// Upsert runs at once, in the session's transaction (beginning it), like
// UpdateAll, not at the next flush: what each object becomes depends on
// the rows the statement met, so the session learns it from the statement
// itself. Pending changes are flushed first. Afterwards every object is
// tracked and persistent, its fields and snapshot equal to its row as the
// database holds it: generated keys and versions assigned, and for a
// conflict the existing row's values in the columns not updated (all of
// them with DoNothing). Where the database has RETURNING (PostgreSQL,
// SQLite, MariaDB) the rows come back with the statement; the rows it
// does not return (DO NOTHING on PostgreSQL and SQLite) and, on MySQL,
// every row are read back by the conflict-target columns with SELECT ...
// FOR UPDATE, one statement per batch.
//
// Upsert takes transient objects. Refused before any SQL: an object this
// session tracks (change it and Commit instead); an untracked object
// whose database-generated key is set (ErrDetachedObject: Merge it); two
// objects with the same conflict-target values; and an object whose
// target values or key another object of this session has
// (ErrIdentityConflict: the session keeps one object per row). A conflict
// target that contains a database-generated column is refused too: the
// INSERT does not write it, so a new row never conflicts on it.
//
// Only columns are written: relation (rel) fields are not followed, and
// no BeforeInsert-style hook runs.
//
// A version column is set to 1 on insert and bumped by DoUpdate; Upsert
// checks no version (it overwrites by design: use Merge for the
// lost-update check).
//
// When the statement fails, or a row cannot be matched to its object (on
// MySQL a duplicate in another unique key updates a row the target does
// not find), the transaction is rolled back (to the innermost savepoint)
// and the session restored as after a failed Commit. So is everything
// Upsert did when a later Commit fails. ctx governs the statements.
func Upsert[T any](ctx context.Context, s *Session, objs []*T, c Conflict) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	t, err := tableFor[T](s.e)
	if err != nil {
		return err
	}
	if s.readOnly {
		return fmt.Errorf("%w: Upsert into %s", ErrReadOnly, t.Name)
	}
	p, err := planUpsert(t, c)
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return nil
	}
	list := make([]any, len(objs))
	seen := make(map[string]int, len(objs))
	for i, o := range objs {
		if o == nil {
			return fmt.Errorf("orm: Upsert: objs[%d] is a nil *%s", i, t.Type.Name())
		}
		if e := s.lookup(t, o); e != nil {
			return fmt.Errorf("orm: Upsert: objs[%d], a %s, is tracked by this session already; change it and Commit instead", i, t.Name)
		}
		if autoKeySet(t, o) {
			return fmt.Errorf("%w: Upsert of %s with key %v", ErrDetachedObject, t.Name, keyValues(t, o))
		}
		k := p.key(t, o)
		if j, dup := seen[k]; dup {
			return fmt.Errorf("orm: Upsert: objs[%d] and objs[%d] have the same %s; a statement cannot write one row twice", j, i, p.targetNames())
		}
		seen[k] = i
		list[i] = o
	}
	if err := s.autoflushLocked(ctx); err != nil {
		return err
	}
	if err := s.upsertConflicts(t, p, list, seen); err != nil {
		return err
	}
	if err := s.upsertLocked(ctx, t, p, list); err != nil {
		s.abortFlush(ctx)
		return fmt.Errorf("orm: Upsert into %s rolled back, with the transaction's flushed work: %w", t.Name, err)
	}
	return nil
}

// upsertPlan is a Conflict checked against a table.
type upsertPlan struct {
	target []*mapper.Column // conflict target
	set    []*mapper.Column // updated on conflict; empty: DO NOTHING
}

func planUpsert(t *mapper.Table, c Conflict) (upsertPlan, error) {
	var p upsertPlan
	if c.err != nil {
		return p, c.err
	}
	if !c.nothing && !c.all && len(c.update) == 0 {
		return p, errors.New("orm: Upsert: say what a conflict does: OnConflict(...).DoUpdate(...) or .DoNothing()")
	}
	bad := func(name, reason string) error {
		return &ColumnError{Op: "Upsert", Table: t.Name, Name: name, Reason: reason}
	}
	if len(c.target) == 0 {
		p.target = t.PK
	}
	for _, name := range c.target {
		col := t.Column(name)
		switch {
		case col == nil:
			return p, bad(name, "is not a column")
		case col.Auto || col.ReadOnly:
			return p, bad(name, "is not written by INSERT (auto or readonly), so no new row conflicts on it; name a unique column the objects set")
		}
		p.target = append(p.target, col)
	}
	for _, col := range p.target {
		if col.Auto {
			return p, bad(col.Name, "is the database-generated key, which INSERT does not write; name a unique column the objects set")
		}
	}
	inTarget := func(col *mapper.Column) bool {
		for _, x := range p.target {
			if x == col {
				return true
			}
		}
		return false
	}
	if c.all {
		for _, col := range t.Insertable() {
			if !col.PK && !col.Version && !inTarget(col) {
				p.set = append(p.set, col)
			}
		}
		if len(p.set) == 0 {
			return p, fmt.Errorf("orm: Upsert: %s has no column to update besides the conflict target; use DoNothing", t.Name)
		}
	}
	for _, name := range c.update {
		col := t.Column(name)
		switch {
		case col == nil:
			return p, bad(name, "is not a column")
		case col.PK || col.Auto || col.ReadOnly || col.Version:
			return p, bad(name, "cannot be updated (primary key, auto, readonly or version)")
		case inTarget(col):
			return p, bad(name, "is the conflict target, equal in both rows")
		}
		p.set = append(p.set, col)
	}
	p.set = upsertStampCols(t, p.set, c.all)
	return p, nil
}

// key is the conflict-target values of obj as a map key.
func (p upsertPlan) key(t *mapper.Table, obj any) string {
	var b strings.Builder
	for _, c := range p.target {
		fmt.Fprintf(&b, "%v\x00", normKey(t.Acc.Value(obj, c)))
	}
	return b.String()
}

func (p upsertPlan) targetNames() string {
	names := make([]string, len(p.target))
	for i, c := range p.target {
		names[i] = c.Name
	}
	return "(" + strings.Join(names, ", ") + ")"
}

// upsertConflicts refuses objects whose row another object of the
// session stands for already: same conflict-target values as a tracked or
// pending object, or the same client-set key.
func (s *Session) upsertConflicts(t *mapper.Table, p upsertPlan, objs []any, seen map[string]int) error {
	check := func(e *identity.Entry) error {
		if i, hit := seen[p.key(t, e.Obj())]; hit {
			return fmt.Errorf("%w: Upsert of objs[%d]: the session has another %s with %s %v", ErrIdentityConflict, i, t.Name, p.targetNames(), p.key(t, e.Obj()))
		}
		return nil
	}
	var err error
	s.idmap.EachIn(t, func(e *identity.Entry) bool {
		if e.State() != identity.Deleted || !e.Flushed() {
			err = check(e)
		}
		return err == nil
	})
	for _, e := range s.pending {
		if err == nil && e.Table() == t {
			err = check(e)
		}
	}
	if err != nil {
		return err
	}
	for i, o := range objs {
		if keyIsZero(t, o) {
			continue
		}
		if e := s.idmap.Get(t, t.Acc.Key(o)); e != nil && (e.State() != identity.Deleted || !e.Flushed()) {
			return fmt.Errorf("%w: Upsert of objs[%d]: %s with key %v", ErrIdentityConflict, i, t.Name, keyValues(t, o))
		}
	}
	return nil
}

// upsertLocked sends the statements, batch by batch, and makes each
// object its row: values copied, tracked, snapshotted. An error leaves
// the cleanup to the caller (abortFlush).
func (s *Session) upsertLocked(ctx context.Context, t *mapper.Table, p upsertPlan, objs []any) error {
	d := s.e.dialect
	cols := t.Insertable()
	chunk := max(min(d.MaxParams()/max(len(cols), 1), 1000), 1)
	var ret []*mapper.Column
	if d.Returning() {
		ret = t.Columns
	}
	now := stampNow() // for created and updated columns that hold no time
	for len(objs) > 0 {
		n := min(chunk, len(objs))
		batch := objs[:n]
		objs = objs[n:]
		rows := make(map[string]any, n)
		args := make([]any, 0, n*len(cols))
		for _, o := range batch {
			for _, c := range cols {
				v := t.Acc.Value(o, c)
				if c.Version {
					if x, ok := keyval.Int64(v); ok && x == 0 {
						v = int64(1) // versions start at 1, as Commit's inserts
					}
				}
				if (c.Created || c.Updated) && timeIsZero(v) {
					v = now // the object gets it from the row, as every column
				}
				args = append(args, v)
			}
		}
		q := s.e.stmts.get(stmtKey{t, "upsert" + p.shape(), n}, func() string { return upsertSQL(d, t, cols, n, p.target, p.set, ret) })
		if len(ret) > 0 {
			if err := s.upsertRows(ctx, t, p, q, args, s.writeQuery, rows); err != nil {
				return err
			}
		} else if _, err := s.exec(ctx, q, args); err != nil {
			return err
		}
		var missing []any
		for _, o := range batch {
			if rows[p.key(t, o)] == nil {
				missing = append(missing, o)
			}
		}
		if len(missing) > 0 {
			margs := make([]any, 0, len(missing)*len(p.target))
			for _, o := range missing {
				for _, c := range p.target {
					margs = append(margs, t.Acc.Value(o, c))
				}
			}
			q := upsertReselectSQL(d, t, p.target, len(missing))
			if err := s.upsertRows(ctx, t, p, q, margs, s.query, rows); err != nil {
				return err
			}
		}
		for i, o := range batch {
			row := rows[p.key(t, o)]
			if row == nil {
				return fmt.Errorf("orm: Upsert: no row of %s has the %s of objs[%d] after the statement; on MySQL a duplicate in another unique key updates that row instead (name that key in OnConflict), and a case-insensitive collation matches a value that differs in case", t.Name, p.targetNames(), i)
			}
			if err := s.upserted(t, o, row); err != nil {
				return err
			}
		}
	}
	return nil
}

// shape names the statement's conflict clause for the statement cache.
func (p upsertPlan) shape() string {
	var b strings.Builder
	b.WriteString(p.targetNames())
	for _, c := range p.set {
		b.WriteString(",")
		b.WriteString(c.Name)
	}
	return b.String()
}

// upsertRows runs a statement returning whole rows of t and files each
// under its conflict-target values. A row that matches no object of the
// batch is an error (on MySQL, a duplicate in another unique key).
func (s *Session) upsertRows(ctx context.Context, t *mapper.Table, p upsertPlan, q string, args []any,
	run func(context.Context, string, []any) (*sql.Rows, observation, error), out map[string]any) error {
	rows, obs, err := run(ctx, q, args)
	if err != nil {
		return err
	}
	n := int64(0)
	for rows.Next() {
		n++
		row := reflect.New(t.Type).Interface()
		if err = rows.Scan(s.scanDest(t, row, t.Columns)...); err != nil {
			break
		}
		out[p.key(t, row)] = row
	}
	return s.e.closeRows(ctx, rows, obs, n, err)
}

// upserted makes obj the row's object: its column fields take the row's
// values (logged, so that a failed commit puts the old ones back), and it
// is tracked, persistent, with the row as its snapshot.
func (s *Session) upserted(t *mapper.Table, obj, row any) error {
	k := t.Acc.Key(row)
	if e := s.idmap.Get(t, k); e != nil {
		if e.State() != identity.Deleted || !e.Flushed() {
			return fmt.Errorf("%w: Upsert met the row of %s with key %v, which the session tracks as another object", ErrIdentityConflict, t.Name, keyValues(t, row))
		}
		// The session deleted this row's object and flushed the DELETE
		// (upsertConflicts lets such a key through): the statement wrote
		// the row anew, so obj takes the key, as an insert's object does
		// (Map.Insert); the deleted object still leaves at commit, and an
		// undo puts it back after undoUpsert has freed the key.
		if err := s.idmap.Displace(e); err != nil {
			return err
		}
		s.logFlush(undo{kind: undoDisplace, e: e})
	}
	ov, rv := reflect.ValueOf(obj).Elem(), reflect.ValueOf(row).Elem()
	old := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		f := ov.FieldByIndex(c.Index)
		old[i] = f.Interface()
		f.Set(rv.FieldByIndex(c.Index))
	}
	s.seq++
	e := s.newEntry()
	if !s.idmap.Track(e, t, obj, t.Acc.Snapshot(obj), s.seq, k) {
		return fmt.Errorf("%w: %s with key %v", ErrIdentityConflict, t.Name, keyValues(t, row))
	}
	s.logFlush(undo{kind: undoUpsert, e: e, old: old})
	return s.claim(e)
}

// undoUpsert reverses upserted: the object's fields get their old values
// and it leaves the session, transient again.
func (s *Session) undoUpsert(e *identity.Entry, old any) {
	ov := reflect.ValueOf(e.Obj()).Elem()
	for i, c := range e.Table().Columns {
		f := ov.FieldByIndex(c.Index)
		if v := old.([]any)[i]; v != nil {
			f.Set(reflect.ValueOf(v))
		} else {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	s.idmap.Detach(e)
	for i, d := range s.deletes {
		if d == e {
			s.deletes = append(s.deletes[:i], s.deletes[i+1:]...)
			break
		}
	}
	s.release(e)
}
