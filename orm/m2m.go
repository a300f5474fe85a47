package orm

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// Many-to-many relations keep no column in either table: a pair is a row
// of the join table. The session tracks those rows as it tracks columns,
// by snapshot: for each tracked object and m2m relation that was loaded
// (or flushed), the keys of the related objects the join table holds. At
// flush the slice is compared with that snapshot; the pairs gone are
// deleted and the pairs new are inserted, each kind batched per join
// table, after every INSERT of the flush (both sides then have their keys)
// and before every DELETE (no row is deleted while a join row refers to
// it). Deleting an object deletes its join rows first, by key.
//
// A relation that was never loaded has no snapshot: a nil slice means
// "not loaded" and writes nothing, a non-nil one is taken as new pairs.
// Load a relation before removing from it.

// linkKey names one m2m relation of one tracked object.
type linkKey struct {
	e *identity.Entry
	r *mapper.Relation
}

// link is one pair's other side: the target's key, and its value to bind.
type link struct {
	k mapper.Key
	v any
}

// linkUndo is what an undoLinks record restores: the snapshot before the
// flush changed it, or its absence.
type linkUndo struct {
	lk  linkKey
	old []link
	had bool
}

// setLinksLocked replaces a link snapshot during a flush, logging the old
// one so that a failed commit or savepoint puts it back.
func (s *Session) setLinksLocked(lk linkKey, cur []link, keep bool) {
	old, had := s.links[lk]
	s.logFlush(undo{kind: undoLinks, e: lk.e, old: linkUndo{lk, old, had}})
	if !keep {
		delete(s.links, lk)
		return
	}
	if s.links == nil {
		s.links = map[linkKey][]link{}
	}
	s.links[lk] = cur
}

// restoreLinks undoes setLinksLocked.
func (s *Session) restoreLinks(u linkUndo) {
	if !u.had {
		delete(s.links, u.lk)
		return
	}
	if s.links == nil {
		s.links = map[linkKey][]link{}
	}
	s.links[u.lk] = u.old
}

// snapshotLoadedLinks records what a Load of m2m relation r read: for each
// tracked parent, the keys of its elements (elems[first[g]:first[g+1]]
// for its group g). Not a flush effect: what was read stays read.
func (s *Session) snapshotLoadedLinks(t *mapper.Table, r *mapper.Relation, target *mapper.Table, parents []any, pgroup []int32, elems []unsafe.Pointer, first []int32) {
	for i, p := range parents {
		g := pgroup[i]
		if g < 0 {
			continue
		}
		e := s.trackedEntry(t, p)
		if e == nil {
			continue
		}
		run := elems[first[g]:first[g+1]]
		ls := make([]link, len(run))
		for j, ep := range run {
			obj := reflect.NewAt(target.Type, ep).Interface()
			ls[j] = link{target.Acc.Key(obj), target.Acc.Value(obj, target.PK[0])}
		}
		if s.links == nil {
			s.links = map[linkKey][]link{}
		}
		s.links[linkKey{e, r}] = ls
	}
}

// joinWork gathers a flush's statements for one join table. Both sides
// may declare the relation (Post.Tags and Tag.Posts through post_tags):
// the work is per join table, its pairs oriented as the first relation
// met declares them, and a pair both sides ask for is written once.
type joinWork struct {
	name        string
	left, right string   // the join table's columns, in pair order
	add, del    [][2]any // pairs (left, right) to insert and to delete
	byCol       [2][]any // keys whose every row goes: by left, by right
	seen        map[queuedPair]bool
}

type queuedPair struct {
	p   [2]any
	add bool
}

// pair queues a pair of r's join table, given as r declares it.
func (w *joinWork) pair(r *mapper.Relation, this, other any, add bool) {
	p := [2]any{normKey(this), normKey(other)}
	if r.Join.Left != w.left {
		p[0], p[1] = p[1], p[0]
	}
	if w.seen == nil {
		w.seen = map[queuedPair]bool{}
	}
	if w.seen[queuedPair{p, add}] {
		return
	}
	w.seen[queuedPair{p, add}] = true
	if add {
		w.add = append(w.add, p)
	} else {
		w.del = append(w.del, p)
	}
}

// all queues the deletion of every pair with key k in r's column col
// (0: the owning side's, 1: the target's).
func (w *joinWork) all(r *mapper.Relation, col int, k any) {
	if r.Join.Left != w.left {
		col = 1 - col
	}
	w.byCol[col] = append(w.byCol[col], k)
}

// flushLinks writes the join-row changes of every tracked object's m2m
// relations. It runs in flushLocked after the inserts and updates and
// before the deletes. On error it returns the failing statement's kind and
// join table, for the FlushError.
func (s *Session) flushLinks(ctx context.Context, wrote *bool) (op, table string, err error) {
	if !s.e.reg.HasM2M() {
		return "", "", nil // engines without m2m models pay one atomic load
	}
	if t, err := s.drainForLinks(ctx); err != nil { // batchcommit.go
		return "INSERT", t, err
	}
	tables := s.idmap.Tables()
	var work []*joinWork
	get := func(r *mapper.Relation) *joinWork {
		for _, w := range work {
			if w.name == r.Join.Name {
				return w
			}
		}
		w := &joinWork{name: r.Join.Name, left: r.Join.Left, right: r.Join.Right}
		work = append(work, w)
		return w
	}
	for _, t := range tables {
		for _, r := range t.Relations {
			if r.Join == nil {
				continue
			}
			target, terr := s.e.reg.Table(r.Target)
			if terr != nil {
				return "", "", terr
			}
			s.idmap.EachIn(t, func(e *identity.Entry) bool {
				switch {
				case e.State() == identity.Persistent:
					s.diffLinks(e, r, target, get)
				case e.State() == identity.Deleted && !e.Flushed() && !s.keepsRow(e):
					get(r).all(r, 0, t.Acc.Value(e.Snap(), t.PK[0]))
					if _, had := s.links[linkKey{e, r}]; had {
						s.setLinksLocked(linkKey{e, r}, nil, false)
					}
				}
				return true
			})
		}
	}
	// Objects deleted on the other side of m2m relations known here.
	var gone map[reflect.Type]map[mapper.Key]bool // see unlinkDeleted
	for _, e := range s.deletes {
		if e.Flushed() || s.keepsRow(e) {
			continue
		}
		for _, t := range tables {
			for _, r := range t.Relations {
				if r.Join != nil && r.Target == e.Table().Type {
					get(r).all(r, 1, e.Table().Acc.Value(e.Snap(), e.Table().PK[0]))
				}
			}
		}
		if len(s.links) > 0 {
			tt := e.Table().Type
			if gone == nil {
				gone = map[reflect.Type]map[mapper.Key]bool{}
			}
			if gone[tt] == nil {
				gone[tt] = map[mapper.Key]bool{}
			}
			gone[tt][e.Table().Acc.Key(e.Obj())] = true
		}
	}
	s.unlinkDeleted(gone)
	// Join tables in name order, so that the statements are deterministic.
	slices.SortFunc(work, func(a, b *joinWork) int { return strings.Compare(a.name, b.name) })
	for _, w := range work {
		if op, err := s.writeJoin(ctx, w, wrote); err != nil {
			return op, w.name, err
		}
	}
	return "", "", nil
}

// unlinkDeleted takes the deleted objects, gone's keys by model type, out
// of the link snapshots of the tracked objects whose m2m relations hold
// them: their join rows are deleted with them, so a slice still listing
// one (or a new object with its key) is a pair to insert again at a later
// flush, not one the join table has. One pass over the snapshots serves
// every deleted object.
func (s *Session) unlinkDeleted(gone map[reflect.Type]map[mapper.Key]bool) {
	for lk, ls := range s.links {
		keys := gone[lk.r.Target]
		if keys == nil || lk.e.State() != identity.Persistent {
			continue
		}
		if slices.ContainsFunc(ls, func(l link) bool { return keys[l.k] }) {
			s.setLinksLocked(lk, slices.DeleteFunc(slices.Clone(ls), func(l link) bool { return keys[l.k] }), true)
		}
	}
}

// diffLinks compares e's m2m relation r with its snapshot and queues the
// pairs to insert and delete; the snapshot becomes the slice.
func (s *Session) diffLinks(e *identity.Entry, r *mapper.Relation, target *mapper.Table, get func(*mapper.Relation) *joinWork) {
	lk := linkKey{e, r}
	elems := *fieldSlice(e.Obj(), r)
	old, had := s.links[lk]
	if !had && elems == nil {
		return // never loaded, never set
	}
	key := func(p unsafe.Pointer) (mapper.Key, any) {
		obj := reflect.NewAt(target.Type, p).Interface()
		return target.Acc.Key(obj), obj
	}
	if len(elems) == len(old) {
		same := true
		for i, p := range elems {
			if p == nil {
				same = false
				break
			}
			if k, _ := key(p); k != old[i].k {
				same = false
				break
			}
		}
		if same {
			return // the common case: nothing changed, nothing allocated
		}
	}
	cur := make([]link, 0, len(elems))
	inCur := make(map[mapper.Key]bool, len(elems))
	for _, p := range elems {
		if p == nil {
			continue
		}
		k, obj := key(p)
		if inCur[k] {
			continue // listed twice: one join row
		}
		inCur[k] = true
		cur = append(cur, link{k, target.Acc.Value(obj, target.PK[0])})
	}
	inOld := make(map[mapper.Key]bool, len(old))
	for _, l := range old {
		inOld[l.k] = true
	}
	t := e.Table()
	left := t.Acc.Value(e.Obj(), t.PK[0])
	w := get(r)
	for _, l := range old {
		if !inCur[l.k] {
			w.pair(r, left, l.v, false)
		}
	}
	for _, l := range cur {
		if !inOld[l.k] {
			w.pair(r, left, l.v, true)
		}
	}
	s.setLinksLocked(lk, cur, true)
}

// writeJoin sends one join table's deletes, then its inserts, each batched
// under the dialect's parameter limit and at most 1000 rows a statement.
func (s *Session) writeJoin(ctx context.Context, w *joinWork, wrote *bool) (Op, error) {
	d := s.e.dialect
	per := min(d.MaxParams()/2, 1000)
	for i, keys := range w.byCol {
		for len(keys) > 0 {
			n := min(d.MaxParams(), 1000, len(keys))
			*wrote = true
			if _, err := s.exec(ctx, joinDeleteSQL(d, w.name, [2]string{w.left, w.right}[i], n), keys[:n]); err != nil {
				return OpDelete, err
			}
			keys = keys[n:]
		}
	}
	// pairs flattens rows into the arguments of the pair statements.
	pairs := func(rows [][2]any) []any {
		args := make([]any, 0, 2*len(rows))
		for _, p := range rows {
			args = append(args, p[0], p[1])
		}
		return args
	}
	for rows := w.del; len(rows) > 0; {
		n := min(per, len(rows))
		*wrote = true
		if _, err := s.exec(ctx, joinPairsDeleteSQL(d, w.name, w.left, w.right, n), pairs(rows[:n])); err != nil {
			return OpDelete, err
		}
		rows = rows[n:]
	}
	for rows := w.add; len(rows) > 0; {
		n := min(per, len(rows))
		*wrote = true
		if _, err := s.exec(ctx, joinInsertSQL(d, w.name, w.left, w.right, n), pairs(rows[:n])); err != nil {
			return OpInsert, err
		}
		rows = rows[n:]
	}
	return "", nil
}

// syncHasOne copies parent keys into the foreign-key column of t's
// objects that a tracked parent holds in a has-one field, as
// syncForeignKeys does for has-many.
func (s *Session) syncHasOne(t *mapper.Table) error {
	if !s.e.reg.HasHasOne() {
		return nil
	}
	var err error
	seen := map[*mapper.Table]bool{}
	visit := func(pt *mapper.Table) {
		if seen[pt] {
			return
		}
		seen[pt] = true
		for _, r := range pt.Relations {
			if !r.HasOne || r.Target != t.Type || err != nil {
				continue
			}
			col := t.Column(r.Column)
			s.eachLive(pt, func(pe *identity.Entry) {
				p := *fieldPtr(pe.Obj(), r)
				if p == nil || err != nil {
					return
				}
				child := reflect.NewAt(t.Type, p).Interface()
				ce := s.lookup(t, child)
				if ce == nil || ce.State() == identity.Deleted {
					return
				}
				pk := pt.Acc.Value(pe.Obj(), pt.PK[0])
				if !valuesEqual(t.Acc.Value(child, col), pk) {
					err = s.setCol(ce, col, pk)
				}
			})
		}
	}
	for _, e := range s.pending {
		visit(e.Table())
	}
	for _, pt := range s.idmap.Tables() {
		visit(pt)
	}
	return err
}
