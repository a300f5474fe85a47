package orm

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/internal/keyval"
	"github.com/tallyorm/tally/mapper"
)

// Get returns the T whose primary key is key, one value per key column in
// field order. A tracked object is returned from the identity map with no
// SQL; otherwise pending changes are flushed (autoflush) and the row is
// read. A missing row, or an object deleted in this session, is
// ErrNotFound. ctx governs the statements.
func Get[T any](ctx context.Context, s *Session, key ...any) (*T, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	t, err := tableFor[T](s.e)
	if err != nil {
		return nil, err
	}
	k, err := t.KeyOf(key...)
	if err != nil {
		return nil, err
	}
	if e := s.idmap.Get(t, k); e != nil && !(e.State() == identity.Deleted && s.pendingWithKey(t, k)) {
		return trackedAs[T](t, e)
	}
	if s.hasPendingRows() {
		if err := s.autoflushLocked(ctx); err != nil {
			return nil, err
		}
		if e := s.idmap.Get(t, k); e != nil {
			return trackedAs[T](t, e)
		}
	}
	obj := new(T)
	var q string
	if s.lockReads {
		// A locking retry of Do: the row cannot change until it commits.
		if err := s.lockForUpdate(ctx, t); err != nil {
			return nil, err
		}
		q = s.lockedGetSQL(t)
	} else {
		q = s.e.stmts.get(stmtKey{t, "get", 0}, func() string {
			return selectByKeySQL(s.e.dialect, t, t.Columns)
		})
	}
	args := bindKey(t, k, key)
	if err := s.scanOne(ctx, t, q, args, obj, t.Columns); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %s with key %v", ErrNotFound, t.Name, args)
		}
		return nil, err
	}
	if softDeleted(t, obj) {
		return nil, notFoundSoftDeleted(t, args)
	}
	got := s.resolve(t, obj)
	if err := s.loaded(ctx, t, obj, got); err != nil {
		return nil, err
	}
	return got.(*T), nil
}

func trackedAs[T any](t *mapper.Table, e *identity.Entry) (*T, error) {
	if e.State() == identity.Deleted {
		return nil, fmt.Errorf("%w: %s deleted in this session", ErrNotFound, t.Name)
	}
	if softDeleted(t, e.Obj()) {
		// The object's key, not the caller's: Get's key must not escape.
		return nil, notFoundSoftDeleted(t, keyValues(t, e.Obj()))
	}
	return e.Obj().(*T), nil
}

// pendingWithKey reports whether a pending object of t has key k: a new
// object that takes the key of one deleted in this session, which a Get
// must flush to see.
func (s *Session) pendingWithKey(t *mapper.Table, k mapper.Key) bool {
	for _, p := range s.pending {
		if p.Table() == t && !keyIsZero(t, p.Obj()) && t.Acc.Key(p.Obj()) == k {
			return true
		}
	}
	return false
}

// hasPendingRows reports whether a flush would insert or delete rows. A
// Get that misses the identity map needs only those flushed: the row it
// reads is not tracked, so no tracked object's unflushed update can be in
// it. (A query, which may match any row, flushes everything.)
func (s *Session) hasPendingRows() bool {
	if len(s.pending) > 0 {
		return true
	}
	for _, e := range s.deletes {
		if !e.Flushed() {
			return true
		}
	}
	return false
}

// scanOne reads at most one row of q into obj's cols; no row is ErrNotFound.
func (s *Session) scanOne(ctx context.Context, t *mapper.Table, q string, args []any, obj any, cols []*mapper.Column) error {
	n, err := s.readRows(ctx, s.e.directScan(t), q, args, func(scan func(...any) error) error {
		if err := scan(s.scanDest(t, obj, cols)...); err != nil {
			return err
		}
		return errStopRows // at most one row is read
	})
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return err
}

// scanDest returns the scan targets of obj's cols in a reused slice.
func (s *Session) scanDest(t *mapper.Table, obj any, cols []*mapper.Column) []any {
	if cap(s.dest) < len(cols) {
		s.dest = make([]any, 0, len(cols))
	}
	dest := s.dest[:0]
	for _, c := range cols {
		dest = append(dest, t.Acc.Addr(obj, c))
	}
	s.dest = dest
	return dest
}

// resolve returns the tracked object with obj's key if there is one — its
// unflushed changes kept — else starts tracking obj, freshly read.
func (s *Session) resolve(t *mapper.Table, obj any) any {
	k := t.Acc.Key(obj)
	if e := s.idmap.Get(t, k); e != nil {
		return e.Obj()
	}
	s.seq++
	e := s.newEntry()
	s.idmap.Track(e, t, obj, t.Acc.Snapshot(obj), s.seq, k) // Get found nothing
	return obj
}

// Refresh reloads a tracked, persistent object from the database,
// discarding its unflushed changes. A row that no longer exists is
// ErrNotFound. ctx governs the statement.
func (s *Session) Refresh(ctx context.Context, obj any) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	t, err := s.tableOf(obj)
	if err != nil {
		return err
	}
	e := s.lookup(t, obj)
	if e == nil || e.State() != identity.Persistent {
		return fmt.Errorf("%w: Refresh needs a persistent object", ErrNotTracked)
	}
	q := s.e.stmts.get(stmtKey{t, "get", 0}, func() string {
		return selectByKeySQL(s.e.dialect, t, t.Columns)
	})
	// Scan into a fresh object: a failed read must leave obj untouched.
	fresh := reflect.New(t.Type).Interface()
	if err := s.scanOne(ctx, t, q, keyValues(t, e.Snap()), fresh, t.Columns); err != nil {
		return err
	}
	snap := t.Acc.Snapshot(fresh)
	t.Acc.Restore(obj, snap)
	// Not a flush effect: a failed commit does not unread committed data.
	// Only a failed savepoint puts the old values back.
	old := e.Snap()
	if err := e.SetSnapshot(snap); err != nil {
		return err
	}
	s.logIntent(undo{kind: undoRefresh, e: e, old: old})
	return s.loaded(ctx, t, obj, obj)
}

// bindKey returns the values to bind for key, which KeyOf decoded to k:
// rebuilt from k for a single integer or string column, detached copies
// otherwise, so that nothing Get keeps reaches the caller's boxes and a
// caller's boxed key can stay on its stack.
func bindKey(t *mapper.Table, k mapper.Key, key []any) []any {
	if len(t.PK) == 1 {
		switch t.PK[0].Type.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if t.IntKey() {
				return []any{k.I}
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if t.IntKey() {
				return []any{uint64(k.I)}
			}
		case reflect.String:
			if _, ok := key[0].(string); ok {
				return []any{k.S}
			}
		}
	}
	out := make([]any, len(key))
	for i, v := range key {
		out[i], _ = keyval.Detach(v) // KeyOf accepted it: Detach can copy it
	}
	return out
}
