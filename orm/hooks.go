package orm

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/tallyorm/tally/identity"
	"github.com/tallyorm/tally/mapper"
)

// This file holds the lifecycle hooks: optional methods of a model that
// the flush calls before it writes an object's row, and that reads call
// after they make an object from a row. See "Lifecycle hooks" in the
// package documentation for the rules.

// BeforeInserter is a model with a BeforeInsert method (on its pointer),
// which the flush calls before it builds the object's INSERT, with the
// flush's ctx and the session. Changes the method makes to the object's
// column fields are inserted; an error aborts the flush.
type BeforeInserter interface {
	BeforeInsert(ctx context.Context, s *Session) error
}

// BeforeUpdater is a model with a BeforeUpdate method, which the flush
// calls for an object that has a change to write, before it compares the
// object with its snapshot: a field the method changes is written in the
// same UPDATE. An object with nothing to write is not updated and its
// BeforeUpdate does not run. An error aborts the flush.
type BeforeUpdater interface {
	BeforeUpdate(ctx context.Context, s *Session) error
}

// BeforeDeleter is a model with a BeforeDelete method, which the flush
// calls before it sends the object's DELETE (or, for a soft-deleted
// model, its UPDATE of the softdelete column). An error aborts the flush.
type BeforeDeleter interface {
	BeforeDelete(ctx context.Context, s *Session) error
}

// AfterLoader is a model with an AfterLoad method, which a read calls for
// each object it makes from a row — Query, Get, Load, Raw, Refresh, Merge
// — after the object is tracked and before it is returned; not for a row
// whose object the session already tracked (the identity map returns that
// one as it is). It runs before the relations the query asked for with
// Load are filled, and not for the partial objects of a Raw query that
// selects only some columns. Changes the method makes to column fields
// are ordinary changes, written by the next flush. An error is returned by
// the read; the objects read before it stay tracked.
type AfterLoader interface {
	AfterLoad(ctx context.Context, s *Session) error
}

// ErrHookReentry is returned by a session method called from a lifecycle
// hook of the same session: the hook runs in the middle of a flush or a
// read, which the call would corrupt. A hook changes its own object's
// fields; work that needs the session belongs before Commit or after the
// read. It matches ErrConcurrentUse too.
var ErrHookReentry = fmt.Errorf("orm: a lifecycle hook called a method of its own session; a hook may only change its object's fields (%w)", ErrConcurrentUse)

// HookError is a lifecycle hook's error, naming the hook and the table.
type HookError struct {
	Hook  string // "BeforeInsert", "BeforeUpdate", "BeforeDelete" or "AfterLoad"
	Table string
	Err   error // what the hook returned
}

// Error names the hook and the table, then gives the hook's error.
func (e *HookError) Error() string {
	return fmt.Sprintf("orm: %s hook of %s: %v", e.Hook, e.Table, e.Err)
}

// Unwrap returns the hook's own error.
func (e *HookError) Unwrap() error { return e.Err }

// hookSet says which hook methods a model type has.
type hookSet uint8

const (
	hookBeforeInsert hookSet = 1 << iota
	hookBeforeUpdate
	hookBeforeDelete
	hookAfterLoad
)

// hookSets caches, per model type, which hooks it has: a fact about the Go
// type, the same for every engine and never changing, like encoding/json's
// cache of struct fields. The flush and the reads ask once per table and
// call, so a model without hooks pays one map read, never a type
// assertion per object.
var hookSets sync.Map // reflect.Type → hookSet

func hooksOf(t *mapper.Table) hookSet {
	if v, ok := hookSets.Load(t.Type); ok {
		return v.(hookSet)
	}
	pt := t.PtrType()
	var h hookSet
	for _, x := range []struct {
		bit   hookSet
		iface reflect.Type
	}{
		{hookBeforeInsert, reflect.TypeFor[BeforeInserter]()},
		{hookBeforeUpdate, reflect.TypeFor[BeforeUpdater]()},
		{hookBeforeDelete, reflect.TypeFor[BeforeDeleter]()},
		{hookAfterLoad, reflect.TypeFor[AfterLoader]()},
	} {
		if pt.Implements(x.iface) {
			h |= x.bit
		}
	}
	hookSets.Store(t.Type, h)
	return h
}

// callHook runs one hook with the session marked as inside it, so that a
// call back into the session fails with ErrHookReentry rather than
// ErrConcurrentUse (the session stays busy throughout).
func (s *Session) callHook(name string, t *mapper.Table, fn func() error) (err error) {
	s.inHook.Store(true)
	defer s.inHook.Store(false)
	if err = fn(); err != nil {
		return &HookError{Hook: name, Table: t.Name, Err: err}
	}
	return nil
}

// flushHook runs a Before* hook of a flushed object. What the hook changes
// in the object's column fields is logged like the flush's own writes, so
// that a failed flush puts the values from before the hook back: the
// session is then exactly as before Commit, and the next flush runs the
// hook again on the object as the caller left it.
func (s *Session) flushHook(e *identity.Entry, name string, fn func() error) error {
	t := e.Table()
	before := t.Acc.Snapshot(e.Obj())
	err := s.callHook(name, t, fn)
	for _, c := range t.Acc.Changed(e.Obj(), before, nil) {
		s.logFlush(undo{kind: undoSetCol, e: e, col: c, old: t.Acc.Value(before, c)})
	}
	return err
}

// beforeInsert runs the BeforeInsert hooks of ents, one table's new
// objects in the order they were added, then sets their created and
// updated columns.
func (s *Session) beforeInsert(ctx context.Context, t *mapper.Table, ents []*identity.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	if hooksOf(t)&hookBeforeInsert != 0 {
		for _, e := range ents {
			h := e.Obj().(BeforeInserter)
			if err := s.flushHook(e, "BeforeInsert", func() error { return h.BeforeInsert(ctx, s) }); err != nil {
				return err
			}
		}
	}
	if len(t.Stamps) > 0 {
		return s.stampInsert(t, ents)
	}
	return nil
}

// beforeUpdate runs the BeforeUpdate hooks of one table's changed objects
// and compares each with its snapshot again, so that what a hook changed
// is written in the same UPDATE (and an object a hook changed back is not
// updated at all); then it sets the updated columns of those that write
// something. It returns the updates to send, reusing ups.
func (s *Session) beforeUpdate(ctx context.Context, t *mapper.Table, ups []update) ([]update, error) {
	if len(ups) == 0 || hooksOf(t)&hookBeforeUpdate == 0 && len(t.Stamps) == 0 {
		return ups, nil
	}
	out := ups[:0]
	for _, u := range ups {
		e := u.e
		if hooksOf(t)&hookBeforeUpdate != 0 {
			h := e.Obj().(BeforeUpdater)
			if err := s.flushHook(e, "BeforeUpdate", func() error { return h.BeforeUpdate(ctx, s) }); err != nil {
				return nil, err
			}
			if u.cols = t.Acc.Changed(e.Obj(), e.Snap(), u.cols[:0]); len(u.cols) == 0 {
				continue
			}
		}
		var err error
		if u.cols, err = s.stampUpdate(e, u.cols); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// beforeDelete runs the BeforeDelete hooks of one table's deleted objects.
func (s *Session) beforeDelete(ctx context.Context, t *mapper.Table, ents []*identity.Entry) error {
	if hooksOf(t)&hookBeforeDelete == 0 {
		return nil
	}
	for _, e := range ents {
		h := e.Obj().(BeforeDeleter)
		if err := s.flushHook(e, "BeforeDelete", func() error { return h.BeforeDelete(ctx, s) }); err != nil {
			return err
		}
	}
	return nil
}

// loaded runs obj's AfterLoad hook when the read made it from a row:
// got, what the read returns, is obj itself and not an object the
// session tracked already.
func (s *Session) loaded(ctx context.Context, t *mapper.Table, obj, got any) error {
	if got != obj || hooksOf(t)&hookAfterLoad == 0 {
		return nil
	}
	h := obj.(AfterLoader)
	k := t.Acc.Key(obj) // before the hook, which could change any field
	err := s.callHook("AfterLoad", t, func() error { return h.AfterLoad(ctx, s) })
	if err != nil {
		// The read fails and its caller never gets the object, yet the
		// session tracks it: what the hook changed before failing would
		// be a change nobody made, written by the next flush. The row's
		// values go back.
		if e := s.idmap.Get(t, k); e != nil && e.Obj() == obj {
			t.Acc.Restore(obj, e.Snap())
		}
	}
	return err
}

// resolveAll resolves the objects of a result against the identity map
// (see resolveRows) and runs the AfterLoad hooks of those made from rows,
// in row order. Which they are is known only before resolving, when the
// model has the hook at all.
func resolveAll[P any](ctx context.Context, s *Session, t *mapper.Table, objs []P, noTrack bool) error {
	if hooksOf(t)&hookAfterLoad == 0 {
		return resolveRows(s, t, objs, noTrack)
	}
	fresh := make([]bool, len(objs))
	for i, obj := range objs {
		fresh[i] = s.idmap.Get(t, t.Acc.Key(obj)) == nil
	}
	if err := resolveRows(s, t, objs, noTrack); err != nil {
		return err
	}
	for i, obj := range objs {
		if fresh[i] {
			if err := s.loaded(ctx, t, obj, obj); err != nil {
				return err
			}
		}
	}
	return nil
}
