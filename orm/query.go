package orm

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"strings"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// Q is a query for T objects, built by [Query]. Its builder methods return
// a new Q and never change the receiver, so a base query can be shared and
// extended without one caller's conditions leaking into another's. The
// first error of a builder (a bad OrderBy key, say) is kept and returned by
// the method that runs the query, before any SQL is sent.
//
// Every row comes back through the session's identity map: a row whose
// object is already tracked returns that object, unflushed changes kept.
type Q[T any] struct {
	s         *Session
	t         *mapper.Table
	err       error
	where     []string
	args      []any
	order     []string
	limit     int // -1: none
	offset    int
	forUpdate bool
	noTrack   bool
	loads     []string
	allRows   bool // AllRows: UpdateAll and DeleteAll may run without a Where
	// withDeleted and hardDelete: see WithDeleted and HardDeleteAll.
	withDeleted, hardDelete bool
	// whereBuf and argBuf hold the first Where's condition and arguments,
	// which are most queries' only ones, in the Q itself rather than in
	// two allocations of their own. where and args then point into them,
	// capacity clipped to length: a later Where appends to a copy, so
	// no Q ever writes into another's buffers.
	whereBuf [1]string
	argBuf   [2]any
}

// Query starts a query for T in session s.
func Query[T any](s *Session) *Q[T] {
	t, err := tableFor[T](s.e)
	return &Q[T]{s: s, t: t, err: err, limit: -1}
}

func (q *Q[T]) clone() *Q[T] {
	c := *q
	c.where = slices.Clip(q.where)
	c.args = slices.Clip(q.args)
	c.order = slices.Clip(q.order)
	c.loads = slices.Clip(q.loads)
	return &c
}

// Where adds a condition, ANDed with the others. cond is SQL written by the
// programmer — never build it from user input — with `?` for each value in
// args; values are always bound, never spliced into the SQL. A slice bound
// to one `?` expands to a list, for `id IN (?)`.
func (q *Q[T]) Where(cond string, args ...any) *Q[T] {
	c := q.clone()
	if len(c.where) == 0 {
		c.whereBuf[0] = cond
		c.where = c.whereBuf[:1:1]
	} else {
		c.where = append(c.where, cond)
	}
	if len(c.args) == 0 && len(args) <= len(c.argBuf) {
		n := copy(c.argBuf[:], args)
		c.args = c.argBuf[:n:n]
	} else {
		c.args = append(c.args, args...)
	}
	return c
}

// OrderBy sorts by model columns, in order; a "-" prefix sorts descending.
// Only column names of T are accepted, so a sort key taken from a URL
// cannot inject SQL; anything else makes the query fail before it runs.
func (q *Q[T]) OrderBy(keys ...string) *Q[T] {
	c := q.clone()
	if c.err != nil {
		return c
	}
	for _, k := range keys {
		name, desc := strings.CutPrefix(k, "-")
		col := (*mapper.Column)(nil)
		if c.t != nil {
			col = c.t.Column(name)
		}
		if col == nil {
			c.err = &OrderByError{Key: k, Table: tableName(c.t)}
			return c
		}
		o := q.s.e.dialect.Quote(col.Name)
		if desc {
			o += " DESC"
		}
		c.order = append(c.order, o)
	}
	return c
}

func tableName(t *mapper.Table) string {
	if t == nil {
		return "?"
	}
	return t.Name
}

// OrderByError reports an OrderBy key that is not a column of the model.
type OrderByError struct {
	Key   string
	Table string
}

// Error names the key and the model.
func (e *OrderByError) Error() string {
	return fmt.Sprintf("orm: OrderBy %q: not a column of %s (use a column name, with - for descending)", e.Key, e.Table)
}

// Limit returns at most n rows.
func (q *Q[T]) Limit(n int) *Q[T] {
	c := q.clone()
	if n < 0 && c.err == nil {
		c.err = fmt.Errorf("orm: Limit(%d): must not be negative", n)
	}
	c.limit = n
	return c
}

// Offset skips the first n rows.
func (q *Q[T]) Offset(n int) *Q[T] {
	c := q.clone()
	if n < 0 && c.err == nil {
		c.err = fmt.Errorf("orm: Offset(%d): must not be negative", n)
	}
	c.offset = n
	return c
}

// ForUpdate locks the selected rows until the session's transaction ends
// (SELECT ... FOR UPDATE) on MySQL/MariaDB and PostgreSQL. SQLite has no
// row locks; there the session's transaction is begun IMMEDIATE instead,
// which takes the database's write lock, so the guarantee — nobody else
// writes these rows until commit — holds as well.
func (q *Q[T]) ForUpdate() *Q[T] {
	c := q.clone()
	c.forUpdate = true
	return c
}

// NoTrack returns rows without adding them to the identity map: a row
// whose object the session already tracks still returns that object, any
// other row a new object the session does not track (changes to it are not
// saved). It is for reading large results: with Iter, memory then stays
// flat however many rows match, where a tracking session keeps every object
// it returns until it is closed.
func (q *Q[T]) NoTrack() *Q[T] {
	c := q.clone()
	c.noTrack = true
	return c
}

// build returns the SQL and args for the query, with `what` selected.
func (q *Q[T]) build(what string, forCount bool) (string, []any, error) {
	if q.err != nil {
		return "", nil, q.err
	}
	d := q.s.e.dialect
	st := selectText{what: what, where: q.filters()}
	args := q.args
	if !forCount {
		st.order = q.order
		if q.limit >= 0 || q.offset > 0 {
			args = slices.Clone(args)
			st.limit, st.offset = true, q.offset > 0
			if q.limit >= 0 {
				args = append(args, q.limit)
			} else {
				args = append(args, int64(1<<62)) // no limit, but OFFSET needs one on MySQL and SQLite
			}
			if q.offset > 0 {
				args = append(args, q.offset)
			}
		}
		st.forUpdate = q.forUpdate
	}
	return dialect.Expand(d, querySQL(d, q.t.Name, st), args)
}

// start autoflushes and runs the query.
func (q *Q[T]) start(ctx context.Context, query string, args []any) (*sql.Rows, observation, error) {
	if err := q.prepare(ctx); err != nil {
		return nil, observation{}, err
	}
	return q.s.query(ctx, query, args)
}

// prepare does what comes before the query is sent: the autoflush, and
// for ForUpdate the transaction that can lock rows.
func (q *Q[T]) prepare(ctx context.Context) error {
	s := q.s
	if err := s.autoflushLocked(ctx); err != nil {
		return err
	}
	if q.forUpdate {
		return s.lockForUpdate(ctx, q.t)
	}
	return nil
}

// All returns every matching object.
func (q *Q[T]) All(ctx context.Context) ([]*T, error) {
	return q.collect(ctx, -1)
}

func (q *Q[T]) collect(ctx context.Context, max int) ([]*T, error) {
	if err := q.s.enter(); err != nil {
		return nil, err
	}
	defer q.s.leave()
	query, args, err := q.build(selectList(q.s.e.dialect, q.t), false)
	if err != nil {
		return nil, err
	}
	if err := q.prepare(ctx); err != nil {
		return nil, err
	}
	// Rows are scanned first and resolved after the result is complete:
	// a failed read then leaves the identity map untouched, and the new
	// objects' snapshots are made in one allocation.
	var out []*T
	s, t := q.s, q.t
	_, err = s.readRows(ctx, s.e.directScan(t), query, args, func(scan func(...any) error) error {
		obj := new(T)
		if err := scan(s.scanDest(t, obj, t.Columns)...); err != nil {
			return err
		}
		out = append(out, obj)
		if max >= 0 && len(out) > max {
			return errStopRows
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := resolveAll(ctx, q.s, q.t, out, q.noTrack); err != nil {
		return nil, err
	}
	if err := loadInto(ctx, q.s, q.t, out, q.loads, q.noTrack); err != nil {
		return nil, err
	}
	return out, nil
}

// scanRow reads the current row into a new T and resolves it against the
// identity map.
func scanRow[T any](ctx context.Context, s *Session, t *mapper.Table, rows *sql.Rows, noTrack bool) (*T, error) {
	obj := new(T)
	if err := rows.Scan(s.scanDest(t, obj, t.Columns)...); err != nil {
		return nil, err
	}
	var got any = obj
	if !noTrack {
		got = s.resolve(t, obj)
	} else if e := s.idmap.Get(t, t.Acc.Key(obj)); e != nil {
		got = e.Obj()
	}
	return got.(*T), s.loaded(ctx, t, obj, got)
}

// resolveRows replaces each freshly read object by the tracked one with its
// key, if any, and starts tracking the others (unless noTrack). An error
// is internal: a snapshot the identity map refused.
func resolveRows[P any](s *Session, t *mapper.Table, objs []P, noTrack bool) error {
	if !noTrack {
		s.idmap.Reserve(t, len(objs))
		// Entries for the whole result in one allocation (the rows that
		// turn out to be tracked already leave theirs for the next read).
		if len(s.slab) < len(objs) {
			s.slab = make([]identity.Entry, len(objs))
		}
	}
	fresh := s.slab[:0:0]
	for i, obj := range objs {
		k := t.Acc.Key(obj)
		if noTrack {
			if e := s.idmap.Get(t, k); e != nil {
				objs[i] = e.Obj().(P)
			}
			continue
		}
		if len(fresh) == 0 {
			fresh = s.slab[:0]
		}
		// The slab's entries are taken in order, so those made here are
		// the contiguous run fresh, which the batch snapshot walks. One
		// lookup finds the tracked object or tracks this one; the slab's
		// entry is taken only in the second case. The snapshots follow.
		e := &s.slab[0]
		if old, ok := s.idmap.TrackOrGet(e, t, obj, nil, s.seq+1, k); !ok {
			if old == nil {
				return fmt.Errorf("orm: internal error: cannot track a loaded %s", t.Name)
			}
			objs[i] = old.Obj().(P)
			continue
		}
		s.seq++
		s.slab = s.slab[1:]
		fresh = fresh[:len(fresh)+1]
	}
	if len(fresh) == 0 {
		return nil
	}
	if bs, ok := t.Acc.(mapper.BatchSnapshotter); ok && len(fresh) > 1 {
		// The callback records no error: a variable it wrote would move
		// to the heap, an allocation per read. A refused snapshot stays
		// nil, which the loop after finds.
		bs.SnapshotBatch(len(fresh), func(i int) any { return fresh[i].Obj() }, func(i int, snap any) { _ = fresh[i].SetSnapshot(snap) })
		for i := range fresh {
			if fresh[i].Snap() == nil {
				return fmt.Errorf("orm: internal error: no snapshot for a loaded %s", t.Name)
			}
		}
		return nil
	}
	for i := range fresh {
		if err := fresh[i].SetSnapshot(t.Acc.Snapshot(fresh[i].Obj())); err != nil {
			return err
		}
	}
	return nil
}

// First returns the first matching object (by primary key unless OrderBy
// says otherwise), or ErrNotFound.
func (q *Q[T]) First(ctx context.Context) (*T, error) {
	c := q
	if len(q.order) == 0 && q.t != nil {
		c = q.clone()
		for _, pk := range q.t.PK {
			c.order = append(c.order, q.s.e.dialect.Quote(pk.Name))
		}
	}
	c = c.Limit(1)
	out, err := c.collect(ctx, -1)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no %s matches", ErrNotFound, c.t.Name)
	}
	return out[0], nil
}

// One returns the only matching object: ErrNotFound when none matches,
// ErrMultipleRows when more than one does.
func (q *Q[T]) One(ctx context.Context) (*T, error) {
	c := q
	if q.limit < 0 || q.limit > 2 {
		c = q.Limit(2)
	}
	out, err := c.collect(ctx, 1)
	if err != nil {
		return nil, err
	}
	switch len(out) {
	case 0:
		return nil, fmt.Errorf("%w: no %s matches", ErrNotFound, q.t.Name)
	case 1:
		return out[0], nil
	}
	return nil, fmt.Errorf("%w: more than one %s matches", ErrMultipleRows, q.t.Name)
}

// Count returns the number of matching rows (Limit and Offset ignored).
func (q *Q[T]) Count(ctx context.Context) (int64, error) {
	var n int64
	err := q.scalar(ctx, "COUNT(*)", &n)
	return n, err
}

// Exists reports whether any row matches.
func (q *Q[T]) Exists(ctx context.Context) (bool, error) {
	if err := q.s.enter(); err != nil {
		return false, err
	}
	defer q.s.leave()
	c := q.clone()
	c.order, c.limit, c.offset = nil, 1, 0
	query, args, err := c.build("1", false)
	if err != nil {
		return false, err
	}
	rows, obs, err := c.start(ctx, query, args)
	if err != nil {
		return false, err
	}
	found := rows.Next()
	err = q.s.e.closeRows(ctx, rows, obs, 0, nil)
	return found && err == nil, err
}

func (q *Q[T]) scalar(ctx context.Context, what string, dst any) error {
	if err := q.s.enter(); err != nil {
		return err
	}
	defer q.s.leave()
	query, args, err := q.build(what, true)
	if err != nil {
		return err
	}
	rows, obs, err := q.start(ctx, query, args)
	if err != nil {
		return err
	}
	if rows.Next() {
		err = rows.Scan(dst)
	}
	return q.s.e.closeRows(ctx, rows, obs, 1, err)
}

// Iter streams the matching objects: rows are read and resolved one at a
// time, so the driver holds one row at a time. The identity map still keeps
// every object it returns; add NoTrack for memory that stays flat however
// many rows match. Breaking out of the loop
// closes the rows. While the loop runs the session is busy: calling into it
// from the loop body returns ErrConcurrentUse (the connection is streaming
// and can run nothing else); collect what you need and act after the loop.
func (q *Q[T]) Iter(ctx context.Context) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		s := q.s
		if err := s.enter(); err != nil {
			yield(nil, err)
			return
		}
		defer s.leave()
		if len(q.loads) > 0 {
			// Loading per row would be N+1 queries, and loading at the end
			// would come after the loop body ran: refuse, loudly.
			yield(nil, errors.New("orm: Load is not supported with Iter; use All, or load the relation in a second query"))
			return
		}
		query, args, err := q.build(selectList(s.e.dialect, q.t), false)
		if err != nil {
			yield(nil, err)
			return
		}
		rows, obs, err := q.start(ctx, query, args)
		if err != nil {
			yield(nil, err)
			return
		}
		streamRows(ctx, s.e, rows, obs, nil, func() (*T, error) { return scanRow[T](ctx, s, q.t, rows, q.noTrack) }, yield)
	}
}

// streamRows yields the objects of a started query one row at a time, for
// Q.Iter and RawQ.Iter: scan reads the current row. Whichever way the
// stream ends — the rows run out, scan fails, the loop body breaks out or
// panics — the rows are closed through closeRows, which reports the rows
// read and the first error to the hooks. An error is yielded unless the
// loop body has stopped already. A non-nil err (met before the first row)
// ends the stream at once.
func streamRows[T any](ctx context.Context, e *Engine, rows *sql.Rows, obs observation, err error, scan func() (*T, error), yield func(*T, error) bool) {
	n, closed := int64(0), false
	finish := func(err error) error {
		closed = true
		return e.closeRows(ctx, rows, obs, n, err)
	}
	defer func() {
		if !closed { // the loop body panicked
			_ = finish(nil)
		}
	}()
	if err != nil {
		yield(nil, finish(err))
		return
	}
	for rows.Next() {
		n++
		obj, err := scan()
		if err != nil {
			yield(nil, finish(err))
			return
		}
		if !yield(obj, nil) {
			// Only the hooks hear of an error closing the rows now: the
			// caller has stopped listening.
			_ = finish(nil)
			return
		}
	}
	if err := finish(nil); err != nil {
		yield(nil, err)
	}
}

// Set maps column names to new values, for UpdateAll.
type Set map[string]any

// UpdateAll sets columns of every matching row in one statement, skipping
// the unit of work, and returns the number of rows matched. Tracked objects
// that match get the new values, and fresh snapshots for them, so the
// session stays true; a version column is bumped. Pending changes are
// flushed first.
//
// Each value is converted to its field's type before any SQL, as the
// database would: numbers across integer kinds, T into *T, nil into a
// nullable field, and what a sql.Scanner field accepts (a string for a
// sql.NullString). A value that does not fit, or a name that is not a
// column, is an error and nothing is sent. Should a tracked object still
// refuse its new value, the transaction is rolled back (to the innermost
// savepoint, if one is open) and the session restored as after a failed
// Commit, so that the session and the database never disagree. A tracked
// object refuses a foreign key that its relation fields contradict (its
// belongs-to pointer, or a tracked parent's has-many slice or has-one
// pointer, holding another parent): the next flush would set it back.
// So does a statement that affected more rows than the tracked objects'
// SELECT ... FOR UPDATE found just before (another transaction made a row
// match in between, as READ COMMITTED allows): the error matches
// ErrStaleData.
//
// On a plain session with no transaction, nothing to flush and no tracked
// object of T, the UPDATE is sent alone in autocommit: one round trip,
// committed when UpdateAll returns, so a later Rollback or failed Commit
// does not undo it (EF Core's ExecuteUpdate rule). Sessions of
// Engine.Do and Engine.Middleware, WithSnapshot sessions, and sessions
// with work or a transaction already run it in their transaction. A
// connection lost while a statement sent alone is in flight is an error
// matching ErrCommitUnknown. DeleteAll follows the same rule.
func (q *Q[T]) UpdateAll(ctx context.Context, set Set) (int64, error) {
	s := q.s
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if q.err != nil {
		return 0, q.err
	}
	if err := q.checkWhere("UpdateAll"); err != nil {
		return 0, err
	}
	if len(set) == 0 {
		return 0, errors.New("orm: UpdateAll with nothing to set")
	}
	set = stampSet(q.t, set)
	t := q.t
	where := q.filters()
	// The plan of this shape (table, names, conditions), built at its
	// first call: names sorted for deterministic SQL, so that it can be
	// logged and compared. A plan exists only for names that are all
	// settable columns, so a hit needs no check of them.
	var nbuf [8]string
	names := nbuf[:0]
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)
	var kbuf [192]byte
	key := planKey(kbuf[:0], names, where)
	plan := s.e.updateAll.lookup(t, key)
	if plan == nil {
		var err error
		if plan, err = newUpdateAllPlan(s.e, t, names, where); err != nil {
			return 0, err
		}
		s.e.updateAll.store(t, key, plan)
	}
	// Every value is converted to its field's type before any SQL: a value
	// that does not fit must fail here, not after the UPDATE has run, and
	// the tracked objects then receive exactly what was written. args
	// holds the values bound, in SET order, then the conditions'; fields
	// the same values as their fields hold them, for the tracked objects
	// (a json column binds its text, a time its normalised value).
	args := make([]any, len(plan.cols), len(plan.cols)+len(q.args))
	var fbuf [8]any
	fields := fbuf[:]
	if len(plan.cols) > len(fbuf) {
		fields = make([]any, len(plan.cols))
	}
	fields = fields[:len(plan.cols)]
	if err := convertSet(t, plan, set, args, fields); err != nil {
		return 0, err
	}
	args = append(args, q.args...)
	n, hit, err := s.bulk(ctx, t, plan.sql, args, where, q.args)
	if err == nil {
		var held map[*mapper.Column]map[any]string // see relationOverrides
		if len(hit) > 0 {
			held = map[*mapper.Column]map[any]string{}
		}
		for _, e := range hit {
			if err = s.applySet(e, plan.cols, fields, held); err != nil {
				break
			}
		}
	}
	if err != nil && applyFailed(err) {
		// The UPDATE ran but a tracked object could not take its result:
		// roll the statement back with the rest of the flushed work, which
		// undoes what the flushes and apply did in memory too, so that the
		// session and the database never disagree.
		s.abortFlush(ctx)
		return 0, fmt.Errorf("orm: UpdateAll: the UPDATE was rolled back, with the transaction's flushed work: %w", err)
	}
	return n, err
}

// newUpdateAllPlan checks that names (sorted) are columns UpdateAll may
// set and builds its statement.
func newUpdateAllPlan(e *Engine, t *mapper.Table, names, where []string) (*updateAllPlan, error) {
	p := &updateAllPlan{cols: make([]*mapper.Column, len(names)), asIs: make([]bool, len(names))}
	for i, name := range names {
		c := t.Column(name)
		if c == nil {
			return nil, fmt.Errorf("orm: UpdateAll: %q is not a column of %s", name, t.Name)
		}
		if c.PK || c.Version || c.ReadOnly {
			return nil, fmt.Errorf("orm: UpdateAll: column %s of %s cannot be set (primary key, version or readonly)", name, t.Name)
		}
		p.cols[i], p.asIs[i] = c, plainKind(c)
	}
	p.sql = updateAllSQL(e.dialect, t, names, where)
	return p, nil
}

// applySet gives a tracked object that matched UpdateAll's new values
// vals (of cols, as their fields hold them), in the object and in a new
// snapshot; both changes are logged, so a failed commit or savepoint puts
// the old ones back.
func (s *Session) applySet(e *identity.Entry, cols []*mapper.Column, vals []any, held map[*mapper.Column]map[any]string) error {
	t := e.Table()
	s.logFlush(undo{kind: undoSnap, e: e, old: e.Snap()})
	// The values reach the object and the snapshot through deep copies,
	// as a snapshot's are: neither may share a []byte, pointer, or a json
	// column's slice or map with the caller or with the other, or a change
	// made in place would go unseen.
	next := t.Acc.Snapshot(e.Snap())
	for i, c := range cols {
		if err := t.Acc.Set(next, c, vals[i]); err != nil {
			return &setFieldError{err}
		}
	}
	snap := t.Acc.Snapshot(next)
	own := reflect.New(t.Type).Interface() // a T: a snapshot's type may be another
	t.Acc.Restore(own, next)
	for _, c := range cols {
		v := field(own, c.Index).Interface()
		if rel := s.relationOverrides(e, c, v, held); rel != "" {
			return &setFieldError{fmt.Errorf("orm: UpdateAll: %s.%s of a tracked object matched would be set back at the next flush by %s, "+
				"which holds another parent: set or clear that relation field first, or Expunge the object", t.Name, c.Name, rel)}
		}
		if err := s.setCol(e, c, v); err != nil {
			return &setFieldError{err}
		}
	}
	if v := t.Version; v != nil {
		n, _ := keyval.Int64(t.Acc.Value(e.Snap(), v))
		if err := s.setCol(e, v, n+1); err != nil {
			return &setFieldError{err}
		}
		_ = t.Acc.Set(snap, v, n+1)
	}
	return e.SetSnapshot(snap)
}

// relationOverrides names the relation field that the next flush would
// copy another value than v from into foreign-key column c of e's object
// (see syncForeignKeys): the object's belongs-to pointer, or a has-many
// slice or has-one pointer of a tracked parent that holds the object,
// whose parent's key is not v. It returns "" when there is none. held
// keeps, per column, the objects such parents hold, found at the first
// object that needs them.
func (s *Session) relationOverrides(e *identity.Entry, c *mapper.Column, v any, held map[*mapper.Column]map[any]string) string {
	t := e.Table()
	other := func(parent any, target reflect.Type) bool {
		pt, err := s.e.reg.Table(target)
		return err == nil && !valuesEqual(pt.Acc.Value(parent, pt.PK[0]), v)
	}
	for _, r := range t.Relations {
		if r.BelongsTo() && r.Column == c.Name {
			if f := field(e.Obj(), r.Index); !f.IsNil() && other(f.Interface(), r.Target) {
				return t.Name + "." + r.Field
			}
		}
	}
	by, ok := held[c]
	if !ok {
		// v is the same for every object of one UpdateAll.
		by = s.heldChildren(t, c, other)
		held[c] = by
	}
	return by[e.Obj()]
}

// heldChildren maps each object of t that a tracked (or pending) parent
// holds, in a has-many slice or has-one pointer over column c, to that
// relation's name, for the parents that other reports hold another key.
func (s *Session) heldChildren(t *mapper.Table, c *mapper.Column, other func(parent any, target reflect.Type) bool) map[any]string {
	out := map[any]string{}
	over := func(_ *mapper.Table, r *mapper.Relation) bool { return r.Target == t.Type && r.Column == c.Name }
	s.eachHeld(over, func(pt *mapper.Table, r *mapper.Relation, pe *identity.Entry, child any) {
		if other(pe.Obj(), pt.Type) {
			out[child] = pt.Name + "." + r.Field
		}
	})
	return out
}

// setFieldError is a Set value that converted before the statement but
// could not be written into a tracked object after it.
type setFieldError struct{ err error }

func (e *setFieldError) Error() string { return e.err.Error() }
func (e *setFieldError) Unwrap() error { return e.err }

// applyFailed reports an UpdateAll or DeleteAll whose statement ran but
// whose result the session cannot take (see rowsMovedError): it must be
// rolled back.
func applyFailed(err error) bool {
	var se *setFieldError
	var me *rowsMovedError
	return errors.As(err, &se) || errors.As(err, &me)
}

// convertSet puts into fields, in plan's column order, set's value for
// each column converted to the Go type of its field, as the database would
// convert it: numbers across integer kinds, T into *T, nil into a nullable
// field, and whatever a sql.Scanner field (sql.NullString, ...) accepts
// from a driver value, such as a string for a NullString; and into out the
// value a flush binds for that field (the text of a json column, say),
// which is not always one a field takes back. A value that does not fit is
// an error naming the column.
func convertSet(t *mapper.Table, plan *updateAllPlan, set Set, out, fields []any) error {
	var scratch any // a T to convert through, made at the first value that needs it
	for i, c := range plan.cols {
		v := set[c.Name]
		if plan.asIs[i] && reflect.TypeOf(v) == c.Type {
			out[i], fields[i] = v, v // what assigning it to the field and reading it back gives
			continue
		}
		if scratch == nil {
			scratch = reflect.New(t.Type).Interface()
		}
		if err := setField(t, scratch, c, v); err != nil {
			return fmt.Errorf("orm: UpdateAll: cannot set %s.%s (%v) to %T: %w", t.Name, c.Name, c.Type, v, err)
		}
		out[i] = t.Acc.Value(scratch, c)
		// Read after Value, which normalises a time in place. A pointer
		// keeps its type, so that applying it allocates a fresh pointee
		// per object.
		fields[i] = reflect.ValueOf(scratch).Elem().FieldByIndex(c.Index).Interface()
	}
	return nil
}

// setField assigns v to c's field of obj through the accessor, falling back
// to the field's sql.Scanner with v as a driver value.
func setField(t *mapper.Table, obj any, c *mapper.Column, v any) error {
	err := t.Acc.Set(obj, c, copyValue(v))
	if err == nil {
		return nil
	}
	ptr := reflect.New(c.Type)
	sc, ok := ptr.Interface().(sql.Scanner)
	if !ok {
		return err
	}
	dv, cerr := driver.DefaultParameterConverter.ConvertValue(v)
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	if serr := sc.Scan(dv); serr != nil {
		return serr
	}
	return t.Acc.Set(obj, c, ptr.Elem().Interface())
}

// DeleteAll deletes every matching row in one statement, skipping the unit
// of work, and returns the number of rows deleted. Tracked objects that
// matched are detached. Pending changes are flushed first. A statement
// that affected more rows than the tracked objects' SELECT ... FOR UPDATE
// found just before is rolled back, as in UpdateAll.
func (q *Q[T]) DeleteAll(ctx context.Context) (int64, error) {
	s := q.s
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if q.err != nil {
		return 0, q.err
	}
	if err := q.checkWhere("DeleteAll"); err != nil {
		return 0, err
	}
	stmt, args, where := q.deleteAllStmt()
	n, hit, err := s.bulk(ctx, q.t, stmt, args, where, q.args)
	if err != nil && applyFailed(err) {
		s.abortFlush(ctx) // as UpdateAll does
		return 0, fmt.Errorf("orm: DeleteAll: the statement was rolled back, with the transaction's flushed work: %w", err)
	}
	if err != nil {
		return 0, err
	}
	for _, e := range hit {
		// The objects whose rows went are detached, as after a flushed
		// Delete; the log puts them back if the transaction fails.
		old := e.State()
		s.idmap.Detach(e)
		s.logFlush(undo{kind: undoDetach, e: e, old: old})
		s.deletes = slices.DeleteFunc(s.deletes, func(d *identity.Entry) bool { return d == e })
	}
	return n, nil
}

// bulk runs a bulk UPDATE or DELETE and returns the rows it affected and
// the tracked objects of t among them, for the caller to update. When the
// session tracks no object of t that is the one statement; otherwise the
// affected keys are learned first, with a SELECT ... FOR UPDATE in the
// same transaction (so no other transaction can change which rows match
// in between).
func (s *Session) bulk(ctx context.Context, t *mapper.Table, stmt string, args []any, where []string, whereArgs []any) (int64, []*identity.Entry, error) {
	d := s.e.dialect
	if s.readOnly {
		return 0, nil, refuseWrite("UpdateAll and DeleteAll")
	}
	// Bind first: a bad argument fails before any statement is sent.
	stmtQuery, stmtArgs, err := dialect.Expand(d, stmt, args)
	if err != nil {
		return 0, nil, err
	}
	if s.bulkAlone(t) {
		n, err := s.execBulkAlone(ctx, stmtQuery, stmtArgs) // see bulkalone.go
		return n, nil, err
	}
	if err := s.autoflushLocked(ctx); err != nil {
		return 0, nil, err
	}
	var hit []*identity.Entry
	tracked := false
	locked := int64(-1) // the rows the SELECT ... FOR UPDATE found, if sent
	s.idmap.EachIn(t, func(*identity.Entry) bool { tracked = true; return false })
	if tracked {
		if err := s.begin(ctx, true); err != nil {
			return 0, nil, err
		}
		keys := querySQL(d, t.Name, selectText{what: quoteList(d, t.PK), where: where, forUpdate: true})
		query, qargs, err := dialect.Expand(d, keys, whereArgs)
		if err != nil {
			return 0, nil, err
		}
		rows, obs, err := s.query(ctx, query, qargs)
		if err != nil {
			return 0, nil, err
		}
		keyObj := reflect.New(t.Type).Interface()
		n := int64(0)
		for rows.Next() {
			n++
			if err = rows.Scan(s.scanDest(t, keyObj, t.PK)...); err != nil {
				break
			}
			if e := s.idmap.Get(t, t.Acc.Key(keyObj)); e != nil {
				hit = append(hit, e)
			}
		}
		if err := s.e.closeRows(ctx, rows, obs, n, err); err != nil {
			return 0, nil, err
		}
		locked = n
	}
	res, err := s.exec(ctx, stmtQuery, stmtArgs)
	if err != nil {
		return 0, nil, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, nil, err
	}
	if locked >= 0 && n > locked {
		// A row came to match after the SELECT (READ COMMITTED locks only
		// the rows it returned, on PostgreSQL and, without gap locks, on
		// MySQL): the statement may have changed a tracked object the
		// session does not know of. The rows found are locked and still
		// match, so the only difference is more rows (fewer is a MySQL
		// pool without clientFoundRows not counting unchanged rows).
		return 0, nil, &rowsMovedError{locked: locked, affected: n}
	}
	return n, hit, nil
}

// rowsMovedError is a bulk statement that affected more rows than the
// SELECT ... FOR UPDATE before it found: another transaction made rows
// match in between. The caller rolls the statement back. It matches
// ErrStaleData.
type rowsMovedError struct{ locked, affected int64 }

func (e *rowsMovedError) Error() string {
	return fmt.Sprintf("orm: the statement affected %d rows where %d matched just before: another transaction changed which rows match; run it again", e.affected, e.locked)
}

// Is makes errors.Is(err, ErrStaleData) true.
func (e *rowsMovedError) Is(target error) bool { return target == ErrStaleData }

// normKey makes integer keys of any Go type compare equal as map keys.
func normKey(v any) any {
	if n, ok := keyval.Int64(v); ok {
		return n
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		return normKey(rv.Elem().Interface())
	}
	return v
}

// copyValue copies what a value references that could be changed in
// place: a []byte's bytes, a pointer's target.
func copyValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return bytes.Clone(x)
	case nil:
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		n := reflect.New(rv.Type().Elem())
		n.Elem().Set(reflect.ValueOf(copyValue(rv.Elem().Interface())).Convert(rv.Type().Elem()))
		return n.Interface()
	}
	return v
}
