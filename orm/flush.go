package orm

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// Flush sends the pending changes — inserts, updates of changed columns,
// deletes — in the session's transaction, without committing. ctx governs
// the statements. On failure the transaction is rolled back (or, inside a
// Savepoint, rolled back to it) and the session is restored as Commit
// describes.
//
// Parents are inserted before children and children deleted before
// parents, from the foreign keys rel tags declare. Rows of a table that
// refers to itself are written in dependency levels, one batch per level.
// A cycle of tables is broken at a nullable foreign key (inserted NULL,
// then set by a follow-up UPDATE; set NULL before its rows are deleted);
// a cycle of NOT NULL keys is a *CycleError. A child removed from the
// loaded slice of a has-many relation tagged cascade is deleted
// (delete-orphan), unless another parent's slice now lists it.
func (s *Session) Flush(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.refuseFlush(); err != nil {
		return err
	}
	return s.flushLocked(ctx, false)
}

// autoflushLocked flushes before a query, unless autoflush is off.
func (s *Session) autoflushLocked(ctx context.Context) error {
	if !s.autoflush {
		return nil
	}
	return s.flushLocked(ctx, true)
}

// update is one dirty object and its changed columns.
type update struct {
	e    *identity.Entry
	cols []*mapper.Column
}

// flushLocked is the unit of work: tables in foreign-key order; for each,
// parent keys copied into its objects, then its inserts (batched; by
// dependency level when the table refers to itself) and its updates; then
// the follow-up UPDATEs of keys left NULL to break a cycle; then every
// table's deletes, children first (again by level within a table).
func (s *Session) flushLocked(ctx context.Context, auto bool) error {
	if err := s.cascadeLocked(); err != nil {
		return &FlushError{Autoflush: auto, Err: err}
	}
	// Orphans are marked before the order is planned: their deletes, and
	// those they cascade to, are part of this flush.
	mark := len(s.flushLog)
	if err := s.deleteOrphans(); err != nil {
		s.undoFlushes(mark)
		return &FlushError{Autoflush: auto, Err: err}
	}
	p, err := s.flushOrder()
	if err != nil {
		s.undoFlushes(mark)
		return &FlushError{Autoflush: auto, Err: err}
	}
	wrote := false
	fail := func(op string, t *mapper.Table, err error) error {
		s.abortFlush(ctx)
		name := ""
		if t != nil {
			name = t.Name
		}
		return &FlushError{Autoflush: auto, Op: op, Table: name, Err: err}
	}
	if t, n, err := s.deleteReusedKeys(ctx); err != nil {
		return fail("DELETE", t, err)
	} else if n > 0 {
		wrote = true
	}
	var ups []update
	var deferred []deferredKey
	// Inserts log up to three undo records each: size the log once.
	s.flushLog = slices.Grow(s.flushLog, 3*len(s.pending))
	for _, t := range p.order {
		if err := s.drainFor(ctx, t, p.fks); err != nil { // batchcommit.go
			return fail("INSERT", t, err)
		}
		if _, err := s.syncForeignKeys(t); err != nil {
			return fail("", t, err)
		}
		if len(p.broken) > 0 {
			if err := s.deferKeys(t, p.broken, &deferred); err != nil {
				return fail("", t, err)
			}
		}
		var ins []*identity.Entry
		for _, e := range s.pending {
			if e.Table() == t {
				ins = append(ins, e)
			}
		}
		if err := s.beforeInsert(ctx, t, ins); err != nil {
			return fail("INSERT", t, err)
		}
		self := p.selfKeys(t)
		if len(self) == 0 {
			// The changed objects are found before the inserts, which would
			// only add unchanged, freshly snapshotted objects to compare.
			ups = s.dirty(t, ups[:0])
			if len(ins) > 0 {
				wrote = true
				if err := s.insert(ctx, t, ins); err != nil {
					return fail("INSERT", t, err)
				}
			}
		} else {
			// Rows of a table that refers to itself go in dependency
			// levels, parents first, each level one batch; the keys of a
			// level's new parents reach its children before their level.
			lv, err := s.insertLevels(t, ins, self, &deferred)
			if err != nil {
				return fail("INSERT", t, err)
			}
			for i, l := range lv {
				if i > 0 {
					if _, err := s.syncForeignKeys(t); err != nil {
						return fail("", t, err)
					}
				}
				wrote = true
				if err := s.insert(ctx, t, l); err != nil {
					return fail("INSERT", t, err)
				}
			}
			if len(ins) > 0 {
				// Persistent rows moved under a new parent get its key.
				if _, err := s.syncForeignKeys(t); err != nil {
					return fail("", t, err)
				}
			}
			ups = s.dirty(t, ups[:0])
		}
		if ups, err = s.beforeUpdate(ctx, t, ups); err != nil {
			return fail("UPDATE", t, err)
		}
		if len(ups) > 0 {
			wrote = true
			if err := s.updates(ctx, t, ups); err != nil { // batchupdate.go
				return fail("UPDATE", t, err)
			}
		}
	}
	if len(s.pending) > s.rec.deferred() {
		// Every pending object's table is in order, so none can remain
		// (but inserts a pipelined commit has yet to send).
		return fail("INSERT", s.pending[0].Table(), errors.New("orm: internal error: pending objects left after flush"))
	}
	if len(p.broken) > 0 {
		w, t, err := s.setDeferredKeys(ctx, deferred, p.broken)
		wrote = wrote || w
		if err != nil {
			return fail("UPDATE", t, err)
		}
	}
	if op, join, err := s.flushLinks(ctx, &wrote); err != nil { // join rows: after every insert, before every delete
		s.abortFlush(ctx)
		return &FlushError{Autoflush: auto, Op: op, Table: join, Err: err}
	}
	if t, err := s.unlinkDeletes(ctx, &p); err != nil {
		return fail("UPDATE", t, err)
	}
	for i := len(p.order) - 1; i >= 0; i-- {
		t := p.order[i]
		var dels []*identity.Entry
		for _, e := range s.deletes {
			if e.Table() == t && !e.Flushed() {
				dels = append(dels, e)
			}
		}
		if len(dels) == 0 {
			continue
		}
		if err := s.beforeDelete(ctx, t, dels); err != nil {
			return fail("DELETE", t, err)
		}
		wrote = true
		lv := [][]*identity.Entry{dels}
		if self := p.selfKeys(t); len(self) > 0 {
			if lv, err = s.deleteLevels(ctx, t, dels, self); err != nil {
				return fail("DELETE", t, err)
			}
		}
		for _, l := range lv {
			if err := s.delete(ctx, t, l); err != nil {
				return fail("DELETE", t, err)
			}
		}
	}
	if wrote {
		s.stats.Flushes++
	}
	s.noteMembers(true)
	if s.tx == nil && s.rec == nil {
		// No transaction to roll back: nothing was written, or one
		// statement alone, committed. What the flush did to the objects
		// stands (a new snapshot of an object whose only changes are
		// readonly columns), and a later failed commit must not undo it.
		s.flushLog = s.flushLog[:0]
	}
	return nil
}

// deleteReusedKeys runs, before the inserts, the DELETEs of rows whose key
// a pending object takes again. Add lets a new object take the key of one
// whose DELETE was flushed; when a failed commit un-flushes that DELETE,
// the next flush must send it before the INSERT meets the old row. It
// returns how many rows it deleted, or the table that failed.
func (s *Session) deleteReusedKeys(ctx context.Context) (*mapper.Table, int, error) {
	if len(s.deletes) == 0 || len(s.pending) == 0 {
		return nil, 0, nil
	}
	var dels []*identity.Entry
	for _, p := range s.pending {
		if keyIsZero(p.Table(), p.Obj()) {
			continue
		}
		if d := s.idmap.Get(p.Table(), p.Table().Acc.Key(p.Obj())); d != nil && d.State() == identity.Deleted && !d.Flushed() {
			dels = append(dels, d)
		}
	}
	n := len(dels)
	for len(dels) > 0 {
		t := dels[0].Table()
		var batch, rest []*identity.Entry
		for _, d := range dels {
			if d.Table() == t {
				batch = append(batch, d)
			} else {
				rest = append(rest, d)
			}
		}
		if err := s.beforeDelete(ctx, t, batch); err != nil {
			return t, 0, err
		}
		if err := s.delete(ctx, t, batch); err != nil {
			return t, 0, err
		}
		dels = rest
	}
	return nil, n, nil
}

// abortFlush rolls back after a failed statement: to the innermost
// savepoint if one is open, else the whole transaction; and undoes the
// in-memory effects of the flushes being rolled back.
func (s *Session) abortFlush(ctx context.Context) {
	ctx = context.WithoutCancel(ctx) // a cancelled ctx must not stop the cleanup
	if n := len(s.sps); n > 0 {
		sp := s.sps[n-1]
		err := s.savepointExec(ctx, s.e.caps.RollbackToSavepoint+sp.name)
		if err == nil {
			s.undoFlushes(sp.flushMark)
			return
		}
		// The savepoint is gone: the database ended the transaction.
		s.loseTx(ctx, err)
		return
	}
	_ = s.endTx(ctx, false)
	s.stats.Rollbacks++
	s.undoFlushes(0)
	if len(s.sps) == 0 {
		s.intentLog = s.intentLog[:0]
	}
}

// cascadeLocked adds new objects that were attached to tracked objects'
// relations after those were added or loaded.
func (s *Session) cascadeLocked() error {
	var err error
	visit := func(e *identity.Entry) bool {
		if len(e.Table().Relations) > 0 && e.State() != identity.Deleted {
			err = s.cascadeAdd(e.Table(), e.Obj())
		}
		return err == nil
	}
	for i := 0; i < len(s.pending) && err == nil; i++ {
		visit(s.pending[i])
	}
	if err == nil && s.hasRelations() {
		s.idmap.Each(visit)
	}
	return err
}

func (s *Session) hasRelations() bool {
	for _, t := range s.idmap.Tables() {
		if len(t.Relations) > 0 {
			return true
		}
	}
	return false
}

// flushPlan is the order of a flush: its tables parents first, the
// foreign keys among them, and those left out to break a cycle.
type flushPlan struct {
	order  []*mapper.Table
	fks    []mapper.ForeignKey
	broken []mapper.ForeignKey
}

// refersToItself reports whether t has a relation to its own type, whose
// rows the flush then orders one by one.
func refersToItself(t *mapper.Table) bool {
	for _, r := range t.Relations {
		if r.Target == t.Type {
			return true
		}
	}
	return false
}

// selfKeys returns the foreign keys by which t refers to itself.
func (p *flushPlan) selfKeys(t *mapper.Table) []mapper.ForeignKey {
	var out []mapper.ForeignKey
	for _, fk := range p.fks {
		if fk.Child == t && fk.Parent == t {
			out = append(out, fk)
		}
	}
	return out
}

// flushOrder lists the tables with work, parents first.
func (s *Session) flushOrder() (flushPlan, error) {
	var tables []*mapper.Table
	seen := map[*mapper.Table]bool{}
	add := func(e *identity.Entry) bool {
		if !seen[e.Table()] {
			seen[e.Table()] = true
			tables = append(tables, e.Table())
		}
		return true
	}
	for _, e := range s.pending {
		add(e)
	}
	for _, e := range s.deletes {
		add(e)
	}
	for _, t := range s.idmap.Tables() {
		if !seen[t] {
			seen[t] = true
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 || len(tables) == 1 && !refersToItself(tables[0]) {
		return flushPlan{order: tables}, nil
	}
	// Stable input order (by name) so that the flush order is deterministic.
	slices.SortFunc(tables, func(a, b *mapper.Table) int { return strings.Compare(a.Name, b.Name) })
	fks, err := s.e.reg.ForeignKeys(tables)
	if err != nil {
		return flushPlan{}, err
	}
	order, broken, err := sortTables(tables, fks)
	if err != nil {
		return flushPlan{}, err
	}
	return flushPlan{order: order, fks: fks, broken: broken}, nil
}

// dirty appends the changed persistent objects of table t, in the order
// they entered the session.
func (s *Session) dirty(t *mapper.Table, out []update) []update {
	d := t.Differ()
	add := func(e *identity.Entry, obj, snap any) bool {
		if s.cols = d.Changed(obj, snap, s.cols[:0]); len(s.cols) > 0 {
			out = append(out, update{e: e, cols: slices.Clone(s.cols)})
		}
		return true
	}
	if cc, ok := d.(mapper.ChangeChecker); ok {
		s.idmap.EachChangedIn(t, cc, add)
	} else {
		s.idmap.EachPersistentIn(t, add)
	}
	slices.SortFunc(out, func(a, b update) int { return cmpSeq(a.e, b.e) })
	return out
}

func cmpSeq(a, b *identity.Entry) int {
	switch {
	case a.Seq() < b.Seq():
		return -1
	case a.Seq() > b.Seq():
		return 1
	}
	return 0
}

// syncForeignKeys copies parent keys into the foreign-key columns of t's
// objects: from a belongs-to field on the object, and from has-many fields
// of tracked parents that list it. Parents were inserted before, so their
// keys are known. waits counts the tracked (persistent) objects pointing
// at a parent not inserted yet, which get its key only after its INSERT,
// in an UPDATE of their own (flushSize counts them).
func (s *Session) syncForeignKeys(t *mapper.Table) (waits int, err error) {
	set := func(e *identity.Entry, col *mapper.Column, parent any, pt *mapper.Table) {
		if err != nil {
			return
		}
		if s.pendingByObj[parent] != nil {
			// A parent not inserted yet (later in a self-referencing
			// table, or across a broken cycle) has no row to point at:
			// its key is copied once it has. A tracked object then
			// needs an UPDATE after that INSERT.
			if e.State() == identity.Persistent {
				waits++
			}
			return
		}
		pk := pt.Acc.Value(parent, pt.PK[0])
		cur := t.Acc.Value(e.Obj(), col)
		if valuesEqual(cur, pk) {
			return
		}
		err = s.setCol(e, col, pk)
	}
	if err := s.syncHasOne(t); err != nil {
		return 0, err
	}
	// Belongs-to: the object points at its parent.
	for _, r := range t.Relations {
		if !r.BelongsTo() {
			continue
		}
		pt, terr := s.e.reg.Table(r.Target)
		if terr != nil {
			return 0, terr
		}
		col := t.Column(r.Column)
		s.eachLive(t, func(e *identity.Entry) {
			f := reflect.ValueOf(e.Obj()).Elem().FieldByIndex(r.Index)
			if !f.IsNil() {
				set(e, col, f.Interface(), pt)
			}
		})
	}
	// Has-many: a tracked parent lists the object among its children.
	seen := map[*mapper.Table]bool{}
	visitParents := func(pt *mapper.Table) {
		if seen[pt] {
			return
		}
		seen[pt] = true
		for _, r := range pt.Relations {
			if !r.HasMany || r.Target != t.Type {
				continue
			}
			col := t.Column(r.Column)
			s.eachLive(pt, func(pe *identity.Entry) {
				f := reflect.ValueOf(pe.Obj()).Elem().FieldByIndex(r.Index)
				for i := range f.Len() {
					c := f.Index(i)
					if c.IsNil() {
						continue
					}
					if ce := s.lookup(t, c.Interface()); ce != nil && ce.State() != identity.Deleted {
						set(ce, col, pe.Obj(), pt)
					}
				}
			})
		}
	}
	for _, e := range s.pending {
		visitParents(e.Table())
	}
	for _, pt := range s.idmap.Tables() {
		visitParents(pt)
	}
	return waits, err
}

// eachLive calls fn for t's pending and persistent objects.
func (s *Session) eachLive(t *mapper.Table, fn func(*identity.Entry)) {
	for _, e := range s.pending {
		if e.Table() == t {
			fn(e)
		}
	}
	s.idmap.EachIn(t, func(e *identity.Entry) bool {
		if e.State() == identity.Persistent {
			fn(e)
		}
		return true
	})
}

// valuesEqual compares two bound values, integers across integer types.
func valuesEqual(a, b any) bool {
	a, b = normKey(a), normKey(b)
	if x, ok := keyval.Int64(a); ok {
		y, ok := keyval.Int64(b)
		return ok && x == y
	}
	return reflect.DeepEqual(a, b)
}

// stmtCache keeps generated SQL text per table and shape, so steady-state
// flushes and Gets build no strings.
type stmtCache struct{ m sync.Map }

type stmtKey struct {
	t    *mapper.Table
	kind string
	n    int
}

func (c *stmtCache) get(k stmtKey, build func() string) string {
	if v, ok := c.m.Load(k); ok {
		return v.(string)
	}
	q := build()
	c.m.Store(k, q)
	return q
}

// updateStmt returns updateSQL of cols, kept per table and set of columns
// when cols are in column order (as Changed gives them; the statement's
// placeholders follow that order, so a set met in another order is built
// anew) and their positions fit in the bits of an int.
func (e *Engine) updateStmt(t *mapper.Table, cols []*mapper.Column) string {
	mask, prev := 0, -1
	for _, c := range cols {
		if c.Pos <= prev || c.Pos >= bits.UintSize-1 {
			return updateSQL(e.dialect, t, cols)
		}
		prev = c.Pos
		mask |= 1 << c.Pos
	}
	return e.stmts.get(stmtKey{t, "update", mask}, func() string { return updateSQL(e.dialect, t, cols) })
}

// insertShape is how insert sends t's rows, and so how flushSize counts
// them: ret are the generated columns read back, and chunk is the rows one
// INSERT takes — 1 when rows go one at a time (generated keys without
// RETURNING, or no insertable column), else as many as the parameter
// limit allows, at most 1000.
func insertShape(e *Engine, t *mapper.Table) (ret []*mapper.Column, chunk int) {
	ret = e.autoColumns(t)
	d := e.dialect
	cols := len(t.Insertable())
	if len(ret) > 0 && !d.Returning() || cols == 0 {
		return ret, 1
	}
	return ret, max(min(d.MaxParams()/cols, 1000), 1)
}

// autoColumns returns t's generated columns, which an INSERT reads back,
// kept per table: every flush and every commit's count of statements asks.
func (e *Engine) autoColumns(t *mapper.Table) []*mapper.Column {
	if v, ok := e.autoCols.Load(t); ok {
		return v.([]*mapper.Column)
	}
	var ret []*mapper.Column
	for _, c := range t.Columns {
		if c.Auto {
			ret = append(ret, c)
		}
	}
	e.autoCols.Store(t, ret)
	return ret
}

// deleteBatch is how many rows of t one DELETE ... IN takes (t has no
// version column), for delete and flushSize alike.
func deleteBatch(d dialect.Dialect, t *mapper.Table) int {
	return max(min(d.MaxParams()/max(len(t.PK), 1), 1000), 1)
}

// insert writes pending objects of one table: multi-row INSERT ... RETURNING
// when the dialect has RETURNING (chunked under its parameter limit); one
// row at a time with LastInsertId when it has not and keys are generated;
// multi-row without RETURNING when nothing is generated.
func (s *Session) insert(ctx context.Context, t *mapper.Table, ents []*identity.Entry) error {
	cols := t.Insertable()
	if v := t.Version; v != nil {
		for _, e := range ents {
			if n, _ := keyval.Int64(t.Acc.Value(e.Obj(), v)); n == 0 {
				if err := s.setCol(e, v, int64(1)); err != nil { // versions start at 1
					return err
				}
			}
		}
	}
	d := s.e.dialect
	ret, chunk := insertShape(s.e, t)
	for len(ents) > 0 {
		n := min(chunk, len(ents))
		batch := ents[:n]
		ents = ents[n:]
		q := s.e.stmts.get(stmtKey{t, "insert", n}, func() string { return insertSQL(d, t, cols, ret, n, d.Returning()) })
		args := make([]any, 0, n*len(cols))
		for _, e := range batch {
			for _, c := range cols {
				args = append(args, t.Acc.Value(e.Obj(), c))
			}
		}
		if len(ret) > 0 && d.Returning() {
			if s.rec != nil && len(t.Relations) == 0 {
				// Pipelined: sent later, finished after its round trip (batchcommit.go).
				if err := s.deferInsert(t, q, args, batch, ret); err != nil {
					return err
				}
				continue
			}
			if err := s.insertReturning(ctx, t, q, args, batch, ret); err != nil {
				return err
			}
		} else {
			if len(ret) > 0 && s.rec != nil {
				return errNotBatchable // needs LastInsertId now: see needsLastInsertID
			}
			res, err := s.exec(ctx, q, args)
			if err != nil {
				return err
			}
			if len(ret) > 0 {
				if err := s.afterLastInsert(ctx, t, res, batch[0], ret); err != nil {
					return err
				}
			}
		}
		// One allocation for the whole batch's snapshots.
		// (A snapshot SetSnapshot refused stays nil, and Insert takes it.)
		if len(batch) == 1 {
			// One object (one row at a time, or a commit of one): its own
			// snapshot is that one allocation, without the batch's slices
			// and closures.
			_ = batch[0].SetSnapshot(t.Acc.Snapshot(batch[0].Obj()))
		} else if bs, ok := t.Acc.(mapper.BatchSnapshotter); ok {
			bs.SnapshotBatch(len(batch), func(i int) any { return batch[i].Obj() }, func(i int, snap any) { _ = batch[i].SetSnapshot(snap) })
		}
		s.idmap.Reserve(t, len(batch))
		var ierr error
		for _, e := range batch {
			if ierr = s.markInserted(e); ierr != nil {
				break
			}
		}
		s.pending = slices.DeleteFunc(s.pending, func(p *identity.Entry) bool { return p.State() != identity.Pending })
		if ierr != nil {
			return ierr
		}
	}
	return nil
}

// insertReturning runs a multi-row INSERT ... RETURNING and scans the
// generated columns back into the objects, in VALUES order. The databases
// that have RETURNING return the rows of INSERT ... VALUES in that order;
// with a generated integer key, the keys are checked to rise along the
// rows, so a database that ever broke that would fail the flush rather
// than swap two objects' keys.
func (s *Session) insertReturning(ctx context.Context, t *mapper.Table, q string, args []any, batch []*identity.Entry, ret []*mapper.Column) error {
	for _, e := range batch {
		for _, c := range ret {
			s.logFlush(undo{kind: undoSetCol, e: e, col: c, old: t.Acc.Value(e.Obj(), c)})
		}
	}
	if s.rec != nil {
		return s.insertReturningBatched(ctx, t, q, args, batch, ret) // batchcommit.go
	}
	if sent, err := s.insertDirect(ctx, t, q, args, batch, ret); sent || err != nil { // pginsert.go
		return err
	}
	rows, obs, err := s.writeQuery(ctx, q, args)
	if err != nil {
		return err
	}
	i := 0
	var prev int64
	for rows.Next() {
		if i >= len(batch) {
			err = fmt.Errorf("orm: INSERT returned more rows than it inserted")
			break
		}
		obj := batch[i].Obj()
		dest := s.dest[:0]
		for _, c := range ret {
			dest = append(dest, t.Acc.Addr(obj, c))
		}
		s.dest = dest
		if err = rows.Scan(dest...); err != nil {
			break
		}
		if t.IntKey() && t.PK[0].Auto {
			k, _ := keyval.Int64(t.Acc.Value(obj, t.PK[0]))
			if i > 0 && k <= prev {
				err = fmt.Errorf("orm: INSERT ... RETURNING gave keys out of order (%d after %d)", k, prev)
				break
			}
			prev = k
		}
		i++
	}
	if err = s.e.closeRows(ctx, rows, obs, int64(i), err); err == nil && i != len(batch) {
		err = fmt.Errorf("orm: INSERT returned %d rows for %d objects", i, len(batch))
	}
	return err
}

// afterLastInsert reads the generated key of a one-row INSERT without
// RETURNING, and any other generated column with a SELECT by that key.
func (s *Session) afterLastInsert(ctx context.Context, t *mapper.Table, res interface{ LastInsertId() (int64, error) }, e *identity.Entry, ret []*mapper.Column) error {
	var others []*mapper.Column
	for _, c := range ret {
		if c.PK && c.Auto && len(t.PK) == 1 {
			id, err := res.LastInsertId()
			if err != nil {
				return fmt.Errorf("orm: reading the generated key: %w", err)
			}
			if err := s.setCol(e, c, id); err != nil {
				return err
			}
			continue
		}
		others = append(others, c)
	}
	if len(others) == 0 {
		return nil
	}
	for _, c := range others {
		s.logFlush(undo{kind: undoSetCol, e: e, col: c, old: t.Acc.Value(e.Obj(), c)})
	}
	q := selectByKeySQL(s.e.dialect, t, others)
	return s.scanOne(ctx, t, q, keyValues(t, e.Obj()), e.Obj(), others)
}

// markInserted makes an inserted entry persistent and tracked.
func (s *Session) markInserted(e *identity.Entry) error {
	// If the key's row was deleted in this transaction (Add allows a new
	// object to reuse it then), the new object takes its place.
	displaced, err := s.idmap.Insert(e)
	if err != nil {
		return err
	}
	delete(s.pendingByObj, e.Obj()) // the caller drops it from s.pending
	if displaced != nil {
		s.logFlush(undo{kind: undoDisplace, e: displaced})
	}
	s.logFlush(undo{kind: undoInsert, e: e})
	return nil
}

// update writes one object's changed columns, bumping and checking its
// version if it has one. Zero rows matched is a *StaleDataError.
func (s *Session) update(ctx context.Context, u update) error {
	t, e := u.e.Table(), u.e
	args := make([]any, 0, len(u.cols)+len(t.PK)+2)
	for _, c := range u.cols {
		if c.PK {
			return fmt.Errorf("orm: the primary key of a persistent %s changed (%s); Expunge it and Add a new object instead", t.Name, c.Name)
		}
		if updateSet(c) {
			args = append(args, t.Acc.Value(e.Obj(), c))
		}
	}
	if len(args) == 0 {
		// Only read-only columns changed: nothing to write, but the
		// snapshot must stop reporting them.
		return s.resnapshot(e)
	}
	// The arguments in the order updateSQL numbers them: the set columns,
	// the new version, the key, the old version.
	var oldVersion int64
	if v := t.Version; v != nil {
		oldVersion, _ = keyval.Int64(t.Acc.Value(e.Snap(), v))
		args = append(args, oldVersion+1)
	}
	for _, c := range t.PK {
		args = append(args, t.Acc.Value(e.Snap(), c))
	}
	if t.Version != nil {
		args = append(args, oldVersion)
	}
	res, err := s.exec(ctx, s.e.updateStmt(t, u.cols), args)
	if err != nil {
		return err
	}
	if rows, err := res.RowsAffected(); err == nil && rows == 0 {
		return &StaleDataError{Op: "UPDATE", Table: t.Name, Key: keyValues(t, e.Snap())}
	}
	if v := t.Version; v != nil {
		if err := s.setCol(e, v, oldVersion+1); err != nil {
			return err
		}
	}
	return s.resnapshot(e)
}

// delete removes rows: one statement per row with a version check when the
// table has a version column, else batched with IN.
func (s *Session) delete(ctx context.Context, t *mapper.Table, ents []*identity.Entry) error {
	if t.SoftDelete != nil {
		var err error
		if ents, err = s.softDelete(ctx, t, ents); err != nil || len(ents) == 0 {
			return err
		}
	}
	d := s.e.dialect
	if v := t.Version; v != nil {
		q := s.e.stmts.get(stmtKey{t, "delete-version", 1}, func() string { return deleteVersionSQL(d, t) })
		for _, e := range ents {
			args := append(keyValues(t, e.Snap()), t.Acc.Value(e.Snap(), v))
			res, err := s.exec(ctx, q, args)
			if err != nil {
				return err
			}
			if rows, err := res.RowsAffected(); err == nil && rows == 0 {
				return &StaleDataError{Op: "DELETE", Table: t.Name, Key: keyValues(t, e.Snap())}
			}
			if err := s.markDeleted(e); err != nil {
				return err
			}
		}
		return nil
	}
	per := deleteBatch(d, t)
	for len(ents) > 0 {
		n := min(per, len(ents))
		batch := ents[:n]
		ents = ents[n:]
		q := s.e.stmts.get(stmtKey{t, "delete-in", n}, func() string { return deleteInSQL(d, t, n) })
		args := make([]any, 0, n*len(t.PK))
		for _, e := range batch {
			args = append(args, keyValues(t, e.Snap())...)
		}
		// A row someone else deleted already is not an error here: the
		// outcome, no row, is what was asked for. Use a version column to
		// be told about concurrent changes.
		if _, err := s.exec(ctx, q, args); err != nil {
			return err
		}
		for _, e := range batch {
			if err := s.markDeleted(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Session) markDeleted(e *identity.Entry) error {
	if err := e.MarkFlushed(); err != nil {
		return err
	}
	s.logFlush(undo{kind: undoDeleteDB, e: e})
	return nil
}

// resnapshot takes a new snapshot of a written object, logging the old.
func (s *Session) resnapshot(e *identity.Entry) error {
	old := e.Snap()
	if err := e.SetSnapshot(e.Table().Acc.Snapshot(e.Obj())); err != nil {
		return err
	}
	s.logFlush(undo{kind: undoSnap, e: e, old: old})
	return nil
}
