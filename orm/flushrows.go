package orm

import (
	"context"
	"database/sql/driver"
	"reflect"
	"slices"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// Row-level ordering within a flush: rows of a table that refers to
// itself, keys left NULL to break a cycle of tables, and delete-orphan.
// flushLocked calls these; the table-level order is in graph.go.

// fkValue is a key or foreign-key value in a form that compares equal
// across Go types: integers as int64, pointers and driver.Valuer types
// (sql.NullInt64, ...) by what they hold, NULL as nil.
func fkValue(v any) any {
	if vr, ok := v.(driver.Valuer); ok {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return nil
		}
		dv, err := callValuer(vr)
		if err != nil {
			return nil // not a value a row can hold: it matches nothing
		}
		v = dv
	}
	v = normKey(v)
	if b, ok := v.([]byte); ok {
		return string(b) // a map key, and compared by content
	}
	return v
}

// sameKey reports whether foreign-key value fk holds the key k.
func sameKey(fk, k any) bool {
	a, b := fkValue(fk), fkValue(k)
	return a != nil && b != nil && valuesEqual(a, b)
}

// deferredKey is a foreign key inserted as NULL because its parent row did
// not exist yet; val is the value to set once it does (the parent's key is
// copied over it from a relation field, if there is one).
type deferredKey struct {
	e   *identity.Entry
	col *mapper.Column
	val any
}

// deferKey inserts e's column col as NULL now and sets it after the inserts.
func (s *Session) deferKey(e *identity.Entry, col *mapper.Column, out *[]deferredKey) error {
	t := e.Table()
	*out = append(*out, deferredKey{e: e, col: col, val: copyValue(t.Acc.Value(e.Obj(), col))})
	return s.setCol(e, col, reflect.Zero(col.Type).Interface())
}

// deferKeys defers, for the pending rows of t, the foreign keys of broken
// (those left out of the table order to break a cycle) whose parent is
// still pending: through a belongs-to field, a pending parent's has-many
// slice, or a key value held by a pending parent.
func (s *Session) deferKeys(t *mapper.Table, broken []mapper.ForeignKey, out *[]deferredKey) error {
	for _, fk := range broken {
		if fk.Child != t {
			continue
		}
		pt := fk.Parent
		waiting := map[any]bool{} // child objects listed by a pending parent
		pendingKeys := map[any]bool{}
		for _, pe := range s.pending {
			if pe.Table() != pt {
				continue
			}
			if !keyIsZero(pt, pe.Obj()) {
				pendingKeys[fkValue(pt.Acc.Value(pe.Obj(), pt.PK[0]))] = true
			}
			for _, r := range pt.Relations {
				if r.HasMany && r.Target == t.Type && r.Column == fk.Column.Name {
					f := reflect.ValueOf(pe.Obj()).Elem().FieldByIndex(r.Index)
					for i := range f.Len() {
						if c := f.Index(i); !c.IsNil() {
							waiting[c.Interface()] = true
						}
					}
				}
			}
		}
		for _, e := range s.pending {
			if e.Table() != t {
				continue
			}
			wait := waiting[e.Obj()]
			for _, r := range t.Relations {
				if !wait && r.BelongsTo() && r.Target == pt.Type && r.Column == fk.Column.Name {
					if f := reflect.ValueOf(e.Obj()).Elem().FieldByIndex(r.Index); !f.IsNil() {
						wait = s.pendingByObj[f.Interface()] != nil
					}
				}
			}
			if !wait {
				if v := fkValue(t.Acc.Value(e.Obj(), fk.Column)); v != nil {
					wait = pendingKeys[v]
				}
			}
			if wait {
				if err := s.deferKey(e, fk.Column, out); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// insertLevels splits the pending rows ins of t, a table that refers to
// itself through self, into levels: a row comes after the pending rows it
// points at (through a belongs-to field, a pending parent's has-many
// slice, or the key value its column holds). Rows that point at each other
// in a circle are broken by inserting one with NULL (deferred), when the
// column is nullable; otherwise they are a *CycleError.
func (s *Session) insertLevels(t *mapper.Table, ins []*identity.Entry, self []mapper.ForeignKey, deferred *[]deferredKey) ([][]*identity.Entry, error) {
	if len(ins) <= 1 {
		if len(ins) == 0 {
			return nil, nil
		}
		return [][]*identity.Entry{ins}, nil
	}
	byObj := make(map[any]int, len(ins))
	byKey := map[any]int{}
	for i, e := range ins {
		byObj[e.Obj()] = i
		if !keyIsZero(t, e.Obj()) {
			byKey[fkValue(t.Acc.Value(e.Obj(), t.PK[0]))] = i
		}
	}
	deps := make([][]int, len(ins))
	selfCol := map[string]bool{}
	for _, fk := range self {
		selfCol[fk.Column.Name] = true
		for i, e := range ins {
			if v := fkValue(t.Acc.Value(e.Obj(), fk.Column)); v != nil {
				if j, ok := byKey[v]; ok && j != i {
					deps[i] = append(deps[i], j)
				}
			}
		}
	}
	for _, r := range t.Relations {
		if r.Target != t.Type || !selfCol[r.Column] {
			continue
		}
		for i, e := range ins {
			if !r.BelongsTo() && !r.HasMany {
				continue // has-one and many-to-many keep their keys elsewhere
			}
			f := reflect.ValueOf(e.Obj()).Elem().FieldByIndex(r.Index)
			if r.BelongsTo() {
				if !f.IsNil() {
					if j, ok := byObj[f.Interface()]; ok && j != i {
						deps[i] = append(deps[i], j)
					}
				}
				continue
			}
			for k := range f.Len() {
				if c := f.Index(k); !c.IsNil() {
					if j, ok := byObj[c.Interface()]; ok && j != i {
						deps[j] = append(deps[j], i)
					}
				}
			}
		}
	}
	var ferr error
	lv, blocked := levels(len(ins), deps, func(i int) bool {
		for _, fk := range self {
			if !fk.Column.Nullable {
				return false
			}
		}
		for _, fk := range self {
			if err := s.deferKey(ins[i], fk.Column, deferred); err != nil {
				ferr = err
				return false
			}
		}
		return true
	})
	if ferr != nil {
		return nil, ferr
	}
	if blocked != nil {
		return nil, rowCycleError(t, self[0].Column)
	}
	out := make([][]*identity.Entry, len(lv))
	for i, l := range lv {
		for _, j := range l {
			out[i] = append(out[i], ins[j])
		}
	}
	return out, nil
}

// setDeferredKeys sets the foreign keys inserted as NULL, now that their
// parents exist, and writes them with follow-up UPDATEs; so too the keys
// of persistent rows pointed, across a broken cycle, at parents inserted
// after them. It reports whether it sent a statement, and the table at
// fault with an error.
func (s *Session) setDeferredKeys(ctx context.Context, deferred []deferredKey, broken []mapper.ForeignKey) (bool, *mapper.Table, error) {
	var tables []*mapper.Table
	for _, d := range deferred {
		if err := s.setCol(d.e, d.col, d.val); err != nil {
			return false, d.e.Table(), err
		}
	}
	for _, fk := range broken {
		if !slices.Contains(tables, fk.Child) {
			tables = append(tables, fk.Child)
		}
	}
	wrote := false
	for _, t := range tables {
		if _, err := s.syncForeignKeys(t); err != nil {
			return wrote, t, err
		}
		for _, u := range s.dirty(t, nil) {
			wrote = true
			if err := s.update(ctx, u); err != nil {
				return wrote, t, err
			}
		}
	}
	return wrote, nil, nil
}

// deleteLevels orders the rows dels of t, a table that refers to itself,
// children before parents: the insert levels of the rows as they are in
// the database (their snapshots), last level first. Rows that reference
// each other in a circle get their nullable key set to NULL first; with a
// NOT NULL key they are a *CycleError.
func (s *Session) deleteLevels(ctx context.Context, t *mapper.Table, dels []*identity.Entry, self []mapper.ForeignKey) ([][]*identity.Entry, error) {
	if len(dels) <= 1 {
		return [][]*identity.Entry{dels}, nil
	}
	byKey := make(map[any]int, len(dels))
	for i, e := range dels {
		byKey[fkValue(t.Acc.Value(e.Snap(), t.PK[0]))] = i
	}
	deps := make([][]int, len(dels))
	for _, fk := range self {
		for i, e := range dels {
			if v := fkValue(t.Acc.Value(e.Snap(), fk.Column)); v != nil {
				if j, ok := byKey[v]; ok && j != i {
					deps[i] = append(deps[i], j)
				}
			}
		}
	}
	var unlink []*identity.Entry
	lv, blocked := levels(len(dels), deps, func(i int) bool {
		for _, fk := range self {
			if !fk.Column.Nullable {
				return false
			}
		}
		unlink = append(unlink, dels[i])
		return true
	})
	if blocked != nil {
		return nil, rowCycleError(t, self[0].Column)
	}
	for _, fk := range self {
		if err := s.nullKeys(ctx, t, fk.Column, unlink); err != nil {
			return nil, err
		}
	}
	out := make([][]*identity.Entry, 0, len(lv))
	for i := len(lv) - 1; i >= 0; i-- {
		var l []*identity.Entry
		for _, j := range lv[i] {
			l = append(l, dels[j])
		}
		out = append(out, l)
	}
	return out, nil
}

// unlinkDeletes sets to NULL, before any DELETE, the keys left out of the
// table order (a broken cycle) of rows being deleted that point at rows
// being deleted: otherwise neither of two such rows could go first. It
// returns the table at fault with an error.
func (s *Session) unlinkDeletes(ctx context.Context, p *flushPlan) (*mapper.Table, error) {
	for _, fk := range p.broken {
		parents := map[any]bool{}
		for _, e := range s.deletes {
			if e.Table() == fk.Parent && !e.Flushed() {
				parents[fkValue(fk.Parent.Acc.Value(e.Snap(), fk.Parent.PK[0]))] = true
			}
		}
		if len(parents) == 0 {
			continue
		}
		var rows []*identity.Entry
		for _, e := range s.deletes {
			if e.Table() == fk.Child && !e.Flushed() {
				if v := fkValue(fk.Child.Acc.Value(e.Snap(), fk.Column)); v != nil && parents[v] {
					rows = append(rows, e)
				}
			}
		}
		if err := s.nullKeys(ctx, fk.Child, fk.Column, rows); err != nil {
			return fk.Child, err
		}
	}
	return nil, nil
}

// nullKeys sets col to NULL in the rows of ents (found by their snapshot
// keys), which are about to be deleted: the objects keep their values.
func (s *Session) nullKeys(ctx context.Context, t *mapper.Table, col *mapper.Column, ents []*identity.Entry) error {
	d := s.e.dialect
	per := min(d.MaxParams()/len(t.PK), 1000)
	for len(ents) > 0 {
		n := min(per, len(ents))
		batch := ents[:n]
		ents = ents[n:]
		var args []any
		if len(t.PK) == 1 {
			args = make([]any, len(batch))
			for i, e := range batch {
				args[i] = t.Acc.Value(e.Snap(), t.PK[0])
			}
		} else {
			// A composite key: one row per statement.
			batch, ents = batch[:1], append(batch[1:], ents...)
			args = keyValues(t, batch[0].Snap())
		}
		if _, err := s.exec(ctx, nullColumnSQL(d, t, col, len(batch)), args); err != nil {
			return err
		}
	}
	return nil
}

// memberKey names one has-many relation of one tracked parent.
type memberKey struct {
	e   *identity.Entry
	rel int // index in e.Table().Relations
}

// cascadeHasMany reports whether t has a has-many relation tagged cascade,
// whose children delete-orphan applies to.
func cascadeHasMany(t *mapper.Table) bool {
	for _, r := range t.Relations {
		if r.HasMany && r.Cascade {
			return true
		}
	}
	return false
}

// noteLoaded records, for delete-orphan, the children Load put in relation
// r of the parents objs (of table t).
func (s *Session) noteLoaded(t *mapper.Table, r *mapper.Relation, objs []any) {
	if !r.HasMany || !r.Cascade {
		return
	}
	ri := slices.Index(t.Relations, r)
	for _, o := range objs {
		if e := s.lookup(t, o); e != nil && e.State() == identity.Persistent {
			s.noteMember(e, ri, false)
		}
	}
}

// noteMember records the children now in relation ri of e's object: the
// ones whose removal from the slice makes them orphans. With keep, the
// children recorded before are kept too.
func (s *Session) noteMember(e *identity.Entry, ri int, keep bool) {
	f := reflect.ValueOf(e.Obj()).Elem().FieldByIndex(e.Table().Relations[ri].Index)
	if f.IsNil() {
		return // never loaded or set: nothing was removed from it
	}
	k := memberKey{e, ri}
	var kids []any
	var have map[any]bool
	if keep && len(s.members[k]) > 0 {
		kids = s.members[k]
		have = make(map[any]bool, len(kids))
		for _, c := range kids {
			have[c] = true
		}
	}
	for i := range f.Len() {
		if c := f.Index(i); !c.IsNil() && !have[c.Interface()] {
			kids = append(kids, c.Interface())
		}
	}
	if s.members == nil {
		s.members = map[memberKey][]any{}
	}
	s.members[k] = kids
}

// noteMembers records the children of every tracked parent with a cascade
// has-many relation. After a flush (keep) the children recorded before
// stay: should the transaction fail, the orphans the flush deleted are
// orphans again at the next one. After a commit the record is what the
// database now has.
func (s *Session) noteMembers(keep bool) {
	if len(s.members) == 0 {
		found := false
		for _, t := range s.idmap.Tables() {
			found = found || cascadeHasMany(t)
		}
		if !found {
			return
		}
	}
	if !keep {
		clear(s.members)
	}
	for _, t := range s.idmap.Tables() {
		if !cascadeHasMany(t) {
			continue
		}
		s.idmap.EachIn(t, func(e *identity.Entry) bool {
			if e.State() == identity.Persistent {
				for ri, r := range t.Relations {
					if r.HasMany && r.Cascade {
						s.noteMember(e, ri, keep)
					}
				}
			}
			return true
		})
	}
}

// deleteOrphans marks deleted the children removed from a cascade has-many
// slice of a persistent parent since it was loaded or last flushed
// (SQLAlchemy's delete-orphan). A child listed by another live parent is
// being moved, not orphaned; one whose foreign key was changed by hand no
// longer points at the parent. The marks are flush effects, undone if the
// flush or commit fails.
func (s *Session) deleteOrphans() error {
	if len(s.members) == 0 {
		return nil
	}
	type orphan struct {
		e  *identity.Entry
		ct *mapper.Table
	}
	var cands []orphan
	for k, old := range s.members {
		pe := k.e
		if pe.State() != identity.Persistent {
			continue
		}
		r := pe.Table().Relations[k.rel]
		ct, err := s.e.reg.Table(r.Target)
		if err != nil {
			return err
		}
		f := reflect.ValueOf(pe.Obj()).Elem().FieldByIndex(r.Index)
		cur := make(map[any]bool, f.Len())
		for i := range f.Len() {
			if c := f.Index(i); !c.IsNil() {
				cur[c.Interface()] = true
			}
		}
		key := pe.Table().Acc.Value(pe.Obj(), pe.Table().PK[0])
		col := ct.Column(r.Column)
		for _, c := range old {
			if cur[c] {
				continue
			}
			ce := s.lookup(ct, c)
			if ce == nil || ce.State() != identity.Persistent || !sameKey(ct.Acc.Value(c, col), key) {
				continue
			}
			cands = append(cands, orphan{ce, ct})
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b orphan) int { return cmpSeq(a.e, b.e) })
	// Children listed by a live parent's slice, of any relation to their
	// table: a child moved there is re-parented, not deleted.
	listed := s.listedChildren()
	for _, o := range cands {
		if listed[o.e.Obj()] || o.e.State() != identity.Persistent {
			continue
		}
		mark := len(s.deletes)
		// The orphan's own cascade may drop pending children (added under
		// it, never inserted): a failed commit must bring them back.
		pending := slices.Clone(s.pending)
		if err := s.deleteLocked(o.e.Obj()); err != nil {
			return err
		}
		for _, e := range s.deletes[mark:] {
			s.logFlush(undo{kind: undoOrphan, e: e})
		}
		for _, e := range pending {
			if e.State() == identity.Transient {
				s.logFlush(undo{kind: undoOrphanDropped, e: e})
			}
		}
	}
	return nil
}

// listedChildren returns the objects that the has-many slices and has-one
// fields of the live (pending or persistent) objects hold: children that
// the flush gives those parents' keys, so not orphans, nor deleted with a
// former parent.
func (s *Session) listedChildren() map[any]bool {
	listed := map[any]bool{}
	s.eachHeld(func(*mapper.Table, *mapper.Relation) bool { return true },
		func(_ *mapper.Table, _ *mapper.Relation, _ *identity.Entry, child any) { listed[child] = true })
	return listed
}

// eachHeld calls fn for every child that a live (pending or persistent)
// parent pe of table pt holds in a has-many slice or has-one field r, for
// the relations that want accepts.
func (s *Session) eachHeld(want func(pt *mapper.Table, r *mapper.Relation) bool,
	fn func(pt *mapper.Table, r *mapper.Relation, pe *identity.Entry, child any)) {
	for _, pt := range s.liveTables() {
		for _, r := range pt.Relations {
			if !r.HasMany && !r.HasOne || !want(pt, r) {
				continue
			}
			s.eachLive(pt, func(pe *identity.Entry) {
				eachChild(field(pe.Obj(), r.Index), r.HasOne, func(c any) { fn(pt, r, pe, c) })
			})
		}
	}
}

// eachChild calls fn for each non-nil child in f, a has-many slice, or a
// has-one pointer when hasOne.
func eachChild(f reflect.Value, hasOne bool, fn func(child any)) {
	if hasOne {
		if !f.IsNil() {
			fn(f.Interface())
		}
		return
	}
	for i := range f.Len() {
		if c := f.Index(i); !c.IsNil() {
			fn(c.Interface())
		}
	}
}

// rowOrderWork reports whether the flush planned by p may send statements
// that flushSize does not count one by one: inserts and deletes of a
// table that refers to itself (by level, with keys set afterwards),
// keys deferred or set NULL across a broken cycle, and orphans. The
// single-statement commit is then not tried.
func (s *Session) rowOrderWork(p *flushPlan) bool {
	if len(s.members) > 0 {
		return true
	}
	work := func(t *mapper.Table) bool {
		for _, e := range s.pending {
			if e.Table() == t {
				return true
			}
		}
		for _, e := range s.deletes {
			if e.Table() == t && !e.Flushed() {
				return true
			}
		}
		return false
	}
	for _, t := range p.order {
		if len(p.selfKeys(t)) > 0 && work(t) {
			return true
		}
	}
	for _, fk := range p.broken {
		if work(fk.Child) || work(fk.Parent) {
			return true
		}
	}
	return false
}

// liveTables lists the tables of the tracked and pending objects.
func (s *Session) liveTables() []*mapper.Table {
	ts := s.idmap.Tables()
	for _, e := range s.pending {
		if !slices.Contains(ts, e.Table()) {
			ts = append(ts, e.Table())
		}
	}
	return ts
}
