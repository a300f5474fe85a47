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

// Merge saves the values of an object from outside the session — decoded
// from a request body, or kept from an earlier session — through the
// session's own object for its key, as SQLAlchemy's Session.merge does.
// Add refuses such an object (ErrDetachedObject); Merge is how it is
// saved.
//
// Merge returns the object the session tracks for obj's primary key, with
// obj's column values copied onto it: from the identity map with no SQL,
// else loaded by key with one SELECT (after flushing pending inserts and
// deletes, as Get does). Commit then writes only the columns whose values
// really changed: merging an unchanged object writes nothing.
//
// Copied are all columns but the primary key (it is the lookup), the
// version column (it is checked instead), and read-only and auto
// (database-generated) columns, which Tally never writes; so are created
// and updated columns in which obj holds no time (the tracked object keeps
// its own, and Commit stamps the updated ones). Relation (rel)
// fields are not merged: obj's are ignored and the tracked object's kept;
// merge or add related objects on their own.
//
// Optimistic locking: when T has a version column, obj's version must be
// the row's (the tracked object's, as last read or flushed), else Merge
// returns a *StaleDataError (Op OpMerge, matching ErrStaleData) and
// changes nothing — the lost-update check across requests: a form loaded
// at version 3 and saved after someone else saved version 4 is refused.
// A version of 0 matches no row (versions start at 1), so a client that
// does not send back the version it read cannot overwrite a row. Commit's
// UPDATE checks the version again, so a change committed by someone else
// between Merge and Commit is ErrStaleData too.
//
// When there is no row, Merge adds a copy of obj (its column values, no
// relations) as a pending insert and returns the copy: obj itself never
// enters the session, so keep working with the returned object (its
// generated key is set at flush). That is when obj's database-generated
// key is zero, or when its key is client-set and no row has it. A set
// database-generated key with no row is ErrNotFound (the database chooses
// those keys: zero it to insert a new row), and so is a key whose object
// is marked deleted in this session. With a version column, a non-zero
// version and no row is ErrStaleData: the row that was read is gone.
// An object with a zero key that another session has pending is
// ErrOtherSession: that session will insert it, and a copy inserted here
// would be a second row.
//
// An object the session already tracks is returned as it is. ctx governs
// the statements.
func Merge[T any](ctx context.Context, s *Session, obj *T) (*T, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	t, err := tableFor[T](s.e)
	if err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("orm: Merge of a nil *%s", t.Type.Name())
	}
	out, err := s.mergeLocked(ctx, t, obj)
	if err != nil {
		return nil, err
	}
	return out.(*T), nil
}

func (s *Session) mergeLocked(ctx context.Context, t *mapper.Table, obj any) (any, error) {
	if e := s.lookup(t, obj); e != nil {
		if e.State() == identity.Deleted {
			return nil, fmt.Errorf("%w: %s deleted in this session", ErrNotFound, t.Name)
		}
		return obj, nil
	}
	if keyIsZero(t, obj) {
		if o := s.e.owners.load(obj); o != nil && o != s {
			// Pending in another session, which will insert it: a copy
			// inserted here would be its row a second time.
			return nil, fmt.Errorf("%w: %s %p is pending in another session, which will insert it; Merge it after that session commits", ErrOtherSession, t.Name, obj)
		}
		return s.mergeNew(t, obj)
	}
	k := t.Acc.Key(obj)
	for _, p := range s.pending {
		if p.Table() == t && !keyIsZero(t, p.Obj()) && t.Acc.Key(p.Obj()) == k {
			// A pending object with this key: no row to check a version
			// against yet.
			return p.Obj(), mergeColumns(t, p.Obj(), obj)
		}
	}
	e := s.idmap.Get(t, k)
	if e == nil && s.hasPendingRows() {
		if err := s.autoflushLocked(ctx); err != nil {
			return nil, err
		}
		e = s.idmap.Get(t, k)
	}
	switch {
	case e != nil && e.State() == identity.Deleted && e.Flushed():
		return s.mergeNoRow(t, obj) // the key is free again
	case e != nil && e.State() == identity.Deleted:
		return nil, fmt.Errorf("%w: %s with key %v is deleted in this session", ErrNotFound, t.Name, keyValues(t, obj))
	case e != nil && softDeleted(t, e.Obj()):
		// Copying obj's columns would also copy its (empty) softdelete
		// column: a Merge must not undelete a row behind the caller's back.
		return nil, notFoundSoftDeleted(t, keyValues(t, obj))
	case e != nil:
		if err := checkMergeVersion(t, e.Snap(), obj); err != nil {
			return nil, err
		}
		return e.Obj(), mergeColumns(t, e.Obj(), obj)
	}
	// The row Merge reads is the one its changes are diffed and its
	// version checked against: a lagging replica's copy would hide a
	// change (a lost update) or fail a good version. Merge is a write:
	// from here the session is on the primary (see replicas.go).
	s.primary = true
	q := s.e.stmts.get(stmtKey{t, "get", 0}, func() string {
		return selectByKeySQL(s.e.dialect, t, t.Columns)
	})
	fresh := reflect.New(t.Type).Interface()
	if err := s.scanOne(ctx, t, q, keyValues(t, obj), fresh, t.Columns); err != nil {
		if errors.Is(err, ErrNotFound) {
			return s.mergeNoRow(t, obj)
		}
		return nil, err
	}
	// Checked before the row is tracked: a refused Merge leaves the
	// session as it was.
	if softDeleted(t, fresh) {
		return nil, notFoundSoftDeleted(t, keyValues(t, obj))
	}
	if err := checkMergeVersion(t, fresh, obj); err != nil {
		return nil, err
	}
	tracked := s.resolve(t, fresh)
	if err := s.loaded(ctx, t, fresh, tracked); err != nil {
		return nil, err
	}
	return tracked, mergeColumns(t, tracked, obj)
}

// mergeNoRow handles a Merge whose key has no row (see Merge).
func (s *Session) mergeNoRow(t *mapper.Table, obj any) (any, error) {
	if v := t.Version; v != nil {
		if n, _ := keyval.Int64(t.Acc.Value(obj, v)); n != 0 {
			return nil, &StaleDataError{Op: OpMerge, Table: t.Name, Key: keyValues(t, obj)}
		}
	}
	if autoKeySet(t, obj) {
		return nil, fmt.Errorf("%w: %s with key %v; a database-generated key is the database's to choose: zero it to insert a new row",
			ErrNotFound, t.Name, keyValues(t, obj))
	}
	return s.mergeNew(t, obj)
}

// mergeNew adds a copy of obj's columns as a pending insert.
func (s *Session) mergeNew(t *mapper.Table, obj any) (any, error) {
	cp := reflect.New(t.Type).Interface()
	t.Acc.Restore(cp, t.Acc.Snapshot(obj))
	if err := s.addLocked(cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// checkMergeVersion compares obj's version with row's, a snapshot or a
// freshly read object.
func checkMergeVersion(t *mapper.Table, row, obj any) error {
	v := t.Version
	if v == nil {
		return nil
	}
	want, _ := keyval.Int64(t.Acc.Value(row, v))
	got, _ := keyval.Int64(t.Acc.Value(obj, v))
	if got != want {
		return &StaleDataError{Op: OpMerge, Table: t.Name, Key: keyValues(t, obj)}
	}
	return nil
}

// mergeColumns copies src's merged columns (see Merge) onto dst, through a
// snapshot so that dst shares nothing mutable with src.
func mergeColumns(t *mapper.Table, dst, src any) error {
	snap := t.Acc.Snapshot(src)
	for _, c := range t.Columns {
		if c.PK || c.Version || c.ReadOnly || c.Auto {
			continue
		}
		if (c.Created || c.Updated) && timeIsZero(t.Acc.Value(snap, c)) {
			// An object decoded from a form or a JSON body rarely carries
			// the times Tally sets: no time there means "Tally's to set",
			// as at an INSERT, not "write a zero time" (which would wipe
			// the row's creation time, and keep the UPDATE from stamping
			// the updated columns as set by the caller).
			continue
		}
		if err := t.Acc.Set(dst, c, t.Acc.Value(snap, c)); err != nil {
			return fmt.Errorf("orm: Merge: %s.%s: %w", t.Name, c.Name, err)
		}
	}
	return nil
}
