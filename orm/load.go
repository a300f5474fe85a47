package orm

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// Load eager-loads relations of the objects the query returns, named by
// their Go field: "Books" fills each author's Books. A dotted path loads
// nested relations, level by level: "Books.Reviews" fills the Books and
// then every loaded book's Reviews. Each relation costs one extra query
// (per 1000 keys), with IN on the keys of the level above, whatever the
// number of objects: no N+1. A path shared by several arguments is loaded
// once ("Books", "Books.Reviews" is two queries). Every kind of relation
// loads: belongs-to, has-many, has-one and many-to-many (one query joining
// the join table to the target table).
//
// Loaded objects go through the identity map like any other rows. A
// many-to-many relation loaded into tracked objects is also the baseline
// of its join rows: elements added to the slice afterwards are inserted as
// join rows at the next flush, elements removed are deleted.
//
// As the identity map keeps a tracked object's unflushed changes, a Load
// in a session without autoflush keeps a tracked object's relation that
// is already loaded or set: it may hold changes the query did not flush.
// With autoflush those are written first, and the relation is read anew.
func (q *Q[T]) Load(paths ...string) *Q[T] {
	c := q.clone()
	for _, p := range paths {
		if c.err == nil && c.t != nil {
			c.err = checkLoadPath(q.s.e.reg, c.t, p)
		}
		c.loads = append(c.loads, p)
	}
	return c
}

// checkLoadPath checks that every step of a dotted Load path is a rel
// field of the table the step before reaches.
func checkLoadPath(reg *mapper.Registry, t *mapper.Table, path string) error {
	cur := t
	for name := range strings.SplitSeq(path, ".") {
		r := relation(cur, name)
		if r == nil {
			if name == path {
				return fmt.Errorf("orm: Load(%q): %s has no rel field of that name", path, cur.Name)
			}
			return fmt.Errorf("orm: Load(%q): %s has no rel field %q", path, cur.Name, name)
		}
		next, err := reg.Table(r.Target)
		if err != nil {
			return fmt.Errorf("orm: Load(%q): %w", path, err)
		}
		cur = next
	}
	return nil
}

func relation(t *mapper.Table, field string) *mapper.Relation {
	for _, r := range t.Relations {
		if r.Field == field {
			return r
		}
	}
	return nil
}

// loadInto runs the query's Loads for the objects it returned.
func loadInto[T any](ctx context.Context, s *Session, t *mapper.Table, out []*T, paths []string, noTrack bool) error {
	if len(paths) == 0 || len(out) == 0 {
		return nil
	}
	objs := make([]any, len(out))
	for i, o := range out {
		objs[i] = o
	}
	return s.loadPaths(ctx, t, objs, paths, noTrack)
}

// loadPaths loads the dotted paths for objs, all of table t: one level at a
// time, each relation once, however many paths go through it.
func (s *Session) loadPaths(ctx context.Context, t *mapper.Table, objs []any, paths []string, noTrack bool) error {
	var firsts []string
	rest := map[string][]string{}
	for _, p := range paths {
		first, sub, nested := strings.Cut(p, ".")
		if _, ok := rest[first]; !ok {
			firsts = append(firsts, first)
			rest[first] = nil
		}
		if nested {
			rest[first] = append(rest[first], sub)
		}
	}
	for _, name := range firsts {
		r := relation(t, name)
		if r == nil { // Load checked the paths; this is a guard, not a path
			return fmt.Errorf("orm: Load: %s has no rel field %q", t.Name, name)
		}
		fill, kept := objs, []any(nil)
		if !noTrack && !s.autoflush {
			fill, kept = s.splitUnflushed(t, r, objs)
		}
		buf := loadBufs.Get().(*loadBuf)
		loaded, err := s.loadRelation(ctx, t, r, fill, noTrack, buf)
		sub := rest[name]
		var next []any
		if len(sub) > 0 {
			next = slices.Clone(loaded) // the next level must not share this level's buffer
			next = append(next, s.keptRelated(r, kept)...)
		}
		buf.put(loaded)
		if err != nil {
			return err
		}
		if !noTrack {
			s.noteLoaded(t, r, fill) // delete-orphan: the children now in the slice
		}
		if len(next) > 0 {
			target, err := s.e.reg.Table(r.Target)
			if err != nil {
				return err
			}
			if err := s.loadPaths(ctx, target, next, sub, noTrack); err != nil {
				return err
			}
		}
	}
	return nil
}

// splitUnflushed separates, for a Load of relation r in a session without
// autoflush, the parents whose field the Load fills from those it keeps:
// a tracked parent whose field is already set (loaded before, or set by
// the caller) may hold changes not yet flushed, which the query did not
// write first and a Load must not overwrite (an element appended would
// never be inserted, one removed would come back). With autoflush the
// query has written them, so the rows read are the same.
func (s *Session) splitUnflushed(t *mapper.Table, r *mapper.Relation, objs []any) (fill, kept []any) {
	for i, o := range objs {
		set := false
		if r.IsSlice() {
			set = *fieldSlice(o, r) != nil
		} else {
			set = *fieldPtr(o, r) != nil
		}
		if !set || s.trackedEntry(t, o) == nil {
			if kept != nil {
				fill = append(fill, o)
			}
			continue
		}
		if kept == nil {
			fill = slices.Clone(objs[:i])
		}
		kept = append(kept, o)
	}
	if kept == nil {
		fill = objs
	}
	return fill, kept
}

// keptRelated lists the objects in relation r of the parents a Load kept
// (splitUnflushed) that the session tracks, for the next level of a
// nested Load.
func (s *Session) keptRelated(r *mapper.Relation, kept []any) []any {
	if len(kept) == 0 {
		return nil
	}
	target, err := s.e.reg.Table(r.Target)
	if err != nil {
		return nil
	}
	var out []any
	add := func(p unsafe.Pointer) {
		if p == nil {
			return
		}
		if obj := reflect.NewAt(target.Type, p).Interface(); s.trackedEntry(target, obj) != nil {
			out = append(out, obj)
		}
	}
	for _, o := range kept {
		if r.IsSlice() {
			for _, p := range *fieldSlice(o, r) {
				add(p)
			}
		} else {
			add(*fieldPtr(o, r))
		}
	}
	return out
}

// loadBuf holds the scratch slices of one loadRelation, pooled: a Load
// of a thousand rows would otherwise grow them anew every time.
type loadBuf struct {
	loaded   []any
	rowGroup []int32
}

var loadBufs = sync.Pool{New: func() any { return new(loadBuf) }}

// put returns b to the pool, keeping the array of loaded (which the caller
// no longer uses) but none of the objects it points to.
func (b *loadBuf) put(loaded []any) {
	if cap(loaded) > 1<<16 {
		return // a huge Load's buffers are not worth keeping
	}
	clear(loaded)
	b.loaded = loaded[:0]
	b.rowGroup = b.rowGroup[:0]
	loadBufs.Put(b)
}

// loadRelation fills relation r of parents (all of table t) with one IN
// query per chunk of keys, and returns the distinct objects it loaded, for
// the next level of a nested Load, in buf's storage (valid until buf is
// put back).
//
// Parents are grouped by the key they match on (their own primary key, or
// for belongs-to their foreign key); each row read is assigned to its
// group by the matched column. The slices of a has-many or many-to-many
// field are cut from one array holding every loaded element, so a Load
// allocates per row only the row's object.
func (s *Session) loadRelation(ctx context.Context, t *mapper.Table, r *mapper.Relation, parents []any, noTrack bool, buf *loadBuf) ([]any, error) {
	target, err := s.e.reg.Table(r.Target)
	if err != nil {
		return nil, err
	}
	// pcol is the parent's column that is matched; keyTab is the table
	// whose primary key those values are, which gives them their Key form.
	pcol, keyTab := t.PK[0], t
	if r.BelongsTo() {
		pcol, keyTab = t.Column(r.Column), target
	}
	groups := newGroupIndex(keyTab.IntKey(), len(parents))
	pgroup := make([]int32, len(parents)) // parent → group; -1 when it has no key
	keys := make([]any, 0, len(parents))  // the value to bind, per group
	for i, p := range parents {
		k, v, ok := colKey(t, p, pcol, keyTab)
		if !ok {
			pgroup[i] = -1
			continue
		}
		g, seen := groups.get(k)
		if !seen {
			g = int32(len(keys))
			groups.put(k, g)
			keys = append(keys, v)
		}
		pgroup[i] = g
	}

	// rowGroup holds the group of each row read; rowObj, for many-to-many
	// only, the row's object's index in loaded (elsewhere row i is
	// loaded[i]).
	loaded, rowGroup := buf.loaded[:0], buf.rowGroup[:0]
	defer func() { buf.rowGroup = rowGroup }()
	var rowObj []int32
	var seenObj map[mapper.Key]int32 // many-to-many: a target row comes once per link
	if r.Join != nil {
		seenObj = map[mapper.Key]int32{}
	}
	mcol := target.PK[0] // the target's column matched with IN, but for m2m
	if !r.BelongsTo() && r.Join == nil {
		mcol = target.Column(r.Column)
	}
	int64Col := keyTab.IntKey() && mcol.Type.Kind() == reflect.Int64
	shape := "load:" + loadShape(r)
	d := s.e.dialect
	per := min(d.MaxParams()-1, 1000)
	for start := 0; start < len(keys); start += per {
		chunk := keys[start:min(start+per, len(keys))]
		q := s.e.stmts.get(stmtKey{target, shape, len(chunk)}, func() string {
			return loadSQL(s.e.dialect, r, target, len(chunk))
		})
		var left any // many-to-many: the join row's key of this side
		direct := false
		if r.Join != nil {
			left = reflect.New(t.PK[0].Type).Interface()
			direct = s.e.directScan(target, left)
		} else {
			direct = s.e.directScan(target)
		}
		_, err := s.readRows(ctx, direct, q, chunk, func(scan func(...any) error) error {
			obj := reflect.New(target.Type).Interface()
			dest := s.scanDest(target, obj, target.Columns)
			if left != nil {
				dest = append([]any{left}, dest...)
			}
			if err := scan(dest...); err != nil {
				return err
			}
			var g int32 = -1
			if left != nil {
				if k, _, ok := colKey(t, left, nil, keyTab); ok {
					if gi, found := groups.get(k); found {
						g = gi
					}
				}
				tk := target.Acc.Key(obj)
				if i, dup := seenObj[tk]; dup {
					rowObj = append(rowObj, i)
					rowGroup = append(rowGroup, g)
					return nil
				}
				seenObj[tk] = int32(len(loaded))
			} else if int64Col {
				// The common case, read in place: an int64 foreign key.
				if gi, found := groups.ints[*(*int64)(mcol.Ptr(obj))]; found {
					g = gi
				}
			} else {
				if k, _, ok := colKey(target, obj, mcol, keyTab); ok {
					if gi, found := groups.get(k); found {
						g = gi
					}
				}
			}
			if seenObj != nil {
				rowObj = append(rowObj, int32(len(loaded)))
			}
			rowGroup = append(rowGroup, g)
			loaded = append(loaded, obj)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := resolveAll(ctx, s, target, loaded, noTrack); err != nil {
		return nil, err
	}
	rowAt := func(i int) unsafe.Pointer {
		if rowObj != nil {
			return objPtr(loaded[rowObj[i]])
		}
		return objPtr(loaded[i])
	}

	// Fill the parents' fields, writing them in place: a parent's field
	// is at its struct's address plus the relation's offset.
	if r.IsSlice() {
		// A counting sort of the rows by group; each group's elements are
		// then one run of elems, in row order (the query's key order).
		first := make([]int32, len(keys)+1)
		for _, g := range rowGroup {
			if g >= 0 {
				first[g+1]++
			}
		}
		for g := range keys {
			first[g+1] += first[g]
		}
		elems := make([]unsafe.Pointer, first[len(keys)])
		next := append([]int32(nil), first[:len(keys)]...)
		for i, g := range rowGroup {
			if g >= 0 {
				elems[next[g]] = rowAt(i)
				next[g]++
			}
		}
		for i, p := range parents {
			if g := pgroup[i]; g >= 0 {
				// Capacity is clipped, so appending to one parent's slice
				// copies instead of writing over the next parent's.
				*fieldSlice(p, r) = elems[first[g]:first[g+1]:first[g+1]]
			}
		}
		if r.Join != nil && !noTrack {
			s.snapshotLoadedLinks(t, r, target, parents, pgroup, elems, first)
		}
		return loaded, nil
	}
	found := make([]unsafe.Pointer, len(keys))
	for i, g := range rowGroup {
		if g >= 0 && found[g] == nil { // has-one: the first row by key wins
			found[g] = rowAt(i)
		}
	}
	for i, p := range parents {
		g := pgroup[i]
		if g < 0 || found[g] == nil && r.BelongsTo() {
			continue // no key, or (a missing parent row) nothing to point at
		}
		*fieldPtr(p, r) = found[g]
	}
	return loaded, nil
}

// groupIndex maps the key a parent matches on to its group. Integer keys
// get a map of their own: hashing an int64 is cheaper than a Key, and a
// Load looks one up per row.
type groupIndex struct {
	ints map[int64]int32 // when the keys are integers
	keys map[mapper.Key]int32
}

func newGroupIndex(intKeys bool, n int) groupIndex {
	if intKeys {
		return groupIndex{ints: make(map[int64]int32, n)}
	}
	return groupIndex{keys: make(map[mapper.Key]int32, n)}
}

func (gi groupIndex) get(k mapper.Key) (int32, bool) {
	if gi.ints != nil {
		g, ok := gi.ints[k.I]
		return g, ok
	}
	g, ok := gi.keys[k]
	return g, ok
}

func (gi groupIndex) put(k mapper.Key, g int32) {
	if gi.ints != nil {
		gi.ints[k.I] = g
	} else {
		gi.keys[k] = g
	}
}

// loadShape names what a load query of r matches on, for the statement
// cache: two relations to one table that match on the same column share
// their SQL.
func loadShape(r *mapper.Relation) string {
	switch {
	case r.Join != nil:
		return "m2m:" + r.Join.Name + "." + r.Join.Left + "." + r.Join.Right
	case r.BelongsTo():
		return "pk"
	}
	return "col:" + r.Column
}

// colKey returns the Key that table keyTab gives the row whose primary
// key equals column c of obj (of table t), and the value to bind for it;
// ok is false for a NULL. With c nil, obj is a pointer to the value itself
// (a join column scanned on its own).
func colKey(t *mapper.Table, obj any, c *mapper.Column, keyTab *mapper.Table) (k mapper.Key, v any, ok bool) {
	var fv reflect.Value
	if c == nil {
		fv = reflect.ValueOf(obj).Elem()
	} else {
		fv = field(obj, c.Index)
	}
	if keyTab.IntKey() {
		// The common case without boxing: read the integer in place.
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				return k, nil, false
			}
			fv = fv.Elem()
		}
		switch fv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return mapper.Key{I: fv.Int()}, fv.Int(), true
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return mapper.Key{I: int64(fv.Uint())}, fv.Uint(), true
		}
	}
	if c != nil {
		v = t.Acc.Value(obj, c)
	} else {
		v = fv.Interface()
	}
	if normKey(v) == nil {
		return k, nil, false
	}
	k, err := keyTab.KeyOf(v)
	return k, v, err == nil
}

// objPtr is the address of the struct a model pointer (a *T in an any)
// points to: an interface holding a pointer stores the pointer itself as
// its data word, as mapper's accessor also relies on.
func objPtr(obj any) unsafe.Pointer { return (*[2]unsafe.Pointer)(unsafe.Pointer(&obj))[1] }

// field is the field at index (a column's or relation's Index) of the
// struct obj, a model pointer, points to. The mapper embeds structs by
// value only, so the path has no pointer to follow; reflect's Field does
// not allocate.
func field(obj any, index []int) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByIndex(index)
}

// fieldPtr addresses a *Target relation field of obj.
func fieldPtr(obj any, r *mapper.Relation) *unsafe.Pointer {
	return (*unsafe.Pointer)(r.Ptr(obj))
}

// fieldSlice addresses a []*Target relation field of obj. A slice of
// pointers has the layout of a []unsafe.Pointer.
func fieldSlice(obj any, r *mapper.Relation) *[]unsafe.Pointer {
	return (*[]unsafe.Pointer)(r.Ptr(obj))
}

// trackedEntry returns obj's entry when the session tracks it persistent.
func (s *Session) trackedEntry(t *mapper.Table, obj any) *identity.Entry {
	if e := s.idmap.Get(t, t.Acc.Key(obj)); e != nil && e.Obj() == obj && e.State() == identity.Persistent {
		return e
	}
	return nil
}
